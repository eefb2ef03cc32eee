//! The TLS material of a `Secret` (`kubernetes.io/tls`): parses a certificate chain, a
//! private key and optional CA certificates, checks that they fit together, and
//! describes the leaf certificate for readers who must never see the material.
//!
//! What it is not: a verifier. The chain is parsed, not validated against a root
//! (a gateway's clients do that), and an expired leaf is described, not refused: the
//! caller decides (the control plane accepts it and flags it, so a renewal can be
//! applied in any order).
//!
//! Every [`Problem`] names the key it is about (`tls.crt`, `tls.key`, `ca.crt`) and
//! says what to do; none ever quotes the material.

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Most bytes of `tls.crt`: 64 KiB (a leaf and a few intermediates take a few KiB).
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// Most bytes of `tls.key`: 16 KiB (an RSA-8192 key in PEM is under 7 KiB).
pub const MAX_KEY_BYTES: usize = 16 * 1024;
/// Most bytes of `ca.crt`: 256 KiB.
pub const MAX_CA_BYTES: usize = 256 * 1024;
/// Most certificates in `tls.crt`.
pub const MAX_CHAIN_LENGTH: usize = 10;

/// A leaf certificate's description: everything a reader may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP address subject alternative names.
    pub ip_addresses: Vec<String>,
    /// Start of validity, seconds since the epoch.
    pub not_before: i64,
    /// End of validity, seconds since the epoch.
    pub not_after: i64,
    /// SHA-256 of the leaf's DER, `AB:CD:…`.
    pub sha256_fingerprint: String,
    /// Certificates in the chain.
    pub chain_length: usize,
}

/// What is wrong with one key of the material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Problem {
    /// `tls.crt`, `tls.key` or `ca.crt`.
    pub key: &'static str,
    /// What is wrong and what to do; never the material.
    pub message: String,
}

/// Checks `certificate` (PEM chain, leaf first), `key` (PEM) and `ca` (PEM, optional)
/// and describes the leaf. Every problem found is returned (one per key at most).
pub fn check(
    certificate: &[u8],
    key: &[u8],
    ca: Option<&[u8]>,
) -> Result<Description, Vec<Problem>> {
    let mut problems = Vec::new();
    let chain = match certificates("tls.crt", certificate, MAX_CERTIFICATE_BYTES) {
        Ok(chain) if chain.len() > MAX_CHAIN_LENGTH => {
            problems.push(problem(
                "tls.crt",
                format!(
                    "holds {} certificates, at most {MAX_CHAIN_LENGTH} are taken; keep the leaf \
                     and its intermediates, not the root",
                    chain.len()
                ),
            ));
            None
        }
        Ok(chain) => Some(chain),
        Err(p) => {
            problems.push(p);
            None
        }
    };
    let public_key = match private_key(key) {
        Ok(public_key) => Some(public_key),
        Err(p) => {
            problems.push(p);
            None
        }
    };
    if let Some(ca) = ca {
        if let Err(p) = certificates("ca.crt", ca, MAX_CA_BYTES) {
            problems.push(p);
        }
    }
    let description = match (&chain, &public_key) {
        (Some(chain), Some(public_key)) => match describe(chain) {
            Ok((description, leaf_key)) if leaf_key != *public_key => {
                problems.push(problem(
                    "tls.key",
                    format!(
                        "does not match the certificate: the leaf of tls.crt ({}) has another \
                         public key; give the key the certificate was issued for",
                        description.subject
                    ),
                ));
                None
            }
            Ok((description, _)) => Some(description),
            Err(p) => {
                problems.push(p);
                None
            }
        },
        _ => None,
    };
    match description {
        Some(description) if problems.is_empty() => Ok(description),
        _ => Err(problems),
    }
}

fn problem(key: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        key,
        message: message.into(),
    }
}

/// The DER of each `CERTIFICATE` block, each parsed once to check it.
fn certificates(key: &'static str, pem: &[u8], max: usize) -> Result<Vec<Vec<u8>>, Problem> {
    if pem.len() > max {
        return Err(problem(
            key,
            format!("is {} bytes, at most {max} are taken", pem.len()),
        ));
    }
    let mut ders = Vec::new();
    for (i, block) in Pem::iter_from_buffer(pem).enumerate() {
        let block = block.map_err(|_| {
            problem(
                key,
                format!(
                    "PEM block {i} cannot be read; give PEM text (-----BEGIN CERTIFICATE-----)"
                ),
            )
        })?;
        if block.label != "CERTIFICATE" {
            return Err(problem(
                key,
                format!(
                    "PEM block {i} is a {:?}, not a CERTIFICATE; {key} holds certificates only",
                    truncate(&block.label)
                ),
            ));
        }
        X509Certificate::from_der(&block.contents).map_err(|_| {
            problem(
                key,
                format!("certificate {i} is not an X.509 certificate; check the file with `openssl x509 -noout -text`"),
            )
        })?;
        ders.push(block.contents);
    }
    if ders.is_empty() {
        return Err(problem(
            key,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----); give PEM text, or its \
             base64 under data",
        ));
    }
    Ok(ders)
}

/// Parses the private key and returns its public key as SubjectPublicKeyInfo DER.
fn private_key(pem: &[u8]) -> Result<Vec<u8>, Problem> {
    const KEY: &str = "tls.key";
    if pem.len() > MAX_KEY_BYTES {
        return Err(problem(
            KEY,
            format!("is {} bytes, at most {MAX_KEY_BYTES} are taken", pem.len()),
        ));
    }
    let mut blocks = Pem::iter_from_buffer(pem);
    let Some(Ok(block)) = blocks.next() else {
        return Err(problem(
            KEY,
            "holds no PEM private key; give PEM text (-----BEGIN PRIVATE KEY-----), or its \
             base64 under data",
        ));
    };
    if blocks.next().is_some() {
        return Err(problem(
            KEY,
            "holds more than one PEM block; give the leaf's key only",
        ));
    }
    let der = match block.label.as_str() {
        "PRIVATE KEY" => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(block.contents)),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(block.contents)),
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(block.contents)),
        "ENCRYPTED PRIVATE KEY" => {
            return Err(problem(
                KEY,
                "is encrypted; give it unencrypted (`openssl pkey -in KEY -out PLAIN`): the \
                 control plane encrypts it at rest",
            ))
        }
        other => {
            return Err(problem(
                KEY,
                format!(
                    "is a {:?} PEM block; give a PRIVATE KEY (PKCS#8), EC PRIVATE KEY (SEC1) or \
                     RSA PRIVATE KEY (PKCS#1)",
                    truncate(other)
                ),
            ))
        }
    };
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).map_err(|_| {
        problem(
            KEY,
            "cannot be read as an ECDSA (P-256, P-384), Ed25519 or RSA key; check it with \
             `openssl pkey -noout -in KEY`",
        )
    })?;
    signing
        .public_key()
        .map(|spki| spki.as_ref().to_vec())
        .ok_or_else(|| {
            problem(
                KEY,
                "its public key cannot be derived; use an ECDSA or RSA key",
            )
        })
}

/// Describes the leaf (the first certificate) and returns its public key
/// (SubjectPublicKeyInfo DER).
fn describe(chain: &[Vec<u8>]) -> Result<(Description, Vec<u8>), Problem> {
    let not_readable = || problem("tls.crt", "the leaf certificate cannot be read");
    let leaf_der = chain.first().ok_or_else(not_readable)?;
    let (_, leaf) = X509Certificate::from_der(leaf_der).map_err(|_| not_readable())?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_address(bytes) {
                        ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf_der);
    let sha256_fingerprint = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Ok((
        Description {
            subject: leaf.subject().to_string(),
            issuer: leaf.issuer().to_string(),
            dns_names,
            ip_addresses,
            not_before: leaf.validity().not_before.timestamp(),
            not_after: leaf.validity().not_after.timestamp(),
            sha256_fingerprint,
            chain_length: chain.len(),
        },
        leaf.tbs_certificate.subject_pki.raw.to_vec(),
    ))
}

fn ip_address(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// A PEM label as echoed in an error: labels are not secret, but keep them short.
fn truncate(label: &str) -> String {
    label.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn describes_a_matching_certificate_and_key() {
        let (cert, key) = issue(&["shop.example.com", "*.shop.example.com"]);
        let d = check(cert.as_bytes(), key.as_bytes(), None).unwrap();
        assert_eq!(d.dns_names, ["shop.example.com", "*.shop.example.com"]);
        assert_eq!(d.chain_length, 1);
        assert_eq!(d.sha256_fingerprint.len(), 32 * 3 - 1);
        assert!(d.not_after > d.not_before);
    }

    #[test]
    fn refuses_a_key_of_another_certificate_without_quoting_it() {
        let (cert, _) = issue(&["a.example.com"]);
        let (_, other_key) = issue(&["b.example.com"]);
        let problems = check(cert.as_bytes(), other_key.as_bytes(), None).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "tls.key");
        assert!(
            problems[0].message.contains("does not match"),
            "{}",
            problems[0]
        );
        let body: String = other_key
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!problems[0].message.contains(&body[..20]));
    }

    #[test]
    fn refuses_text_that_is_not_pem_in_each_key() {
        let problems = check(b"not a certificate", b"not a key", Some(b"nor this")).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key).collect();
        assert_eq!(keys, ["tls.crt", "tls.key", "ca.crt"]);
        assert!(problems.iter().all(|p| !p.message.contains("not a")));
    }

    #[test]
    fn refuses_a_private_key_in_the_certificate_field() {
        let (_, key) = issue(&["a.example.com"]);
        let problems = check(key.as_bytes(), key.as_bytes(), None).unwrap_err();
        assert_eq!(problems[0].key, "tls.crt");
        assert!(
            problems[0].message.contains("not a CERTIFICATE"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn refuses_oversized_material() {
        let big = vec![b'a'; MAX_KEY_BYTES + 1];
        let (cert, _) = issue(&["a.example.com"]);
        let problems = check(cert.as_bytes(), &big, None).unwrap_err();
        assert!(problems[0].message.contains("at most"), "{}", problems[0]);
    }
}
