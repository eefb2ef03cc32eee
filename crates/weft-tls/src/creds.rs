//! Workload credentials: our certificate chain, its key and the mesh trust bundle.
//!
//! [`Credentials`] is what a proxy loads from PEM files (written by `weft` or, later,
//! obtained from the control plane's CA) and turns into rustls configurations for HBONE:
//! [`Credentials::server_config`] for the inbound listener on port 15008 and
//! [`Credentials::client_config`] for each outbound connection to a peer proxy.
//!
//! Loading validates what a handshake would otherwise discover late: the leaf carries
//! exactly one SPIFFE ID, the key belongs to the leaf, and the chain verifies against
//! the trust bundle for both TLS server and client use. An expired certificate still
//! loads, so the proxy can report it (see [`Credentials::is_expired`]); peers will
//! refuse it.
//!
//! Both configurations are TLS 1.3 only with ALPN `h2`, use the aws-lc-rs provider
//! explicitly, and disable session resumption: a resumed session skips certificate
//! verification, and HBONE pools its connections, so resumption would buy little and
//! could let a rotated-out identity linger.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::client::Resumption;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::spiffe::SpiffeId;
use crate::verify::{self, ServerVerifier};

/// The ALPN protocol HBONE speaks.
const ALPN_H2: &[u8] = b"h2";

/// Which of the three inputs an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// Our certificate chain, leaf first.
    CertChain,
    /// Our private key.
    Key,
    /// The CA certificates we trust.
    TrustBundle,
}

/// Where an input came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Read from this file.
    File(PathBuf),
    /// Passed in as bytes.
    Bytes,
}

/// One named input, e.g. "trust bundle file /etc/weft/ca.crt".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Which input.
    pub part: Part,
    /// Where it came from.
    pub origin: Origin,
}

/// Why credentials could not be loaded or turned into a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {input}: {source}; check the path and that this process may read it")]
    Read {
        /// The input.
        input: Input,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The input is not valid PEM.
    #[error("{input} is not valid PEM: {source}")]
    Pem {
        /// The input.
        input: Input,
        /// The PEM parser's complaint.
        source: pem::Error,
    },

    /// The input holds no PEM block of the needed type.
    #[error("{input} holds no {expected} PEM block; is it the right file?")]
    Missing {
        /// The input.
        input: Input,
        /// The PEM block type(s) looked for.
        expected: &'static str,
    },

    /// The leaf certificate does not carry a usable SPIFFE ID.
    #[error("leaf certificate in {input} is not a usable mesh certificate: {source}")]
    Identity {
        /// The certificate chain input.
        input: Input,
        /// What is wrong with its identity.
        source: Box<verify::Error>,
    },

    /// The key cannot be used by the TLS library.
    #[error("cannot use the private key in {input}: {source}; expected an unencrypted ECDSA P-256, Ed25519 or RSA key")]
    UnsupportedKey {
        /// The key input.
        input: Input,
        /// The TLS library's complaint.
        source: rustls::Error,
    },

    /// The key does not belong to the leaf certificate.
    #[error("the private key in {key} does not belong to the leaf certificate in {chain}; the two files come from different issuances, re-issue them together")]
    KeyMismatch {
        /// The key input.
        key: Input,
        /// The certificate chain input.
        chain: Input,
    },

    /// A trust bundle certificate cannot be used as a trust anchor.
    #[error("certificate #{index} in {input} cannot be used as a trust anchor: {source}")]
    TrustAnchor {
        /// The trust bundle input.
        input: Input,
        /// Position of the certificate in the bundle, from 1.
        index: usize,
        /// The TLS library's complaint.
        source: rustls::Error,
    },

    /// The chain does not verify against the trust bundle.
    #[error("certificate chain in {chain} is not valid for TLS {role} use under {bundle}: {source}; the trust bundle must hold the CA that issued the certificate, and the certificate needs EKU serverAuth and clientAuth")]
    Untrusted {
        /// The certificate chain input.
        chain: Input,
        /// The trust bundle input.
        bundle: Input,
        /// `server` or `client`.
        role: &'static str,
        /// The verifier's complaint.
        source: Box<rustls::Error>,
    },

    /// The client-certificate verifier could not be built.
    #[error("cannot build the client-certificate verifier from {bundle}: {source}")]
    ClientVerifier {
        /// The trust bundle input.
        bundle: Input,
        /// The TLS library's complaint.
        source: rustls::server::VerifierBuilderError,
    },

    /// rustls refused the configuration.
    #[error("cannot build the TLS {side} configuration: {source}")]
    Config {
        /// `server` or `client`.
        side: &'static str,
        /// The TLS library's complaint.
        source: rustls::Error,
    },
}

/// A workload's TLS identity: chain, key, trust bundle, and the SPIFFE ID they prove.
pub struct Credentials {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
    identity: SpiffeId,
    not_before: SystemTime,
    not_after: SystemTime,
    origin: [Input; 3],
}

// === impl Part / Origin / Input ===

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::CertChain => "certificate chain",
            Part::Key => "private key",
            Part::TrustBundle => "trust bundle",
        })
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File(path) => write!(f, "{} file {}", self.part, path.display()),
            Origin::Bytes => write!(f, "{} (PEM bytes)", self.part),
        }
    }
}

// === impl Credentials ===

impl Credentials {
    /// Loads credentials from PEM files: the chain (leaf first), the key, and the trust
    /// bundle (one or more CA certificates).
    pub fn from_pem_files(
        cert_chain: &Path,
        key: &Path,
        trust_bundle: &Path,
    ) -> Result<Self, Error> {
        let inputs = [
            (Part::CertChain, cert_chain),
            (Part::Key, key),
            (Part::TrustBundle, trust_bundle),
        ]
        .map(|(part, path)| Input {
            part,
            origin: Origin::File(path.to_owned()),
        });
        let read = |input: &Input, path: &Path| {
            std::fs::read(path).map_err(|source| Error::Read {
                input: input.clone(),
                source,
            })
        };
        let chain = read(&inputs[0], cert_chain)?;
        let key = read(&inputs[1], key)?;
        let bundle = read(&inputs[2], trust_bundle)?;
        Self::load(&chain, &key, &bundle, inputs)
    }

    /// Loads credentials from PEM bytes; see [`Credentials::from_pem_files`].
    pub fn from_pem(cert_chain: &[u8], key: &[u8], trust_bundle: &[u8]) -> Result<Self, Error> {
        let inputs = [Part::CertChain, Part::Key, Part::TrustBundle].map(|part| Input {
            part,
            origin: Origin::Bytes,
        });
        Self::load(cert_chain, key, trust_bundle, inputs)
    }

    fn load(
        chain_pem: &[u8],
        key_pem: &[u8],
        bundle_pem: &[u8],
        inputs: [Input; 3],
    ) -> Result<Self, Error> {
        let [chain_in, key_in, bundle_in] = &inputs;
        let chain = read_certs(chain_pem, chain_in)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| match source {
            pem::Error::NoItemsFound => Error::Missing {
                input: key_in.clone(),
                expected: "PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY",
            },
            source => Error::Pem {
                input: key_in.clone(),
                source,
            },
        })?;
        let bundle = read_certs(bundle_pem, bundle_in)?;

        let identity = verify::peer_identity(&chain).map_err(|source| Error::Identity {
            input: chain_in.clone(),
            source: Box::new(source),
        })?;

        let provider = crate::crypto_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|source| Error::UnsupportedKey {
                input: key_in.clone(),
                source,
            })?;
        // `keys_match` can only say "unknown" for keys that hide their public half, which
        // aws-lc-rs keys never do; treat that as a mismatch rather than guess.
        CertifiedKey::new(chain.clone(), signing_key)
            .keys_match()
            .map_err(|_| Error::KeyMismatch {
                key: key_in.clone(),
                chain: chain_in.clone(),
            })?;

        let mut roots = RootCertStore::empty();
        for (index, cert) in bundle.into_iter().enumerate() {
            roots.add(cert).map_err(|source| Error::TrustAnchor {
                input: bundle_in.clone(),
                index: index + 1,
                source,
            })?;
        }
        let roots = Arc::new(roots);

        let (leaf, intermediates) = chain.split_first().ok_or_else(|| Error::Missing {
            input: chain_in.clone(),
            expected: "CERTIFICATE",
        })?;
        let (not_before, not_after) = validity(leaf).map_err(|source| Error::Identity {
            input: chain_in.clone(),
            source: Box::new(source),
        })?;

        // Check the chain at a moment inside the leaf's validity, so that an expired (or
        // not yet valid) certificate still loads while one from a foreign CA does not.
        let now = SystemTime::now();
        let at = unix_time(if now > not_after {
            not_after
        } else if now < not_before {
            not_before
        } else {
            now
        });
        let untrusted = |role, source| Error::Untrusted {
            chain: chain_in.clone(),
            bundle: bundle_in.clone(),
            role,
            source: Box::new(source),
        };
        verify::verify_server_chain(
            &roots,
            leaf,
            intermediates,
            at,
            &provider.signature_verification_algorithms,
        )
        .map_err(|source| untrusted("server", source))?;
        client_verifier(&roots, &provider, bundle_in)?
            .verify_client_cert(leaf, intermediates, at)
            .map_err(|source| untrusted("client", source))?;

        Ok(Credentials {
            chain,
            key,
            roots,
            identity,
            not_before,
            not_after,
            origin: inputs,
        })
    }

    /// The same chain and key with another trust bundle (PEM), e.g. the two roots a CA
    /// rotation publishes. Our own chain need not verify against it: during a rotation
    /// the certificate is renewed right after.
    pub fn with_trust_bundle(&self, bundle_pem: &[u8]) -> Result<Self, Error> {
        let input = Input {
            part: Part::TrustBundle,
            origin: Origin::Bytes,
        };
        let bundle = read_certs(bundle_pem, &input)?;
        let mut roots = RootCertStore::empty();
        for (index, cert) in bundle.into_iter().enumerate() {
            roots.add(cert).map_err(|source| Error::TrustAnchor {
                input: input.clone(),
                index: index + 1,
                source,
            })?;
        }
        let mut next = self.clone();
        next.roots = Arc::new(roots);
        next.origin[2] = input;
        Ok(next)
    }

    /// The id of the CA that issued our certificate (`ca::issuer_id` of the leaf).
    pub fn issuer_id(&self) -> Option<String> {
        crate::ca::issuer_id(self.chain.first()?).ok()
    }

    /// The SPIFFE ID our certificate proves.
    pub fn identity(&self) -> &SpiffeId {
        &self.identity
    }

    /// When our leaf certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// When our leaf certificate became valid (useful to schedule rotation).
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// Whether our leaf certificate has expired: peers will refuse it.
    pub fn is_expired(&self) -> bool {
        SystemTime::now() > self.not_after
    }

    /// Our certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The trust bundle as a rustls root store.
    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    /// The HBONE server configuration: TLS 1.3 only, ALPN `h2`, and a client certificate
    /// is required and verified against the trust bundle. Read the caller's identity
    /// after the handshake with [`verify::peer_identity`].
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let provider = crate::crypto_provider();
        let verifier = client_verifier(&self.roots, &provider, &self.origin[2])?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|source| Error::Config {
                side: "server",
                source,
            })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|source| Error::Config {
                side: "server",
                source,
            })?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(Arc::new(config))
    }

    /// The HBONE client configuration for a peer that must prove `expected`: TLS 1.3
    /// only, ALPN `h2`, presents our chain, verifies the server's chain against the trust
    /// bundle (expiry included), then requires the leaf's SPIFFE ID to equal `expected`.
    ///
    /// The TLS server name passed when connecting is not checked (SPIFFE IDs are not DNS
    /// names), so any name works, e.g. the peer's IP address or `weft.invalid`.
    pub fn client_config(&self, expected: &SpiffeId) -> Result<Arc<ClientConfig>, Error> {
        let provider = crate::crypto_provider();
        let verifier = Arc::new(ServerVerifier::new(
            self.roots.clone(),
            expected.clone(),
            &provider,
        ));
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|source| Error::Config {
                side: "client",
                source,
            })?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|source| Error::Config {
                side: "client",
                source,
            })?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        config.resumption = Resumption::disabled();
        Ok(Arc::new(config))
    }
}

impl Clone for Credentials {
    fn clone(&self) -> Self {
        Credentials {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: self.roots.clone(),
            identity: self.identity.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
            origin: self.origin.clone(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("identity", &self.identity)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.chain.len())
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

fn read_certs(pem_bytes: &[u8], input: &Input) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            input: input.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::Missing {
            input: input.clone(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn client_verifier(
    roots: &Arc<RootCertStore>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
    bundle: &Input,
) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|source| Error::ClientVerifier {
            bundle: bundle.clone(),
            source,
        })
}

fn validity(leaf: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime), verify::Error> {
    let (_, cert) =
        X509Certificate::from_der(leaf).map_err(|source| verify::Error::Parse { source })?;
    let validity = cert.validity();
    Ok((
        verify::to_system_time(&validity.not_before),
        verify::to_system_time(&validity.not_after),
    ))
}

fn unix_time(at: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{Authority, Issued};
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType, PKCS_ECDSA_P256_SHA256,
    };
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    fn web() -> SpiffeId {
        SpiffeId::new("cluster.local", "default", "web").unwrap()
    }

    fn load(issued: &Issued, ca: &Authority) -> Result<Credentials, Error> {
        Credentials::from_pem(
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
    }

    /// A CA made with rcgen directly, for leaves our `Authority` refuses to make.
    fn raw_ca() -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(params, key))
    }

    fn raw_leaf(issuer: &Issuer<'static, KeyPair>, sans: Vec<SanType>) -> (String, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn loads_valid_credentials() {
        let ca = Authority::generate("cluster.local", 10 * DAY).unwrap();
        let issued = ca.issue(&web(), DAY).unwrap();
        let creds = load(&issued, &ca).unwrap();
        assert_eq!(creds.identity(), &web());
        assert!(!creds.is_expired());
        let left = creds.not_after().duration_since(SystemTime::now()).unwrap();
        assert!(
            left + Duration::from_secs(5) > DAY && left <= DAY,
            "{left:?}"
        );
        assert!(creds.not_before() < SystemTime::now());
        assert_eq!(creds.chain().len(), 1);
        assert_eq!(creds.roots().len(), 1);
        creds.server_config().unwrap();
        creds.client_config(&web()).unwrap();
    }

    #[test]
    fn configs_are_tls13_only_with_h2_and_no_resumption() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let creds = load(&ca.issue(&web(), DAY).unwrap(), &ca).unwrap();
        let server = creds.server_config().unwrap();
        assert_eq!(server.alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(server.send_tls13_tickets, 0);
        assert!(!server.session_storage.can_cache());
        let client = creds.client_config(&web()).unwrap();
        assert_eq!(client.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(
            client.fips() == server.fips(),
            "both configs come from one provider"
        );
    }

    #[test]
    fn loading_rejects_key_that_does_not_match_cert() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let issued = ca.issue(&web(), DAY).unwrap();
        let other = ca.issue(&web(), DAY).unwrap();
        let err = Credentials::from_pem(
            issued.cert_pem.as_bytes(),
            other.key_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("private key (PEM bytes) does not belong to the leaf certificate"),
            "{msg}"
        );
    }

    #[test]
    fn loading_rejects_cert_without_spiffe_san() {
        let (ca_pem, issuer) = raw_ca();
        let (cert, key) = raw_leaf(
            &issuer,
            vec![SanType::DnsName("web.example.com".try_into().unwrap())],
        );
        let err =
            Credentials::from_pem(cert.as_bytes(), key.as_bytes(), ca_pem.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "leaf certificate in certificate chain (PEM bytes) is not a usable mesh certificate: \
             leaf certificate has no URI SAN (SANs found: DNS:web.example.com); a SPIFFE \
             certificate carries exactly one URI SAN \
             spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> \
             (was it issued by the mesh CA?)"
        );

        let (cert, key) = raw_leaf(
            &issuer,
            vec![SanType::URI("https://web.example.com/".try_into().unwrap())],
        );
        let err =
            Credentials::from_pem(cert.as_bytes(), key.as_bytes(), ca_pem.as_bytes()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("URI SAN \"https://web.example.com/\" is not a mesh identity"),
            "{msg}"
        );
        assert!(msg.contains("must start with \"spiffe://\""), "{msg}");
    }

    #[test]
    fn loading_rejects_cert_from_other_ca() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let other = Authority::generate("cluster.local", DAY).unwrap();
        let issued = other.issue(&web(), DAY).unwrap();
        let err = load(&issued, &ca).unwrap_err();
        let Error::Untrusted { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            **source,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn loading_rejects_cert_without_client_auth_eku() {
        let (ca_pem, issuer) = raw_ca();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(web().to_string().try_into().unwrap())];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).unwrap().pem();
        let err = Credentials::from_pem(
            cert.as_bytes(),
            key.serialize_pem().as_bytes(),
            ca_pem.as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::Untrusted { role: "client", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn loading_accepts_expired_cert_and_reports_it() {
        let ca = Authority::generate("cluster.local", 10 * DAY).unwrap();
        let now = SystemTime::now();
        let issued = ca
            .issue_with_validity(&web(), now - 2 * DAY, now - DAY)
            .unwrap();
        let creds = load(&issued, &ca).unwrap();
        assert!(creds.is_expired());
        assert!(creds.not_after() < now);
    }

    #[test]
    fn loading_rejects_wrong_pem_contents() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let issued = ca.issue(&web(), DAY).unwrap();
        // Key file handed in as the certificate chain.
        let err = Credentials::from_pem(
            issued.key_pem.as_bytes(),
            issued.key_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Missing {
                    expected: "CERTIFICATE",
                    ..
                }
            ),
            "{err:?}"
        );
        // Certificate handed in as the key.
        let err = Credentials::from_pem(
            issued.cert_pem.as_bytes(),
            issued.cert_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Missing {
                    input: Input {
                        part: Part::Key,
                        ..
                    },
                    ..
                }
            ),
            "{err:?}"
        );
        // Empty trust bundle.
        let err = Credentials::from_pem(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes(), b"")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("trust bundle (PEM bytes) holds no CERTIFICATE"),
            "{err}"
        );
        // Broken PEM.
        let broken = issued.cert_pem.replace("-----END CERTIFICATE-----", "");
        let err = Credentials::from_pem(
            broken.as_bytes(),
            issued.key_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Pem { .. }), "{err:?}");
    }

    #[test]
    fn from_pem_files_loads_and_names_missing_files() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let issued = ca.issue(&web(), DAY).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = issued
            .write_files(dir.path(), "web", &ca.cert_pem())
            .unwrap();
        let creds =
            Credentials::from_pem_files(&paths.cert, &paths.key, &paths.trust_bundle).unwrap();
        assert_eq!(creds.identity(), &web());

        let missing = dir.path().join("nope.crt");
        let err = Credentials::from_pem_files(&paths.cert, &paths.key, &missing).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("trust bundle file {}", missing.display())),
            "{msg}"
        );

        let other = ca.issue(&web(), DAY).unwrap();
        let other_paths = other
            .write_files(&dir.path().join("other"), "web", &ca.cert_pem())
            .unwrap();
        let err = Credentials::from_pem_files(&paths.cert, &other_paths.key, &paths.trust_bundle)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&other_paths.key.display().to_string()),
            "{msg}"
        );
        assert!(msg.contains(&paths.cert.display().to_string()), "{msg}");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let creds = load(&ca.issue(&web(), DAY).unwrap(), &ca).unwrap();
        let debug = format!("{creds:?}");
        assert!(debug.contains("web") && !debug.contains("key"), "{debug}");
    }
}
