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

pub mod ext_authz;
pub mod stage;

pub use stage::identity::PeerIdentity;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use weft_api::proxy::MtlsMode;
use weft_tls::SpiffeId;

use crate::authz::Traffic;
use crate::drain::Drain;
use crate::hbone::Accepted;
use crate::http::body::Body;
use crate::http::pool::{self, DialError, Pool};
use crate::http::request_body::RequestBody;
use crate::state::Store;
use crate::telemetry::exchange::Metered;
use crate::telemetry::{ConnectionGuard, ConnectionLabels, Direction, Metrics};
use crate::transport::detect::{self, Detected};
use crate::transport::rewind::Rewind;
use stage::forward::app_version;
use stage::identity::Caller;

/// Inbound handling.
#[derive(Debug)]
pub struct Inbound {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    drain: Drain,
    apps: Mutex<HashMap<(SocketAddr, pool::Version), Arc<Pool>>>,
    ext_authz: ext_authz::Clients,
}

impl Inbound {
    /// Inbound handling over `store`.
    pub fn new(store: Arc<Store>, metrics: Arc<Metrics>, drain: Drain) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            drain,
            apps: Mutex::new(HashMap::new()),
            ext_authz: ext_authz::Clients::default(),
        })
    }

    /// Decides whether a CONNECT to `target` may proceed: it must address this
    /// workload and one of its declared ports, and the workload's authorization must
    /// not refuse `peer` on that port whatever it sends (403, with the reason in this
    /// proxy's log).
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
        if !snap.authorization().is_open() {
            let caller = peer.to_string();
            let port = target.port();
            if !stage::authorize::connection(
                &snap,
                Some(&caller),
                port,
                Traffic::Connect,
                &self.metrics,
            ) {
                return Err(StatusCode::FORBIDDEN);
            }
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
            } else if !stage::authorize::connection(
                &snap,
                None,
                target.port(),
                Traffic::Connect,
                &self.metrics,
            ) {
                Some(("denied", "a port that refuses unauthenticated callers"))
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
        let caller = Arc::new(Caller::new(&snap, peer));
        let conn = ConnectionGuard::new(
            &self.metrics,
            ConnectionLabels {
                direction: Direction::Inbound,
                peer: caller.labels().counted.clone(),
                protocol: outcome.detected.as_str(),
            },
        );
        let app = SocketAddr::new(snap.config.workload.app_address, target.port());
        // Opaque TCP has no requests to decide one by one: the connection is decided
        // now, before the app sees a byte (a silent client is treated as TCP).
        let opaque = !matches!(
            outcome.detected,
            Detected::Http1 | Detected::Http2 | Detected::Malformed(_)
        );
        if opaque
            && !stage::authorize::connection(
                &snap,
                caller.key(),
                target.port(),
                Traffic::Tcp,
                &self.metrics,
            )
        {
            return;
        }
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

    /// Serves one HTTP request: the inbound stages, in order ([`stage`]). A stage
    /// that refuses the request ends the list with an
    /// [`Error`](crate::error::Error); the last answers
    /// either way.
    async fn request(
        &self,
        mut req: Request<RequestBody>,
        app: SocketAddr,
        caller: &Caller,
    ) -> Response<Metered<Body>> {
        let started = Instant::now();
        let snap = self.store.load();
        let asked =
            match stage::authorize::authorize(&snap, caller, app.port(), &mut req, &self.metrics) {
                Ok(ask) => ask,
                Err(refused) => {
                    // Refused before the request is the app's: not counted as one of its.
                    refused.record(&self.metrics, &snap.workload_label);
                    return refused
                        .into_response(stage::respond::is_grpc(&req))
                        .map(Metered::unrecorded);
                }
            };
        if let Some((permission, provider)) = asked {
            let own = snap.creds.as_ref().map(|c| c.identity().to_string());
            let cx = ext_authz::Context {
                permission: &permission,
                caller: caller.key(),
                own: own.as_deref(),
            };
            // Boxed: the gRPC call's future is large, and inline it would be copied
            // with every request's future, asked or not.
            let check = Box::pin(self.ext_authz.check(provider, &mut req, &cx, &self.metrics));
            if let Err(refused) = check.await {
                refused.record(&self.metrics, &snap.workload_label);
                return refused
                    .into_response(stage::respond::is_grpc(&req))
                    .map(Metered::unrecorded);
            }
            // Identity headers are this proxy's alone, even among the server's additions.
            stage::identity::strip_forged(req.headers_mut(), caller);
        }
        let traffic = snap.inbound_traffic();
        let observe = snap.telemetry();
        let detail = observe.access_log().map(|log| {
            let mut detail = crate::telemetry::exchange::Detail::of(log, &req);
            detail.upstream = Some(app);
            detail
        });
        let asked = stage::respond::Asked {
            peer: caller.labels(),
            started,
            request_bytes: req.body_mut().measure(),
            grpc: traffic.is_active() && stage::respond::is_grpc(&req),
            counted: observe.metrics,
            span: observe.tracer.as_ref().and_then(|t| {
                // A mesh peer's proxy decided for what it sent (ADR 38).
                let from_mesh = caller.key().is_some();
                t.begin(crate::telemetry::trace::Kind::Server, from_mesh, &mut req)
            }),
            detail,
            tap: self.metrics.taps.begin(&req),
        };
        let result = async {
            stage::rate_limit::check(traffic, &req, app.port(), caller.key())?;
            stage::fault::inject(traffic, &req, app.port(), &self.metrics).await?;
            stage::identity::assert(&mut req, caller);
            let version = app_version(snap.inbound_port(app.port()), req.version());
            stage::forward::forward(self.app_pool(app, version), req, version, app).await
        }
        .await;
        stage::respond::respond(&self.metrics, &snap.workload_label, asked, result)
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
        let copied =
            crate::transport::idle::copy_with_idle_timeout(&mut io, &mut upstream, idle).await;
        conn.bytes(copied.bytes);
        if let Err(e) = copied.result {
            tracing::debug!(error = %e, "inbound tcp ended with an error");
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
