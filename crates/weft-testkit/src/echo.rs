//! Apps for tests to put behind a proxy: they answer, and report what they received
//! through a shared [`Recorder`] so a test can assert what was (or was not) forwarded.
//!
//! - [`spawn_http`]: HTTP/1.1 and HTTP/2 (prior knowledge) on one port; answers with an
//!   [`EchoReply`] JSON body; special paths `/delay/{ms}`, `/status/{code}`,
//!   `/bytes/{n}`; WebSocket upgrades get a real `101` and a frame echo.
//! - [`spawn_tcp`]: echoes bytes until the client half-closes.
//! - [`spawn_server_first`]: writes `220 NAME ready\r\n` on accept, before reading
//!   anything, then echoes lines (the shape of SMTP, MySQL, ...).
//!
//! Each `spawn_*` binds, starts its accept loop on the current tokio runtime and returns a
//! [`Server`] that stops everything it started when dropped. Use them on `127.0.0.1:0`
//! in-process, or inside a network namespace through
//! [`Host::spawn_server`](crate::netns::Host::spawn_server).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::websocket::{self, Opcode};

/// Response header naming the server that answered.
pub const SERVER_HEADER: &str = "x-echo-server";

/// Errors from starting an echo server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener could not be bound (address in use, not on this host, ...).
    #[error("echo server {name:?} could not listen on {addr}: {source}")]
    Bind {
        /// The server's name.
        name: String,
        /// The requested address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running echo server. Dropping it closes the listener and every open connection.
pub struct Server {
    name: String,
    addr: SocketAddr,
    recorder: Recorder,
    cancel: CancellationToken,
}

/// What the servers received, shared between the servers and the test. Cheap to clone.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

#[derive(Default)]
struct RecorderInner {
    received: Mutex<Vec<Received>>,
    changed: Condvar,
}

/// One thing a server received, in arrival order.
#[derive(Clone, Debug)]
pub enum Received {
    /// A complete HTTP request (recorded after its body was read, before the response;
    /// WebSocket upgrade requests included).
    Http(Box<RecordedRequest>),
    /// An accepted TCP connection of [`spawn_tcp`] or [`spawn_server_first`] (recorded at
    /// accept).
    Connection(RecordedConnection),
}

/// An HTTP request as the echo server saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The name of the server that received it.
    pub server: String,
    /// The TCP peer (for a proxied request: the proxy).
    pub peer: SocketAddr,
    /// The method.
    pub method: Method,
    /// The request target (for HTTP/2 including scheme and authority).
    pub uri: Uri,
    /// The protocol version.
    pub version: Version,
    /// All request headers, duplicates kept.
    pub headers: HeaderMap,
    /// The whole request body (de-chunked).
    pub body: Bytes,
    /// Trailers, if the request had any.
    pub trailers: Option<HeaderMap>,
}

/// A TCP connection as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedConnection {
    /// The name of the server that accepted it.
    pub server: String,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The local address it was accepted on.
    pub local: SocketAddr,
}

/// The JSON body the HTTP echo server answers with (except for `/bytes/{n}`, `HEAD`, 204
/// and 304). Parse it with [`EchoReply::from_body`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoReply {
    /// The server's name.
    pub server: String,
    /// The request method.
    pub method: String,
    /// Path and query, e.g. `/a/b?x=1`.
    pub path: String,
    /// `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`.
    pub version: String,
    /// Request headers, lower-case names; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
    /// Length of the (de-chunked) request body.
    pub body_len: usize,
    /// Hex SHA-256 of the request body.
    pub body_sha256: String,
    /// Request trailers, like `headers` (empty if none).
    pub trailers: BTreeMap<String, String>,
    /// The TCP peer the server saw, e.g. `127.0.0.1:40112`.
    pub peer: String,
}

// === impl Server ===

impl Server {
    /// The name given at spawn, reported in replies and the `x-echo-server` header.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bound address (with the actual port when spawned on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What this server received.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Closes the listener and all connections (same as dropping).
    pub fn shutdown(self) {}
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

// === impl Recorder ===

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many things (requests and connections) were received.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Everything received, in order.
    pub fn all(&self) -> Vec<Received> {
        self.lock().clone()
    }

    /// The HTTP requests received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock()
            .iter()
            .filter_map(|r| match r {
                Received::Http(request) => Some(RecordedRequest::clone(request)),
                Received::Connection(_) => None,
            })
            .collect()
    }

    /// The most recent HTTP request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.requests().pop()
    }

    /// The TCP connections accepted, in order.
    pub fn connections(&self) -> Vec<RecordedConnection> {
        self.lock()
            .iter()
            .filter_map(|r| match r {
                Received::Connection(connection) => Some(connection.clone()),
                Received::Http(_) => None,
            })
            .collect()
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Blocks the calling thread until at least `n` things were received or `timeout`
    /// passed; returns whether `n` was reached. Do not call it on a runtime thread that
    /// also drives the server (use [`Recorder::wait_for_async`] there).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .inner
            .changed
            .wait_timeout_while(guard, timeout, |received| received.len() < n)
            .unwrap_or_else(PoisonError::into_inner);
        guard.len() >= n
    }

    /// Like [`Recorder::wait_for`], without blocking the runtime.
    pub async fn wait_for_async(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.count() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Appends a record and wakes waiters.
    pub fn record(&self, received: Received) {
        self.lock().push(received);
        self.inner.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Received>> {
        self.inner
            .received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.lock().iter()).finish()
    }
}

// === impl EchoReply ===

impl EchoReply {
    /// Parses a reply body.
    pub fn from_body(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// A request header as the server saw it (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    fn new(request: &RecordedRequest) -> Self {
        Self {
            server: request.server.clone(),
            method: request.method.to_string(),
            path: request
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), ToString::to_string),
            version: format!("{:?}", request.version),
            headers: header_map_json(&request.headers),
            body_len: request.body.len(),
            body_sha256: sha256_hex(&request.body),
            trailers: request
                .trailers
                .as_ref()
                .map(header_map_json)
                .unwrap_or_default(),
            peer: request.peer.to_string(),
        }
    }
}

/// Hex SHA-256 of `data`, as in [`EchoReply::body_sha256`].
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// The body `/bytes/{n}` answers with: `n` bytes cycling through `a..=z`.
pub fn bytes_body(n: usize) -> Bytes {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn header_map_json(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut map = BTreeMap::<String, String>::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    map
}

// === servers ===

/// Starts the HTTP echo server (HTTP/1.1 and HTTP/2 prior knowledge on one port).
///
/// Every request is answered `200` with an [`EchoReply`] JSON body and the
/// `x-echo-server: NAME` header, after the whole request body was read (so
/// `Expect: 100-continue` and chunked bodies work). Paths:
///
/// - `/delay/{ms}`: waits `ms` milliseconds before answering (the request is recorded
///   before the wait).
/// - `/status/{code}`: answers with that status (200-599).
/// - `/bytes/{n}`: answers with [`bytes_body(n)`](bytes_body) as
///   `application/octet-stream`.
/// - any HTTP/1.1 request with `Upgrade: websocket`: `101 Switching Protocols` with the
///   RFC 6455 accept key, then every data frame is echoed back (close is answered and
///   ends the connection; ping gets pong).
pub async fn spawn_http(addr: SocketAddr, name: &str) -> Result<Server, Error> {
    spawn_http_slow(addr, name, Duration::ZERO).await
}

/// Like [`spawn_http`], but every answer is delayed by `latency` (a slow endpoint, for
/// load-balancing tests).
pub async fn spawn_http_slow(
    addr: SocketAddr,
    name: &str,
    latency: Duration,
) -> Result<Server, Error> {
    spawn_http_misbehaving(
        addr,
        name,
        Misbehaviour {
            latency,
            ..Misbehaviour::default()
        },
    )
    .await
}

/// How a test HTTP server misbehaves (for resilience tests).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Misbehaviour {
    /// Added before every answer.
    pub latency: Duration,
    /// Share of requests (0.0 to 1.0) answered with `error_status` instead of the echo,
    /// spread evenly (0.5 fails every other request, starting with the first).
    pub error_rate: f64,
    /// The status of those answers. Default 503.
    pub error_status: Option<StatusCode>,
    /// Answer the failures as gRPC errors with this `grpc-status` instead: HTTP 200,
    /// `content-type: application/grpc`, trailers-only (the status in the headers).
    pub grpc_error: Option<u32>,
}

/// Like [`spawn_http`], misbehaving as `how`. Every request is recorded, failed or not.
pub async fn spawn_http_misbehaving(
    addr: SocketAddr,
    name: &str,
    how: Misbehaviour,
) -> Result<Server, Error> {
    spawn_with(addr, name, how, |stream, peer, context| async move {
        let service = service_fn(move |request| {
            let context = context.clone();
            async move { Ok::<_, Infallible>(answer_http(request, peer, &context).await) }
        });
        let result = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .await;
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "echo: http connection ended with an error");
        }
    })
    .await
}

/// A server that accepts, reads what the client sends first, and resets the
/// connection (TCP RST) without answering: an endpoint that crashes mid-request.
pub async fn spawn_resetting(addr: SocketAddr, name: &str) -> Result<Server, Error> {
    spawn(addr, name, |mut stream, peer, context| async move {
        context.record_connection(&stream, peer);
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        drop(stream);
    })
    .await
}

/// Starts the TCP echo server: writes back every byte it reads, and half-closes when the
/// client does.
pub async fn spawn_tcp(addr: SocketAddr, name: &str) -> Result<Server, Error> {
    spawn(addr, name, |mut stream, peer, context| async move {
        context.record_connection(&stream, peer);
        let (mut reader, mut writer) = stream.split();
        if tokio::io::copy(&mut reader, &mut writer).await.is_ok() {
            let _ = writer.shutdown().await;
        }
    })
    .await
}

/// Starts the server-speaks-first server: on accept writes `220 NAME ready\r\n` before
/// reading anything, then writes back every line it reads.
pub async fn spawn_server_first(addr: SocketAddr, name: &str) -> Result<Server, Error> {
    spawn(addr, name, |stream, peer, context| async move {
        context.record_connection(&stream, peer);
        let mut stream = BufReader::new(stream);
        let banner = format!("220 {} ready\r\n", context.name);
        if stream.get_mut().write_all(banner.as_bytes()).await.is_err() {
            return;
        }
        let mut line = Vec::new();
        loop {
            line.clear();
            match stream.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if stream.get_mut().write_all(&line).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = stream.get_mut().shutdown().await;
    })
    .await
}

/// What every connection handler gets besides its stream.
#[derive(Clone)]
struct Context {
    name: Arc<str>,
    recorder: Recorder,
    cancel: CancellationToken,
    /// How HTTP answers misbehave.
    how: Misbehaviour,
    /// HTTP requests answered so far (for the error rate).
    answered: Arc<std::sync::atomic::AtomicU64>,
}

/// Binds, then accepts on the current runtime, running `handle` per connection until the
/// server is dropped.
async fn spawn<H, Fut>(addr: SocketAddr, name: &str, handle: H) -> Result<Server, Error>
where
    H: Fn(TcpStream, SocketAddr, Context) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    spawn_with(addr, name, Misbehaviour::default(), handle).await
}

async fn spawn_with<H, Fut>(
    addr: SocketAddr,
    name: &str,
    how: Misbehaviour,
    handle: H,
) -> Result<Server, Error>
where
    H: Fn(TcpStream, SocketAddr, Context) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let bind_error = |source| Error::Bind {
        name: name.to_owned(),
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    let context = Context {
        name: name.into(),
        recorder: Recorder::new(),
        cancel: CancellationToken::new(),
        how,
        answered: Arc::default(),
    };
    let server = Server {
        name: name.to_owned(),
        addr: local,
        recorder: context.recorder.clone(),
        cancel: context.cancel.clone(),
    };
    tokio::spawn(accept(listener, context, handle));
    Ok(server)
}

async fn accept<H, Fut>(listener: TcpListener, context: Context, handle: H)
where
    H: Fn(TcpStream, SocketAddr, Context) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = context.cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // E.g. EMFILE; back off instead of spinning.
                tracing::debug!(error = %e, "echo: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let cancel = context.cancel.clone();
        let connection = handle(stream, peer, context.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = connection => {}
            }
        });
    }
}

// === impl Context ===

impl Context {
    fn record_connection(&self, stream: &TcpStream, peer: SocketAddr) {
        let Ok(local) = stream.local_addr() else {
            return;
        };
        self.recorder
            .record(Received::Connection(RecordedConnection {
                server: self.name.to_string(),
                peer,
                local,
            }));
    }
}

// === HTTP ===

type EchoResponse = Response<Full<Bytes>>;

async fn answer_http(
    request: Request<Incoming>,
    peer: SocketAddr,
    context: &Context,
) -> EchoResponse {
    if is_websocket_upgrade(&request) {
        return upgrade_websocket(request, peer, context);
    }
    let (parts, body) = request.into_parts();
    let (body, trailers) = match body.collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().cloned();
            (collected.to_bytes(), trailers)
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "echo: request body failed");
            return plain(
                context,
                StatusCode::BAD_REQUEST,
                format!("request body: {e}"),
            );
        }
    };
    let recorded = RecordedRequest {
        server: context.name.to_string(),
        peer,
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body,
        trailers,
    };
    context
        .recorder
        .record(Received::Http(Box::new(recorded.clone())));

    if !context.how.latency.is_zero() {
        tokio::time::sleep(context.how.latency).await;
    }
    if context.how.error_rate > 0.0 {
        let n = context
            .answered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // Fail request n when the running count of failures owed steps up (integer
        // per-mille arithmetic, so the pattern is exact).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let permille = (context.how.error_rate.clamp(0.0, 1.0) * 1000.0).round() as u64;
        let owed = |k: u64| (k * permille).div_ceil(1000);
        if owed(n + 1) > owed(n) {
            if let Some(code) = context.how.grpc_error {
                let mut response = respond(context, StatusCode::OK, Bytes::new());
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                headers.insert("grpc-status", HeaderValue::from(code));
                headers.insert("grpc-message", HeaderValue::from_static("injected"));
                return response;
            }
            let status = context
                .how
                .error_status
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return plain(context, status, "echo: injected failure");
        }
    }
    let path = recorded.uri.path();
    let mut status = StatusCode::OK;
    if let Some(ms) = path.strip_prefix("/delay/") {
        let Ok(ms) = ms.parse::<u64>() else {
            return plain(
                context,
                StatusCode::BAD_REQUEST,
                "/delay/{ms}: ms must be a number",
            );
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
    } else if let Some(code) = path.strip_prefix("/status/") {
        match code
            .parse::<u16>()
            .ok()
            .filter(|c| (200..=599).contains(c))
            .map(StatusCode::from_u16)
        {
            Some(Ok(code)) => status = code,
            _ => {
                return plain(
                    context,
                    StatusCode::BAD_REQUEST,
                    "/status/{code}: code must be 200-599",
                )
            }
        }
    } else if let Some(n) = path.strip_prefix("/bytes/") {
        let Ok(n) = n.parse::<usize>() else {
            return plain(
                context,
                StatusCode::BAD_REQUEST,
                "/bytes/{n}: n must be a number",
            );
        };
        let mut response = respond(context, StatusCode::OK, bytes_body(n));
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return response;
    }

    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return respond(context, status, Bytes::new());
    }
    let body = serde_json::to_vec(&EchoReply::new(&recorded)).unwrap_or_default();
    let mut response = respond(context, status, Bytes::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn respond(context: &Context, status: StatusCode, body: Bytes) -> EchoResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(name) = HeaderValue::from_str(&context.name) {
        response.headers_mut().insert(SERVER_HEADER, name);
    }
    response
}

fn plain(context: &Context, status: StatusCode, message: impl Into<String>) -> EchoResponse {
    let mut response = respond(context, status, Bytes::from(message.into()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

// === WebSocket ===

fn is_websocket_upgrade<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_11
        && request
            .headers()
            .get(UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

fn upgrade_websocket(
    mut request: Request<Incoming>,
    peer: SocketAddr,
    context: &Context,
) -> EchoResponse {
    let Some(key) = request.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return plain(
            context,
            StatusCode::BAD_REQUEST,
            "websocket upgrade without Sec-WebSocket-Key",
        );
    };
    context
        .recorder
        .record(Received::Http(Box::new(RecordedRequest {
            server: context.name.to_string(),
            peer,
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            body: Bytes::new(),
            trailers: None,
        })));
    let on_upgrade = hyper::upgrade::on(&mut request);
    let cancel = context.cancel.clone();
    tokio::spawn(async move {
        let echo = async {
            match on_upgrade.await {
                Ok(upgraded) => echo_frames(TokioIo::new(upgraded)).await,
                Err(e) => tracing::debug!(%peer, error = %e, "echo: websocket upgrade failed"),
            }
        };
        tokio::select! {
            () = cancel.cancelled() => {}
            () = echo => {}
        }
    });

    let mut response = respond(context, StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&websocket::accept_key(key.as_bytes())) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Echoes frames one by one (fragmentation preserved) until close or an error.
async fn echo_frames<S>(mut stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let frame = match websocket::read_frame(&mut stream).await {
            Ok(frame) => frame,
            Err(e) => {
                tracing::debug!(error = %e, "echo: websocket read ended");
                return;
            }
        };
        let reply = match frame.opcode {
            Opcode::Pong => continue,
            Opcode::Ping => websocket::Frame {
                opcode: Opcode::Pong,
                ..frame
            },
            _ => frame,
        };
        let closing = reply.opcode == Opcode::Close;
        if websocket::write_frame(&mut stream, &reply, None)
            .await
            .is_err()
            || closing
        {
            let _ = stream.shutdown().await;
            return;
        }
    }
}
