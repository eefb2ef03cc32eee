//! A small X.509 certificate authority for mesh identities (ECDSA P-256 only).
//!
//! [`Authority`] holds a CA certificate and its key and issues workload certificates
//! (X.509-SVIDs) for [`SpiffeId`]s of its trust domain. Tests and operators use it today to
//! mint certificates (`weft-testkit`, `weft quickstart`); the control plane signs workload
//! CSRs with [`Authority::sign_csr`]. It is either generated (a self-signed root) or loaded
//! from an operator's PEM files: a single CA certificate ([`Authority::from_pem`]), or an
//! intermediate CA with the chain above it ([`Authority::from_pem_chain`]), whose links
//! are checked at load so a broken chain fails there, not at the first handshake.
//!
//! What it is not: a PKI. There is no revocation, no name or path-length constraint
//! processing of its own (rustls/webpki applies those when peers verify), and no key
//! storage beyond handing PEM strings to the caller.
//!
//! Certificates follow the SPIFFE X.509-SVID profile: the CA has `cA=true`,
//! `keyCertSign` and the URI SAN `spiffe://<trust-domain>`; leaves have `cA=false`,
//! `digitalSignature`, EKU serverAuth + clientAuth (HBONE peers are both), an empty
//! subject and exactly one URI SAN, the workload's SPIFFE ID.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::RootCertStore;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Error};

use crate::csr::Csr;
use crate::spiffe::{self, SpiffeId};
use crate::verify;

/// How far in the past issued certificates start, to absorb clock skew between hosts.
const BACKDATE: Duration = Duration::from_secs(60);

/// How far in the past certificates signed from CSRs start. Longer than [`BACKDATE`]:
/// these go to proxies on other hosts, whose clocks the control plane does not share.
const CSR_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Identity used for the self-test signature when loading a provided CA.
const PROBE_NAMESPACE: &str = "weft-system";
const PROBE_ACCOUNT: &str = "ca-self-test";

/// Why the CA could not be built or could not issue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The trust domain is not a valid SPIFFE trust domain.
    #[error("invalid CA trust domain: {source}")]
    TrustDomain {
        /// What is wrong with it.
        source: spiffe::Error,
    },

    /// The requested validity window is empty or cannot be represented.
    #[error("invalid certificate validity: {reason}; use a positive duration such as 24h and a not_after later than not_before")]
    Validity {
        /// What is wrong with it.
        reason: String,
    },

    /// The key pair could not be generated.
    #[error("cannot generate an ECDSA P-256 key: {source}")]
    KeyGeneration {
        /// The crypto library's complaint.
        source: rcgen::Error,
    },

    /// The system random generator failed.
    #[error("cannot draw a random certificate serial number from the system random generator")]
    Random,

    /// Signing a certificate failed.
    #[error("cannot sign the certificate for {subject}: {source}")]
    Sign {
        /// What was being signed (a SPIFFE ID or "the CA").
        subject: String,
        /// The crypto library's complaint.
        source: rcgen::Error,
    },

    /// The provided CA certificate PEM does not hold exactly one certificate.
    #[error("CA certificate PEM must hold exactly one CERTIFICATE block, found {found}{}; provide only the signing CA certificate", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    CertPem {
        /// How many certificates were found.
        found: usize,
        /// The PEM parser's complaint, if any.
        detail: Option<String>,
    },

    /// The provided CA certificate is not parseable X.509.
    #[error("cannot parse the CA certificate: {source}")]
    CertParse {
        /// The parser's complaint.
        source: x509_parser::nom::Err<X509Error>,
    },

    /// The provided certificate is not a CA.
    #[error("certificate {subject:?} is not a CA: {reason}; provide a CA certificate (basicConstraints cA=true, keyUsage keyCertSign)")]
    NotCa {
        /// The certificate's subject.
        subject: String,
        /// What is missing.
        reason: &'static str,
    },

    /// The provided CA certificate names no (or several) trust domains.
    #[error("CA certificate {subject:?} must carry exactly one URI SAN spiffe://<trust-domain>, found [{}]; reissue it with the mesh trust domain as URI SAN, or load it with Authority::from_pem_with_trust_domain", uris.join(", "))]
    TrustDomainSan {
        /// The certificate's subject.
        subject: String,
        /// The `spiffe://` URI SANs found.
        uris: Vec<String>,
    },

    /// The provided CA certificate is for another trust domain than requested.
    #[error("CA certificate {subject:?} is for trust domain {found:?}, not {requested:?}; check the mesh trust domain")]
    TrustDomainMismatch {
        /// The certificate's subject.
        subject: String,
        /// The trust domain of its URI SAN.
        found: String,
        /// The trust domain asked for.
        requested: String,
    },

    /// The provided CA certificate is outside its validity window now.
    #[error("CA certificate {subject:?} is not valid now (valid from {not_before} to {not_after}); renew the CA")]
    CaNotValidNow {
        /// The certificate's subject.
        subject: String,
        /// Start of its validity.
        not_before: String,
        /// End of its validity.
        not_after: String,
    },

    /// The provided CA key PEM is unreadable.
    #[error("cannot read the CA private key PEM: {detail}; expected an unencrypted PKCS#8 (\"PRIVATE KEY\") or SEC1 (\"EC PRIVATE KEY\") block")]
    KeyPem {
        /// The parser's complaint.
        detail: String,
    },

    /// The provided CA key is not ECDSA P-256.
    #[error("the CA private key is {found}, but Weft's CA signs with ECDSA P-256 only; generate one with `openssl ecparam -name prime256v1 -genkey`")]
    UnsupportedKey {
        /// The key type found.
        found: String,
    },

    /// The provided CA key does not belong to the CA certificate.
    #[error("the CA private key does not match the public key of CA certificate {subject:?}; the key and certificate files are from different CAs")]
    KeyMismatch {
        /// The certificate's subject.
        subject: String,
    },

    /// Certificates signed with the provided CA do not verify against it.
    #[error("certificates signed by CA {subject:?} do not verify against it ({source}); its subject name may use an encoding Weft cannot reproduce")]
    SelfTest {
        /// The certificate's subject.
        subject: String,
        /// The verifier's complaint.
        source: rustls::Error,
    },

    /// The chain PEM given with a provided CA is unreadable.
    #[error("cannot read the CA chain PEM: {detail}; expected the CERTIFICATE blocks above the CA certificate, intermediates first, optionally ending with the root")]
    ChainPem {
        /// The PEM parser's complaint.
        detail: String,
    },

    /// A certificate of the chain is not parseable X.509.
    #[error("cannot parse certificate #{index} of the CA chain: {detail}")]
    ChainCert {
        /// Position in the chain PEM, from 1.
        index: usize,
        /// The parser's complaint.
        detail: String,
    },

    /// A certificate of the chain is not a CA.
    #[error("certificate #{index} of the CA chain ({subject:?}) is not a CA: {reason}; the chain must hold only the CAs above the signing CA")]
    ChainNotCa {
        /// Position in the chain PEM, from 1.
        index: usize,
        /// The certificate's subject.
        subject: String,
        /// What is missing.
        reason: &'static str,
    },

    /// A certificate of the chain is outside its validity window now.
    #[error("certificate #{index} of the CA chain ({subject:?}) is not valid now (valid from {not_before} to {not_after}); renew it or supply the current chain")]
    ChainNotValidNow {
        /// Position in the chain PEM, from 1.
        index: usize,
        /// The certificate's subject.
        subject: String,
        /// Start of its validity.
        not_before: String,
        /// End of its validity.
        not_after: String,
    },

    /// Two neighbouring certificates of the chain do not link.
    #[error("the CA chain is broken: {child:?} was not issued by chain certificate #{index} ({parent:?}): {reason}; order the chain from the CA's issuer up to the root, and check it belongs to this CA")]
    ChainLink {
        /// Position of the supposed issuer in the chain PEM, from 1.
        index: usize,
        /// Subject of the certificate that should have been issued by it.
        child: String,
        /// Subject of the supposed issuer.
        parent: String,
        /// Which check failed.
        reason: &'static str,
    },

    /// The CA has expired, so it can no longer issue.
    #[error("the CA certificate expired at {not_after:?}; it can no longer issue certificates, renew or rotate the CA")]
    CaExpired {
        /// When it expired.
        not_after: SystemTime,
    },

    /// The public key of a CSR cannot be put into a certificate.
    #[error("cannot use the public key of the certificate signing request: {source}")]
    CsrKey {
        /// The certificate library's complaint.
        source: rcgen::Error,
    },

    /// The identity to issue for belongs to another trust domain.
    #[error("cannot issue a certificate for {id}: this CA serves trust domain {trust_domain:?}")]
    ForeignTrustDomain {
        /// The requested identity.
        id: SpiffeId,
        /// The CA's trust domain.
        trust_domain: String,
    },
}

/// A certificate authority for one trust domain.
pub struct Authority {
    trust_domain: String,
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
    not_after: SystemTime,
    /// This CA's certificate, DER.
    cert_der: Vec<u8>,
    /// Whether this CA's certificate is a self-signed root.
    is_root: bool,
    /// The CAs between this one and the root (not the root), nearest first, DER.
    intermediates: Vec<Vec<u8>>,
    /// The root this CA chains to, if known.
    root: Option<Vec<u8>>,
}

/// A certificate issued from a CSR, with the chain a peer needs to verify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedLeaf {
    /// Leaf first, then `chain_der()` of the CA. DER.
    pub chain: Vec<Vec<u8>>,
    /// When the leaf expires (whole seconds, as written in the certificate).
    pub not_after: SystemTime,
    /// The leaf's serial number, lowercase hex.
    pub serial: String,
}

/// A serving certificate the CA issued with a key it generated ([`Authority::issue_server`]).
#[derive(Clone)]
pub struct ServerLeaf {
    /// Leaf first, then `chain_der()` of the CA. DER.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// When the leaf expires.
    pub not_after: SystemTime,
}

/// A freshly issued leaf certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Issued {
    /// The leaf certificate only (no CA certificate).
    pub cert_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// Where [`Issued::write_files`] put the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedPaths {
    /// `STEM.crt`: the leaf certificate.
    pub cert: PathBuf,
    /// `STEM.key`: the private key, mode 0600.
    pub key: PathBuf,
    /// `ca.crt`: the trust bundle.
    pub trust_bundle: PathBuf,
}

// === impl Authority ===

impl Authority {
    /// Generates a self-signed root CA for `trust_domain`, valid from one minute ago
    /// for `validity`.
    pub fn generate(trust_domain: &str, validity: Duration) -> Result<Self, Error> {
        spiffe::validate_trust_domain(trust_domain)
            .map_err(|source| Error::TrustDomain { source })?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| Error::KeyGeneration { source })?;
        let (not_before, not_after) = window_from_now(validity)?;

        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = ca_name(trust_domain, &serial);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.subject_alt_names = vec![uri_san(&format!("spiffe://{trust_domain}"))?];
        params.serial_number = Some(serial);
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;

        let cert = params.self_signed(&key).map_err(|source| Error::Sign {
            subject: "the CA".to_owned(),
            source,
        })?;
        let cert_der = cert.der().to_vec();
        Ok(Authority {
            trust_domain: trust_domain.to_owned(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
            // As written in the certificate, so callers compare against what peers see.
            not_after: whole_seconds(not_after),
            root: Some(cert_der.clone()),
            cert_der,
            is_root: true,
            intermediates: Vec::new(),
        })
    }

    /// Loads an operator-provided CA. The certificate must carry the URI SAN
    /// `spiffe://<trust-domain>`, which names the trust domain it serves.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        Self::load(cert_pem, key_pem, None)
    }

    /// Loads an operator-provided CA for `trust_domain`, for CA certificates that carry
    /// no `spiffe://` URI SAN. If the certificate does carry one, it must match.
    pub fn from_pem_with_trust_domain(
        cert_pem: &str,
        key_pem: &str,
        trust_domain: &str,
    ) -> Result<Self, Error> {
        spiffe::validate_trust_domain(trust_domain)
            .map_err(|source| Error::TrustDomain { source })?;
        Self::load(cert_pem, key_pem, Some(trust_domain))
    }

    fn load(cert_pem: &str, key_pem: &str, requested: Option<&str>) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::CertPem {
                found: 0,
                detail: Some(e.to_string()),
            })?;
        let [der] = certs.as_slice() else {
            return Err(Error::CertPem {
                found: certs.len(),
                detail: None,
            });
        };
        let (_, x509) =
            X509Certificate::from_der(der).map_err(|source| Error::CertParse { source })?;
        let subject = x509.subject().to_string();

        let is_ca = x509
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(Error::NotCa {
                subject,
                reason: "basicConstraints does not say cA=true",
            });
        }
        if let Ok(Some(ku)) = x509.key_usage() {
            if !ku.value.key_cert_sign() {
                return Err(Error::NotCa {
                    subject,
                    reason: "keyUsage lacks keyCertSign",
                });
            }
        }

        let trust_domain = ca_trust_domain(&x509, &subject, requested)?;

        let validity = x509.validity();
        let now = SystemTime::now();
        let not_after = verify::to_system_time(&validity.not_after);
        if now < verify::to_system_time(&validity.not_before) || now > not_after {
            return Err(Error::CaNotValidNow {
                subject,
                not_before: validity.not_before.to_string(),
                not_after: validity.not_after.to_string(),
            });
        }

        let key_der =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| Error::KeyPem {
                detail: e.to_string(),
            })?;
        let key = KeyPair::try_from(&key_der).map_err(|e| Error::KeyPem {
            detail: e.to_string(),
        })?;
        if !key.is_compatible(&PKCS_ECDSA_P256_SHA256) {
            return Err(Error::UnsupportedKey {
                found: key_kind(&key),
            });
        }
        if rcgen::PublicKeyData::subject_public_key_info(&key) != x509.public_key().raw {
            return Err(Error::KeyMismatch { subject });
        }

        let issuer = Issuer::from_ca_cert_der(der, key).map_err(|source| Error::Sign {
            subject: format!("CA {subject:?} (reading its name)"),
            source,
        })?;
        let is_root = is_self_signed(&x509);
        let authority = Authority {
            trust_domain,
            issuer,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            not_after,
            cert_der: der.to_vec(),
            is_root,
            intermediates: Vec::new(),
            root: is_root.then(|| der.to_vec()),
        };
        authority.self_test(der, &subject)?;
        Ok(authority)
    }

    /// An operator-provided intermediate CA: its cert + key, plus the chain above it
    /// (PEM, intermediates then optionally the root). Validates: cert is a CA (basicConstraints CA:TRUE,
    /// keyCertSign), key matches cert, chain links by signature, validity windows. Trust domain from
    /// the cert's spiffe:// URI SAN or `trust_domain` if it has none.
    ///
    /// `chain_pem` may be empty when `cert_pem` is itself a root, or when the operator
    /// distributes the root out of band (then [`Authority::root_der`] is `None`). When the
    /// root is given, a probe certificate is also verified against the root alone, through
    /// the chain, as peers will.
    pub fn from_pem_chain(
        cert_pem: &str,
        key_pem: &str,
        chain_pem: &str,
        trust_domain: Option<&str>,
    ) -> Result<Self, Error> {
        if let Some(td) = trust_domain {
            spiffe::validate_trust_domain(td).map_err(|source| Error::TrustDomain { source })?;
        }
        let mut authority = Self::load(cert_pem, key_pem, trust_domain)?;

        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::ChainPem {
                detail: e.to_string(),
            })?;
        let (_, ca) = X509Certificate::from_der(&authority.cert_der)
            .map_err(|source| Error::CertParse { source })?;
        let now = SystemTime::now();
        let mut child = ca;
        let mut parsed = Vec::with_capacity(chain.len());
        for (i, der) in chain.iter().enumerate() {
            let index = i + 1;
            let (_, parent) = X509Certificate::from_der(der).map_err(|e| Error::ChainCert {
                index,
                detail: e.to_string(),
            })?;
            check_chain_ca(&parent, index, now)?;
            check_link(&child, &parent, index)?;
            parsed.push(parent.clone());
            child = parent;
        }

        let mut intermediates: Vec<Vec<u8>> = chain.iter().map(|der| der.to_vec()).collect();
        if parsed.last().is_some_and(is_self_signed) {
            authority.root = intermediates.pop();
        }
        authority.intermediates = intermediates;
        if let (Some(root), false) = (&authority.root, authority.is_root) {
            authority.self_test_against_root(root)?;
        }
        Ok(authority)
    }

    /// Signs a throwaway leaf and verifies it against the CA certificate, so a CA whose
    /// name rcgen re-encodes differently fails at load, not at the first handshake.
    fn self_test(&self, ca_der: &CertificateDer<'_>, subject: &str) -> Result<(), Error> {
        let probe = SpiffeId::new(&self.trust_domain, PROBE_NAMESPACE, PROBE_ACCOUNT)
            .map_err(|source| Error::TrustDomain { source })?;
        let issued = self.issue(&probe, Duration::from_secs(300))?;
        let leaf = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).map_err(|e| {
            Error::CertPem {
                found: 0,
                detail: Some(e.to_string()),
            }
        })?;
        let self_test_failed = |source| Error::SelfTest {
            subject: subject.to_owned(),
            source,
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca_der.clone()).map_err(self_test_failed)?;
        let provider = crate::crypto_provider();
        verify::verify_server_chain(
            &roots,
            &leaf,
            &[],
            UnixTime::now(),
            &provider.signature_verification_algorithms,
        )
        .map_err(self_test_failed)
    }

    /// Signs a leaf and verifies it against `root` alone, through this CA's chain, the way
    /// a peer holding only the root will.
    fn self_test_against_root(&self, root: &[u8]) -> Result<(), Error> {
        let subject = || {
            X509Certificate::from_der(&self.cert_der)
                .map(|(_, x509)| x509.subject().to_string())
                .unwrap_or_default()
        };
        let probe = SpiffeId::new(&self.trust_domain, PROBE_NAMESPACE, PROBE_ACCOUNT)
            .map_err(|source| Error::TrustDomain { source })?;
        let issued = self.issue(&probe, Duration::from_secs(300))?;
        let leaf = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).map_err(|e| {
            Error::CertPem {
                found: 0,
                detail: Some(e.to_string()),
            }
        })?;
        let self_test_failed = |source| Error::SelfTest {
            subject: subject(),
            source,
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(root.to_vec()))
            .map_err(self_test_failed)?;
        let intermediates: Vec<CertificateDer<'_>> = self
            .chain_der()
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        verify::verify_server_chain(
            &roots,
            &leaf,
            &intermediates,
            UnixTime::now(),
            &crate::crypto_provider().signature_verification_algorithms,
        )
        .map_err(self_test_failed)
    }

    /// Signs a verified CSR's public key as `id` (which must be in this CA's trust domain; the CSR's
    /// own subject/SANs are ignored). Leaf: URI SAN = id ONLY, no CN SANs, keyUsage digitalSignature,
    /// EKU serverAuth+clientAuth, CA:FALSE, random serial; not_before = now − 5 min (clock skew);
    /// not_after = min(now + ttl, this CA's not_after). Errors if ttl is 0 or the CA has expired.
    pub fn sign_csr(
        &self,
        csr: &Csr,
        id: &SpiffeId,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<SignedLeaf, Error> {
        self.check_trust_domain(id)?;
        if ttl.is_zero() {
            return Err(Error::Validity {
                reason: "the requested certificate lifetime is zero".to_owned(),
            });
        }
        let (not_before, not_after) = self.window(now, ttl)?;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(csr.public_key_der())
            .map_err(|source| Error::CsrKey { source })?;
        let serial = random_serial()?;
        let serial_hex = hex::encode(serial.as_ref());
        let params = leaf_params(id, serial, not_before, not_after)?;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(|source| Error::Sign {
                subject: id.to_string(),
                source,
            })?;
        let mut chain = vec![cert.der().to_vec()];
        chain.extend(self.chain_der());
        Ok(SignedLeaf {
            chain,
            not_after: whole_seconds(not_after),
            serial: serial_hex,
        })
    }

    /// The certificates a peer needs between a leaf and a root: this CA's cert then its intermediates,
    /// excluding a self-signed root. DER.
    ///
    /// Empty for a self-signed root CA (such as one from [`Authority::generate`]): peers
    /// hold the root in their trust bundle, so there is nothing to send.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        let own = (!self.is_root).then(|| self.cert_der.clone());
        own.into_iter()
            .chain(self.intermediates.iter().cloned())
            .collect()
    }

    /// The root this CA chains to (itself for a self-signed root; the last chain cert if it is a
    /// self-signed root; else None when the operator supplied no root). DER.
    pub fn root_der(&self) -> Option<Vec<u8>> {
        self.root.clone()
    }

    /// This CA's own certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate, PEM: the trust bundle for this CA's workloads.
    pub fn cert_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA private key, PEM. Keep it secret.
    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// The trust domain this CA issues for.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Issues a leaf for `id`, valid from one minute ago (clock skew) for `validity`.
    ///
    /// The end is capped at the CA's own expiry, since a leaf cannot outlive its issuer
    /// in verification anyway.
    pub fn issue(&self, id: &SpiffeId, validity: Duration) -> Result<Issued, Error> {
        let (not_before, not_after) = window_from_now(validity)?;
        self.issue_with_validity(id, not_before, not_after.min(self.not_after))
    }

    /// Issues a leaf for `id` with an explicit validity window (tests use it to mint
    /// expired certificates).
    pub fn issue_with_validity(
        &self,
        id: &SpiffeId,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Issued, Error> {
        self.check_trust_domain(id)?;
        if not_after <= not_before {
            return Err(Error::Validity {
                reason: format!(
                    "not_after {not_after:?} is not later than not_before {not_before:?}"
                ),
            });
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| Error::KeyGeneration { source })?;
        let params = leaf_params(id, random_serial()?, not_before, not_after)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Sign {
                subject: id.to_string(),
                source,
            })?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A short id of an X.509 name (hex of the first 8 bytes of the SHA-256 of its DER):
/// a CA's subject id equals the issuer id of every certificate it signs, so a proxy can
/// tell which CA issued its certificate without keeping anything else.
fn name_id(name_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name_der);
    hex::encode(&digest.as_ref()[..8])
}

/// The id ([`Authority::signer_id`]) of the CA that issued the certificate `cert_der`.
pub fn issuer_id(cert_der: &[u8]) -> Result<String, Error> {
    let (_, x509) =
        X509Certificate::from_der(cert_der).map_err(|source| Error::CertParse { source })?;
    Ok(name_id(x509.issuer().as_raw()))
}

impl Authority {
    /// This CA's id: of its subject name, which is the issuer name of what it signs.
    pub fn signer_id(&self) -> String {
        X509Certificate::from_der(&self.cert_der)
            .map(|(_, x509)| name_id(x509.subject().as_raw()))
            .unwrap_or_default()
    }

    /// Issues a serving certificate for one of Weft's own servers (the control plane):
    /// `id` as the URI SAN Weft clients verify, plus `hosts` (DNS names or IP
    /// addresses) as DNS/IP SANs so generic TLS clients can verify it by host name.
    /// Valid from five minutes before `now` (clock skew) for `validity`, capped at the
    /// CA's expiry. The key is generated here and returned with the chain.
    pub fn issue_server(
        &self,
        id: &SpiffeId,
        hosts: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> Result<ServerLeaf, Error> {
        self.check_trust_domain(id)?;
        let (not_before, not_after) = self.window(now, validity)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|source| Error::KeyGeneration { source })?;
        let mut params = leaf_params(id, random_serial()?, not_before, not_after)?;
        for host in hosts {
            let san =
                match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(host.as_str().try_into().map_err(
                        |source: rcgen::Error| Error::Sign {
                            subject: format!("{id} (host name {host:?})"),
                            source,
                        },
                    )?),
                };
            params.subject_alt_names.push(san);
        }
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| Error::Sign {
                subject: id.to_string(),
                source,
            })?;
        let mut chain = vec![cert.der().to_vec()];
        chain.extend(self.chain_der());
        Ok(ServerLeaf {
            chain,
            key_der: key.serialize_der(),
            not_after: whole_seconds(not_after),
        })
    }

    /// The validity of a leaf signed at `now` for `ttl`: from [`CSR_BACKDATE`] before
    /// `now` (clock skew) to `now + ttl`, cut at this CA's own expiry; an expired CA
    /// signs nothing.
    fn window(&self, now: SystemTime, ttl: Duration) -> Result<(SystemTime, SystemTime), Error> {
        if now >= self.not_after {
            return Err(Error::CaExpired {
                not_after: self.not_after,
            });
        }
        let not_before = now.checked_sub(CSR_BACKDATE).unwrap_or(now);
        let not_after = now
            .checked_add(ttl)
            .map_or(self.not_after, |end| end.min(self.not_after));
        Ok((not_before, not_after))
    }

    fn check_trust_domain(&self, id: &SpiffeId) -> Result<(), Error> {
        if id.trust_domain() == self.trust_domain {
            Ok(())
        } else {
            Err(Error::ForeignTrustDomain {
                id: id.clone(),
                trust_domain: self.trust_domain.clone(),
            })
        }
    }
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("trust_domain", &self.trust_domain)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A CA subject unique to this CA. Verifiers look issuers up by name, so two meshes'
/// CAs with the same name would make a foreign certificate fail as "bad signature"
/// instead of the clearer "unknown issuer".
fn ca_name(trust_domain: &str, serial: &SerialNumber) -> DistinguishedName {
    // The first byte is fixed by `random_serial`; the next four are random.
    let id = serial
        .as_ref()
        .get(1..5)
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map_or(0, u32::from_be_bytes);
    let mut name = DistinguishedName::new();
    // X.520 caps organizationName at 64 characters; the URI SAN carries it in full.
    if trust_domain.len() <= 64 {
        name.push(DnType::OrganizationName, trust_domain);
    }
    name.push(DnType::CommonName, format!("Weft CA {id:08x}"));
    name
}

/// The X.509-SVID leaf profile: empty subject, one URI SAN, cA=false, digitalSignature,
/// EKU serverAuth + clientAuth.
fn leaf_params(
    id: &SpiffeId,
    serial: SerialNumber,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    // SPIFFE identifies by the URI SAN alone; an empty subject makes rcgen mark the
    // SAN critical, as RFC 5280 requires.
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = vec![uri_san(&id.to_string())?];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial);
    params.not_before = to_offset(not_before)?;
    params.not_after = to_offset(not_after)?;
    Ok(params)
}

/// Whether `x509` names itself as issuer and its signature verifies with its own key.
fn is_self_signed(x509: &X509Certificate<'_>) -> bool {
    x509.subject().as_raw() == x509.issuer().as_raw() && x509.verify_signature(None).is_ok()
}

/// Checks that chain certificate #`index` is a CA valid at `now`.
fn check_chain_ca(x509: &X509Certificate<'_>, index: usize, now: SystemTime) -> Result<(), Error> {
    let subject = || x509.subject().to_string();
    let is_ca = x509
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(Error::ChainNotCa {
            index,
            subject: subject(),
            reason: "basicConstraints does not say cA=true",
        });
    }
    if let Ok(Some(ku)) = x509.key_usage() {
        if !ku.value.key_cert_sign() {
            return Err(Error::ChainNotCa {
                index,
                subject: subject(),
                reason: "keyUsage lacks keyCertSign",
            });
        }
    }
    let validity = x509.validity();
    if now < verify::to_system_time(&validity.not_before)
        || now > verify::to_system_time(&validity.not_after)
    {
        return Err(Error::ChainNotValidNow {
            index,
            subject: subject(),
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
        });
    }
    Ok(())
}

/// Checks that `parent` (chain certificate #`index`) issued `child`: names and signature.
fn check_link(
    child: &X509Certificate<'_>,
    parent: &X509Certificate<'_>,
    index: usize,
) -> Result<(), Error> {
    let broken = |reason| Error::ChainLink {
        index,
        child: child.subject().to_string(),
        parent: parent.subject().to_string(),
        reason,
    };
    if is_self_signed(child) {
        return Err(broken(
            "the certificate before it is a self-signed root, which nothing may follow",
        ));
    }
    if child.issuer().as_raw() != parent.subject().as_raw() {
        return Err(broken(
            "the issuer name does not match the chain certificate's subject",
        ));
    }
    // x509-parser checks with aws-lc-rs here (its `verify-aws` feature), never `ring`.
    child
        .verify_signature(Some(parent.public_key()))
        .map_err(|_| broken("the signature does not verify with the chain certificate's key"))
}

fn ca_trust_domain(
    x509: &X509Certificate<'_>,
    subject: &str,
    requested: Option<&str>,
) -> Result<String, Error> {
    let uris: Vec<&str> = x509
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| ext.value.general_names.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some(*uri),
            _ => None,
        })
        .collect();
    // Several spiffe:// URI SANs name no single trust domain: treat as none.
    let found = if let [uri] = uris.as_slice() {
        let td = uri.trim_start_matches("spiffe://").trim_end_matches('/');
        spiffe::validate_trust_domain(td).map_err(|source| Error::TrustDomain { source })?;
        Some(td.to_owned())
    } else {
        None
    };
    match (found, requested) {
        (Some(found), Some(requested)) if found != requested => Err(Error::TrustDomainMismatch {
            subject: subject.to_owned(),
            found,
            requested: requested.to_owned(),
        }),
        (Some(found), _) => Ok(found),
        (None, Some(requested)) if uris.is_empty() => Ok(requested.to_owned()),
        (None, _) => Err(Error::TrustDomainSan {
            subject: subject.to_owned(),
            uris: uris.iter().map(|&u| u.to_owned()).collect(),
        }),
    }
}

fn key_kind(key: &KeyPair) -> String {
    let alg = key.algorithm();
    let name = if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        "ECDSA P-384"
    } else if alg == &rcgen::PKCS_ED25519 {
        "Ed25519"
    } else if alg == &rcgen::PKCS_RSA_SHA256
        || alg == &rcgen::PKCS_RSA_SHA384
        || alg == &rcgen::PKCS_RSA_SHA512
    {
        "RSA"
    } else {
        return format!("{alg:?}");
    };
    name.to_owned()
}

fn uri_san(uri: &str) -> Result<SanType, Error> {
    // SPIFFE IDs are ASCII by construction, so this cannot fail for validated input.
    uri.try_into()
        .map(SanType::URI)
        .map_err(|e: rcgen::Error| Error::Sign {
            subject: uri.to_owned(),
            source: e,
        })
}

fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    crate::crypto_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| Error::Random)?;
    // Positive and exactly 16 bytes long once DER-encoded.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// `time` without its sub-second part, as X.509 stores it.
fn whole_seconds(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => SystemTime::UNIX_EPOCH + Duration::from_secs(after.as_secs()),
        // Towards the epoch, as `to_offset` writes it.
        Err(before) => SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(before.duration().as_secs()))
            .unwrap_or(time),
    }
}

fn window_from_now(validity: Duration) -> Result<(SystemTime, SystemTime), Error> {
    if validity.is_zero() {
        return Err(Error::Validity {
            reason: "validity is zero".to_owned(),
        });
    }
    let now = SystemTime::now();
    let not_after = now.checked_add(validity).ok_or_else(|| Error::Validity {
        reason: format!("validity {validity:?} reaches past the representable time range"),
    })?;
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    Ok((not_before, not_after))
}

fn to_offset(time: SystemTime) -> Result<OffsetDateTime, Error> {
    let seconds = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).ok(),
        Err(before) => i64::try_from(before.duration().as_secs()).ok().map(|s| -s),
    };
    seconds
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| Error::Validity {
            reason: format!("{time:?} cannot be written into a certificate"),
        })
}

// === impl Issued ===

impl Issued {
    /// Writes `STEM.crt` (leaf), `STEM.key` (mode 0600) and `ca.crt` (`ca_pem`, the trust
    /// bundle) into `dir`, creating `dir` if needed. Existing files are overwritten.
    pub fn write_files(&self, dir: &Path, stem: &str, ca_pem: &str) -> io::Result<IssuedPaths> {
        fs::create_dir_all(dir)?;
        let paths = IssuedPaths {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
            trust_bundle: dir.join("ca.crt"),
        };
        fs::write(&paths.cert, &self.cert_pem)?;
        write_private(&paths.key, self.key_pem.as_bytes())?;
        fs::write(&paths.trust_bundle, ca_pem)?;
        Ok(paths)
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // `mode` applies only when the file is created; tighten a pre-existing one too.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::X509Certificate;

    const DAY: Duration = Duration::from_secs(86_400);

    fn parse(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn id(td: &str, sa: &str) -> SpiffeId {
        SpiffeId::new(td, "default", sa).unwrap()
    }

    #[test]
    fn generates_root_with_ca_profile() {
        let ca = Authority::generate("cluster.local", 30 * DAY).unwrap();
        assert_eq!(ca.trust_domain(), "cluster.local");
        let der = parse(&ca.cert_pem());
        let (_, x509) = X509Certificate::from_der(&der).unwrap();
        assert!(x509.basic_constraints().unwrap().unwrap().value.ca);
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let sans = &x509
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert_eq!(
            sans.as_slice(),
            [GeneralName::URI("spiffe://cluster.local")]
        );
        assert_eq!(x509.subject(), x509.issuer());
        let subject = x509.subject().to_string();
        assert!(
            subject.contains("O=cluster.local") && subject.contains("CN=Weft CA "),
            "{subject}"
        );
        let other = Authority::generate("cluster.local", DAY).unwrap();
        let other_der = parse(&other.cert_pem());
        let (_, other) = X509Certificate::from_der(&other_der).unwrap();
        assert_ne!(
            other.subject(),
            x509.subject(),
            "CA names must differ between CAs"
        );
        let lifetime =
            x509.validity().not_after.timestamp() - x509.validity().not_before.timestamp();
        assert_eq!(lifetime, 30 * 86_400 + 60);
        assert!(ca.key_pem().contains("BEGIN PRIVATE KEY"));
        assert!(!ca.key_pem().contains("CERTIFICATE"));
    }

    #[test]
    fn generate_rejects_invalid_trust_domain() {
        let err = Authority::generate("Not Valid", DAY).unwrap_err();
        assert!(matches!(err, Error::TrustDomain { .. }), "{err:?}");
        assert!(err.to_string().contains("\"Not Valid\""), "{err}");
    }

    #[test]
    fn issues_leaf_with_svid_profile() {
        let ca = Authority::generate("cluster.local", 30 * DAY).unwrap();
        let issued = ca.issue(&id("cluster.local", "web"), DAY).unwrap();
        assert!(!issued.cert_pem.contains("PRIVATE KEY"));
        assert_eq!(
            issued.cert_pem.matches("BEGIN CERTIFICATE").count(),
            1,
            "leaf only"
        );
        let der = parse(&issued.cert_pem);
        let (_, x509) = X509Certificate::from_der(&der).unwrap();

        assert!(!x509.basic_constraints().unwrap().unwrap().value.ca);
        let ku = x509.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        let eku = x509.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let san = x509.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names.as_slice(),
            [GeneralName::URI("spiffe://cluster.local/ns/default/sa/web")]
        );
        assert!(san.critical, "empty subject requires a critical SAN");
        assert_eq!(
            x509.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );

        let now = SystemTime::now();
        let not_before = verify::to_system_time(&x509.validity().not_before);
        let not_after = verify::to_system_time(&x509.validity().not_after);
        assert!(
            not_before <= now - Duration::from_secs(59)
                && not_before >= now - Duration::from_secs(62)
        );
        assert!(not_after >= now + DAY - Duration::from_secs(2) && not_after <= now + DAY);

        let ca_der = parse(&ca.cert_pem());
        let (_, ca_x509) = X509Certificate::from_der(&ca_der).unwrap();
        assert_eq!(x509.issuer(), ca_x509.subject());
    }

    #[test]
    fn issued_serials_differ() {
        let ca = Authority::generate("td", DAY).unwrap();
        let serial = |pem: &str| {
            let der = parse(pem);
            let (_, x509) = X509Certificate::from_der(&der).unwrap();
            x509.raw_serial().to_vec()
        };
        let a = serial(&ca.issue(&id("td", "a"), DAY).unwrap().cert_pem);
        let b = serial(&ca.issue(&id("td", "a"), DAY).unwrap().cert_pem);
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn issue_caps_leaf_at_ca_expiry() {
        let ca = Authority::generate("td", DAY).unwrap();
        let issued = ca.issue(&id("td", "a"), 10 * DAY).unwrap();
        let der = parse(&issued.cert_pem);
        let (_, x509) = X509Certificate::from_der(&der).unwrap();
        let leaf_end = verify::to_system_time(&x509.validity().not_after);
        assert!(
            leaf_end <= ca.not_after(),
            "{leaf_end:?} > {:?}",
            ca.not_after()
        );
    }

    #[test]
    fn issue_rejects_foreign_trust_domain_and_empty_window() {
        let ca = Authority::generate("td", DAY).unwrap();
        let err = ca.issue(&id("other", "a"), DAY).unwrap_err();
        assert!(matches!(err, Error::ForeignTrustDomain { .. }), "{err:?}");
        assert!(
            err.to_string().contains("spiffe://other/ns/default/sa/a"),
            "{err}"
        );

        let err = ca.issue(&id("td", "a"), Duration::ZERO).unwrap_err();
        assert!(matches!(err, Error::Validity { .. }), "{err:?}");
        let now = SystemTime::now();
        let err = ca
            .issue_with_validity(&id("td", "a"), now, now - DAY)
            .unwrap_err();
        assert!(matches!(err, Error::Validity { .. }), "{err:?}");
    }

    #[test]
    fn issue_with_validity_sets_the_window() {
        let ca = Authority::generate("td", DAY).unwrap();
        let not_before = SystemTime::now() - 3 * DAY;
        let not_after = SystemTime::now() - 2 * DAY;
        let issued = ca
            .issue_with_validity(&id("td", "a"), not_before, not_after)
            .unwrap();
        let der = parse(&issued.cert_pem);
        let (_, x509) = X509Certificate::from_der(&der).unwrap();
        let secs = |t: SystemTime| {
            i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
        };
        assert_eq!(x509.validity().not_before.timestamp(), secs(not_before));
        assert_eq!(x509.validity().not_after.timestamp(), secs(not_after));
    }

    #[test]
    fn from_pem_round_trips_and_issues_verifiable_certs() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let loaded = Authority::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(loaded.trust_domain(), "cluster.local");
        assert_eq!(loaded.cert_pem(), ca.cert_pem());
        assert_eq!(loaded.key_pem(), ca.key_pem());
        // A leaf issued by the loaded CA verifies against the original certificate.
        let issued = loaded.issue(&id("cluster.local", "web"), DAY).unwrap();
        let leaf = parse(&issued.cert_pem);
        let mut roots = RootCertStore::empty();
        roots.add(parse(&ca.cert_pem())).unwrap();
        verify::verify_server_chain(
            &roots,
            &leaf,
            &[],
            UnixTime::now(),
            &crate::crypto_provider().signature_verification_algorithms,
        )
        .unwrap();
    }

    #[test]
    fn from_pem_accepts_sec1_key() {
        let ca = Authority::generate("td", DAY).unwrap();
        let key = KeyPair::from_pem(&ca.key_pem()).unwrap();
        // PKCS#8 wraps the SEC1 ECPrivateKey; re-encode the same key as SEC1 via aws-lc.
        let pkcs8 = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let sec1 = aws_lc_sec1(&pkcs8);
        let loaded = Authority::from_pem(&ca.cert_pem(), &sec1).unwrap();
        assert_eq!(loaded.trust_domain(), "td");
    }

    fn aws_lc_sec1(pkcs8: &rustls::pki_types::PrivatePkcs8KeyDer<'_>) -> String {
        use aws_lc_rs::encoding::AsDer;
        let key = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            pkcs8.secret_pkcs8_der(),
        )
        .unwrap();
        let der = key.private_key().as_der().unwrap();
        pem::encode(&pem::Pem::new("EC PRIVATE KEY", der.as_ref().to_vec()))
    }

    #[test]
    fn from_pem_rejects_key_of_another_ca() {
        let ca = Authority::generate("td", DAY).unwrap();
        let other = Authority::generate("td", DAY).unwrap();
        let err = Authority::from_pem(&ca.cert_pem(), &other.key_pem()).unwrap_err();
        assert!(matches!(err, Error::KeyMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("Weft CA"), "{err}");
    }

    #[test]
    fn from_pem_rejects_leaf_certificate() {
        let ca = Authority::generate("td", DAY).unwrap();
        let issued = ca.issue(&id("td", "a"), DAY).unwrap();
        let err = Authority::from_pem(&issued.cert_pem, &issued.key_pem).unwrap_err();
        assert!(matches!(err, Error::NotCa { .. }), "{err:?}");
    }

    #[test]
    fn from_pem_rejects_non_p256_key() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.subject_alt_names = vec![uri_san("spiffe://td").unwrap()];
        let cert = params.self_signed(&key).unwrap();
        let err = Authority::from_pem(&cert.pem(), &key.serialize_pem()).unwrap_err();
        assert!(err.to_string().contains("ECDSA P-384"), "{err}");
    }

    #[test]
    fn from_pem_requires_a_trust_domain() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let err = Authority::from_pem(&cert.pem(), &key.serialize_pem()).unwrap_err();
        assert!(matches!(err, Error::TrustDomainSan { .. }), "{err:?}");
        assert!(
            err.to_string().contains("from_pem_with_trust_domain"),
            "{err}"
        );

        let ca = Authority::from_pem_with_trust_domain(
            &cert.pem(),
            &key.serialize_pem(),
            "corp.example",
        )
        .unwrap();
        assert_eq!(ca.trust_domain(), "corp.example");
        ca.issue(&id("corp.example", "web"), DAY).unwrap();

        let generated = Authority::generate("td", DAY).unwrap();
        let err = Authority::from_pem_with_trust_domain(
            &generated.cert_pem(),
            &generated.key_pem(),
            "other",
        )
        .unwrap_err();
        assert!(matches!(err, Error::TrustDomainMismatch { .. }), "{err:?}");
    }

    #[test]
    fn from_pem_rejects_garbage_and_bundles() {
        let ca = Authority::generate("td", DAY).unwrap();
        let err = Authority::from_pem("not pem", &ca.key_pem()).unwrap_err();
        assert!(matches!(err, Error::CertPem { found: 0, .. }), "{err:?}");
        let two = format!("{}{}", ca.cert_pem(), ca.cert_pem());
        let err = Authority::from_pem(&two, &ca.key_pem()).unwrap_err();
        assert!(matches!(err, Error::CertPem { found: 2, .. }), "{err:?}");
        let err = Authority::from_pem(&ca.cert_pem(), "nope").unwrap_err();
        assert!(matches!(err, Error::KeyPem { .. }), "{err:?}");
    }

    #[test]
    fn write_files_writes_cert_key_and_bundle() {
        let ca = Authority::generate("td", DAY).unwrap();
        let issued = ca.issue(&id("td", "web"), DAY).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested");
        let paths = issued.write_files(&out, "web", &ca.cert_pem()).unwrap();
        assert_eq!(paths.cert, out.join("web.crt"));
        assert_eq!(paths.key, out.join("web.key"));
        assert_eq!(paths.trust_bundle, out.join("ca.crt"));
        assert_eq!(fs::read_to_string(&paths.cert).unwrap(), issued.cert_pem);
        assert_eq!(fs::read_to_string(&paths.key).unwrap(), issued.key_pem);
        assert_eq!(
            fs::read_to_string(&paths.trust_bundle).unwrap(),
            ca.cert_pem()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn write_files_tightens_existing_key_file() {
        use std::os::unix::fs::PermissionsExt;
        let ca = Authority::generate("td", DAY).unwrap();
        let issued = ca.issue(&id("td", "web"), DAY).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("web.key");
        fs::write(&key, "old").unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        issued
            .write_files(dir.path(), "web", &ca.cert_pem())
            .unwrap();
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn generated_root_is_its_own_root_and_sends_no_chain() {
        let ca = Authority::generate("td", DAY).unwrap();
        assert_eq!(ca.root_der(), Some(ca.cert_der().to_vec()));
        assert!(ca.chain_der().is_empty());
        let loaded = Authority::from_pem(&ca.cert_pem(), &ca.key_pem()).unwrap();
        assert_eq!(loaded.root_der(), ca.root_der());
        assert!(loaded.chain_der().is_empty());
    }

    #[test]
    fn sign_csr_backdates_five_minutes_and_reports_the_window() {
        let ca = Authority::generate("td", DAY).unwrap();
        let (_, der) = crate::csr::generate(&id("td", "asks-for-this")).unwrap();
        let csr = Csr::from_der(&der).unwrap();
        // Mid-second, to see the certificate and the reported window agree.
        let now = ca.not_after() - Duration::from_secs(3600) + Duration::from_millis(999);
        let leaf = ca
            .sign_csr(&csr, &id("td", "web"), Duration::from_secs(600), now)
            .unwrap();
        let (_, x509) = X509Certificate::from_der(&leaf.chain[0]).unwrap();
        let secs = |t: SystemTime| {
            i64::try_from(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()).unwrap()
        };
        assert_eq!(x509.validity().not_before.timestamp(), secs(now) - 300);
        assert_eq!(x509.validity().not_after.timestamp(), secs(now) + 600);
        assert_eq!(
            leaf.not_after,
            whole_seconds(now + Duration::from_secs(600))
        );
        assert_eq!(leaf.serial, hex::encode(x509.raw_serial()));
        assert_eq!(
            verify::peer_identity(&[CertificateDer::from(leaf.chain[0].clone())]).unwrap(),
            id("td", "web")
        );
    }

    #[test]
    fn whole_seconds_drops_the_fraction() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(
            whole_seconds(t),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1)
        );
    }

    #[test]
    fn authority_is_shareable_between_threads() {
        // The control plane signs CSRs from many tasks.
        fn check<T: Send + Sync>() {}
        check::<Authority>();
        check::<Issued>();
        check::<SignedLeaf>();
    }

    #[test]
    fn debug_output_hides_keys() {
        let ca = Authority::generate("td", DAY).unwrap();
        let issued = ca.issue(&id("td", "web"), DAY).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        assert!(!format!("{issued:?}").contains("PRIVATE"));
    }

    #[test]
    fn the_signer_id_is_the_issuer_id_of_what_it_signs_and_differs_between_cas() {
        let ca = Authority::generate("cluster.local", Duration::from_secs(3600)).unwrap();
        let other = Authority::generate("cluster.local", Duration::from_secs(3600)).unwrap();
        let id = SpiffeId::new("cluster.local", "default", "web").unwrap();
        let leaf = ca
            .issue_server(&id, &[], Duration::from_secs(60), SystemTime::now())
            .unwrap();
        assert_eq!(issuer_id(&leaf.chain[0]).unwrap(), ca.signer_id());
        assert_ne!(ca.signer_id(), other.signer_id());
        assert_eq!(ca.signer_id().len(), 16);
        assert!(issuer_id(b"garbage").is_err());
    }
}
