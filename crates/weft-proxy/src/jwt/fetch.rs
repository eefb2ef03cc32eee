//! One HTTPS `GET` of a key set: TCP, TLS (rustls, roots from the configured CA
//! bundle), HTTP/1.1, a bounded body, all under one timeout.
//!
//! What it is not: a general HTTP client. No redirects (an issuer's JWKS URL is
//! configured exactly), no proxies, no connection reuse (one fetch every few minutes).

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, HOST, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::load::Error;

/// Sent as `User-Agent`, so an issuer's logs show who fetches.
const USER_AGENT_VALUE: HeaderValue = HeaderValue::from_static("weft-proxy (jwks)");

/// Media types of a key set (RFC 7517 §8.5) and plain JSON, which most issuers send.
const ACCEPT_VALUE: HeaderValue =
    HeaderValue::from_static("application/jwk-set+json, application/json");

/// An HTTPS client for one key-set URL.
#[derive(Clone)]
pub(super) struct Client {
    tls: TlsConnector,
    timeout: Duration,
    max_body: usize,
}

// === impl Client ===

impl Client {
    /// A client trusting the CA certificates of the PEM file at `ca_bundle`.
    pub(super) fn build(
        ca_bundle: &Path,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Self, Error> {
        let pem = std::fs::read(ca_bundle).map_err(|source| Error::CaBundle {
            path: ca_bundle.to_owned(),
            detail: source.to_string(),
        })?;
        Self::from_pem(&pem, ca_bundle, timeout, max_body)
    }

    fn from_pem(
        pem: &[u8],
        path: &Path,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Self, Error> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::CaBundle {
                path: path.to_owned(),
                detail: format!("not valid PEM: {e}"),
            })?;
        let mut roots = RootCertStore::empty();
        // A system bundle may hold a certificate rustls cannot use as an anchor (an old
        // v1 root); the others still count.
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::CaBundle {
                path: path.to_owned(),
                detail: "holds no usable CERTIFICATE".to_owned(),
            });
        }
        let mut config = ClientConfig::builder_with_provider(weft_tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: TlsConnector::from(Arc::new(config)),
            timeout,
            max_body,
        })
    }

    /// The body of a `200 OK` answer to `GET uri`, at most `max_body` bytes, within the
    /// timeout.
    pub(super) async fn get(&self, uri: &Uri) -> Result<Bytes, Error> {
        tokio::time::timeout(self.timeout, self.exchange(uri))
            .await
            .map_err(|_| Error::Timeout {
                uri: uri.to_string(),
                after: self.timeout,
            })?
    }

    async fn exchange(&self, uri: &Uri) -> Result<Bytes, Error> {
        let failed = |what: &'static str, detail: String| Error::Fetch {
            uri: uri.to_string(),
            what,
            detail,
        };
        let authority = uri
            .authority()
            .ok_or_else(|| failed("reading the URL", "no host".to_owned()))?;
        // `[::1]` in a URL, `::1` as a name to connect to and to check the certificate.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| failed("reading the host name", e.to_string()))?;

        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| failed("connecting", e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(|e| failed("the TLS handshake", e.to_string()))?;
        let (mut send, connection) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| failed("starting HTTP/1.1", e.to_string()))?;

        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let host_value = HeaderValue::from_str(authority.as_str())
            .map_err(|e| failed("building the request", e.to_string()))?;
        let mut request = Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = target
            .parse()
            .map_err(|e: http::uri::InvalidUri| failed("building the request", e.to_string()))?;
        let headers = request.headers_mut();
        headers.insert(HOST, host_value);
        headers.insert(ACCEPT, ACCEPT_VALUE);
        headers.insert(USER_AGENT, USER_AGENT_VALUE);

        let max_body = self.max_body;
        let exchange = async move {
            let response = send
                .send_request(request)
                .await
                .map_err(|e| failed("sending the request", e.to_string()))?;
            let status = response.status();
            if status != StatusCode::OK {
                return Err(Error::Status {
                    uri: uri.to_string(),
                    status,
                });
            }
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > max_body as u64) {
                return Err(Error::TooLarge {
                    from: uri.to_string(),
                    max: max_body,
                });
            }
            let body = Limited::new(response.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        Error::TooLarge {
                            from: uri.to_string(),
                            max: max_body,
                        }
                    } else {
                        failed("reading the body", e.to_string())
                    }
                })?;
            Ok(body.to_bytes())
        };
        drive(connection, exchange).await
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// Runs `exchange` while driving its HTTP `connection`; ends with the exchange.
async fn drive<C, F, T>(connection: C, exchange: F) -> Result<T, Error>
where
    C: Future<Output = Result<(), hyper::Error>>,
    F: Future<Output = Result<T, Error>>,
{
    tokio::pin!(connection, exchange);
    tokio::select! {
        biased;
        result = &mut exchange => result,
        // The connection can end as it hands over the response (`connection: close`),
        // or with the error the exchange is about to report; either way the exchange
        // has the answer now.
        _ = &mut connection => exchange.await,
    }
}
