//! The HBONE client: a pool of mTLS HTTP/2 connections to peer proxies, and the
//! `CONNECT` request that opens one tunnelled stream on them.
//!
//! A pooled connection is keyed by the peer proxy's HBONE address and the SPIFFE ID it
//! must prove. [`Pool::connect`] takes a stream slot on a healthy connection for that key
//! or, when every connection is full (`max_streams_per_connection` or the peer's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`, whichever is lower), dials a new one. Callers that
//! find a dial already in flight for their key wait for it instead of dialing their own,
//! so a burst of new application connections costs one TLS handshake.
//!
//! Each connection is driven by its own task, which takes it out of the pool once it has
//! carried no stream for `idle_timeout` (it then closes) or when it closes or fails. A
//! `CONNECT` that finds its connection gone (GOAWAY, I/O error, stream refused) takes
//! that connection out too and is retried once on another: the peer never acted on it,
//! so retrying is safe. A peer refusing our certificate is reported as a TLS error, not
//! retried.
//!
//! What it is not: no load balancing, retries across endpoints, or health checking of
//! targets; [`outbound`](crate::outbound) decides where to go and what to do on failure.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use h2::client::SendRequest;
use http::{Method, Request};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use weft_tls::{Credentials, SpiffeId};

use super::{
    Error, H2Stream, CONNECTION_WINDOW, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE, SEND_BUFFER,
    STREAM_WINDOW,
};

/// How many times [`Pool::connect`] opens a stream when the connection it picked dies
/// under it.
const OPEN_ATTEMPTS: usize = 2;

/// Settings of a [`Pool`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Deadline for the TCP, TLS and HTTP/2 handshakes of a new connection together.
    /// Default: 5s.
    pub connect_timeout: Duration,
    /// Most streams one pooled connection carries at once; past it the pool opens
    /// another connection to the same peer. The peer's own limit applies if lower.
    /// Default: 100.
    pub max_streams_per_connection: u32,
    /// A pooled connection that carries no stream for this long is closed. Default: 90s.
    pub idle_timeout: Duration,
}

/// Pooled mTLS HTTP/2 connections to peer proxies. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    config: PoolConfig,
    slots: Mutex<HashMap<Key, Slot>>,
    next_id: AtomicU64,
    /// Where dials are counted by result, if anywhere.
    metrics: Option<Arc<crate::telemetry::Metrics>>,
}

/// What a pooled connection is for: a peer proxy address and the identity it proves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    addr: SocketAddr,
    identity: SpiffeId,
}

/// The connections of one key, and the dial in flight for it, if any.
#[derive(Default)]
struct Slot {
    conns: Vec<Arc<Conn>>,
    dial: Option<Dial>,
}

/// A dial in flight; every caller waiting for the key awaits the same one.
type Dial = Shared<BoxFuture<'static, Result<(), Arc<Error>>>>;

/// One pooled connection.
struct Conn {
    id: u64,
    send: SendRequest<Bytes>,
    /// The TLS error that killed the connection, if one did; see [`Recorded`].
    tls_failure: Arc<OnceLock<rustls::Error>>,
    /// Set once the connection failed, received GOAWAY or closed: no new streams.
    broken: AtomicBool,
    streams: Mutex<Streams>,
}

/// Stream accounting of one connection.
struct Streams {
    /// Streams handed out and not yet dropped.
    active: usize,
    /// When `active` last dropped to zero.
    idle_since: Instant,
}

/// A stream slot on a pooled connection, held by the [`H2Stream`] using it.
pub(crate) struct Lease {
    conn: Arc<Conn>,
}

// === impl PoolConfig ===

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            connect_timeout: Duration::from_secs(5),
            max_streams_per_connection: 100,
            idle_timeout: Duration::from_secs(90),
        }
    }
}

// === impl Pool ===

impl Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Self {
        Self::counted(config, None)
    }

    /// [`Pool::new`], counting each dial's result in `metrics`
    /// (`weft_proxy_hbone_handshakes_total{direction="outbound"}`).
    pub fn counted(config: PoolConfig, metrics: Option<Arc<crate::telemetry::Metrics>>) -> Self {
        Pool {
            inner: Arc::new(Inner {
                config,
                slots: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                metrics,
            }),
        }
    }

    /// Opens a `CONNECT` stream to `target` through the proxy at `hbone_addr`, which
    /// must prove the identity `expected`.
    ///
    /// Reuses a pooled connection for (`hbone_addr`, `expected`) that has a free stream
    /// slot, or dials one (TCP_NODELAY; `connect_timeout` covers the TCP, TLS and HTTP/2
    /// handshakes); callers arriving while that dial is in flight share it. New dials
    /// present `creds`, so reloaded credentials apply to new connections.
    ///
    /// Returns once the peer answered 2xx; any other status is [`Error::Rejected`].
    pub async fn connect(
        &self,
        creds: &Arc<Credentials>,
        hbone_addr: SocketAddr,
        expected: &SpiffeId,
        target: SocketAddr,
    ) -> Result<H2Stream, Error> {
        let key = Key {
            addr: hbone_addr,
            identity: expected.clone(),
        };
        let mut attempt = 1;
        loop {
            let lease = self.checkout(creds, &key).await?;
            match open(&self.inner, &key, lease, target).await {
                Ok(stream) => return Ok(stream),
                Err(Open::Retry(source)) if attempt < OPEN_ATTEMPTS => {
                    tracing::debug!(
                        peer = %hbone_addr, %target, error = %source,
                        "HBONE connection failed before CONNECT was answered; retrying on another"
                    );
                    attempt += 1;
                }
                Err(Open::Retry(source)) => {
                    return Err(Error::H2 {
                        addr: hbone_addr,
                        source,
                    })
                }
                Err(Open::Fail(err)) => return Err(err),
            }
        }
    }

    /// Number of pooled connections, over all peers.
    pub fn connections(&self) -> usize {
        self.inner
            .slots()
            .values()
            .map(|slot| slot.conns.len())
            .sum()
    }

    /// A stream slot on a usable connection for `key`, dialing one if there is none.
    async fn checkout(&self, creds: &Arc<Credentials>, key: &Key) -> Result<Lease, Error> {
        let limit = self.inner.config.max_streams_per_connection as usize;
        // Built only when a dial is needed, and outside the pool lock: it parses our key.
        let mut tls = None;
        loop {
            let dial = {
                let mut slots = self.inner.slots();
                let slot = slots.entry(key.clone()).or_default();
                if let Some(conn) = slot.conns.iter().find(|conn| conn.try_reserve(limit)) {
                    return Ok(Lease { conn: conn.clone() });
                }
                match (&slot.dial, tls.take()) {
                    (Some(dial), _) => Some(dial.clone()),
                    (None, Some(tls)) => {
                        let dial = self.start_dial(tls, key);
                        slot.dial = Some(dial.clone());
                        Some(dial)
                    }
                    (None, None) => None,
                }
            };
            match dial {
                // On success the new connection is in the slot: loop to take a stream on
                // it (or, if other waiters filled it, to dial the next one).
                Some(dial) => dial
                    .await
                    .map_err(|err| Arc::try_unwrap(err).unwrap_or_else(|err| shared_error(&err)))?,
                None => match creds.client_config(&key.identity) {
                    Ok(config) => tls = Some(config),
                    Err(source) => {
                        prune(&mut self.inner.slots(), key);
                        return Err(Error::Credentials {
                            addr: key.addr,
                            expected: key.identity.clone(),
                            source: Box::new(source),
                        });
                    }
                },
            }
        }
    }

    /// Starts dialing `key` in its own task, so that the dial completes (and the
    /// connection joins the pool) even if the callers waiting for it give up.
    fn start_dial(&self, tls: Arc<ClientConfig>, key: &Key) -> Dial {
        let pool = Arc::downgrade(&self.inner);
        let addr = key.addr;
        let key = key.clone();
        let config = self.inner.config.clone();
        let metrics = self.inner.metrics.clone();
        let task = tokio::spawn(async move {
            let result = tokio::time::timeout(
                config.connect_timeout,
                handshake(TlsConnector::from(tls), &key, &config),
            )
            .await
            .unwrap_or(Err(Error::ConnectTimeout {
                addr: key.addr,
                after: config.connect_timeout,
            }));
            if let Some(metrics) = &metrics {
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(Error::ConnectTimeout { .. }) => "timeout",
                    Err(_) => "failed",
                };
                metrics.handshake(crate::telemetry::Direction::Outbound, outcome);
            }
            let Some(pool) = pool.upgrade() else {
                return Ok(());
            };
            let mut slots = pool.slots();
            let slot = slots.entry(key.clone()).or_default();
            slot.dial = None;
            match result {
                Ok(established) => {
                    let (send, connection, tls_failure) = established;
                    let conn = Arc::new(Conn {
                        id: pool.next_id.fetch_add(1, Ordering::Relaxed),
                        send,
                        tls_failure,
                        broken: AtomicBool::new(false),
                        streams: Mutex::new(Streams {
                            active: 0,
                            idle_since: Instant::now(),
                        }),
                    });
                    tracing::debug!(peer = %key.addr, identity = %key.identity, conn = conn.id, "HBONE connection established");
                    slot.conns.push(conn.clone());
                    tokio::spawn(drive(
                        Arc::downgrade(&pool),
                        key,
                        Arc::downgrade(&conn),
                        connection,
                        config.idle_timeout,
                    ));
                    Ok(())
                }
                Err(err) => {
                    tracing::debug!(peer = %key.addr, identity = %key.identity, error = %err, "HBONE dial failed");
                    prune(&mut slots, &key);
                    Err(Arc::new(err))
                }
            }
        });
        async move {
            task.await.unwrap_or_else(|join| {
                Err(Arc::new(Error::Connect {
                    addr,
                    source: std::io::Error::other(format!("HBONE dial task ended early: {join}")),
                }))
            })
        }
        .boxed()
        .shared()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.inner.config)
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

// === impl Inner ===

impl Inner {
    fn slots(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        // The map stays consistent across a panic in another holder (every update is a
        // single push, remove or assignment), so a poisoned lock is still usable.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `conn` unusable and takes it out of the pool. Its streams keep running.
    fn evict(&self, key: &Key, conn: &Conn) {
        conn.broken.store(true, Ordering::Release);
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(key) {
            slot.conns.retain(|c| c.id != conn.id);
        }
        prune(&mut slots, key);
    }

    /// Takes `conn` out of the pool if it has carried no stream for `idle_timeout`;
    /// returns whether it did. Runs under the pool lock so that no stream can be checked
    /// out between the check and the removal.
    fn evict_if_idle(&self, key: &Key, conn: &Conn) -> bool {
        let mut slots = self.slots();
        let idle = {
            let streams = conn.streams();
            streams.active == 0 && streams.idle_since.elapsed() >= self.config.idle_timeout
        };
        if idle {
            conn.broken.store(true, Ordering::Release);
            if let Some(slot) = slots.get_mut(key) {
                slot.conns.retain(|c| c.id != conn.id);
            }
            prune(&mut slots, key);
        }
        idle
    }
}

/// Forgets `key` once it has neither connections nor a dial in flight.
fn prune(slots: &mut HashMap<Key, Slot>, key: &Key) {
    if slots
        .get(key)
        .is_some_and(|slot| slot.conns.is_empty() && slot.dial.is_none())
    {
        slots.remove(key);
    }
}

// === impl Conn ===

impl Conn {
    fn streams(&self) -> MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a stream slot if the connection is healthy and below both our limit and the
    /// peer's advertised `SETTINGS_MAX_CONCURRENT_STREAMS`.
    fn try_reserve(&self, limit: usize) -> bool {
        if self.broken.load(Ordering::Acquire) {
            return false;
        }
        let limit = limit.min(self.send.current_max_send_streams());
        let mut streams = self.streams();
        if streams.active < limit {
            streams.active += 1;
            true
        } else {
            false
        }
    }
}

// === impl Lease ===

impl Drop for Lease {
    fn drop(&mut self) {
        let mut streams = self.conn.streams();
        streams.active = streams.active.saturating_sub(1);
        if streams.active == 0 {
            streams.idle_since = Instant::now();
        }
    }
}

/// Why opening a stream on a checked-out connection failed.
enum Open {
    /// The connection died or went away before the peer answered; try another.
    Retry(h2::Error),
    /// Final.
    Fail(Error),
}

/// Sends `CONNECT target` on the leased connection and waits for the answer. A
/// connection that fails under the request leaves the pool.
async fn open(pool: &Inner, key: &Key, lease: Lease, target: SocketAddr) -> Result<H2Stream, Open> {
    let addr = key.addr;
    let request = Request::builder()
        .method(Method::CONNECT)
        .uri(target.to_string())
        .body(())
        .map_err(|source| Open::Fail(Error::Request { target, source }))?;
    let conn = &lease.conn;
    let failed = |err: h2::Error| {
        let lost = connection_lost(&err);
        if lost {
            pool.evict(key, conn);
        }
        // In TLS 1.3 the server checks our certificate after our side of the handshake
        // is done, so its refusal (an alert) arrives here rather than in the dial.
        if let Some(tls) = conn.tls_failure.get() {
            return Open::Fail(Error::Tls {
                addr,
                expected: key.identity.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone()),
            });
        }
        if lost {
            Open::Retry(err)
        } else {
            Open::Fail(Error::H2 { addr, source: err })
        }
    };
    let mut send = conn.send.clone().ready().await.map_err(failed)?;
    let (response, stream) = send.send_request(request, false).map_err(failed)?;
    let response = response.await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(Open::Fail(Error::Rejected {
            addr,
            target,
            status,
        }));
    }
    Ok(H2Stream::leased(stream, response.into_body(), lease))
}

/// Whether a stream failed because its connection did (GOAWAY, I/O error) or the peer
/// refused it unprocessed; in both cases the peer never acted on the request.
fn connection_lost(err: &h2::Error) -> bool {
    err.is_go_away() || err.is_io() || err.reason() == Some(h2::Reason::REFUSED_STREAM)
}

/// A new connection: the request handle, the connection to drive, and where its I/O
/// records a TLS failure.
type Established = (
    SendRequest<Bytes>,
    h2::client::Connection<Recorded<TlsStream<TcpStream>>, Bytes>,
    Arc<OnceLock<rustls::Error>>,
);

/// TCP connect, TLS handshake (the verifier checks `key.identity`) and HTTP/2 preface.
async fn handshake(
    tls: TlsConnector,
    key: &Key,
    config: &PoolConfig,
) -> Result<Established, Error> {
    let addr = key.addr;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| Error::Connect { addr, source })?;
    tcp.set_nodelay(true)
        .map_err(|source| Error::Connect { addr, source })?;
    // The verifier ignores the server name (SPIFFE IDs are not DNS names); an IP name
    // also keeps SNI out of the ClientHello.
    let tls = tls
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|source| Error::Tls {
            addr,
            expected: key.identity.clone(),
            source,
        })?;
    let alpn = tls.get_ref().1.alpn_protocol();
    if alpn != Some(b"h2") {
        return Err(Error::Alpn {
            addr,
            found: alpn.map(|p| String::from_utf8_lossy(p).into_owned()),
        });
    }
    let tls_failure = Arc::new(OnceLock::new());
    let io = Recorded {
        io: tls,
        tls_failure: tls_failure.clone(),
    };
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_send_buffer_size(SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .initial_max_send_streams(config.max_streams_per_connection as usize)
        .enable_push(false)
        .handshake(io)
        .await
        .map_err(|source| Error::H2 { addr, source })?;
    Ok((send, connection, tls_failure))
}

/// The TLS stream of a pooled connection, keeping the first `rustls::Error` it fails
/// with. h2 turns I/O errors into text, so without this a peer refusing our certificate
/// would look like any broken connection.
struct Recorded<T> {
    io: T,
    tls_failure: Arc<OnceLock<rustls::Error>>,
}

impl<T> Recorded<T> {
    fn record<R>(&self, result: std::io::Result<R>) -> std::io::Result<R> {
        if let Err(err) = &result {
            if let Some(tls) = err
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
            {
                let _ = self.tls_failure.set(tls.clone());
            }
        }
        result
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Recorded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let result = ready!(Pin::new(&mut self.io).poll_read(cx, buf));
        Poll::Ready(self.record(result))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Recorded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.io).poll_write(cx, buf));
        Poll::Ready(self.record(result))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs));
        Poll::Ready(self.record(result))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = ready!(Pin::new(&mut self.io).poll_flush(cx));
        Poll::Ready(self.record(result))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
        Poll::Ready(self.record(result))
    }
}

/// Drives one pooled connection until it closes, taking it out of the pool once it has
/// been idle for `idle_timeout` (it then closes when its last handle is dropped).
async fn drive<C>(
    pool: Weak<Inner>,
    key: Key,
    conn: Weak<Conn>,
    connection: C,
    idle_timeout: Duration,
) where
    C: Future<Output = Result<(), h2::Error>>,
{
    let mut connection = pin!(connection);
    let id = conn.upgrade().map(|conn| conn.id);
    let mut pooled = true;
    loop {
        // Hold no `Arc<Conn>` across the wait: its `SendRequest` would keep an evicted
        // connection open.
        let next_check = if let Some(conn) = conn.upgrade() {
            let streams = conn.streams();
            if streams.active == 0 {
                streams.idle_since + idle_timeout
            } else {
                Instant::now() + idle_timeout
            }
        } else {
            pooled = false;
            Instant::now()
        };
        tokio::select! {
            result = &mut connection => {
                match result {
                    Ok(()) => tracing::debug!(peer = %key.addr, conn = ?id, "HBONE connection closed"),
                    Err(err) => tracing::debug!(peer = %key.addr, conn = ?id, error = %err, "HBONE connection failed"),
                }
                break;
            }
            () = tokio::time::sleep_until(next_check), if pooled => {
                let (Some(pool), Some(conn)) = (pool.upgrade(), conn.upgrade()) else {
                    pooled = false;
                    continue;
                };
                if pool.evict_if_idle(&key, &conn) {
                    tracing::debug!(peer = %key.addr, conn = conn.id, "closing idle HBONE connection");
                    pooled = false;
                }
            }
        }
    }
    if let (Some(pool), Some(conn)) = (pool.upgrade(), conn.upgrade()) {
        pool.evict(&key, &conn);
    }
}

/// The error for one caller of a shared dial. The dial's error cannot be cloned (it
/// holds I/O and HTTP/2 errors), so each waiter gets an equivalent copy that keeps the
/// variant, the message and, for TLS failures, the underlying `rustls::Error`.
fn shared_error(err: &Error) -> Error {
    match err {
        Error::Connect { addr, source } => Error::Connect {
            addr: *addr,
            source: copy_io(source),
        },
        Error::ConnectTimeout { addr, after } => Error::ConnectTimeout {
            addr: *addr,
            after: *after,
        },
        Error::Tls {
            addr,
            expected,
            source,
        } => Error::Tls {
            addr: *addr,
            expected: expected.clone(),
            source: copy_io(source),
        },
        Error::Accept { addr, source } => Error::Accept {
            addr: *addr,
            source: copy_io(source),
        },
        Error::HandshakeTimeout { addr, after } => Error::HandshakeTimeout {
            addr: *addr,
            after: *after,
        },
        Error::Alpn { addr, found } => Error::Alpn {
            addr: *addr,
            found: found.clone(),
        },
        // h2 errors cannot be built from I/O errors; the handshake only fails on I/O,
        // which is a failed connection.
        Error::H2 { addr, source } => match (source.get_io(), source.reason()) {
            (Some(io), _) => Error::Connect {
                addr: *addr,
                source: copy_io(io),
            },
            (None, Some(reason)) => Error::H2 {
                addr: *addr,
                source: h2::Error::from(reason),
            },
            (None, None) => Error::Connect {
                addr: *addr,
                source: std::io::Error::other(source.to_string()),
            },
        },
        Error::Rejected {
            addr,
            target,
            status,
        } => Error::Rejected {
            addr: *addr,
            target: *target,
            status: *status,
        },
        // A dial never produces these; keep the message and the peer.
        Error::Credentials { addr, .. } | Error::Identity { addr, .. } => Error::Connect {
            addr: *addr,
            source: std::io::Error::other(err.to_string()),
        },
        Error::Request { target, .. } => Error::Connect {
            addr: *target,
            source: std::io::Error::other(err.to_string()),
        },
    }
}

fn copy_io(err: &std::io::Error) -> std::io::Error {
    if let Some(code) = err.raw_os_error() {
        return std::io::Error::from_raw_os_error(code);
    }
    match err.get_ref() {
        Some(inner) => match inner.downcast_ref::<rustls::Error>() {
            Some(tls) => std::io::Error::new(err.kind(), tls.clone()),
            None => std::io::Error::new(err.kind(), inner.to_string()),
        },
        None => std::io::Error::from(err.kind()),
    }
}
