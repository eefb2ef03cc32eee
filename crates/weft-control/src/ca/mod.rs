//! The mesh certificate authority (DESIGN §2, "CA (CSR signing, trust bundle)"): the
//! CA that signs workload certificates and the trust bundle every proxy verifies peers
//! against.
//!
//! Where it sits: [`MeshCa::start`] runs once when the control plane starts, reading
//! `Mesh.spec.ca` from the store; the [`identity`](crate::identity) service then calls
//! [`MeshCa::sign`] for each authenticated CSR and sends [`MeshCa::trust_bundle`] with
//! every certificate.
//!
//! Two backends:
//! - **builtin** (default): an ECDSA P-256 root, valid 10 years, for the mesh trust
//!   domain. It is generated once and kept as the store secret [`BUILTIN_SECRET`]
//!   (insert-if-absent, so instances starting together agree on one root); its key
//!   lives only in the store (the SQLite file is mode 0600) and is never sent anywhere.
//! - **provided**: the operator's CA certificate and key (a root, or an intermediate
//!   with `chainFile` up to the root), read from `Mesh.spec.ca.provided` paths on the
//!   control-plane host.
//!
//! The signing CA and the trust bundle are kept apart so that a rotation ([`rotation`])
//! can publish a bundle with two roots while the old CA still signs, then switch the
//! signer, then retire the old root. Builtin roots are numbered by generation
//! (`Mesh.spec.ca.builtin.generation`): generation 0 is [`BUILTIN_SECRET`], generation
//! N is `ca/builtin/N`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use weft_api::resource::mesh::{self, CaStatus, CaType, ProvidedCa, MESH_NAME};
use weft_api::resource::{Key, Kind};
use weft_tls::bundle::{BundleError, TrustBundle};
use weft_tls::ca::{Authority, SignedLeaf};
use weft_tls::csr::Csr;
use weft_tls::SpiffeId;

use crate::store::{Store, StoreError};

pub mod rotation;
pub mod serving;

/// Store secret holding the builtin CA (JSON `{"certificate": PEM, "privateKey": PEM}`).
pub const BUILTIN_SECRET: &str = "ca/builtin";

/// Validity of a generated builtin root: 10 years.
pub const BUILTIN_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// The CA in force and the roots peers trust. Both can change while the control plane
/// runs (a rotation, [`rotation`]); readers take a consistent snapshot each time.
pub struct MeshCa {
    trust_domain: String,
    active: RwLock<Arc<Active>>,
}

/// One consistent state: who signs, and what is trusted.
struct Active {
    authority: Arc<Authority>,
    bundle: TrustBundle,
    source: Source,
}

/// Where the signing CA came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The control plane's own root of this generation, from the store.
    Builtin {
        /// `Mesh.spec.ca.builtin.generation`.
        generation: u32,
    },
    /// The operator's CA, from these files.
    Provided {
        /// `certFile`.
        cert_file: PathBuf,
    },
}

/// Why the CA could not be set up or could not sign.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed while reading the Mesh or a secret.
    #[error("cannot load the mesh CA: {0}")]
    Store(#[from] StoreError),
    /// The stored `Mesh` named `default` does not parse.
    #[error(
        "cannot read Mesh {MESH_NAME:?} to set up the CA: {message}; fix it with `weft apply`"
    )]
    MeshSpec {
        /// The parser's complaint.
        message: String,
    },
    /// `Mesh.spec.ca.type` is `provided` but no files are named.
    #[error(
        "Mesh.spec.ca.type is provided but spec.ca.provided is missing; give certFile and keyFile"
    )]
    ProvidedMissing,
    /// A builtin root could not be generated.
    #[error("cannot generate the builtin CA: {0}")]
    Generate(#[source] Box<weft_tls::ca::Error>),
    /// The builtin CA kept in the store cannot be loaded.
    #[error("the builtin CA stored as secret {BUILTIN_SECRET:?} is unreadable: {detail}; the store may be corrupt")]
    StoredUnreadable {
        /// What is wrong.
        detail: String,
    },
    /// A provided CA file cannot be read.
    #[error("cannot read the provided CA's {field} {}: {source}", path.display())]
    Read {
        /// Which field named it (`certFile`, `keyFile`, `chainFile`).
        field: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The provided CA files do not make a usable CA.
    #[error("the provided CA ({}) is unusable: {source}", cert_file.display())]
    Provided {
        /// `certFile`.
        cert_file: PathBuf,
        /// What is wrong with it.
        source: Box<weft_tls::ca::Error>,
    },
    /// The CA's root cannot be a trust anchor.
    #[error("the CA's root cannot be used as a trust anchor: {0}")]
    Bundle(#[from] BundleError),
    /// The CA chain holds no certificate to anchor trust on.
    #[error("the CA has no certificate chain to build a trust bundle from")]
    NoRoot,
    /// The control plane's own identity is not a SPIFFE ID in the CA's trust domain.
    #[error("cannot name the control plane in the CA's trust domain: {0}")]
    ServingIdentity(#[source] weft_tls::spiffe::Error),
    /// Signing a CSR failed.
    #[error("cannot sign a certificate for {id}: {source}")]
    Sign {
        /// The identity being signed.
        id: SpiffeId,
        /// Why.
        source: Box<weft_tls::ca::Error>,
    },
}

/// The builtin CA as kept in the store.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredCa {
    certificate: String,
    private_key: String,
}

// === impl MeshCa ===

impl MeshCa {
    /// The CA in force: the signer `Mesh.status.ca` names when the control plane has
    /// written one (a restart during a rotation resumes it), else the CA `Mesh.spec.ca`
    /// asks for (builtin when there is no `Mesh`), for the mesh trust domain.
    pub async fn start(store: &dyn Store) -> Result<Self, Error> {
        let (spec, status) = mesh_spec(store).await?;
        let from_status = match &status {
            Some(status) => match rotation::load_signer(store, &spec, status).await {
                Ok((authority, source)) => {
                    let bundle = rotation::bundle_of(status)?;
                    Some(Self::new_with_bundle(authority, source, bundle))
                }
                Err(e) => {
                    tracing::warn!(error = %e, signer = %status.signer, "the CA Mesh.status.ca names cannot be loaded; starting from Mesh.spec.ca");
                    None
                }
            },
            None => None,
        };
        let ca = match from_status {
            Some(ca) => ca,
            None => Self::from_spec(store, &spec).await?,
        };
        if ca.trust_domain() != spec.trust_domain {
            // Changing the trust domain means a new root, i.e. a CA rotation.
            tracing::warn!(
                mesh = %spec.trust_domain,
                ca = %ca.trust_domain(),
                "Mesh.spec.trustDomain differs from the CA's trust domain; certificates are \
                 issued for the CA's until the CA is rotated"
            );
        }
        tracing::info!(
            source = ?ca.source(),
            trust_domain = %ca.trust_domain(),
            roots = ca.trust_bundle().len(),
            "mesh CA ready"
        );
        Ok(ca)
    }

    /// The CA `spec` asks for.
    async fn from_spec(store: &dyn Store, spec: &mesh::Spec) -> Result<Self, Error> {
        let (authority, source) = authority_for(store, spec).await?;
        Self::new(authority, source)
    }

    /// The builtin CA kept in `store`, generated (for `trust_domain`) and stored first
    /// if there is none. Of several instances doing this at once, all end up with the
    /// root the first one stored.
    pub async fn builtin(store: &dyn Store, trust_domain: &str) -> Result<Self, Error> {
        let authority = builtin_authority(store, trust_domain, 0).await?;
        Self::new(authority, Source::Builtin { generation: 0 })
    }

    /// The operator's CA from `files`, for `trust_domain` (which the CA certificate's
    /// `spiffe://` URI SAN, if it has one, must match).
    pub fn provided(files: &ProvidedCa, trust_domain: &str) -> Result<Self, Error> {
        let (authority, source) = provided_authority(files, trust_domain)?;
        Self::new(authority, source)
    }

    /// Trusts the authority's root only.
    fn new(authority: Authority, source: Source) -> Result<Self, Error> {
        let bundle = TrustBundle::from_der([root_of(&authority)?])?;
        Ok(Self::new_with_bundle(authority, source, bundle))
    }

    fn new_with_bundle(authority: Authority, source: Source, bundle: TrustBundle) -> Self {
        MeshCa {
            trust_domain: authority.trust_domain().to_owned(),
            active: RwLock::new(Arc::new(Active {
                authority: Arc::new(authority),
                bundle,
                source,
            })),
        }
    }

    fn active(&self) -> Arc<Active> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `authority` the signer and `bundle` the trust bundle (a rotation step).
    pub(crate) fn set(&self, authority: Arc<Authority>, source: Source, bundle: TrustBundle) {
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(Active {
            authority,
            bundle,
            source,
        });
    }

    /// The id of the CA that signs now (`weft_tls::ca::Authority::signer_id`).
    pub fn signer_id(&self) -> String {
        self.active().authority.signer_id()
    }
}

/// The root an authority chains to, or the top of its chain when the chain stops short
/// of a self-signed root (that certificate is then the trust anchor).
pub(crate) fn root_of(authority: &Authority) -> Result<Vec<u8>, Error> {
    match authority.root_der() {
        Some(root) => Ok(root),
        None => authority.chain_der().pop().ok_or(Error::NoRoot),
    }
}

/// The CA `spec.ca` names, and where it came from.
pub(crate) async fn authority_for(
    store: &dyn Store,
    spec: &mesh::Spec,
) -> Result<(Authority, Source), Error> {
    match spec.ca.kind {
        CaType::Builtin => {
            let generation = spec.ca.builtin.as_ref().map_or(0, |b| b.generation);
            let authority = builtin_authority(store, &spec.trust_domain, generation).await?;
            Ok((authority, Source::Builtin { generation }))
        }
        CaType::Provided => {
            let files = spec.ca.provided.as_ref().ok_or(Error::ProvidedMissing)?;
            provided_authority(files, &spec.trust_domain)
        }
    }
}

/// Store secret of builtin generation `generation`: [`BUILTIN_SECRET`] for 0.
fn builtin_secret(generation: u32) -> String {
    if generation == 0 {
        BUILTIN_SECRET.to_owned()
    } else {
        format!("{BUILTIN_SECRET}/{generation}")
    }
}

/// The builtin CA of `generation`, generated and stored first if there is none.
pub(crate) async fn builtin_authority(
    store: &dyn Store,
    trust_domain: &str,
    generation: u32,
) -> Result<Authority, Error> {
    let name = builtin_secret(generation);
    {
        let stored = if let Some(stored) = store.secret(&name).await? {
            stored
        } else {
            let fresh = Authority::generate(trust_domain, BUILTIN_VALIDITY)
                .map_err(|e| Error::Generate(Box::new(e)))?;
            let value = serde_json::to_vec(&StoredCa {
                certificate: fresh.cert_pem(),
                private_key: fresh.key_pem(),
            })
            .map_err(|e| Error::StoredUnreadable {
                detail: e.to_string(),
            })?;
            let stored = store.create_secret(&name, &value).await?;
            if stored == value {
                tracing::info!(trust_domain, generation, "generated a builtin mesh CA");
            }
            stored
        };
        let StoredCa {
            certificate,
            private_key,
        } = serde_json::from_slice(&stored).map_err(|e| Error::StoredUnreadable {
            detail: e.to_string(),
        })?;
        Authority::from_pem(&certificate, &private_key).map_err(|e| Error::StoredUnreadable {
            detail: e.to_string(),
        })
    }
}

/// The operator's CA from `files`.
pub(crate) fn provided_authority(
    files: &ProvidedCa,
    trust_domain: &str,
) -> Result<(Authority, Source), Error> {
    {
        let cert_file = PathBuf::from(&files.cert_file);
        let cert_pem = read("certFile", &cert_file)?;
        let key_pem = read("keyFile", Path::new(&files.key_file))?;
        let chain_pem = match &files.chain_file {
            Some(chain) => read("chainFile", Path::new(chain))?,
            None => String::new(),
        };
        let authority =
            Authority::from_pem_chain(&cert_pem, &key_pem, &chain_pem, Some(trust_domain))
                .map_err(|source| Error::Provided {
                    cert_file: cert_file.clone(),
                    source: Box::new(source),
                })?;
        Ok((authority, Source::Provided { cert_file }))
    }
}

impl MeshCa {
    /// The trust domain the CA issues identities of.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// Every root a peer's chain may end at (two during a rotation).
    pub fn trust_bundle(&self) -> TrustBundle {
        self.active().bundle.clone()
    }

    /// Where the signing CA came from.
    pub fn source(&self) -> Source {
        self.active().source.clone()
    }

    /// When the signing CA itself expires.
    pub fn not_after(&self) -> SystemTime {
        self.active().authority.not_after()
    }

    /// Issues the control plane's own serving certificate (its SPIFFE identity plus
    /// `hosts` as DNS/IP SANs), with a key generated here, valid for `validity`.
    pub fn issue_serving(
        &self,
        hosts: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> Result<weft_tls::ca::ServerLeaf, Error> {
        let id =
            weft_tls::control::identity(self.trust_domain()).map_err(Error::ServingIdentity)?;
        self.active()
            .authority
            .issue_server(&id, hosts, validity, now)
            .map_err(|source| Error::Sign {
                id,
                source: Box::new(source),
            })
    }

    /// As [`MeshCa::sign`], with the trust bundle and signer id of the same moment (a
    /// rotation may switch them between two calls).
    pub fn sign_bundled(
        &self,
        csr: &Csr,
        id: &SpiffeId,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<(SignedLeaf, TrustBundle, String), Error> {
        let active = self.active();
        let leaf = active
            .authority
            .sign_csr(csr, id, ttl, now)
            .map_err(|source| Error::Sign {
                id: id.clone(),
                source: Box::new(source),
            })?;
        Ok((leaf, active.bundle.clone(), active.authority.signer_id()))
    }

    /// Signs `csr`'s key for `id` (never for the identity the CSR asks for), valid from
    /// now (backdated a little for clock skew) for `ttl`.
    pub fn sign(
        &self,
        csr: &Csr,
        id: &SpiffeId,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<SignedLeaf, Error> {
        self.active()
            .authority
            .sign_csr(csr, id, ttl, now)
            .map_err(|source| Error::Sign {
                id: id.clone(),
                source: Box::new(source),
            })
    }
}

impl std::fmt::Debug for MeshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let active = self.active();
        f.debug_struct("MeshCa")
            .field("trust_domain", &self.trust_domain)
            .field("source", &active.source)
            .field("roots", &active.bundle.len())
            .finish_non_exhaustive()
    }
}

/// The key of `Mesh` `default`.
pub(crate) fn mesh_key() -> Key {
    Key {
        kind: Kind::Mesh,
        namespace: String::new(),
        name: MESH_NAME.to_owned(),
    }
}

/// `Mesh` `default`'s spec (the defaults when there is none) and `status.ca`.
async fn mesh_spec(store: &dyn Store) -> Result<(mesh::Spec, Option<CaStatus>), Error> {
    let Some(object) = store.get(&mesh_key()).await? else {
        return Ok((mesh::Spec::default(), None));
    };
    let status = CaStatus::of(object.status.as_ref());
    Ok((parse_spec(&object.spec)?, status))
}

/// A stored `Mesh` spec, typed.
pub(crate) fn parse_spec(spec: &serde_json::Value) -> Result<mesh::Spec, Error> {
    let spec = if spec.is_null() {
        serde_json::json!({})
    } else {
        spec.clone()
    };
    serde_json::from_value(spec).map_err(|e| Error::MeshSpec {
        message: e.to_string(),
    })
}

fn read(field: &'static str, path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        field,
        path: path.to_owned(),
        source,
    })
}
