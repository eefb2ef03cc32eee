//! The inbound side: from a peer proxy (HBONE) to the local app.
//!
//! The HBONE server has already verified the caller's certificate and knows its SPIFFE
//! ID. Here the CONNECT target is checked against this workload (its address and
//! declared ports), then the tunnel is served: HTTP is parsed again — server-side
//! metrics, the caller's identity passed to the app in `x-forwarded-client-cert`, and
//! later authorization — and forwarded to the app on loopback over pooled connections;
//! anything else is copied to the app's port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use weft_tls::SpiffeId;

use crate::hbone::{Accepted, H2Stream};
use crate::http::body::Body;
use crate::http::pool::{self, DialError, Pool};
use crate::http::{forward, headers};
use crate::state::Store;
use crate::telemetry::{ConnectionGuard, ConnectionLabels, Direction, Metrics, RequestLabels};
use crate::transport::detect::{self, Detected};
use crate::transport::listen::Drain;
use crate::transport::rewind::Rewind;

/// The caller's verified identity, attached to each inbound request's extensions for
/// policy layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity(pub SpiffeId);

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
            mut stream,
            ..
        } = accepted;
        let snap = self.store.load();
        let Some(protocol) = snap.inbound_port(target.port()) else {
            return;
        };
        let settings = snap.settings().clone();
        let Some(outcome) = detect::sniff(&mut stream, protocol, target.port(), &settings).await
        else {
            return;
        };
        let conn = ConnectionGuard::new(
            &self.metrics,
            ConnectionLabels {
                direction: Direction::Inbound,
                service: snap.workload_label.clone(),
                protocol: outcome.detected.as_str(),
            },
        );
        let app = SocketAddr::new(snap.config.workload.app_address, target.port());
        let io = Rewind::new(outcome.prefix, stream);
        match outcome.detected {
            Detected::Http1 | Detected::Http2 => {
                let http2 = outcome.detected == Detected::Http2;
                let xfcc = HeaderValue::from_str(&format!(
                    "By={};URI={peer}",
                    snap.creds
                        .as_ref()
                        .map(|c| c.identity().to_string())
                        .unwrap_or_default()
                ))
                .ok();
                let peer = PeerIdentity(peer);
                let this = self.clone();
                crate::http::server::serve(io, http2, &settings, &self.drain, move |req| {
                    let this = this.clone();
                    let xfcc = xfcc.clone();
                    let peer = peer.clone();
                    async move { this.request(req, app, http2, peer, xfcc).await }
                })
                .await;
            }
            Detected::Tls { .. } | Detected::Opaque => self.tcp(io, app, &conn).await,
        }
    }

    async fn request(
        &self,
        mut req: Request<Incoming>,
        app: SocketAddr,
        http2: bool,
        peer: PeerIdentity,
        xfcc: Option<HeaderValue>,
    ) -> Response<Body> {
        let started = Instant::now();
        let version = if http2 {
            pool::Version::Http2
        } else {
            pool::Version::Http1
        };
        let pool = self.app_pool(app, version);
        headers::strip_identity(req.headers_mut());
        if let Some(v) = xfcc {
            req.headers_mut().insert(headers::XFCC, v);
        }
        req.extensions_mut().insert(peer);
        let authority = crate::outbound::authority(&req);
        forward::prepare(&mut req, version, authority.as_ref());
        let resp = match forward::forward(&pool, req).await {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(%app, error = %e, "app request failed");
                forward::local(StatusCode::BAD_GATEWAY, &format!("weft: app at {app}: {e}"))
            }
        };
        let snap = self.store.load();
        self.metrics.request(
            &RequestLabels {
                direction: Direction::Inbound,
                service: snap.workload_label.clone(),
                status: resp.status().as_u16(),
            },
            started.elapsed(),
        );
        resp
    }

    async fn tcp(&self, mut io: Rewind<H2Stream>, app: SocketAddr, conn: &ConnectionGuard) {
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
                return;
            }
            Err(_) => {
                tracing::warn!(%app, "connecting to the app timed out");
                return;
            }
        };
        let _ = upstream.set_nodelay(true);
        match crate::transport::idle::copy_with_idle_timeout(&mut io, &mut upstream, idle).await {
            Ok((a, b)) => conn.bytes(a + b),
            Err(e) => tracing::debug!(error = %e, "inbound tcp ended with an error"),
        }
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
                )
            })
            .clone()
    }
}
