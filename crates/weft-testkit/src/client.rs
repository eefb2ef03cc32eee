//! Small clients for the [`echo`](crate::echo) servers (or anything else), usable on
//! loopback in-process or inside a host via [`Host::run`](crate::netns::Host::run).
//!
//! Every operation has a timeout ([`DEFAULT_TIMEOUT`] unless set), so a test that goes
//! wrong fails with a message instead of hanging. Responses are collected into
//! `Response<Bytes>`; response trailers, if any, are in the [`Trailers`] extension.
//!
//! Not a general HTTP client: no pooling, redirects, TLS or DNS; it dials exactly the
//! address it is given.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::websocket::{self, Frame, Opcode};

/// The timeout of each client operation unless set otherwise: 10 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `Sec-WebSocket-Key` the client sends (the RFC 6455 example nonce).
const WEBSOCKET_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// Errors from the test clients. Each names the address it was talking to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TCP connection could not be made.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// An I/O error on an established connection (includes resets and early EOF).
    #[error("{addr}: {source}")]
    Io {
        /// The peer.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP exchange failed (connection closed, malformed response, reset stream).
    #[error("HTTP to {addr}: {source}")]
    Http {
        /// The peer.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The response body failed part-way.
    #[error("HTTP response body from {addr}: {source}")]
    Body {
        /// The peer.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The operation did not complete in time.
    #[error("{what} with {addr} timed out after {after:?}")]
    Timeout {
        /// The peer.
        addr: SocketAddr,
        /// What was being done.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The peer answered with something other than what the protocol requires (a refused
    /// WebSocket handshake, a bad frame, no banner line).
    #[error("{addr}: {message}")]
    Protocol {
        /// The peer.
        addr: SocketAddr,
        /// What was wrong.
        message: String,
    },
}

/// A result with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Response trailers, found in `response.extensions()` when the response had any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trailers(pub HeaderMap);

/// An HTTP/1.1 client on one kept-alive connection.
pub struct Http1Client {
    addr: SocketAddr,
    sender: http1::SendRequest<RequestBody>,
    timeout: Duration,
}

/// An HTTP/2 client (prior knowledge, cleartext) on one connection; clones share it and
/// may send concurrently.
#[derive(Clone)]
pub struct Http2Client {
    addr: SocketAddr,
    sender: http2::SendRequest<RequestBody>,
    timeout: Duration,
}

// === impl Http1Client ===

impl Http1Client {
    /// Connects to `addr` and completes the (trivial) HTTP/1 handshake.
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = connect(addr, DEFAULT_TIMEOUT).await?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| Error::Http { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%addr, error = %e, "client: http1 connection ended");
            }
        });
        Ok(Self {
            addr,
            sender,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the timeout of each request (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `request` on this connection and collects the response.
    ///
    /// The request target is sent as given (origin-form `/path` or absolute-form). A
    /// missing `Host` header is filled from the URI's authority, else from the address.
    pub async fn send<B>(&mut self, request: Request<B>) -> Result<Response<Bytes>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let addr = self.addr;
        let mut request = request.map(box_body);
        if !request.headers().contains_key(HOST) {
            let host = request
                .uri()
                .authority()
                .map_or_else(|| addr.to_string(), ToString::to_string);
            if let Ok(host) = HeaderValue::from_str(&host) {
                request.headers_mut().insert(HOST, host);
            }
        }
        let sender = &mut self.sender;
        within(addr, "HTTP/1.1 request", self.timeout, async move {
            sender
                .ready()
                .await
                .map_err(|source| Error::Http { addr, source })?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|source| Error::Http { addr, source })?;
            collect(addr, response).await
        })
        .await
    }

    /// Whether the connection can still take a request (the server has not closed it).
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

impl fmt::Debug for Http1Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1Client")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

// === impl Http2Client ===

impl Http2Client {
    /// Connects to `addr` and completes the HTTP/2 handshake (prior knowledge).
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = connect(addr, DEFAULT_TIMEOUT).await?;
        let handshake = http2::handshake(TokioExecutor::new(), TokioIo::new(stream));
        let (sender, connection) = within(addr, "HTTP/2 handshake", DEFAULT_TIMEOUT, async {
            handshake
                .await
                .map_err(|source| Error::Http { addr, source })
        })
        .await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%addr, error = %e, "client: http2 connection ended");
            }
        });
        Ok(Self {
            addr,
            sender,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets the timeout of each request (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `request` as a new stream and collects the response.
    ///
    /// A URI without scheme and authority (e.g. `/path`) gets `http` and the `Host`
    /// header's value (which is then removed) or else the address, since HTTP/2 carries
    /// them as `:scheme` and `:authority`.
    pub async fn send<B>(&self, request: Request<B>) -> Result<Response<Bytes>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let addr = self.addr;
        let mut request = request.map(box_body);
        if request.uri().authority().is_none() {
            let host = request.headers_mut().remove(HOST);
            let authority = host
                .and_then(|h| Authority::try_from(h.as_bytes()).ok())
                .or_else(|| Authority::try_from(addr.to_string()).ok());
            let mut parts = request.uri().clone().into_parts();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = authority;
            if parts.path_and_query.is_none() {
                parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
            }
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
        let mut sender = self.sender.clone();
        within(addr, "HTTP/2 request", self.timeout, async move {
            sender
                .ready()
                .await
                .map_err(|source| Error::Http { addr, source })?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|source| Error::Http { addr, source })?;
            collect(addr, response).await
        })
        .await
    }

    /// Whether the connection can still take a request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

impl fmt::Debug for Http2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http2Client")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

// === one-shot helpers ===

/// Sends one HTTP/1.1 request on a fresh connection; see [`Http1Client::send`].
pub async fn http1_request<B>(addr: SocketAddr, request: Request<B>) -> Result<Response<Bytes>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Http1Client::connect(addr).await?.send(request).await
}

/// Sends one HTTP/2 request on a fresh connection; see [`Http2Client::send`].
pub async fn http2_request<B>(addr: SocketAddr, request: Request<B>) -> Result<Response<Bytes>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Http2Client::connect(addr).await?.send(request).await
}

/// `GET path` over HTTP/1.1 on a fresh connection, with `Host: host`.
pub async fn http1_get(addr: SocketAddr, host: &str, path: &str) -> Result<Response<Bytes>> {
    let request = Request::get(path)
        .header(HOST, host)
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| Error::Protocol {
            addr,
            message: format!("invalid request {host} {path}: {e}"),
        })?;
    http1_request(addr, request).await
}

/// Opens a WebSocket to `addr` (`GET path`, `Host: host`), sends each message as a masked
/// text frame, collects the text echoed back for each, then closes cleanly.
pub async fn websocket_echo(
    addr: SocketAddr,
    host: &str,
    path: &str,
    messages: &[&str],
) -> Result<Vec<String>> {
    within(addr, "WebSocket exchange", DEFAULT_TIMEOUT, async {
        let stream = connect(addr, DEFAULT_TIMEOUT).await?;
        let mut stream = BufReader::new(stream);
        let io = |source| Error::Io { addr, source };
        let handshake = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {WEBSOCKET_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream
            .get_mut()
            .write_all(handshake.as_bytes())
            .await
            .map_err(io)?;

        let head = read_head(&mut stream, addr).await?;
        let status_ok = head
            .lines()
            .next()
            .is_some_and(|line| line.split_whitespace().nth(1) == Some("101"));
        let expected = websocket::accept_key(WEBSOCKET_KEY.as_bytes());
        let accept_ok = head.lines().any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected
            })
        });
        if !status_ok || !accept_ok {
            return Err(Error::Protocol {
                addr,
                message: format!("websocket handshake refused:\n{head}"),
            });
        }

        let mut echoed = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let mask = (i as u32).wrapping_mul(0x9E37_79B9).to_be_bytes();
            websocket::write_frame(stream.get_mut(), &Frame::text(message), Some(mask))
                .await
                .map_err(io)?;
            let frame = loop {
                let frame = websocket::read_frame(&mut stream).await.map_err(io)?;
                if !matches!(frame.opcode, Opcode::Ping | Opcode::Pong) {
                    break frame;
                }
            };
            if frame.opcode != Opcode::Text {
                return Err(Error::Protocol {
                    addr,
                    message: format!("expected a text frame, got {:?}", frame.opcode),
                });
            }
            echoed.push(String::from_utf8_lossy(&frame.payload).into_owned());
        }

        websocket::write_frame(stream.get_mut(), &Frame::close(), Some([7, 7, 7, 7]))
            .await
            .map_err(io)?;
        // Wait for the peer's close (or EOF); anything else before it is ignored.
        while let Ok(frame) = websocket::read_frame(&mut stream).await {
            if frame.opcode == Opcode::Close {
                break;
            }
        }
        Ok(echoed)
    })
    .await
}

/// Connects, sends `bytes`, half-closes, and returns everything read until the peer
/// closes.
pub async fn tcp_roundtrip(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>> {
    within(addr, "TCP round trip", DEFAULT_TIMEOUT, async {
        let mut stream = connect(addr, DEFAULT_TIMEOUT).await?;
        let io = |source| Error::Io { addr, source };
        stream.write_all(bytes).await.map_err(io)?;
        stream.shutdown().await.map_err(io)?;
        let mut received = Vec::new();
        stream.read_to_end(&mut received).await.map_err(io)?;
        Ok(received)
    })
    .await
}

/// For a server-speaks-first app: connects and reads the banner line *before sending
/// anything*, then sends `ping\r\n` and reads the echoed line. Returns
/// `(banner, echo)` without their line endings, e.g. `("220 db ready", "ping")`.
pub async fn server_first_roundtrip(addr: SocketAddr) -> Result<(String, String)> {
    within(addr, "server-first exchange", DEFAULT_TIMEOUT, async {
        let stream = connect(addr, DEFAULT_TIMEOUT).await?;
        let mut stream = BufReader::new(stream);
        let banner = read_line(&mut stream, addr, "banner").await?;
        stream
            .get_mut()
            .write_all(b"ping\r\n")
            .await
            .map_err(|source| Error::Io { addr, source })?;
        let echo = read_line(&mut stream, addr, "echo").await?;
        Ok((banner, echo))
    })
    .await
}

// === plumbing ===

async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let stream = within(addr, "connect", timeout, async {
        TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect { addr, source })
    })
    .await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

async fn within<T>(
    addr: SocketAddr,
    what: &'static str,
    after: Duration,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(after, future)
        .await
        .unwrap_or(Err(Error::Timeout { addr, what, after }))
}

fn box_body<B>(body: B) -> RequestBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

async fn collect(
    addr: SocketAddr,
    response: Response<hyper::body::Incoming>,
) -> Result<Response<Bytes>> {
    let (mut parts, body) = response.into_parts();
    let collected = body
        .collect()
        .await
        .map_err(|source| Error::Body { addr, source })?;
    if let Some(trailers) = collected.trailers() {
        parts.extensions.insert(Trailers(trailers.clone()));
    }
    Ok(Response::from_parts(parts, collected.to_bytes()))
}

/// Reads an HTTP response head (up to and including the blank line).
async fn read_head(stream: &mut BufReader<TcpStream>, addr: SocketAddr) -> Result<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = stream
            .read_line(&mut line)
            .await
            .map_err(|source| Error::Io { addr, source })?;
        if n == 0 {
            return Err(Error::Protocol {
                addr,
                message: format!("connection closed during the response head:\n{head}"),
            });
        }
        if line == "\r\n" || line == "\n" {
            return Ok(head);
        }
        head.push_str(&line);
        if head.len() > 64 * 1024 {
            return Err(Error::Protocol {
                addr,
                message: "response head over 64 KiB".into(),
            });
        }
    }
}

async fn read_line(
    stream: &mut BufReader<TcpStream>,
    addr: SocketAddr,
    what: &str,
) -> Result<String> {
    let mut line = String::new();
    let n = stream
        .read_line(&mut line)
        .await
        .map_err(|source| Error::Io { addr, source })?;
    if n == 0 {
        return Err(Error::Protocol {
            addr,
            message: format!("connection closed before the {what} line"),
        });
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
