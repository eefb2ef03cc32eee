//! Why the CA could not be built or could not issue.

use std::time::SystemTime;

use x509_parser::prelude::X509Error;

use crate::spiffe::{self, SpiffeId};
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
