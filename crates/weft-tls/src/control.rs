//! TLS for the control plane's own listeners: the gRPC port (delta xDS and CSR signing,
//! 5678) and the HTTP API (5681).
//!
//! The control plane serves a certificate from the mesh CA whose URI SAN is its own
//! SPIFFE identity, `spiffe://<trust-domain>/ns/weft-system/sa/weft-control-plane`, plus
//! DNS/IP SANs for generic clients (curl, browsers). Weft's clients — proxies and the
//! CLI — verify the chain against the mesh trust bundle and require that identity
//! ([`client_config`]), so they need no host names configured: whatever address they
//! dial, only a control plane holding a certificate from the mesh CA answers. The mesh
//! CA never signs that identity for a workload: the namespace `weft-system` is
//! reserved ([`is_reserved`]).
//!
//! The serving certificate can be swapped while listeners run ([`ServingCert`]):
//! renewals and CA rotations apply to new handshakes, established connections keep
//! theirs.

use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::spiffe::{self, SpiffeId};
use crate::verify::ServerVerifier;

pub use crate::spiffe::{
    is_control_plane, is_reserved, CONTROL_PLANE_NAMESPACE as NAMESPACE,
    CONTROL_PLANE_SERVICE_ACCOUNT as SERVICE_ACCOUNT,
};

/// ALPN of the gRPC listener.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// ALPN of the HTTP API (HTTP/2 and HTTP/1.1 clients alike).
pub const ALPN_API: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Why a TLS configuration for the control plane could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key does not fit the certificate or is not usable for signing.
    #[error("the control plane's serving key is unusable: {0}")]
    Key(#[source] rustls::Error),
    /// rustls refused the configuration.
    #[error("cannot build the control plane's TLS {side} configuration: {source}")]
    Config {
        /// `server` or `client`.
        side: &'static str,
        /// Why.
        source: rustls::Error,
    },
    /// The trust bundle holds no usable root.
    #[error("no usable root certificate to verify the control plane with; give the mesh CA certificate (the control plane writes it to <data-dir>/ca.crt)")]
    NoRoots,
}

/// The control plane's SPIFFE identity in `trust_domain`.
pub fn identity(trust_domain: &str) -> Result<SpiffeId, spiffe::Error> {
    SpiffeId::new(trust_domain, NAMESPACE, SERVICE_ACCOUNT)
}

/// The certificate the control plane serves, swappable while listeners run.
#[derive(Debug)]
pub struct ServingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServingCert {
    /// A serving certificate from `chain` (leaf first, DER) and its PKCS#8 `key_der`.
    pub fn new(chain: &[Vec<u8>], key_der: &[u8]) -> Result<Self, Error> {
        Ok(Self {
            current: RwLock::new(certified(chain, key_der)?),
        })
    }

    /// Replaces the certificate: new handshakes use it at once.
    pub fn set(&self, chain: &[Vec<u8>], key_der: &[u8]) -> Result<(), Error> {
        let next = certified(chain, key_der)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }

    /// The certificate in force.
    pub fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn certified(chain: &[Vec<u8>], key_der: &[u8]) -> Result<Arc<CertifiedKey>, Error> {
    let chain: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec()));
    let provider = crate::crypto_provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(Error::Key)
}

/// The server configuration of a control-plane listener: TLS 1.3 and 1.2 (generic
/// clients), no client certificate (callers authenticate with tokens), `alpn` offered.
pub fn server_config(cert: Arc<ServingCert>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, Error> {
    let mut config = ServerConfig::builder_with_provider(crate::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Config {
            side: "server",
            source,
        })?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The client configuration Weft uses to reach the control plane: the server's chain
/// must end at one of `roots` and its leaf carry the control plane's identity; the TLS
/// server name is not checked. No client certificate (the caller sends a token).
pub fn client_config(roots: RootCertStore, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, Error> {
    if roots.is_empty() {
        return Err(Error::NoRoots);
    }
    let provider = crate::crypto_provider();
    let verifier = Arc::new(ServerVerifier::control_plane(Arc::new(roots), &provider));
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::Config {
            side: "client",
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(NoClientCert));
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Sends no client certificate.
#[derive(Debug)]
struct NoClientCert;

impl ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::ca::Authority;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_control_plane_identity_is_recognised_in_any_trust_domain_and_reserved() {
        let id = identity("corp.example").unwrap();
        assert_eq!(
            id.to_string(),
            "spiffe://corp.example/ns/weft-system/sa/weft-control-plane"
        );
        assert!(is_control_plane(&id));
        assert!(is_control_plane(&identity("cluster.local").unwrap()));
        let workload = SpiffeId::new("corp.example", "weft-system", "web").unwrap();
        assert!(!is_control_plane(&workload));
        assert!(is_reserved("weft-system"));
        assert!(!is_reserved("default"));
    }

    #[test]
    fn a_serving_certificate_carries_the_identity_and_the_host_names() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let id = identity("cluster.local").unwrap();
        let leaf = ca
            .issue_server(
                &id,
                &[
                    "localhost".into(),
                    "127.0.0.1".into(),
                    "cp.example.org".into(),
                ],
                DAY,
                SystemTime::now(),
            )
            .unwrap();
        let found =
            crate::verify::peer_identity(&[CertificateDer::from(leaf.chain[0].clone())]).unwrap();
        assert_eq!(found, id);
        let (_, x509) =
            x509_parser::parse_x509_certificate(&leaf.chain[0]).expect("parse the leaf");
        let sans = x509
            .subject_alternative_name()
            .unwrap()
            .map(|e| format!("{:?}", e.value.general_names))
            .unwrap_or_default();
        assert!(
            sans.contains("localhost") && sans.contains("cp.example.org"),
            "{sans}"
        );
        assert!(ServingCert::new(&leaf.chain, &leaf.key_der).is_ok());
        assert!(
            ServingCert::new(&leaf.chain, b"not a key").is_err(),
            "a key that does not parse is refused"
        );
    }

    #[test]
    fn a_client_without_roots_is_refused_with_a_hint() {
        let err = client_config(RootCertStore::empty(), ALPN_GRPC).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }
}
