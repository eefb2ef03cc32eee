//! The gRPC channel to the control plane: TLS for `https://` endpoints, verified
//! against the mesh's roots with the control plane's SPIFFE identity
//! ([`weft_tls::control`]); plaintext h2c for `http://` (in-process tests against a
//! fake control plane only: `weft control-plane` serves TLS only).
//!
//! The roots are read afresh on every connect: the CA file the operator gave
//! (`--control-plane-ca`), plus the trust bundle last issued to this proxy, so a proxy
//! keeps trusting the control plane through a CA rotation.
//!
//! [`explain`] turns the error chain of a failed connect or call (an I/O error, a rustls
//! alert, an h2 protocol error, a gRPC status) into what went wrong and what to do.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Where the roots that vouch for the control plane come from.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// The mesh CA certificate(s), PEM (the control plane writes `<data-dir>/ca.crt`).
    pub ca_file: Option<PathBuf>,
    /// The trust bundle issued with this proxy's certificate, PEM, if it has one.
    pub issued_bundle: Option<PathBuf>,
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No roots to verify the control plane with.
    #[error("no CA certificate to verify the control plane with: give --control-plane-ca FILE (the control plane writes its CA to <data-dir>/ca.crt)")]
    NoRoots,
    /// A CA file could not be read or holds no certificate.
    #[error("control-plane CA {}: {message}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The endpoint's scheme is neither `https` nor `http`.
    #[error("control-plane endpoint {0:?}: use https://HOST:PORT")]
    Scheme(String),
    /// The TLS client configuration could not be built.
    #[error(transparent)]
    Tls(#[from] weft_tls::control::Error),
    /// Connecting (TCP, TLS, HTTP/2) failed.
    #[error("{explained}")]
    Transport {
        /// What went wrong and what to do, from [`explain`] (or the error chain).
        explained: String,
        /// The transport's error.
        source: tonic::transport::Error,
    },
}

impl Error {
    fn transport(url: &str, trust: &Trust, source: tonic::transport::Error) -> Self {
        let explained = explain(url, trust, &source).unwrap_or_else(|| chain(&source));
        Error::Transport { explained, source }
    }
}

/// What a failure to reach or talk to the control plane at `url` means, read from the
/// error chain, with what to do next; `None` when nothing in the chain is recognised.
///
/// Recognised: nothing listening (connection refused), a certificate no trusted CA
/// signed (the wrong CA file; the message names the identity the server presented),
/// a server that is not the control plane, `http://` to a TLS server (an h2 protocol
/// error) and `https://` to a plaintext one.
pub fn explain(
    url: &str,
    trust: &Trust,
    error: &(dyn std::error::Error + 'static),
) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls_failure(url, trust, tls));
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            // io::Error's `source()` skips the error it wraps: look inside.
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Some(tls_failure(url, trust, tls));
            }
            if io.kind() == io::ErrorKind::ConnectionRefused {
                return Some(format!(
                    "nothing is listening at {url} (connection refused): is `weft \
                     control-plane` running there, and is this its xDS address \
                     (--xds-listen, default port 5678)?"
                ));
            }
        }
        if url.starts_with("http://")
            && (e.downcast_ref::<h2::Error>().is_some()
                || e.downcast_ref::<hyper::Error>().is_some())
        {
            return Some(format!(
                "{url} is plaintext, but the control plane serves TLS only (the HTTP/2 \
                 connection failed: {}): use https:// with --control-plane-ca \
                 <data-dir>/ca.crt",
                chain(e)
            ));
        }
        next = e.source();
    }
    None
}

fn tls_failure(url: &str, trust: &Trust, tls: &rustls::Error) -> String {
    let roots = match &trust.ca_file {
        Some(path) => format!("the CA file {}", path.display()),
        None => "the trust bundle issued to this proxy".to_owned(),
    };
    match weft_tls::verify::Error::from_rustls(tls) {
        Some(weft_tls::verify::Error::UntrustedIssuer { presented }) => format!(
            "the control plane at {url} presented a certificate for {presented} that \
             {roots} did not sign: give --control-plane-ca the CA of that control plane \
             (it writes it to <data-dir>/ca.crt on its host)"
        ),
        Some(other) => format!("the server at {url} is not trusted as the control plane: {other}"),
        None => match tls {
            rustls::Error::InvalidMessage(_) => format!(
                "the server at {url} does not speak TLS ({tls}): is this the control \
                 plane's xDS address?"
            ),
            _ => format!("TLS with the control plane at {url} failed: {tls}"),
        },
    }
}

/// What a failed call means: its transport failure [`explain`]ed; a token the control
/// plane could not authenticate (`UNAUTHENTICATED`: missing, malformed, expired) named
/// with how to get a new one; a proxy it refused (`PERMISSION_DENIED`: revoked token,
/// another identity, labels its token does not grant) with the control plane's reason,
/// which says what to do; `None` for any other status.
pub fn explain_status(
    url: &str,
    trust: &Trust,
    token_file: Option<&std::path::Path>,
    status: &tonic::Status,
) -> Option<String> {
    if let Some(text) = explain(url, trust, status) {
        return Some(text);
    }
    let given = match token_file {
        Some(path) => format!("the workload token in {}", path.display()),
        None => "this proxy, which sent no workload token (--token-file)".to_owned(),
    };
    match status.code() {
        tonic::Code::Unauthenticated => Some(format!(
            "the control plane at {url} refused {given}: {}: issue a token on the \
             control-plane host (`weft token workload --namespace NS --service-account SA \
             --label app=NAME`), write it to a file and give it with --token-file",
            status.message()
        )),
        tonic::Code::PermissionDenied => Some(format!(
            "the control plane at {url} refused this proxy, presenting {given} \
             (permission denied): {}",
            status.message()
        )),
        _ => None,
    }
}

/// An error and its sources, each message once.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(inner) = next {
        let more = inner.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        next = inner.source();
    }
    text
}

impl Trust {
    /// The roots in force: every certificate of the CA file and of the issued bundle.
    pub fn roots(&self) -> Result<rustls::RootCertStore, Error> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = &self.ca_file {
            let pem = std::fs::read_to_string(path).map_err(|e| Error::CaFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let bundle = weft_tls::TrustBundle::from_pem(&pem).map_err(|e| Error::CaFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            roots.roots.extend(bundle.root_store().roots);
        }
        if let Some(path) = &self.issued_bundle {
            // Absent until the first certificate is issued; a broken one is replaced at
            // the next issuance, and the CA file still applies meanwhile.
            if let Ok(pem) = std::fs::read_to_string(path) {
                if let Ok(bundle) = weft_tls::TrustBundle::from_pem(&pem) {
                    roots.roots.extend(bundle.root_store().roots);
                }
            }
        }
        if roots.is_empty() {
            return Err(Error::NoRoots);
        }
        Ok(roots)
    }
}

/// What no retry can fix, checked once at start: the scheme, and (for `https://`) that
/// there are roots to verify the control plane with.
pub fn check_static(url: &str, trust: &Trust) -> Result<(), Error> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("http") => Ok(()),
        Some("https") => trust.roots().map(|_| ()),
        _ => Err(Error::Scheme(url.to_owned())),
    }
}

/// Opens a channel on `endpoint` (built from `url`) with `trust`.
pub async fn connect(url: &str, endpoint: &Endpoint, trust: &Trust) -> Result<Channel, Error> {
    let failed = |e| Error::transport(url, trust, e);
    match endpoint.uri().scheme_str() {
        Some("http") => endpoint.connect().await.map_err(failed),
        Some("https") => {
            let config =
                weft_tls::control::client_config(trust.roots()?, weft_tls::control::ALPN_GRPC)?;
            endpoint
                .connect_with_connector(Connector::new(config, TCP_CONNECT_TIMEOUT))
                .await
                .map_err(failed)
        }
        _ => Err(Error::Scheme(url.to_owned())),
    }
}

/// A backstop for the TCP connect inside tonic channels: the endpoint's own connect
/// timeout (5 s by default) wraps the connector and fires first.
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// TCP then TLS to a URI's host and port, for tonic channels and hyper-util's pooled
/// client alike. The server name sent (as SNI, when it is a DNS name) is not what is
/// verified: the client configuration checks the control plane's SPIFFE identity.
#[derive(Clone)]
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    connect_timeout: Duration,
}

/// A TLS connection to the control plane.
pub struct TlsIo(tokio_rustls::client::TlsStream<tokio::net::TcpStream>);

impl Connector {
    /// A connector with `config`, giving up on a TCP connect after `connect_timeout`.
    pub fn new(config: Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Self {
        Self {
            tls: tokio_rustls::TlsConnector::from(config),
            connect_timeout,
        }
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<TlsIo>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port)))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let stream = tls.connect(name, tcp).await?;
            Ok(TokioIo::new(TlsIo(stream)))
        })
    }
}

impl Connection for TlsIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
