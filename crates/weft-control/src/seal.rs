//! Encryption at rest of `Secret` material: AES-256-GCM with a key kept beside the
//! store (or given by the operator), a random nonce per write, and the object's
//! identity as associated data, so a ciphertext copied onto another Secret does not
//! open. Each ciphertext names its key's id, so a later rotation can keep old keys to
//! open old ciphertexts; one that names a key this control plane lacks is an error
//! naming the id, never an empty Secret. See ADR 41.
//!
//! What it is not: access control. The API never answers sealed material; this module
//! is only what the store's rows hold.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use weft_api::resource::secret::Sealed;
use weft_api::resource::Object;

/// The default key file's name, beside the SQLite database.
pub const KEY_FILE: &str = "secret.key";
/// Bytes in a key (AES-256).
pub const KEY_LEN: usize = 32;

/// Failures to load a key or to open a ciphertext. No variant carries key or
/// plaintext bytes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key file is readable or writable by others.
    #[error(
        "the secret key file {} has mode {mode:o}: others can read it; run `chmod 600 {}` \
         and start again",
        path.display(),
        path.display()
    )]
    LoosePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold exactly [`KEY_LEN`] bytes.
    #[error(
        "the secret key file {} holds {len} bytes, not {KEY_LEN}: it is not a Weft secret \
         key; restore it from your backup (`head -c 32 /dev/urandom` makes a new key, but \
         Secrets sealed with the old one then cannot be read)",
        path.display()
    )]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The key file could not be read or created.
    #[error("cannot read or create the secret key file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No random bytes for a nonce or a key.
    #[error("no random bytes available for {what}")]
    Random {
        /// A nonce or a key.
        what: &'static str,
    },
    /// The ciphertext names a key this control plane does not have.
    #[error(
        "{object} was sealed with secret key {key_id}, but this control plane has key \
         {have}; start it with the key file that has id {key_id} (`--secret-key-file`), or \
         apply the Secret again"
    )]
    UnknownKey {
        /// `Secret/ns/name`.
        object: String,
        /// The id the ciphertext names.
        key_id: String,
        /// The id of the key at hand.
        have: String,
    },
    /// The ciphertext does not open with its key and this object's identity: it was
    /// altered, or copied from another object.
    #[error(
        "{object}: the sealed material does not open with key {key_id} for this object \
         (altered, or copied from another Secret); apply the Secret again"
    )]
    Corrupt {
        /// `Secret/ns/name`.
        object: String,
        /// The key's id.
        key_id: String,
    },
    /// The stored Secret has no sealed part (or is not a Secret's stored form).
    #[error(
        "{object} holds no sealed material (it was not written through the API); apply \
         the Secret again"
    )]
    NotSealed {
        /// `Secret/ns/name`.
        object: String,
    },
}

/// `Secret/ns/name`: the associated data that binds a ciphertext to its object.
pub(crate) fn identity(namespace: &str, name: &str) -> String {
    format!("Secret/{namespace}/{name}")
}

/// A Secret's material, opened: each key (`tls.crt`, `tls.key`, `ca.crt`) and its
/// bytes. Its `Debug` names the keys only, so logging it leaks nothing.
pub struct Material(BTreeMap<String, Vec<u8>>);

// === impl Material ===

impl Material {
    /// The material of one Secret, by key.
    pub(crate) fn new(data: BTreeMap<String, Vec<u8>>) -> Self {
        Self(data)
    }

    /// The bytes of `key`, if the Secret holds it.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.0.get(key).map(Vec::as_slice)
    }

    /// The keys present, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// What is sealed: a JSON map of key to base64.
    pub(crate) fn plaintext(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(
            &self
                .0
                .iter()
                .map(|(k, v)| (k.as_str(), BASE64.encode(v)))
                .collect::<BTreeMap<_, _>>(),
        )
    }

    fn from_plaintext(plaintext: &[u8]) -> Option<Self> {
        let encoded: BTreeMap<String, String> = serde_json::from_slice(plaintext).ok()?;
        encoded
            .into_iter()
            .map(|(k, v)| Some((k, BASE64.decode(v).ok()?)))
            .collect::<Option<BTreeMap<_, _>>>()
            .map(Self)
    }
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("keys", &self.0.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The keys Secrets are sealed and opened with: one current key (every write) and,
/// after a rotation, older ones by id (reads only).
pub struct Keyring {
    current: Key,
    older: BTreeMap<String, Key>,
}

struct Key {
    id: String,
    key: LessSafeKey,
}

// === impl Keyring ===

impl Keyring {
    /// Loads the key in `path`, which must exist. The file must hold [`KEY_LEN`]
    /// bytes and be unreadable by group and others.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::LoosePermissions {
                path: path.to_owned(),
                mode,
            });
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(Error::WrongSize {
                path: path.to_owned(),
                len: meta.len(),
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::from_bytes(&bytes).ok_or(Error::WrongSize {
            path: path.to_owned(),
            len: bytes.len() as u64,
        })
    }

    /// Loads the key in `path`, first creating it (32 random bytes, mode 0600) if
    /// there is no file.
    pub fn load_or_create(path: &Path) -> Result<Self, Error> {
        if !path.exists() {
            let mut key = [0u8; KEY_LEN];
            aws_lc_rs::rand::fill(&mut key).map_err(|_| Error::Random { what: "a key" })?;
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            match created {
                Ok(mut file) => {
                    file.write_all(&key)
                        .and_then(|()| file.sync_all())
                        .map_err(|source| Error::Io {
                            path: path.to_owned(),
                            source,
                        })?;
                    tracing::info!(file = %path.display(), "created the secret key; back it up with the store");
                }
                // Another instance created it first: load theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(Error::Io {
                        path: path.to_owned(),
                        source,
                    })
                }
            }
        }
        Self::load(path)
    }

    /// A keyring of one key made from `bytes` ([`KEY_LEN`] of them).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            current: Key::new(bytes)?,
            older: BTreeMap::new(),
        })
    }

    /// A keyring of one random key, for tests and tools that need no persistence.
    pub fn ephemeral() -> Result<Self, Error> {
        let mut key = [0u8; KEY_LEN];
        aws_lc_rs::rand::fill(&mut key).map_err(|_| Error::Random { what: "a key" })?;
        Self::from_bytes(&key).ok_or(Error::Random { what: "a key" })
    }

    /// The id of the key writes use.
    pub fn key_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plaintext` for the object `identity` (`Secret/ns/name`) with the current
    /// key and a fresh nonce.
    pub fn seal(&self, identity: &str, plaintext: &[u8]) -> Result<Sealed, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::Random { what: "a nonce" })?;
        let mut buffer = plaintext.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(identity.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| Error::Corrupt {
                object: identity.to_owned(),
                key_id: self.current.id.clone(),
            })?;
        Ok(Sealed {
            key_id: self.current.id.clone(),
            nonce: BASE64.encode(nonce),
            ciphertext: BASE64.encode(buffer),
        })
    }

    /// Opens what [`Keyring::seal`] sealed for `identity`.
    pub fn open(&self, identity: &str, sealed: &Sealed) -> Result<Vec<u8>, Error> {
        let key = if sealed.key_id == self.current.id {
            &self.current
        } else {
            self.older
                .get(&sealed.key_id)
                .ok_or_else(|| Error::UnknownKey {
                    object: identity.to_owned(),
                    key_id: sealed.key_id.clone(),
                    have: self.current.id.clone(),
                })?
        };
        let corrupt = || Error::Corrupt {
            object: identity.to_owned(),
            key_id: key.id.clone(),
        };
        let nonce: [u8; NONCE_LEN] = BASE64
            .decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(corrupt)?;
        let mut buffer = BASE64.decode(&sealed.ciphertext).map_err(|_| corrupt())?;
        let plaintext = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(identity.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| corrupt())?;
        Ok(plaintext.to_vec())
    }
}

impl Keyring {
    /// Opens a stored Secret (as the store holds it, sealed part included): its
    /// material, or why not — a key this control plane lacks (naming both key ids), a
    /// ciphertext altered or copied from another Secret, or no sealed part. Never an
    /// empty Secret.
    pub fn open_secret(&self, object: &Object) -> Result<Material, Error> {
        let identity = identity(object.namespace(), &object.metadata.name);
        let sealed: Option<Sealed> = object
            .spec
            .get("sealed")
            .and_then(|s| serde_json::from_value(s.clone()).ok());
        let Some(sealed) = sealed else {
            return Err(Error::NotSealed { object: identity });
        };
        let plaintext = self.open(&identity, &sealed)?;
        Material::from_plaintext(&plaintext).ok_or(Error::Corrupt {
            object: identity,
            key_id: sealed.key_id,
        })
    }
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_id", &self.current.id)
            .field("older", &self.older.keys().collect::<Vec<_>>())
            .finish()
    }
}

// === impl Key ===

impl Key {
    fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != KEY_LEN {
            return None;
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let id = hex::encode(digest.as_ref().get(..8)?);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).ok()?);
        Some(Self { id, key })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sealed_material_opens_only_for_the_same_object_and_key() {
        let ring = Keyring::ephemeral().unwrap();
        let sealed = ring.seal("Secret/shop/a", b"material").unwrap();
        assert_eq!(ring.open("Secret/shop/a", &sealed).unwrap(), b"material");
        let moved = ring.open("Secret/shop/b", &sealed).unwrap_err();
        assert!(matches!(moved, Error::Corrupt { .. }), "{moved}");
        let other = Keyring::ephemeral().unwrap();
        let message = other
            .open("Secret/shop/a", &sealed)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(ring.key_id()) && message.contains(other.key_id()),
            "{message}"
        );
    }

    #[test]
    fn each_seal_takes_a_fresh_nonce() {
        let ring = Keyring::ephemeral().unwrap();
        let a = ring.seal("Secret/shop/a", b"m").unwrap();
        let b = ring.seal("Secret/shop/a", b"m").unwrap();
        assert_ne!(a.nonce, b.nonce);
    }

    #[test]
    fn the_key_file_is_created_0600_and_refused_when_loose_or_of_the_wrong_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let created = Keyring::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(Keyring::load(&path).unwrap().key_id(), created.key_id());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loose = Keyring::load(&path).unwrap_err().to_string();
        assert!(loose.contains("chmod 600"), "{loose}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, b"short").unwrap();
        let short = Keyring::load_or_create(&path).unwrap_err().to_string();
        assert!(short.contains("holds 5 bytes, not 32"), "{short}");
    }
}
