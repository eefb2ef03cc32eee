//! The HBONE server: the mesh port (15008) where peer proxies open `CONNECT` streams.
//!
//! One connection's life: accept TCP → TLS 1.3 handshake requiring a client certificate
//! from the mesh CA (bounded by `handshake_timeout`) → read the caller's SPIFFE ID from
//! that certificate → HTTP/2 handshake → for each `CONNECT` stream, parse `:authority` as
//! the target `ip:port`, ask the inbound side's [`Authorize`] callback, answer `200`, and
//! hand the stream to the [`Handler`] in its own task.
//!
//! Limits (ADR 0023): connections past `max_connections` in total or
//! `max_connections_per_source` from one IP are closed at accept, before any TLS work;
//! a connection with no open stream for `idle_timeout` is sent GOAWAY and closed;
//! accept errors are logged at a bounded rate and followed by a pause.
//!
//! A client that speaks plaintext, presents no certificate, or one from another CA or
//! expired, never gets past the TLS handshake: it is dropped, logged at debug with the
//! reason, and counted in [`Stats`]; nothing reaches the handler.
//!
//! What it is not: it does not connect to the application or apply L7 policy; the
//! handler ([`inbound`](crate::inbound)) does.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use weft_tls::listener::{AcceptErrors, Guard, Permit};
use weft_tls::{Credentials, SpiffeId};

use crate::telemetry::Metrics;

use super::{
    Error, H2Stream, CONNECTION_WINDOW, MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE, SEND_BUFFER,
    STREAM_WINDOW,
};

/// Settings of a [`Server`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Most `CONNECT` streams one client connection may have open at once
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`). Default: 100.
    pub max_concurrent_streams: u32,
    /// Deadline for a new connection's TLS and HTTP/2 handshakes. Default: 10s.
    pub handshake_timeout: Duration,
    /// Most client connections served at once; connections past it are closed at once
    /// and counted in [`Stats::refused_connections`]. Default: 10000 (the proxy lowers
    /// it below its open-file limit).
    pub max_connections: usize,
    /// Most client connections from one source IP address; past it, new connections
    /// from that address are closed at once and counted like `max_connections`.
    /// Default: 1000 (a peer proxy pools its streams on a few connections).
    pub max_connections_per_source: usize,
    /// A connection with no open `CONNECT` stream for this long is sent GOAWAY and
    /// closed. Default: 10m.
    pub idle_timeout: Duration,
}

/// Our current credentials, read at each new TLS handshake so that reloaded certificates
/// apply to new connections; `None` while the proxy has none yet (connections are then
/// closed unserved).
pub type CredentialSource = Arc<dyn Fn() -> Option<Arc<Credentials>> + Send + Sync>;

/// Decides whether the authenticated `peer` may reach `target`; `Err` carries the status
/// to answer (e.g. 403 when policy denies, 404 when `target` is not a local workload).
pub type Authorize = Arc<dyn Fn(&SpiffeId, SocketAddr) -> Result<(), StatusCode> + Send + Sync>;

/// Takes over an accepted stream, e.g. to forward it to the application; runs in its own
/// task.
pub type Handler = Arc<dyn Fn(Accepted) -> BoxFuture<'static, ()> + Send + Sync>;

/// A `CONNECT` stream the server accepted and authorized.
#[derive(Debug)]
pub struct Accepted {
    /// The caller's SPIFFE ID, from its verified client certificate.
    pub peer: SpiffeId,
    /// The caller's TCP address (its proxy, not necessarily the application).
    pub peer_addr: SocketAddr,
    /// The target workload address from `:authority`.
    pub target: SocketAddr,
    /// The tunnelled bytes; the `200` response has been sent.
    pub stream: H2Stream,
}

/// The HBONE listener; see the [module documentation](self).
pub struct Server {
    config: ServerConfig,
    creds: CredentialSource,
    authorize: Authorize,
    handler: Handler,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
}

/// Counters of a [`Server`], readable while it serves.
#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicU64,
    handshake_failures: AtomicU64,
    refused_connections: AtomicU64,
    streams: AtomicU64,
    rejected_streams: AtomicU64,
}

/// What every connection task shares.
struct Shared {
    config: ServerConfig,
    authorize: Authorize,
    handler: Handler,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
}

/// The TLS acceptor for the current credentials, rebuilt only when they change.
#[derive(Default)]
struct Acceptors {
    current: Option<(Arc<Credentials>, TlsAcceptor)>,
}

// === impl ServerConfig ===

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_concurrent_streams: 100,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_source: 1000,
            idle_timeout: Duration::from_secs(600),
        }
    }
}

// === impl Server ===

impl Server {
    /// A server that authenticates with `creds`, asks `authorize` about each stream and
    /// hands accepted streams to `handler`. Connections it drops are counted in
    /// `metrics` (`failures{reason}`) as well as in [`Server::stats`].
    pub fn new(
        config: ServerConfig,
        creds: CredentialSource,
        authorize: Authorize,
        handler: Handler,
        metrics: Arc<Metrics>,
    ) -> Self {
        Server {
            config,
            creds,
            authorize,
            handler,
            stats: Arc::default(),
            metrics,
        }
    }

    /// The server's counters; they keep counting while [`Server::serve`] runs.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Serves HBONE on `listener` until `shutdown` is cancelled.
    ///
    /// On shutdown it stops accepting, sends GOAWAY on each connection so that peers
    /// open new streams elsewhere, and returns once the streams already open have ended
    /// (wrap the call in a timeout to bound that drain).
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        let Server {
            config,
            creds,
            authorize,
            handler,
            stats,
            metrics,
        } = self;
        let guard = Guard::new(config.max_connections, config.max_connections_per_source);
        let mut errors = AcceptErrors::new("HBONE");
        let shared = Arc::new(Shared {
            config,
            authorize,
            handler,
            stats,
            metrics,
        });
        let mut acceptors = Acceptors::default();
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => {
                    if let Err(err) = done {
                        tracing::warn!(error = %err, "HBONE connection task failed");
                    }
                }
                accepted = listener.accept() => {
                    let (tcp, addr) = match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            errors.failed(&err).await;
                            continue;
                        }
                    };
                    let permit = match guard.admit(addr.ip()) {
                        Ok(permit) => permit,
                        Err(refused) => {
                            shared.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                            shared.metrics.failure("connection_limit");
                            tracing::debug!(peer_addr = %addr, %refused, "HBONE connection limit reached; closing new connection");
                            continue;
                        }
                    };
                    let acceptor = match acceptors.get(&creds) {
                        Ok(acceptor) => acceptor,
                        Err(reason) => {
                            shared.stats.handshake_failures.fetch_add(1, Ordering::Relaxed);
                            shared.metrics.failure("hbone_no_credentials");
                            tracing::warn!(peer_addr = %addr, %reason, "cannot serve HBONE without usable credentials; closing connection");
                            continue;
                        }
                    };
                    connections.spawn(serve_connection(tcp, addr, acceptor, shared.clone(), shutdown.clone(), permit));
                }
            }
        }
        drop(listener);
        tracing::debug!(
            connections = connections.len(),
            "HBONE server stopped accepting; draining connections"
        );
        while let Some(done) = connections.join_next().await {
            if let Err(err) = done {
                tracing::warn!(error = %err, "HBONE connection task failed");
            }
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

// === impl Stats ===

impl Stats {
    /// Connections that completed the TLS and HTTP/2 handshakes.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections dropped during the handshakes: plaintext, no or untrusted client
    /// certificate, no SPIFFE identity, no ALPN `h2`, timeout.
    pub fn handshake_failures(&self) -> u64 {
        self.handshake_failures.load(Ordering::Relaxed)
    }

    /// Connections closed unserved because `max_connections` were open in total or
    /// `max_connections_per_source` from the caller's address.
    pub fn refused_connections(&self) -> u64 {
        self.refused_connections.load(Ordering::Relaxed)
    }

    /// `CONNECT` streams accepted and handed to the handler.
    pub fn streams(&self) -> u64 {
        self.streams.load(Ordering::Relaxed)
    }

    /// Streams answered with an error status (bad method or target, denied).
    pub fn rejected_streams(&self) -> u64 {
        self.rejected_streams.load(Ordering::Relaxed)
    }
}

// === impl Acceptors ===

impl Acceptors {
    /// The acceptor for the credentials `creds` returns now, or why there is none.
    fn get(&mut self, creds: &CredentialSource) -> Result<TlsAcceptor, String> {
        let Some(creds) = creds() else {
            return Err("no credentials loaded yet".to_owned());
        };
        if let Some((current, acceptor)) = &self.current {
            if Arc::ptr_eq(current, &creds) {
                return Ok(acceptor.clone());
            }
        }
        let config = creds
            .server_config()
            .map_err(|err| format!("credentials for {} unusable: {err}", creds.identity()))?;
        let acceptor = TlsAcceptor::from(config);
        tracing::debug!(identity = %creds.identity(), "HBONE server credentials loaded");
        self.current = Some((creds, acceptor.clone()));
        Ok(acceptor)
    }
}

// === impl Shared ===

impl Shared {
    /// Answers one request: `200` and a handler task for an authorized `CONNECT`, an
    /// error status for anything else.
    fn serve_stream(
        &self,
        request: Request<RecvStream>,
        mut respond: SendResponse<Bytes>,
        peer: &SpiffeId,
        peer_addr: SocketAddr,
        open: &Arc<()>,
    ) {
        let status = match self.admit(&request, peer) {
            Ok(target) => {
                match respond.send_response(Response::new(()), false) {
                    Ok(send) => {
                        self.stats.streams.fetch_add(1, Ordering::Relaxed);
                        let stream = H2Stream::new(send, request.into_body());
                        let handled = (self.handler)(Accepted {
                            peer: peer.clone(),
                            peer_addr,
                            target,
                            stream,
                        });
                        // The connection counts its open streams by the clones alive.
                        let open = open.clone();
                        tokio::spawn(async move {
                            handled.await;
                            drop(open);
                        });
                    }
                    Err(err) => {
                        tracing::debug!(%peer_addr, %peer, %target, error = %err, "HBONE stream ended before it was accepted");
                    }
                }
                return;
            }
            Err(status) => status,
        };
        self.stats.rejected_streams.fetch_add(1, Ordering::Relaxed);
        if status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::BAD_REQUEST {
            self.metrics.failure("hbone_bad_request");
        }
        tracing::debug!(
            %peer_addr, %peer, method = %request.method(), uri = %request.uri(), %status,
            "HBONE request refused"
        );
        let mut response = Response::new(());
        *response.status_mut() = status;
        if let Err(err) = respond.send_response(response, true) {
            tracing::debug!(%peer_addr, error = %err, "cannot answer refused HBONE request");
        }
    }

    /// The target of an acceptable `CONNECT`, or the status refusing the request.
    fn admit(
        &self,
        request: &Request<RecvStream>,
        peer: &SpiffeId,
    ) -> Result<SocketAddr, StatusCode> {
        if request.method() != Method::CONNECT {
            return Err(StatusCode::METHOD_NOT_ALLOWED);
        }
        let target = request
            .uri()
            .authority()
            .and_then(|authority| authority.as_str().parse::<SocketAddr>().ok())
            .ok_or(StatusCode::BAD_REQUEST)?;
        (self.authorize)(peer, target).map_err(|status| {
            // An `Err` must refuse; never let a success status through by mistake.
            if status.is_client_error() || status.is_server_error() {
                status
            } else {
                StatusCode::FORBIDDEN
            }
        })?;
        Ok(target)
    }
}

/// Serves one client connection from TCP accept to close.
async fn serve_connection(
    tcp: TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    _permit: Permit,
) {
    let after = shared.config.handshake_timeout;
    let handshake = tokio::time::timeout(after, handshake(tcp, addr, acceptor, &shared.config));
    let result = tokio::select! {
        result = handshake => result.unwrap_or(Err(Error::HandshakeTimeout { addr, after })),
        () = shutdown.cancelled() => return,
    };
    let direction = crate::telemetry::Direction::Inbound;
    let (peer, mut connection) = match result {
        Ok(established) => {
            shared.metrics.handshake(direction, "ok");
            established
        }
        Err(err) => {
            shared
                .stats
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            shared.metrics.failure("hbone_handshake");
            let outcome = match err {
                Error::HandshakeTimeout { .. } => "timeout",
                _ => "failed",
            };
            shared.metrics.handshake(direction, outcome);
            tracing::debug!(peer_addr = %addr, error = %err, "HBONE handshake failed; connection dropped");
            return;
        }
    };
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(peer_addr = %addr, %peer, "HBONE connection accepted");

    let idle_timeout = shared.config.idle_timeout;
    let open = Arc::new(());
    let mut idle_since = tokio::time::Instant::now();
    let mut draining = false;
    loop {
        tokio::select! {
            request = connection.accept() => match request {
                Some(Ok((request, respond))) => {
                    shared.serve_stream(request, respond, &peer, addr, &open);
                    idle_since = tokio::time::Instant::now();
                }
                Some(Err(err)) => {
                    tracing::debug!(peer_addr = %addr, %peer, error = %err, "HBONE connection failed");
                    break;
                }
                None => break,
            },
            () = shutdown.cancelled(), if !draining => {
                connection.graceful_shutdown();
                draining = true;
            }
            () = tokio::time::sleep_until(idle_since + idle_timeout), if !draining => {
                if Arc::strong_count(&open) > 1 {
                    idle_since = tokio::time::Instant::now();
                } else {
                    tracing::debug!(peer_addr = %addr, %peer, after = ?idle_timeout, "HBONE connection idle; closing");
                    connection.graceful_shutdown();
                    draining = true;
                }
            }
        }
    }
    tracing::debug!(peer_addr = %addr, %peer, "HBONE connection closed");
}

/// TLS handshake, caller identity, ALPN check and HTTP/2 handshake.
async fn handshake(
    tcp: TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    config: &ServerConfig,
) -> Result<
    (
        SpiffeId,
        h2::server::Connection<impl AsyncRead + AsyncWrite + Unpin, Bytes>,
    ),
    Error,
> {
    tcp.set_nodelay(true)
        .map_err(|source| Error::Accept { addr, source })?;
    let tls = acceptor
        .accept(tcp)
        .await
        .map_err(|source| Error::Accept { addr, source })?;
    let (_, session) = tls.get_ref();
    let peer = weft_tls::verify::peer_identity(session.peer_certificates().unwrap_or_default())
        .map_err(|source| Error::Identity {
            addr,
            source: Box::new(source),
        })?;
    let alpn = session.alpn_protocol();
    if alpn != Some(b"h2") {
        return Err(Error::Alpn {
            addr,
            found: alpn.map(|p| String::from_utf8_lossy(p).into_owned()),
        });
    }
    let connection = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_send_buffer_size(SEND_BUFFER)
        .max_header_list_size(MAX_HEADER_LIST_SIZE)
        .max_concurrent_streams(config.max_concurrent_streams)
        .handshake(tls)
        .await
        .map_err(|source| Error::H2 { addr, source })?;
    Ok((peer, connection))
}
