//! Trust bundles: the root certificates a mesh trusts.
//!
//! A [`TrustBundle`] normally holds one root, the mesh CA's. During a CA rotation it holds
//! two, the old and the new, so that certificates from either verify while workloads move
//! over: the control plane adds the new root with [`TrustBundle::with`], re-issues, then
//! drops the old one with [`TrustBundle::without`]. Roots keep the order they were added
//! in and appear once each (compared byte for byte).
//!
//! What it is not: a verifier. It validates that each entry is a CA certificate rustls
//! can use as a trust anchor and hands out DER or PEM; [`crate::Credentials`] builds the
//! verifying TLS configurations from it.

use base64::Engine as _;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a trust bundle or one of its roots was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The PEM text could not be read.
    #[error("the trust bundle is not valid PEM: {source}")]
    Pem {
        /// The PEM parser's complaint.
        source: pem::Error,
    },

    /// The bundle holds no certificate.
    #[error("the trust bundle holds no CERTIFICATE; a bundle needs at least the mesh root CA")]
    Empty,

    /// A root is not parseable X.509.
    #[error("trust bundle certificate #{index} is not a valid X.509 certificate: {detail}")]
    Parse {
        /// Position of the certificate in the input, from 1.
        index: usize,
        /// The parser's complaint.
        detail: String,
    },

    /// A root is not a CA certificate.
    #[error("trust bundle certificate #{index} ({subject:?}) is not a CA certificate (basicConstraints cA=true is missing); a trust bundle holds root CAs, not workload certificates")]
    NotCa {
        /// Position of the certificate in the input, from 1.
        index: usize,
        /// The certificate's subject.
        subject: String,
    },

    /// rustls cannot use a root as a trust anchor.
    #[error("trust bundle certificate #{index} ({subject:?}) cannot be used as a trust anchor: {source}")]
    TrustAnchor {
        /// Position of the certificate in the input, from 1.
        index: usize,
        /// The certificate's subject.
        subject: String,
        /// The TLS library's complaint.
        source: rustls::Error,
    },
}

/// An ordered, de-duplicated set of trusted root certificates (DER).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustBundle {
    roots: Vec<Vec<u8>>,
}

// === impl TrustBundle ===

impl TrustBundle {
    /// Reads every `CERTIFICATE` block of `pem`; other block types are ignored. At least one
    /// certificate is required, and each must be a CA certificate.
    pub fn from_pem(pem: &str) -> Result<Self, BundleError> {
        let roots = CertificateDer::pem_slice_iter(pem.as_bytes())
            .map(|cert| cert.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| BundleError::Pem { source })?;
        Self::from_der(roots)
    }

    /// Builds a bundle from DER certificates, in order, dropping exact duplicates. At least
    /// one certificate is required, and each must parse as a CA certificate.
    pub fn from_der(roots: impl IntoIterator<Item = Vec<u8>>) -> Result<Self, BundleError> {
        let mut bundle = TrustBundle::default();
        for (index, der) in roots.into_iter().enumerate() {
            check_root(&der, index + 1)?;
            if !bundle.contains(&der) {
                bundle.roots.push(der);
            }
        }
        if bundle.roots.is_empty() {
            return Err(BundleError::Empty);
        }
        Ok(bundle)
    }

    /// The bundle as concatenated PEM `CERTIFICATE` blocks, in order.
    pub fn to_pem(&self) -> String {
        certificates_pem(&self.roots)
    }

    /// The roots, DER, in order.
    pub fn roots_der(&self) -> &[Vec<u8>] {
        &self.roots
    }

    /// A copy with `root_der` appended, unless it is already present (then an unchanged
    /// copy). The new root must be a CA certificate.
    pub fn with(&self, root_der: Vec<u8>) -> Result<Self, BundleError> {
        check_root(&root_der, self.roots.len() + 1)?;
        let mut bundle = self.clone();
        if !bundle.contains(&root_der) {
            bundle.roots.push(root_der);
        }
        Ok(bundle)
    }

    /// A copy without `root_der` (an unchanged copy if it is absent). Removing the last
    /// root leaves an empty bundle, which trusts nothing; check [`TrustBundle::is_empty`]
    /// before publishing it.
    #[must_use]
    pub fn without(&self, root_der: &[u8]) -> Self {
        TrustBundle {
            roots: self
                .roots
                .iter()
                .filter(|der| der.as_slice() != root_der)
                .cloned()
                .collect(),
        }
    }

    /// Whether the bundle holds exactly this certificate.
    pub fn contains(&self, root_der: &[u8]) -> bool {
        self.roots.iter().any(|der| der.as_slice() == root_der)
    }

    /// How many roots the bundle holds.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether the bundle holds no root (only after [`TrustBundle::without`]).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The roots as a rustls trust-anchor store.
    pub fn root_store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        // Every root passed `check_root`, which adds it to a store the same way.
        let (_added, _ignored) =
            store.add_parsable_certificates(self.roots.iter().map(|der| der.clone().into()));
        store
    }
}

/// Checks that `der` is a CA certificate rustls accepts as a trust anchor.
fn check_root(der: &[u8], index: usize) -> Result<(), BundleError> {
    let (rest, x509) = X509Certificate::from_der(der).map_err(|e| BundleError::Parse {
        index,
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(BundleError::Parse {
            index,
            detail: format!("{} unexpected byte(s) after the certificate", rest.len()),
        });
    }
    let subject = x509.subject().to_string();
    let is_ca = x509
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(BundleError::NotCa { index, subject });
    }
    RootCertStore::empty()
        .add(CertificateDer::from(der))
        .map_err(|source| BundleError::TrustAnchor {
            index,
            subject,
            source,
        })
}

/// One PEM `CERTIFICATE` block, 64 characters a line.
pub(crate) fn certificate_pem(der: &[u8]) -> String {
    pem_block("CERTIFICATE", der)
}

/// DER certificates as concatenated PEM blocks (a chain file, leaf first, or a bundle).
pub fn certificates_pem(ders: &[Vec<u8>]) -> String {
    ders.iter().map(|der| certificate_pem(der)).collect()
}

/// One PEM block of `label`, 64 characters a line.
pub(crate) fn pem_block(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // Base64 output is ASCII, so every chunk is valid UTF-8.
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Authority;
    use crate::spiffe::SpiffeId;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    fn root() -> Vec<u8> {
        let ca = Authority::generate("td", DAY).unwrap();
        CertificateDer::from_pem_slice(ca.cert_pem().as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn certificates_pem_wraps_at_64_columns() {
        let pem = certificates_pem(&[vec![0u8; 100]]);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    }

    #[test]
    fn from_der_drops_duplicates_and_keeps_order() {
        let (a, b) = (root(), root());
        let bundle = TrustBundle::from_der([a.clone(), b.clone(), a.clone()]).unwrap();
        assert_eq!(bundle.roots_der(), [a, b]);
        assert_eq!(bundle.len(), 2);
    }

    #[test]
    fn pem_round_trips() {
        let (a, b) = (root(), root());
        let bundle = TrustBundle::from_der([a, b]).unwrap();
        let pem = bundle.to_pem();
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 2);
        assert!(pem.lines().all(|line| line.len() <= 64), "{pem}");
        assert_eq!(TrustBundle::from_pem(&pem).unwrap(), bundle);
    }

    #[test]
    fn pem_matches_what_the_ca_writes() {
        let ca = Authority::generate("td", DAY).unwrap();
        let bundle = TrustBundle::from_pem(&ca.cert_pem()).unwrap();
        assert_eq!(bundle.to_pem().trim(), ca.cert_pem().trim());
    }

    #[test]
    fn with_adds_once_and_without_removes() {
        let (a, b) = (root(), root());
        let one = TrustBundle::from_der([a.clone()]).unwrap();
        let two = one.with(b.clone()).unwrap();
        assert_eq!(two.roots_der(), [a.clone(), b.clone()]);
        assert_eq!(two.with(b.clone()).unwrap(), two, "no duplicate");
        assert_eq!(
            one.roots_der(),
            std::slice::from_ref(&a),
            "the original is unchanged"
        );

        let rotated = two.without(&a);
        assert_eq!(rotated.roots_der(), std::slice::from_ref(&b));
        assert_eq!(
            rotated.without(&a),
            rotated,
            "removing an absent root is a no-op"
        );
        assert!(rotated.without(&b).is_empty());
    }

    #[test]
    fn rejects_workload_certificate() {
        let ca = Authority::generate("td", DAY).unwrap();
        let leaf = ca
            .issue(&SpiffeId::new("td", "ns", "sa").unwrap(), DAY)
            .unwrap();
        let err =
            TrustBundle::from_pem(&format!("{}{}", ca.cert_pem(), leaf.cert_pem)).unwrap_err();
        assert!(
            matches!(err, BundleError::NotCa { index: 2, .. }),
            "{err:?}"
        );
        let leaf_der = CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap();
        let bundle = TrustBundle::from_pem(&ca.cert_pem()).unwrap();
        let err = bundle.with(leaf_der.to_vec()).unwrap_err();
        assert!(matches!(err, BundleError::NotCa { .. }), "{err:?}");
    }

    #[test]
    fn rejects_empty_and_garbage_input() {
        let err = TrustBundle::from_pem("").unwrap_err();
        assert!(matches!(err, BundleError::Empty), "{err:?}");
        let err = TrustBundle::from_der(Vec::<Vec<u8>>::new()).unwrap_err();
        assert!(matches!(err, BundleError::Empty), "{err:?}");
        let err = TrustBundle::from_der([b"not a certificate".to_vec()]).unwrap_err();
        assert!(
            matches!(err, BundleError::Parse { index: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn root_store_holds_every_root() {
        let bundle = TrustBundle::from_der([root(), root()]).unwrap();
        assert_eq!(bundle.root_store().len(), 2);
    }
}
