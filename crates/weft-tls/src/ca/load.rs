//! Loading an operator-provided CA: a single certificate or an intermediate with its
//! chain, checked link by link and by a self-test signature at load.

use std::time::{Duration, SystemTime};

use rcgen::{Issuer, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::RootCertStore;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::{Authority, Error, PROBE_ACCOUNT, PROBE_NAMESPACE};
use crate::spiffe::{self, SpiffeId};
use crate::verify;

impl Authority {
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
