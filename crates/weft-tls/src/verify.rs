//! Peer certificate checks for HBONE mTLS.
//!
//! Two things live here:
//!
//! - [`peer_identity`] reads the SPIFFE ID out of a certificate chain's leaf. The HBONE
//!   server calls it after the handshake (rustls has already verified the chain) to learn
//!   who is calling; credential loading calls it to learn who we are.
//! - [`ServerVerifier`], the rustls server-certificate verifier behind
//!   [`Credentials::client_config`](crate::Credentials::client_config). SPIFFE IDs are not
//!   DNS names, so instead of matching the TLS server name it verifies the chain against
//!   the trust bundle (signatures, validity time, EKU serverAuth) with rustls' own WebPKI
//!   helpers and then requires the leaf's SPIFFE ID to equal the one the caller expects.
//!
//! Client certificates are verified by rustls' stock `WebPkiClientVerifier`; nothing here
//! replaces it.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{ASN1Time, FromDer, X509Certificate, X509Error};

use crate::spiffe::{self, SpiffeId};

/// Why a peer's certificate does not yield an acceptable SPIFFE identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer sent no certificate at all.
    #[error("peer presented no certificate; mesh peers must authenticate with a SPIFFE certificate (is mTLS enabled on the caller?)")]
    NoCertificate,

    /// The leaf is not parseable X.509 DER.
    #[error("cannot parse the leaf certificate as X.509: {source}")]
    Parse {
        /// The parser's complaint.
        source: x509_parser::nom::Err<X509Error>,
    },

    /// The leaf's subjectAltName extension is malformed or duplicated.
    #[error("cannot read the leaf certificate's subjectAltName extension: {source}")]
    SanExtension {
        /// The parser's complaint.
        source: X509Error,
    },

    /// The leaf has no URI SAN, so it carries no SPIFFE ID.
    #[error("leaf certificate has no URI SAN (SANs found: {}); a SPIFFE certificate carries exactly one URI SAN spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> (was it issued by the mesh CA?)", list(.sans))]
    NoUriSan {
        /// Every SAN found, e.g. `DNS:web.example.com`.
        sans: Vec<String>,
    },

    /// The leaf has several URI SANs; the SPIFFE X.509-SVID spec allows exactly one.
    #[error("leaf certificate has {} URI SANs ({}); a SPIFFE certificate carries exactly one, so its identity is ambiguous", .uris.len(), list(.uris))]
    MultipleUriSans {
        /// The URI SANs found.
        uris: Vec<String>,
    },

    /// The URI SAN is not a SPIFFE ID of Weft's shape.
    #[error("leaf certificate's URI SAN {uri:?} is not a mesh identity: {source}")]
    NotSpiffe {
        /// The URI SAN found.
        uri: String,
        /// What is wrong with it.
        source: spiffe::Error,
    },

    /// The peer is authenticated, but as someone else than expected.
    #[error("server presented SPIFFE ID {found}, expected {expected}; the address may now belong to another workload, or the destination's identity in the mesh config is stale")]
    Mismatch {
        /// The identity the caller asked for.
        expected: Box<SpiffeId>,
        /// The identity the peer's certificate carries.
        found: Box<SpiffeId>,
    },

    /// A server reached as the control plane presented a certificate that no trusted
    /// root signed: the CA file given is not that control plane's CA.
    #[error(
        "the server presented a certificate for {presented} that no CA in the trusted roots signed"
    )]
    UntrustedIssuer {
        /// The identity in the presented leaf (unverified, for diagnosis only): its
        /// SPIFFE ID, or its SANs when it carries none.
        presented: String,
    },

    /// A server reached as the control plane presented another identity.
    #[error("the server presented SPIFFE ID {found}, not the control plane's (…/ns/weft-system/sa/weft-control-plane); is the address that of a control plane?")]
    NotControlPlane {
        /// The identity the server's certificate carries.
        found: Box<SpiffeId>,
    },
}

// === impl Error ===

impl Error {
    /// The identity error inside a rustls handshake error, if that is what failed it.
    ///
    /// rustls prints errors from custom verifiers with `Debug`; callers that log a failed
    /// HBONE handshake should prefer this error's `Display`, which names both identities.
    pub fn from_rustls(err: &rustls::Error) -> Option<&Error> {
        match err {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
                inner.downcast_ref::<Error>()
            }
            _ => None,
        }
    }
}

/// The SPIFFE ID of a peer from its presented chain (leaf first).
///
/// This reads the identity only: call it on chains that rustls has already verified,
/// e.g. `ServerConnection::peer_certificates()` after the handshake.
pub fn peer_identity(chain: &[CertificateDer<'_>]) -> Result<SpiffeId, Error> {
    let leaf = chain.first().ok_or(Error::NoCertificate)?;
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|source| Error::Parse { source })?;
    let names = cert
        .subject_alternative_name()
        .map_err(|source| Error::SanExtension { source })?
        .map(|ext| ext.value.general_names.as_slice())
        .unwrap_or_default();
    let uris: Vec<&str> = names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(Error::NoUriSan {
            sans: names.iter().map(describe).collect(),
        }),
        [uri] => uri.parse().map_err(|source| Error::NotSpiffe {
            uri: (*uri).to_owned(),
            source,
        }),
        _ => Err(Error::MultipleUriSans {
            uris: uris.iter().map(|&uri| uri.to_owned()).collect(),
        }),
    }
}

/// Verifies that `leaf` (with `intermediates`) chains to `roots` at `now` and is valid
/// for TLS server use: signatures with `algorithms`, validity time and EKU.
pub(crate) fn verify_server_chain(
    roots: &RootCertStore,
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<(), rustls::Error> {
    let cert = ParsedCertificate::try_from(leaf)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &cert,
        roots,
        intermediates,
        now,
        algorithms.all,
    )
}

/// An X.509 time as `SystemTime`.
pub(crate) fn to_system_time(time: &ASN1Time) -> SystemTime {
    let seconds = time.timestamp();
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

fn describe(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::URI(uri) => format!("URI:{uri}"),
        GeneralName::RFC822Name(email) => format!("email:{email}"),
        GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
            Ok(v4) => format!("IP:{}", IpAddr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*bytes) {
                Ok(v6) => format!("IP:{}", IpAddr::from(v6)),
                Err(_) => format!("IP:<{} bytes>", bytes.len()),
            },
        },
        other => other.to_string(),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// Verifies an HBONE server: chain to the trust bundle, then an exact SPIFFE ID match.
///
/// The TLS server name the caller dials with is ignored (it may be an IP address or a
/// placeholder such as `weft.invalid`); the expected SPIFFE ID replaces it.
pub struct ServerVerifier {
    roots: Arc<RootCertStore>,
    /// The identity required; `None`: the control plane's, in any trust domain the
    /// roots vouch for ([`ServerVerifier::control_plane`]).
    expected: Option<SpiffeId>,
    algorithms: WebPkiSupportedAlgorithms,
}

// === impl ServerVerifier ===

impl ServerVerifier {
    /// A verifier that trusts `roots` and accepts only a server whose leaf carries `expected`.
    ///
    /// Signatures are checked with `provider`'s algorithms (Weft always passes aws-lc-rs).
    pub fn new(roots: Arc<RootCertStore>, expected: SpiffeId, provider: &CryptoProvider) -> Self {
        ServerVerifier {
            roots,
            expected: Some(expected),
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// A verifier for the control plane's listeners: the chain must end at `roots` (the
    /// mesh's trust bundle) and the leaf must carry the control plane's identity
    /// (`spiffe://<any trust domain>/ns/weft-system/sa/weft-control-plane`): the roots
    /// decide which trust domains are acceptable, and the mesh CA never signs that
    /// identity for a workload.
    pub fn control_plane(roots: Arc<RootCertStore>, provider: &CryptoProvider) -> Self {
        ServerVerifier {
            roots,
            expected: None,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// The identity this verifier requires (`None` for the control plane's, in any
    /// trust domain).
    pub fn expected(&self) -> Option<&SpiffeId> {
        self.expected.as_ref()
    }
}

impl fmt::Debug for ServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerVerifier")
            .field("expected", &self.expected)
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        verify_server_chain(
            &self.roots,
            end_entity,
            intermediates,
            now,
            &self.algorithms,
        )
        .map_err(|e| match e {
            // Reaching the control plane with the wrong CA file is the common mistake;
            // say whose certificate it was. (HBONE keeps rustls's own error.)
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                if self.expected.is_none() =>
            {
                let presented = match peer_identity(std::slice::from_ref(end_entity)) {
                    Ok(id) => id.to_string(),
                    Err(Error::NoUriSan { sans }) if !sans.is_empty() => list(&sans),
                    Err(_) => "an identity that is not a SPIFFE ID".to_owned(),
                };
                certificate_error(Error::UntrustedIssuer { presented })
            }
            other => other,
        })?;
        let found = peer_identity(std::slice::from_ref(end_entity)).map_err(certificate_error)?;
        match &self.expected {
            Some(expected) if found != *expected => {
                return Err(certificate_error(Error::Mismatch {
                    expected: Box::new(expected.clone()),
                    found: Box::new(found),
                }));
            }
            None if !crate::spiffe::is_control_plane(&found) => {
                return Err(certificate_error(Error::NotControlPlane {
                    found: Box::new(found),
                }));
            }
            _ => {}
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn certificate_error(err: Error) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Authority;
    use rcgen::{CertificateParams, KeyPair, SanType};
    use rustls::pki_types::pem::PemObject;

    const DAY: Duration = Duration::from_secs(86_400);

    fn id(sa: &str) -> SpiffeId {
        SpiffeId::new("cluster.local", "default", sa).unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    fn self_signed(sans: Vec<SanType>) -> CertificateDer<'static> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.self_signed(&key).unwrap().der().clone()
    }

    fn roots(ca: &Authority) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(der(&ca.cert_pem())).unwrap();
        Arc::new(roots)
    }

    fn verify(
        verifier: &ServerVerifier,
        leaf: &CertificateDer<'_>,
        at: SystemTime,
    ) -> Result<(), rustls::Error> {
        let now = UnixTime::since_unix_epoch(at.duration_since(SystemTime::UNIX_EPOCH).unwrap());
        let name = ServerName::try_from("weft.invalid").unwrap();
        verifier
            .verify_server_cert(leaf, &[], &name, &[], now)
            .map(|_| ())
    }

    #[test]
    fn peer_identity_reads_the_uri_san() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let issued = ca.issue(&id("web"), DAY).unwrap();
        assert_eq!(peer_identity(&[der(&issued.cert_pem)]).unwrap(), id("web"));
    }

    #[test]
    fn peer_identity_rejects_empty_chain() {
        assert!(matches!(peer_identity(&[]), Err(Error::NoCertificate)));
    }

    #[test]
    fn peer_identity_rejects_garbage() {
        let err = peer_identity(&[CertificateDer::from(vec![1, 2, 3])]).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err:?}");
    }

    #[test]
    fn peer_identity_rejects_cert_without_uri_san_and_lists_sans() {
        let leaf = self_signed(vec![
            SanType::DnsName("web.example.com".try_into().unwrap()),
            SanType::IpAddress("10.0.0.1".parse().unwrap()),
        ]);
        let err = peer_identity(&[leaf]).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::NoUriSan { .. }), "{err:?}");
        assert!(msg.contains("DNS:web.example.com, IP:10.0.0.1"), "{msg}");

        let err = peer_identity(&[self_signed(vec![])]).unwrap_err();
        assert!(err.to_string().contains("SANs found: none"), "{err}");
    }

    #[test]
    fn peer_identity_rejects_several_uri_sans() {
        let leaf = self_signed(vec![
            SanType::URI("spiffe://cluster.local/ns/a/sa/b".try_into().unwrap()),
            SanType::URI("spiffe://cluster.local/ns/a/sa/c".try_into().unwrap()),
        ]);
        let err = peer_identity(&[leaf]).unwrap_err();
        assert!(
            matches!(err, Error::MultipleUriSans { ref uris } if uris.len() == 2),
            "{err:?}"
        );
    }

    #[test]
    fn peer_identity_rejects_non_spiffe_uri() {
        let leaf = self_signed(vec![SanType::URI(
            "https://example.com/x".try_into().unwrap(),
        )]);
        let err = peer_identity(&[leaf]).unwrap_err();
        assert!(
            err.to_string().contains("\"https://example.com/x\""),
            "{err}"
        );
    }

    #[test]
    fn verifier_accepts_expected_identity_and_rejects_others() {
        let ca = Authority::generate("cluster.local", DAY).unwrap();
        let leaf = der(&ca.issue(&id("web"), DAY).unwrap().cert_pem);
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let now = SystemTime::now();

        let good = ServerVerifier::new(roots(&ca), id("web"), &provider);
        verify(&good, &leaf, now).unwrap();

        let wrong = ServerVerifier::new(roots(&ca), id("db"), &provider);
        let err = verify(&wrong, &leaf, now).unwrap_err();
        let err = Error::from_rustls(&err)
            .expect("an identity error")
            .to_string();
        assert!(
            err.contains("presented SPIFFE ID spiffe://cluster.local/ns/default/sa/web"),
            "{err}"
        );
        assert!(
            err.contains("expected spiffe://cluster.local/ns/default/sa/db"),
            "{err}"
        );
    }

    #[test]
    fn verifier_checks_validity_time_and_issuer() {
        let ca = Authority::generate("cluster.local", 10 * DAY).unwrap();
        let leaf = der(&ca.issue(&id("web"), DAY).unwrap().cert_pem);
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let verifier = ServerVerifier::new(roots(&ca), id("web"), &provider);

        let later = SystemTime::now() + 2 * DAY;
        let err = verify(&verifier, &leaf, later).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. }
                )
            ),
            "{err:?}"
        );

        let other = Authority::generate("cluster.local", DAY).unwrap();
        let stranger = ServerVerifier::new(roots(&other), id("web"), &provider);
        let err = verify(&stranger, &leaf, SystemTime::now()).unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
    }
}
