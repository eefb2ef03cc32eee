//! Workload tokens: signed statements of which identity a proxy was given.
//!
//! The control plane issues each proxy a token when it is enrolled and checks it on every
//! call (CSR signing, xDS), so a proxy can only get certificates and config for its own
//! identity (DESIGN §7). A token is a JWT signed with ES256 (ECDSA P-256, SHA-256) by a
//! [`TokenKey`] that only the control plane holds; it is both the signer and the verifier,
//! so there is no key distribution.
//!
//! On the wire the claims are the registered JWT ones: `iss` = `weft-control-plane`,
//! `aud` = `weft`, `sub` = the SPIFFE ID, `jti` = a random id for revocation, `iat`, `nbf`
//! (= `iat`) and `exp` in seconds, and the private claim `labels`: the workload labels
//! the operator granted the token's holder (absent when none are). The header carries `alg: ES256` and `kid`, the
//! [`TokenKey::key_id`] of the signing key, so that during a key rotation the verifier can
//! pick the right key and refuse tokens of retired ones ([`TokenError::UnknownKey`]).
//!
//! Verification refuses any algorithm but ES256 before looking at the signature, which
//! closes the `alg: none` and HS256-with-the-public-key confusions. JWT handling is the
//! `jsonwebtoken` crate on its aws-lc-rs backend (no `ring`); it uses that crate's
//! process-wide provider, which this module installs on first use if none is set.
//!
//! What it is not: a revocation list or a session store. [`WorkloadClaims::id`] gives the
//! caller something to revoke by; remembering revoked ids is the control plane's job.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivatePkcs8KeyDer;

use crate::spiffe::{self, SpiffeId};

/// The `iss` of every Weft workload token.
pub const ISSUER: &str = "weft-control-plane";

/// The `aud` of every Weft workload token.
pub const AUDIENCE: &str = "weft";

/// The only signature algorithm tokens may use, as written in the JWT header.
const ALGORITHM: &str = "ES256";

/// Latest time a token may name: the end of year 9999, as in X.509.
const MAX_UNIX_SECONDS: u64 = 253_402_300_799;

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a token could not be issued or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The text is not a well-formed Weft token.
    #[error("malformed workload token: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },

    /// The token is signed (or claims to be) with another algorithm than ES256.
    #[error("workload token uses algorithm {found:?}; Weft accepts only ES256 tokens")]
    WrongAlgorithm {
        /// The `alg` of the token header.
        found: String,
    },

    /// The token was signed by another key than this one.
    #[error("workload token was signed by key {}, not by this control plane's key {expected}; it comes from another control plane or a retired key, enrol the proxy again", found.as_deref().unwrap_or("(none named)"))]
    UnknownKey {
        /// The `kid` of the token header, if any.
        found: Option<String>,
        /// The id of the key it was checked against.
        expected: String,
    },

    /// The signature does not match the token's content.
    #[error("workload token signature does not verify; the token was altered or forged")]
    BadSignature,

    /// The token is not meant for Weft.
    #[error("workload token audience is not {AUDIENCE:?}; it was issued for another service")]
    WrongAudience,

    /// The token was not issued by the Weft control plane.
    #[error("workload token issuer is not {ISSUER:?}; it was issued by another service")]
    WrongIssuer,

    /// The token has expired.
    #[error("workload token expired at {} (unix time); ask the operator for a new token", unix_seconds(*at))]
    Expired {
        /// When it expired.
        at: SystemTime,
    },

    /// The token is not valid yet.
    #[error("workload token is not valid before {} (unix time); check this host's clock", unix_seconds(*from))]
    NotYetValid {
        /// When it becomes valid.
        from: SystemTime,
    },

    /// The token's subject is not a Weft SPIFFE ID, or the claims to issue do not form one.
    #[error("workload token identity is invalid: {source}")]
    Identity {
        /// What is wrong with it.
        source: spiffe::Error,
    },

    /// The key PEM is unreadable or not an ECDSA P-256 PKCS#8 key.
    #[error("cannot use the token signing key: {detail}; expected an unencrypted ECDSA P-256 PKCS#8 (\"PRIVATE KEY\") PEM block")]
    Key {
        /// What is wrong with it.
        detail: String,
    },

    /// A new key could not be generated.
    #[error("cannot generate an ECDSA P-256 token signing key")]
    KeyGeneration,

    /// The token could not be signed.
    #[error("cannot sign the workload token: {detail}")]
    Sign {
        /// The JWT library's complaint.
        detail: String,
    },
}

/// The control plane's token signing key: an ECDSA P-256 key and its public half.
pub struct TokenKey {
    pkcs8: Vec<u8>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    key_id: String,
}

/// What a workload token says: which identity its holder was given, and for how long.
///
/// Serialized (e.g. for storage) with the two times as whole unix seconds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkloadClaims {
    /// The identity's trust domain.
    pub trust_domain: String,
    /// The identity's namespace.
    pub namespace: String,
    /// The identity's service account.
    pub service_account: String,
    /// Unique token id (JWT `jti`), random 128-bit hex; what revocation refers to.
    pub id: String,
    /// When the token was issued (JWT `iat`, whole seconds).
    #[serde(with = "serde_unix_seconds")]
    pub issued_at: SystemTime,
    /// When the token expires (JWT `exp`, whole seconds).
    #[serde(with = "serde_unix_seconds")]
    pub expires_at: SystemTime,
    /// The labels a workload registered with this token carries: the operator grants
    /// them when issuing the token, and a proxy cannot add to them. Empty: none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The JWT payload as it travels.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    iss: String,
    aud: String,
    sub: String,
    jti: String,
    iat: u64,
    nbf: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

/// The part of the header read before verification.
#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

// === impl TokenKey ===

impl TokenKey {
    /// Generates a new random signing key.
    pub fn generate() -> Result<Self, TokenError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| TokenError::KeyGeneration)?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// Loads a key stored with [`TokenKey::to_pem`].
    pub fn from_pem(pkcs8_pem: &str) -> Result<Self, TokenError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pkcs8_pem.as_bytes()).map_err(|e| {
            TokenError::Key {
                detail: e.to_string(),
            }
        })?;
        Self::from_pkcs8(der.secret_pkcs8_der())
    }

    fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, TokenError> {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(|e| {
                TokenError::Key {
                    detail: format!("not an ECDSA P-256 PKCS#8 key ({e})"),
                }
            })?;
        let point = pair.public_key().as_ref();
        let spki = [&P256_SPKI_PREFIX[..], point].concat();
        let key_id = hex::encode(&digest(&SHA256, &spki).as_ref()[..8]);
        Ok(TokenKey {
            pkcs8: pkcs8.to_vec(),
            encoding: EncodingKey::from_ec_der(pkcs8),
            decoding: DecodingKey::from_ec_der(point),
            key_id,
        })
    }

    /// The key as PKCS#8 PEM, for storage. Keep it secret.
    pub fn to_pem(&self) -> String {
        crate::bundle::pem_block("PRIVATE KEY", &self.pkcs8)
    }

    /// A stable short id of the public key: the first 8 bytes of the SHA-256 of its DER
    /// SubjectPublicKeyInfo, in hex. Tokens name it as `kid`.
    pub fn key_id(&self) -> String {
        self.key_id.clone()
    }

    /// Signs `claims` into a compact JWT.
    ///
    /// Fails if the claims do not form a valid SPIFFE ID or their times cannot be written.
    pub fn issue(&self, claims: &WorkloadClaims) -> Result<String, TokenError> {
        install_provider();
        let id = claims
            .spiffe_id()
            .map_err(|source| TokenError::Identity { source })?;
        let iat = to_unix(claims.issued_at)?;
        let wire = Wire {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: id.to_string(),
            jti: claims.id.clone(),
            iat,
            nbf: iat,
            exp: to_unix(claims.expires_at)?,
            labels: claims.labels.clone(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &wire, &self.encoding).map_err(|e| TokenError::Sign {
            detail: e.to_string(),
        })
    }

    /// Verifies signature, `kid`, algorithm (ES256 only — reject `none`/HS*), audience "weft",
    /// issuer "weft-control-plane", exp/nbf with `leeway` for clock skew; returns the claims.
    pub fn verify(
        &self,
        token: &str,
        now: SystemTime,
        leeway: Duration,
    ) -> Result<WorkloadClaims, TokenError> {
        install_provider();
        let header = raw_header(token)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::WrongAlgorithm { found: header.alg });
        }
        if header.kid.as_deref() != Some(self.key_id.as_str()) {
            return Err(TokenError::UnknownKey {
                found: header.kid,
                expected: self.key_id.clone(),
            });
        }

        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "nbf"]);
        // Times are checked below against the caller's `now`, not the library's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let wire = jsonwebtoken::decode::<Wire>(token, &self.decoding, &validation)
            .map_err(|e| decode_error(&e))?
            .claims;

        let not_before = from_unix(wire.nbf)?;
        let expires_at = from_unix(wire.exp)?;
        if now.checked_add(leeway).is_some_and(|t| t < not_before) {
            return Err(TokenError::NotYetValid { from: not_before });
        }
        if now.checked_sub(leeway).is_some_and(|t| t > expires_at) {
            return Err(TokenError::Expired { at: expires_at });
        }

        let id: SpiffeId = wire
            .sub
            .parse()
            .map_err(|source| TokenError::Identity { source })?;
        Ok(WorkloadClaims {
            trust_domain: id.trust_domain().to_owned(),
            namespace: id.namespace().to_owned(),
            service_account: id.service_account().to_owned(),
            id: wire.jti,
            issued_at: from_unix(wire.iat)?,
            expires_at,
            labels: wire.labels,
        })
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

// === impl WorkloadClaims ===

impl WorkloadClaims {
    /// New claims for an identity valid for `ttl` from `now`, with a fresh random id.
    ///
    /// Both times are truncated to whole seconds, as a JWT carries them, so the claims
    /// compare equal to what [`TokenKey::verify`] returns. A `ttl` reaching past year 9999
    /// is cut there.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
        now: SystemTime,
        ttl: Duration,
    ) -> Self {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .min(MAX_UNIX_SECONDS);
        let exp = iat.saturating_add(ttl.as_secs()).min(MAX_UNIX_SECONDS);
        WorkloadClaims {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
            id: token_id(now),
            issued_at: SystemTime::UNIX_EPOCH + Duration::from_secs(iat),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(exp),
            labels: BTreeMap::new(),
        }
    }

    /// The claims granting `labels` to the workloads registered with the token.
    #[must_use]
    pub fn with_labels(mut self, labels: BTreeMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// The SPIFFE ID the claims name.
    pub fn spiffe_id(&self) -> Result<SpiffeId, crate::spiffe::Error> {
        SpiffeId::new(&self.trust_domain, &self.namespace, &self.service_account)
    }
}

/// Makes jsonwebtoken use aws-lc-rs. With only its `aws_lc_rs` feature it would pick that
/// anyway; installing it explicitly keeps tokens working if another crate in the build
/// also enables `rust_crypto`, which would otherwise leave jsonwebtoken without a default.
fn install_provider() {
    // Fails only when a provider is already installed, which is fine.
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
}

/// Reads the token header without trusting it, to refuse bad algorithms and keys early
/// and with a precise error.
fn raw_header(token: &str) -> Result<RawHeader, TokenError> {
    let malformed = |reason: &str| TokenError::Malformed {
        reason: reason.to_owned(),
    };
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed(
            "expected three base64url parts separated by '.' (header.payload.signature)",
        ));
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| malformed("the header is not base64url"))?;
    serde_json::from_slice(&json).map_err(|e| TokenError::Malformed {
        reason: format!("the header is not a JSON object with a string \"alg\": {e}"),
    })
}

fn decode_error(err: &jsonwebtoken::errors::Error) -> TokenError {
    match err.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::WrongAlgorithm {
                found: "(unreadable)".to_owned(),
            }
        }
        ErrorKind::MissingRequiredClaim(claim) => TokenError::Malformed {
            reason: format!("the {claim:?} claim is missing"),
        },
        _ => TokenError::Malformed {
            reason: err.to_string(),
        },
    }
}

/// A fresh token id: 128 random bits in hex.
fn token_id(now: SystemTime) -> String {
    let mut bytes = [0u8; 16];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // The system generator failed (it practically never does). The id must still be
        // unique, not secret: derive it from the time, the process and a counter.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!(
            "{nanos}/{}/{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        bytes.copy_from_slice(&digest(&SHA256, seed.as_bytes()).as_ref()[..16]);
    }
    hex::encode(bytes)
}

fn to_unix(time: SystemTime) -> Result<u64, TokenError> {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
        .filter(|&s| s <= MAX_UNIX_SECONDS)
        .ok_or_else(|| TokenError::Sign {
            detail: format!("time {time:?} cannot be written into a token"),
        })
}

fn from_unix(seconds: u64) -> Result<SystemTime, TokenError> {
    if seconds > MAX_UNIX_SECONDS {
        return Err(TokenError::Malformed {
            reason: format!("time {seconds} is past year 9999"),
        });
    }
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Seconds since the epoch, for messages (0 for earlier times).
fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `SystemTime` as whole unix seconds in serde.
mod serde_unix_seconds {
    use std::time::{Duration, SystemTime};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        super::unix_seconds(*time).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let seconds = u64::deserialize(d)?;
        if seconds > super::MAX_UNIX_SECONDS {
            return Err(serde::de::Error::custom(format!(
                "time {seconds} is past year 9999"
            )));
        }
        Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);
    const MINUTE: Duration = Duration::from_secs(60);

    fn claims(now: SystemTime) -> WorkloadClaims {
        WorkloadClaims::new("cluster.local", "shop", "web", now, HOUR)
    }

    /// A compact token from a header and payload JSON and a base64url signature.
    fn with_parts(header: &serde_json::Value, payload: &serde_json::Value, sig: &str) -> String {
        let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        format!("{}.{}.{sig}", enc(header), enc(payload))
    }

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn issued_token_verifies_to_the_same_claims() {
        let key = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        let claims = claims(now);
        let token = key.issue(&claims).unwrap();
        assert_eq!(key.verify(&token, now, Duration::ZERO).unwrap(), claims);
    }

    #[test]
    fn granted_labels_travel_in_the_token_and_a_token_without_them_grants_none() {
        let key = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        let labels = BTreeMap::from([("app".to_owned(), "catalog".to_owned())]);
        let granted = claims(now).with_labels(labels.clone());
        let token = key.issue(&granted).unwrap();
        let payload = decode_part(token.split('.').nth(1).unwrap());
        assert_eq!(payload["labels"]["app"], "catalog");
        assert_eq!(
            key.verify(&token, now, Duration::ZERO).unwrap().labels,
            labels
        );

        let bare = key.issue(&claims(now)).unwrap();
        let payload = decode_part(bare.split('.').nth(1).unwrap());
        assert!(
            payload.get("labels").is_none(),
            "no claim when none granted"
        );
        assert!(key
            .verify(&bare, now, Duration::ZERO)
            .unwrap()
            .labels
            .is_empty());
    }

    #[test]
    fn token_carries_standard_claims_and_kid() {
        let key = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        let claims = claims(now);
        let token = key.issue(&claims).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.key_id().as_str());
        let payload = decode_part(parts[1]);
        assert_eq!(payload["iss"], ISSUER);
        assert_eq!(payload["aud"], AUDIENCE);
        assert_eq!(payload["sub"], "spiffe://cluster.local/ns/shop/sa/web");
        assert_eq!(payload["jti"], claims.id.as_str());
        assert_eq!(
            payload["exp"].as_u64().unwrap(),
            unix_seconds(claims.expires_at)
        );
    }

    #[test]
    fn claims_get_fresh_random_ids_and_whole_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_750);
        let a = claims(now);
        let b = claims(now);
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 32);
        assert!(a.id.chars().all(|c| c.is_ascii_hexdigit()), "{}", a.id);
        assert_eq!(unix_seconds(a.issued_at), 1_700_000_000);
        assert_eq!(
            a.issued_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(a.expires_at, a.issued_at + HOUR);
    }

    #[test]
    fn claims_name_their_spiffe_id() {
        let id = claims(SystemTime::now()).spiffe_id().unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        let bad = WorkloadClaims::new("Bad TD", "ns", "sa", SystemTime::now(), HOUR);
        assert!(bad.spiffe_id().is_err());
    }

    #[test]
    fn refuses_to_issue_for_an_invalid_identity() {
        let key = TokenKey::generate().unwrap();
        let bad = WorkloadClaims::new("td", "ns", "no/slash", SystemTime::now(), HOUR);
        let err = key.issue(&bad).unwrap_err();
        assert!(matches!(err, TokenError::Identity { .. }), "{err:?}");
    }

    #[test]
    fn claims_serialize_times_as_unix_seconds() {
        let claims = claims(SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["issued_at"], 100);
        assert_eq!(json["expires_at"], 3700);
        let back: WorkloadClaims = serde_json::from_value(json).unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn key_survives_pem_round_trip() {
        let key = TokenKey::generate().unwrap();
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let loaded = TokenKey::from_pem(&pem).unwrap();
        assert_eq!(loaded.key_id(), key.key_id());
        let now = SystemTime::now();
        let token = key.issue(&claims(now)).unwrap();
        loaded.verify(&token, now, Duration::ZERO).unwrap();
    }

    #[test]
    fn key_id_is_short_and_distinct_per_key() {
        let a = TokenKey::generate().unwrap();
        let b = TokenKey::generate().unwrap();
        assert_eq!(a.key_id().len(), 16);
        assert_ne!(a.key_id(), b.key_id());
    }

    #[test]
    fn key_id_is_the_hash_of_the_public_key_info() {
        // The SPKI we hash must be the real DER SubjectPublicKeyInfo of the key.
        let key = TokenKey::generate().unwrap();
        let rcgen_key = rcgen::KeyPair::from_pem(&key.to_pem()).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&rcgen_key);
        assert_eq!(
            key.key_id(),
            hex::encode(&digest(&SHA256, &spki).as_ref()[..8])
        );
    }

    #[test]
    fn from_pem_rejects_other_keys() {
        let err = TokenKey::from_pem("nope").unwrap_err();
        assert!(matches!(err, TokenError::Key { .. }), "{err:?}");
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let err = TokenKey::from_pem(&p384.serialize_pem()).unwrap_err();
        assert!(matches!(err, TokenError::Key { .. }), "{err:?}");
    }

    #[test]
    fn refuses_tampered_payload() {
        let key = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        let token = key.issue(&claims(now)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload = decode_part(parts[1]);
        payload["sub"] = "spiffe://cluster.local/ns/shop/sa/admin".into();
        let forged = with_parts(&decode_part(parts[0]), &payload, parts[2]);
        let err = key.verify(&forged, now, Duration::ZERO).unwrap_err();
        assert!(matches!(err, TokenError::BadSignature), "{err:?}");
    }

    #[test]
    fn refuses_token_of_another_key() {
        let key = TokenKey::generate().unwrap();
        let other = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        let token = other.issue(&claims(now)).unwrap();
        let err = key.verify(&token, now, Duration::ZERO).unwrap_err();
        assert!(matches!(err, TokenError::UnknownKey { .. }), "{err:?}");
        assert!(err.to_string().contains(&other.key_id()), "{err}");

        // The same token claiming our kid still fails, on the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let mut header = decode_part(parts[0]);
        header["kid"] = key.key_id().into();
        let relabelled = with_parts(&header, &decode_part(parts[1]), parts[2]);
        let err = key.verify(&relabelled, now, Duration::ZERO).unwrap_err();
        assert!(matches!(err, TokenError::BadSignature), "{err:?}");
    }

    #[test]
    fn refuses_expired_token_unless_within_leeway() {
        let key = TokenKey::generate().unwrap();
        let issued = SystemTime::now() - 2 * HOUR;
        let claims = claims(issued);
        let token = key.issue(&claims).unwrap();
        let after_expiry = claims.expires_at + 30 * Duration::from_secs(1);
        let err = key
            .verify(&token, after_expiry, Duration::ZERO)
            .unwrap_err();
        assert!(
            matches!(err, TokenError::Expired { at } if at == claims.expires_at),
            "{err:?}"
        );
        assert!(err.to_string().contains("expired"), "{err}");
        assert_eq!(key.verify(&token, after_expiry, MINUTE).unwrap(), claims);
        // Exactly at expiry is still accepted; one second past is not.
        key.verify(&token, claims.expires_at, Duration::ZERO)
            .unwrap();
        let just_after = claims.expires_at + Duration::from_secs(1);
        let err = key.verify(&token, just_after, Duration::ZERO).unwrap_err();
        assert!(matches!(err, TokenError::Expired { .. }), "{err:?}");
    }

    #[test]
    fn refuses_token_not_yet_valid_unless_within_leeway() {
        let key = TokenKey::generate().unwrap();
        let issued = SystemTime::now() + 10 * MINUTE;
        let claims = claims(issued);
        let token = key.issue(&claims).unwrap();
        let now = claims.issued_at - 2 * MINUTE;
        let err = key.verify(&token, now, MINUTE).unwrap_err();
        assert!(
            matches!(err, TokenError::NotYetValid { from } if from == claims.issued_at),
            "{err:?}"
        );
        assert_eq!(key.verify(&token, now, 5 * MINUTE).unwrap(), claims);
    }

    #[test]
    fn refuses_alg_none() {
        let key = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        let token = key.issue(&claims(now)).unwrap();
        let payload = decode_part(token.split('.').nth(1).unwrap());
        let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": key.key_id()});
        let unsigned = with_parts(&header, &payload, "");
        let err = key.verify(&unsigned, now, Duration::ZERO).unwrap_err();
        assert!(
            matches!(&err, TokenError::WrongAlgorithm { found } if found == "none"),
            "{err:?}"
        );
        assert!(err.to_string().contains("only ES256"), "{err}");
    }

    #[test]
    fn refuses_hs256_even_keyed_with_the_public_key() {
        use aws_lc_rs::hmac;
        let key = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        let token = key.issue(&claims(now)).unwrap();
        let payload = decode_part(token.split('.').nth(1).unwrap());
        let header = serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": key.key_id()});
        let unsigned = with_parts(&header, &payload, "");
        let message = unsigned.trim_end_matches('.');
        // The classic confusion: an HMAC keyed with the (public) verification key.
        let mac_key = hmac::Key::new(hmac::HMAC_SHA256, key.decoding.as_bytes());
        let tag = hmac::sign(&mac_key, message.as_bytes());
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        let err = key.verify(&forged, now, Duration::ZERO).unwrap_err();
        assert!(
            matches!(&err, TokenError::WrongAlgorithm { found } if found == "HS256"),
            "{err:?}"
        );
    }

    #[test]
    fn refuses_wrong_audience_and_issuer() {
        let key = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        let sign = |payload: &serde_json::Value| {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(key.key_id());
            jsonwebtoken::encode(&header, payload, &key.encoding).unwrap()
        };
        let token = key.issue(&claims(now)).unwrap();
        let payload = decode_part(token.split('.').nth(1).unwrap());

        let mut other_aud = payload.clone();
        other_aud["aud"] = "kubernetes".into();
        let err = key
            .verify(&sign(&other_aud), now, Duration::ZERO)
            .unwrap_err();
        assert!(matches!(err, TokenError::WrongAudience), "{err:?}");

        let mut other_iss = payload.clone();
        other_iss["iss"] = "someone-else".into();
        let err = key
            .verify(&sign(&other_iss), now, Duration::ZERO)
            .unwrap_err();
        assert!(matches!(err, TokenError::WrongIssuer), "{err:?}");

        let mut no_exp = payload.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        let err = key.verify(&sign(&no_exp), now, Duration::ZERO).unwrap_err();
        assert!(matches!(err, TokenError::Malformed { .. }), "{err:?}");

        let mut bad_sub = payload;
        bad_sub["sub"] = "spiffe://cluster.local/web".into();
        let err = key
            .verify(&sign(&bad_sub), now, Duration::ZERO)
            .unwrap_err();
        assert!(matches!(err, TokenError::Identity { .. }), "{err:?}");
    }

    #[test]
    fn refuses_garbage() {
        let key = TokenKey::generate().unwrap();
        let now = SystemTime::now();
        for token in ["", "a.b", "a.b.c.d", "!!.e30.x", "e30.e30.x"] {
            let err = key.verify(token, now, Duration::ZERO).unwrap_err();
            assert!(
                matches!(err, TokenError::Malformed { .. }),
                "{token}: {err:?}"
            );
        }
    }
}
