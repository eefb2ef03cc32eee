//! PKCS#10 certificate signing requests for workload certificates.
//!
//! The proxy generates its key on its own host with [`generate`] and sends only the CSR
//! to the control plane; the private key never leaves the host. The control plane parses
//! the request with [`Csr::from_der`], which checks the request's self-signature (proof
//! that the sender holds the key) and accepts only ECDSA P-256 keys, the one key type of
//! Weft's mesh certificates. [`crate::ca::Authority::sign_csr`] then issues for the
//! identity the control plane authenticated, not for whatever the request names.
//!
//! What it is not: a general CSR toolkit. A request's subject, extensions and requested
//! SANs are read for information only ([`Csr::requested_uris`]); nothing in a CSR decides
//! what gets certified.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType, PKCS_ECDSA_P256_SHA256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    Oid, OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;

use crate::spiffe::SpiffeId;

/// Why a certificate signing request was refused or could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// The bytes are not a DER-encoded PKCS#10 request.
    #[error("the certificate signing request is not a DER-encoded PKCS#10 request: {detail}; send the CSR as DER bytes, not PEM text")]
    NotDer {
        /// The parser's complaint.
        detail: String,
    },

    /// The request is followed by extra bytes.
    #[error("the certificate signing request is followed by {len} unexpected byte(s); send exactly one DER-encoded CSR")]
    TrailingData {
        /// How many bytes follow the request.
        len: usize,
    },

    /// The requested key is not ECDSA P-256.
    #[error("the certificate signing request is for a {found} key, but Weft issues certificates for ECDSA P-256 keys only")]
    UnsupportedKey {
        /// The key type found, e.g. `RSA` or `ECDSA P-384`.
        found: String,
    },

    /// The request is signed with another algorithm than ECDSA with SHA-256.
    #[error("the certificate signing request is signed with {found}, but Weft accepts only ecdsa-with-SHA256")]
    UnsupportedSignatureAlgorithm {
        /// The signature algorithm OID found.
        found: String,
    },

    /// The self-signature does not verify: the request was altered, or its sender does
    /// not hold the private key.
    #[error("the certificate signing request's signature does not verify against its own public key; the request was altered or not signed by the key it names")]
    BadSignature,

    /// The key pair for a new request could not be generated.
    #[error("cannot generate an ECDSA P-256 key for the certificate signing request: {source}")]
    KeyGeneration {
        /// The crypto library's complaint.
        source: rcgen::Error,
    },

    /// A new request could not be encoded or signed.
    #[error("cannot build the certificate signing request for {id}: {source}")]
    Build {
        /// The identity the request was for.
        id: SpiffeId,
        /// The certificate library's complaint.
        source: rcgen::Error,
    },
}

/// A parsed PKCS#10 request whose self-signature has been verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Csr {
    der: Vec<u8>,
    public_key_der: Vec<u8>,
    requested_uris: Vec<String>,
}

// === impl Csr ===

impl Csr {
    /// Parses a DER CSR and verifies its self-signature. Only ECDSA P-256 keys are accepted.
    pub fn from_der(der: &[u8]) -> Result<Csr, CsrError> {
        let (rest, request) =
            X509CertificationRequest::from_der(der).map_err(|e| CsrError::NotDer {
                detail: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(CsrError::TrailingData { len: rest.len() });
        }
        let info = &request.certification_request_info;
        let spki = &info.subject_pki;

        let key_oid = &spki.algorithm.algorithm;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        if *key_oid != OID_KEY_TYPE_EC_PUBLIC_KEY || curve.as_ref() != Some(&OID_EC_P256) {
            return Err(CsrError::UnsupportedKey {
                found: key_name(key_oid, curve.as_ref()),
            });
        }
        let sig_oid = &request.signature_algorithm.algorithm;
        if *sig_oid != OID_SIG_ECDSA_WITH_SHA256 {
            return Err(CsrError::UnsupportedSignatureAlgorithm {
                found: sig_oid.to_id_string(),
            });
        }
        // Verified here with aws-lc-rs directly, so the check cannot silently depend on
        // which x509-parser verification feature some other crate happens to enable.
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki.subject_public_key.data)
            .verify(info.raw, &request.signature_value.data)
            .map_err(|_| CsrError::BadSignature)?;

        let requested_uris = request
            .requested_extensions()
            .into_iter()
            .flatten()
            .filter_map(|ext| match ext {
                ParsedExtension::SubjectAlternativeName(san) => Some(&san.general_names),
                _ => None,
            })
            .flatten()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect();

        Ok(Csr {
            der: der.to_vec(),
            public_key_der: spki.raw.to_vec(),
            requested_uris,
        })
    }

    /// The requested public key, DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// URI SANs the request asks for (informational: the CA ignores them).
    pub fn requested_uris(&self) -> &[String] {
        &self.requested_uris
    }

    /// The request as received, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// Generates a P-256 key and a CSR naming `id` as URI SAN. Returns (PKCS#8 key PEM, CSR DER).
///
/// The request has an empty subject: SPIFFE certificates identify by URI SAN alone.
pub fn generate(id: &SpiffeId) -> Result<(String, Vec<u8>), CsrError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|source| CsrError::KeyGeneration { source })?;
    let build = |source| CsrError::Build {
        id: id.clone(),
        source,
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(id.to_string().try_into().map_err(build)?)];
    let request = params.serialize_request(&key).map_err(build)?;
    Ok((key.serialize_pem(), request.der().to_vec()))
}

/// A readable name for a public key algorithm, for error messages.
fn key_name(key_oid: &Oid<'_>, curve: Option<&Oid<'_>>) -> String {
    if *key_oid == OID_PKCS1_RSAENCRYPTION {
        "RSA".to_owned()
    } else if *key_oid == OID_SIG_ED25519 {
        "Ed25519".to_owned()
    } else if *key_oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        match curve {
            Some(c) if *c == OID_NIST_EC_P384 => "ECDSA P-384".to_owned(),
            Some(c) => format!("elliptic-curve ({})", c.to_id_string()),
            None => "elliptic-curve (no named curve)".to_owned(),
        }
    } else {
        format!("unknown ({})", key_oid.to_id_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PKCS_ECDSA_P384_SHA384;

    fn id(sa: &str) -> SpiffeId {
        SpiffeId::new("cluster.local", "default", sa).unwrap()
    }

    /// A CSR for `key`'s public key, signed by `key`, naming `uri`.
    fn csr_with(key: &KeyPair, uri: &str) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        params.serialize_request(key).unwrap().der().to_vec()
    }

    #[test]
    fn generated_csr_parses_and_names_the_identity() {
        let (key_pem, der) = generate(&id("web")).unwrap();
        assert!(key_pem.contains("BEGIN PRIVATE KEY"), "{key_pem}");
        let csr = Csr::from_der(&der).unwrap();
        assert_eq!(
            csr.requested_uris(),
            ["spiffe://cluster.local/ns/default/sa/web"]
        );
        assert_eq!(csr.der(), der.as_slice());
        let key = KeyPair::from_pem(&key_pem).unwrap();
        assert_eq!(
            csr.public_key_der(),
            rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        );
    }

    #[test]
    fn rejects_csr_with_tampered_byte() {
        let (_, der) = generate(&id("web")).unwrap();
        // Flip a byte inside the requested URI: the structure still parses, the signature
        // no longer matches.
        let at = der
            .windows(3)
            .position(|w| w == b"web")
            .expect("the URI is in the request");
        let mut tampered = der.clone();
        tampered[at] = b'x';
        let err = Csr::from_der(&tampered).unwrap_err();
        assert!(matches!(err, CsrError::BadSignature), "{err:?}");
        assert!(err.to_string().contains("does not verify"), "{err}");
    }

    #[test]
    fn rejects_csr_signed_by_another_key() {
        // Public key of one pair, signature of another: rcgen signs with the key it is given,
        // so splice the signature of a second request onto the first.
        let a = Csr::from_der(&generate(&id("a")).unwrap().1).unwrap();
        let b_der = generate(&id("a")).unwrap().1;
        let (_, b) = X509CertificationRequest::from_der(&b_der).unwrap();
        let a_parsed = X509CertificationRequest::from_der(a.der()).unwrap().1;
        let a_info = a_parsed.certification_request_info.raw;
        let b_info = b.certification_request_info.raw;
        // Same identity, different key: the infos differ only in the key, so put a's info
        // in front of b's signature.
        let mut spliced = b_der.clone();
        let start = b_der
            .windows(b_info.len())
            .position(|w| w == b_info)
            .unwrap();
        assert_eq!(a_info.len(), b_info.len());
        spliced[start..start + a_info.len()].copy_from_slice(a_info);
        let err = Csr::from_der(&spliced).unwrap_err();
        assert!(matches!(err, CsrError::BadSignature), "{err:?}");
    }

    #[test]
    fn rejects_bytes_that_are_not_der() {
        let err = Csr::from_der(b"-----BEGIN CERTIFICATE REQUEST-----").unwrap_err();
        assert!(matches!(err, CsrError::NotDer { .. }), "{err:?}");
        assert!(err.to_string().contains("not PEM"), "{err}");
        let err = Csr::from_der(&[]).unwrap_err();
        assert!(matches!(err, CsrError::NotDer { .. }), "{err:?}");
    }

    #[test]
    fn rejects_trailing_bytes() {
        let (_, mut der) = generate(&id("web")).unwrap();
        der.push(0);
        let err = Csr::from_der(&der).unwrap_err();
        assert!(matches!(err, CsrError::TrailingData { len: 1 }), "{err:?}");
    }

    #[test]
    fn rejects_p384_key() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
        let err = Csr::from_der(&csr_with(&key, "spiffe://td/ns/a/sa/b")).unwrap_err();
        assert!(matches!(err, CsrError::UnsupportedKey { .. }), "{err:?}");
        assert!(err.to_string().contains("ECDSA P-384"), "{err}");
    }

    #[test]
    fn rejects_ed25519_key() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let err = Csr::from_der(&csr_with(&key, "spiffe://td/ns/a/sa/b")).unwrap_err();
        assert!(matches!(err, CsrError::UnsupportedKey { .. }), "{err:?}");
        assert!(err.to_string().contains("Ed25519"), "{err}");
    }

    #[test]
    fn rejects_signature_algorithm_other_than_ecdsa_sha256() {
        let (_, der) = generate(&id("web")).unwrap();
        // ecdsa-with-SHA256 (1.2.840.10045.4.3.2) → ecdsa-with-SHA384 (…4.3.3), in the
        // outer signatureAlgorithm, the only place the OID appears.
        let oid = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        let at = der.windows(oid.len()).rposition(|w| w == oid).unwrap();
        let mut request = der.clone();
        request[at + oid.len() - 1] = 0x03;
        let err = Csr::from_der(&request).unwrap_err();
        assert!(
            matches!(err, CsrError::UnsupportedSignatureAlgorithm { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("1.2.840.10045.4.3.3"), "{err}");
    }

    #[test]
    fn requested_uris_lists_every_uri_san() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::URI("spiffe://td/ns/a/sa/b".try_into().unwrap()),
            SanType::DnsName("web.example".try_into().unwrap()),
            SanType::URI("https://example.com".try_into().unwrap()),
        ];
        let der = params.serialize_request(&key).unwrap().der().to_vec();
        let csr = Csr::from_der(&der).unwrap();
        assert_eq!(
            csr.requested_uris(),
            ["spiffe://td/ns/a/sa/b", "https://example.com"]
        );
    }
}
