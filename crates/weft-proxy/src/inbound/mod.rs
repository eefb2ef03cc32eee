//! The inbound side: from a peer proxy (HBONE) or, on permissive ports, a plaintext
//! client outside the mesh, to the local app.
//!
//! The HBONE server has already verified the caller's certificate and knows its SPIFFE
//! ID. Here the CONNECT target is checked against this workload (its address and
//! declared ports), then the tunnel is served: HTTP is parsed again — server-side
//! metrics, the caller's identity passed to the app in `x-forwarded-client-cert` (and
//! in `inbound.identityHeader` if configured), and later authorization — and forwarded
//! to the app on loopback over pooled connections; anything else is copied to the
//! app's port.
//!
//! Plaintext arrives on the inbound capture listener (15006) through a redirect rule;
//! [`Inbound::plaintext`] serves it the same way for a permissive port, with no caller
//! identity (and every identity header the client sent removed), and closes it for a
//! strict one. Metrics label the two `connection_security="mutual_tls"` and `"none"`.

pub mod ratelimit;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use weft_api::proxy::{MtlsMode, Protocol};
use weft_tls::SpiffeId;

use crate::hbone::Accepted;
use crate::http::body::{Body, RequestBody};
use crate::http::pool::{self, DialError, Pool};
use crate::http::{forward, headers};
use crate::state::Store;
use crate::telemetry::{
    ConnectionGuard, ConnectionLabels, Direction, Metrics, RequestLabels, Security,
};
use crate::transport::detect::{self, Detected};
use crate::transport::listen::Drain;
use crate::transport::rewind::Rewind;

/// `RESOURCE_EXHAUSTED`: what a rate-limited gRPC call is told.
const GRPC_RESOURCE_EXHAUSTED: u32 = 8;
/// `UNAVAILABLE`: an aborted gRPC call without a configured status.
const GRPC_UNAVAILABLE: u32 = 14;

/// The proxy's own refusal: for gRPC a trailers-only answer (HTTP 200 with
/// `grpc-status`), else `status` with a short text and `Retry-After` when given.
fn refusal(
    grpc: bool,
    status: StatusCode,
    grpc_status: u32,
    message: &str,
    retry_after: Option<std::time::Duration>,
) -> Response<Body> {
    let mut resp = if grpc {
        let mut resp = Response::new(Body::empty());
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(grpc_status));
        if let Ok(v) = HeaderValue::from_str(&message.replace(' ', "%20")) {
            headers.insert("grpc-message", v);
        }
        resp
    } else {
        forward::local(status, &format!("weft: {message}"))
    };
    if let Some(wait) = retry_after {
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            HeaderValue::from(ratelimit::retry_after_seconds(wait)),
        );
    }
    resp
}

/// The HTTP version spoken to the app: the one its port declares (`http` is
/// HTTP/1.1, `http2` and `grpc` are HTTP/2), else the caller's (ADR 2, revised).
fn app_version(declared: Option<Protocol>, downstream: http::Version) -> pool::Version {
    match declared {
        Some(Protocol::Http) => pool::Version::Http1,
        Some(Protocol::Http2 | Protocol::Grpc) => pool::Version::Http2,
        _ if downstream == http::Version::HTTP_2 => pool::Version::Http2,
        _ => pool::Version::Http1,
    }
}

/// The caller's verified identity, attached to each inbound request's extensions for
/// policy layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity(pub SpiffeId);

/// What the inbound side asserts to the app about one connection's caller: computed
/// once per connection, applied to every request on it.
struct Caller {
    /// The verified caller, for policy layers (`None`: plaintext).
    peer: Option<PeerIdentity>,
    security: Security,
    /// `x-forwarded-client-cert: By=<own ID>;URI=<caller>`.
    xfcc: Option<HeaderValue>,
    /// The configured identity header (`inbound.identityHeader`): its name, and the
    /// caller's SPIFFE ID when there is a verified caller.
    identity_header: Option<(HeaderName, Option<HeaderValue>)>,
    /// The caller's SPIFFE ID as text, the key of per-identity rate limits.
    key: Option<Box<str>>,
}

impl Caller {
    fn new(snap: &crate::state::Snapshot, peer: Option<SpiffeId>) -> Self {
        let xfcc = peer.as_ref().and_then(|peer| {
            HeaderValue::from_str(&format!(
                "By={};URI={peer}",
                snap.creds
                    .as_ref()
                    .map(|c| c.identity().to_string())
                    .unwrap_or_default()
            ))
            .ok()
        });
        let identity_header = snap
            .config
            .inbound
            .identity_header
            .as_deref()
            .and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok())
            .map(|name| {
                let value = peer
                    .as_ref()
                    .and_then(|p| HeaderValue::from_str(&p.to_string()).ok());
                (name, value)
            });
        let key = peer.as_ref().map(|p| p.to_string().into_boxed_str());
        Self {
            key,
            security: if peer.is_some() {
                Security::MutualTls
            } else {
                Security::None
            },
            peer: peer.map(PeerIdentity),
            xfcc,
            identity_header,
        }
    }

    /// Removes every identity header the request came with, then sets the ones this
    /// proxy vouches for: a client can never supply its own.
    fn assert_on(&self, headers: &mut http::HeaderMap) {
        headers::strip_identity(headers);
        if let Some((name, value)) = &self.identity_header {
            headers::remove_with_lookalikes(headers, name);
            if let Some(value) = value {
                headers.insert(name.clone(), value.clone());
            }
        }
        if let Some(v) = &self.xfcc {
            headers.insert(headers::XFCC, v.clone());
        }
    }
}

/// Inbound handling.
#[derive(Debug)]
pub struct Inbound {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    drain: Drain,
    apps: Mutex<HashMap<(SocketAddr, pool::Version), Arc<Pool>>>,
}

impl Inbound {
    /// Inbound handling over `store`.
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, drain: Drain) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            drain,
            apps: Mutex::new(HashMap::new()),
        })
    }

    /// Decides whether a CONNECT to `target` may proceed: it must address this
    /// workload and one of its declared ports.
    pub fn authorize(&self, peer: &SpiffeId, target: SocketAddr) -> Result<(), StatusCode> {
        let snap = self.store.load();
        let w = &snap.config.workload;
        if target.ip() != w.address {
            tracing::warn!(%peer, %target, workload = %w.address, "CONNECT to an address that is not this workload");
            self.metrics.failure("unknown_target");
            return Err(StatusCode::NOT_FOUND);
        }
        if snap.inbound_port(target.port()).is_none() {
            tracing::warn!(%peer, %target, "CONNECT to a port the workload does not serve");
            self.metrics.failure("unknown_port");
            return Err(StatusCode::NOT_FOUND);
        }
        Ok(())
    }

    /// Serves one accepted HBONE stream.
    pub async fn handle(self: Arc<Self>, accepted: Accepted) {
        let Accepted {
            peer,
            target,
            stream,
            ..
        } = accepted;
        self.serve(stream, target, Some(peer)).await;
    }

    /// Serves a plaintext connection redirected to the inbound capture listener from a
    /// client outside the mesh: allowed only to a port of this workload whose mode is
    /// permissive, and served without a caller identity. Anything else is closed.
    pub async fn plaintext(self: Arc<Self>, stream: TcpStream) {
        let target = match crate::transport::orig_dst::original_dst(&stream) {
            Ok(dst) => dst,
            Err(e) => {
                tracing::warn!(error = %e, "plaintext connection without an original destination (was it redirected?); closing");
                self.metrics.failure("no_original_dst");
                return;
            }
        };
        let refusal = {
            let snap = self.store.load();
            let w = &snap.config.workload;
            if target.ip() != w.address {
                Some(("unknown_target", "an address that is not this workload"))
            } else if snap.inbound_port(target.port()).is_none() {
                Some(("unknown_port", "a port the workload does not serve"))
            } else if snap.config.port_mtls(target.port()) != MtlsMode::Permissive {
                Some(("plaintext_refused", "a strict port (mTLS only)"))
            } else {
                None
            }
        };
        if let Some((reason, why)) = refusal {
            let peer = stream.peer_addr().ok();
            tracing::debug!(?peer, %target, "plaintext connection to {why}; closing");
            self.metrics.failure(reason);
            return;
        }
        let _ = stream.set_nodelay(true);
        self.serve(stream, target, None).await;
    }

    /// Detects the protocol on a connection to `target` and serves it: HTTP through
    /// hyper to pooled app connections, anything else copied. `peer` is the verified
    /// caller, or `None` for a plaintext one.
    async fn serve<S>(self: Arc<Self>, mut stream: S, target: SocketAddr, peer: Option<SpiffeId>)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let snap = self.store.load();
        let Some(protocol) = snap.inbound_port(target.port()) else {
            return;
        };
        let settings = snap.settings().clone();
        let Some(mut outcome) =
            detect::sniff(&mut stream, protocol, target.port(), &settings).await
        else {
            return;
        };
        let security = if peer.is_some() {
            Security::MutualTls
        } else {
            Security::None
        };
        let conn = ConnectionGuard::new(
            &self.metrics,
            ConnectionLabels {
                direction: Direction::Inbound,
                service: snap.workload_label.clone(),
                protocol: outcome.detected.as_str(),
                connection_security: security,
            },
        );
        let app = SocketAddr::new(snap.config.workload.app_address, target.port());
        let caller = Arc::new(Caller::new(&snap, peer));
        drop(snap);
        if outcome.detected == Detected::Silent {
            // Connect first; whichever side speaks first decides (a slow HTTP client
            // is still parsed as HTTP, so its identity headers are still replaced).
            let sniff = detect::Sniff::auto(&settings);
            match self
                .tcp(&mut stream, Bytes::new(), Some(sniff), app, &conn)
                .await
            {
                Some(spoke) => outcome = spoke,
                None => return,
            }
        }
        match outcome.detected {
            Detected::Http1 | Detected::Http2 => {
                let http2 = outcome.detected == Detected::Http2;
                let this = self.clone();
                let io = Rewind::new(outcome.prefix, stream);
                let conn = crate::http::server::Connection {
                    http2,
                    settings: &settings,
                    drain: &self.drain,
                    metrics: &self.metrics,
                    routed_by: http::HeaderValue::from_str(&target.to_string()).ok(),
                };
                crate::http::server::serve(io, conn, move |req| {
                    let this = this.clone();
                    let caller = caller.clone();
                    async move { this.request(req, app, &caller).await }
                })
                .await;
            }
            Detected::Malformed(refusal) => {
                crate::http::server::refuse_head(&mut stream, refusal, &self.metrics).await;
            }
            Detected::Tls { .. } | Detected::Opaque | Detected::Silent => {
                self.tcp(&mut stream, outcome.prefix, None, app, &conn)
                    .await;
            }
        }
    }

    async fn request(
        &self,
        mut req: Request<RequestBody>,
        app: SocketAddr,
        caller: &Caller,
    ) -> Response<Body> {
        let started = Instant::now();
        let version = app_version(self.store.load().inbound_port(app.port()), req.version());
        if caller.peer.is_none()
            && self.store.load().config.port_mtls(app.port()) != MtlsMode::Permissive
        {
            // The port turned strict while this plaintext connection was open.
            self.metrics.failure("plaintext_refused");
            let mut resp = forward::local(
                StatusCode::FORBIDDEN,
                "weft: this port accepts mesh (mTLS) connections only",
            );
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        if let Some(resp) = self.traffic_policies(&req, app.port(), caller).await {
            self.count(started, caller, &resp);
            return resp;
        }
        let pool = self.app_pool(app, version);
        caller.assert_on(req.headers_mut());
        if let Some(peer) = &caller.peer {
            req.extensions_mut().insert(peer.clone());
        }
        let authority = crate::outbound::authority(&req);
        forward::prepare(&mut req, version, authority.as_ref());
        let req = req;
        let resp = match forward::forward(&pool, req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(%app, error = %e, "app request failed");
                forward::local(StatusCode::BAD_GATEWAY, &format!("weft: app at {app}: {e}"))
            }
        };
        self.count(started, caller, &resp);
        resp
    }

    fn count(&self, started: Instant, caller: &Caller, resp: &Response<Body>) {
        let snap = self.store.load();
        self.metrics.request(
            &RequestLabels {
                direction: Direction::Inbound,
                service: snap.workload_label.clone(),
                status: resp.status().as_u16(),
                connection_security: caller.security,
            },
            started.elapsed(),
        );
    }

    /// Applies the inbound rate limits and faults to a request for app port `port`:
    /// the answer when the request is refused or aborted (after any injected delay),
    /// `None` to forward it.
    async fn traffic_policies<B>(
        &self,
        req: &Request<B>,
        port: u16,
        caller: &Caller,
    ) -> Option<Response<Body>> {
        let snap = self.store.load();
        let traffic = snap.inbound_traffic();
        if traffic.limits.is_empty() && traffic.faults.is_empty() {
            return None;
        }
        let authority = crate::outbound::authority(req);
        let view = crate::outbound::route::RequestView {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            authority: authority.as_ref().map_or("", http::uri::Authority::host),
        };
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        let now = Instant::now();
        for (i, scope) in traffic.limits.iter().enumerate() {
            if !scope.covers(port, &view) {
                continue;
            }
            if let ratelimit::Decision::Limited { retry_after } =
                traffic.limiter.check(i, caller.key.as_deref(), now)
            {
                self.metrics.failure("rate_limited");
                return Some(refusal(
                    grpc,
                    StatusCode::TOO_MANY_REQUESTS,
                    GRPC_RESOURCE_EXHAUSTED,
                    "rate limited",
                    Some(retry_after),
                ));
            }
        }
        let (_, fault) = traffic.faults.iter().find(|(s, _)| s.covers(port, &view))?;
        let hit = |percent: f64| fastrand::f64() * 100.0 < percent;
        if let Some(delay) = fault.delay.as_ref().filter(|d| hit(d.percent)) {
            self.metrics.failure("fault_delay");
            tokio::time::sleep(delay.duration).await;
        }
        let abort = fault.abort.as_ref().filter(|a| hit(a.percent))?;
        self.metrics.failure("fault_abort");
        let status =
            StatusCode::from_u16(abort.http_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Some(match abort.grpc_status {
            Some(code) => refusal(true, status, code, "fault injected", None),
            None => refusal(grpc, status, GRPC_UNAVAILABLE, "fault injected", None),
        })
    }

    /// Copies the connection to the app, `prefix` first. With `after_silence` (the
    /// client said nothing during detection), waits for the first side to speak once
    /// connected: a client that speaks first is detected again, and if it speaks HTTP
    /// the app connection is dropped and its outcome returned, to be served as HTTP.
    async fn tcp<S>(
        &self,
        client: &mut S,
        prefix: Bytes,
        after_silence: Option<detect::Sniff>,
        app: SocketAddr,
        conn: &ConnectionGuard,
    ) -> Option<detect::Outcome>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let (timeout, idle) = {
            let snap = self.store.load();
            (
                snap.settings().connect_timeout,
                snap.settings().idle_timeout,
            )
        };
        let mut upstream = match tokio::time::timeout(timeout, TcpStream::connect(app)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(%app, error = %e, "cannot reach the app");
                return None;
            }
            Err(_) => {
                tracing::warn!(%app, "connecting to the app timed out");
                return None;
            }
        };
        let _ = upstream.set_nodelay(true);
        let mut prefix = prefix;
        if let Some(sniff) = after_silence {
            let mut written = 0;
            let settled =
                detect::settle_silence(client, &mut upstream, sniff, idle, &mut written).await;
            conn.bytes(written);
            match settled {
                detect::AfterSilence::Http(outcome) => return Some(outcome),
                detect::AfterSilence::Copy(first) => prefix = first,
                detect::AfterSilence::Done => return None,
            }
        }
        let mut io = Rewind::new(prefix, client);
        match crate::transport::idle::copy_with_idle_timeout(&mut io, &mut upstream, idle).await {
            Ok((a, b)) => conn.bytes(a + b),
            Err(e) => tracing::debug!(error = %e, "inbound tcp ended with an error"),
        }
        None
    }

    fn app_pool(&self, app: SocketAddr, version: pool::Version) -> Arc<Pool> {
        let mut apps = self
            .apps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        apps.entry((app, version))
            .or_insert_with(|| {
                let store = self.store.clone();
                let dialer: pool::Dialer = Arc::new(move || {
                    let timeout = store.load().settings().connect_timeout;
                    Box::pin(async move {
                        let s = tokio::time::timeout(timeout, TcpStream::connect(app))
                            .await
                            .map_err(|_| {
                                Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut))
                                    as DialError
                            })?
                            .map_err(|e| Box::new(e) as DialError)?;
                        let _ = s.set_nodelay(true);
                        Ok(Box::new(s) as Box<dyn pool::Io>)
                    })
                });
                Pool::new(
                    version,
                    dialer,
                    self.store.load().settings().max_header_bytes,
                    None,
                )
            })
            .clone()
    }
}
