//! The outbound side: from the local app to a service.
//!
//! A connection arrives on an explicit listener (which names its service port) or on the
//! transparent capture listener (the original destination names it, via a service VIP).
//! Its protocol is detected; HTTP is served and each request goes through the
//! [`stage`]s: routed ([`crate::route`]), balanced across endpoints
//! ([`crate::upstream::balance`]), retried ([`retry`]) and forwarded over a pooled
//! upstream connection; anything else is balanced once per connection and copied.
//! Endpoints in the mesh are reached through HBONE, others directly. What the proxy
//! learns about endpoints on the way (load, failures, health) is kept in
//! [`crate::upstream`]; [`Outbound::supervise_health`] runs the active checks there.

pub mod retry;
pub mod stage;

pub use stage::attempt::MAX_RETRY_BODY;
pub use stage::mirror::MAX_MIRRORS_IN_FLIGHT;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::drain::Drain;
use crate::error::Error;
use crate::hbone;
use crate::http::body::Body;
use crate::http::forward;
use crate::http::pool::{self, DialError, Io, Pool};
use crate::http::request_body::RequestBody;
use crate::state::{Snapshot, Store};
use crate::telemetry::exchange::{Detail, Metered};
use crate::telemetry::trace;
use crate::telemetry::{ConnectionGuard, ConnectionLabels, Direction, Metrics};
use crate::transport::detect::{self, Detected};
use crate::transport::idle;
use crate::transport::rewind::Rewind;
use crate::upstream::{health, limits, outlier, Dial, EndpointState, ServiceState, Target};
use stage::attempt::Attempts;
use stage::respond::Reply;
use stage::route::Routed;

/// Outbound connection handling, shared by every outbound listener.
#[derive(Debug)]
pub struct Outbound {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    hbone: hbone::Pool,
    drain: Drain,
}

/// Why a connection could not be opened to an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// HBONE to the peer proxy failed.
    #[error(transparent)]
    Hbone(#[from] hbone::Error),
    /// Direct TCP failed.
    #[error("connect to {addr}: {source}")]
    Tcp {
        /// Endpoint.
        addr: SocketAddr,
        /// I/O error.
        source: std::io::Error,
    },
    /// Direct TCP timed out.
    #[error("connect to {addr}: timed out")]
    Timeout {
        /// Endpoint.
        addr: SocketAddr,
    },
    /// The endpoint is in the mesh but this proxy has no identity to present.
    #[error("endpoint {addr} needs mTLS but this proxy has no certificates configured")]
    NoCredentials {
        /// Endpoint.
        addr: SocketAddr,
    },
}

impl Outbound {
    /// Outbound handling over `store`, dialling peers through `hbone`.
    pub fn new(
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        hbone: hbone::Pool,
        drain: Drain,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            hbone,
            drain,
        })
    }

    /// Keeps active health checks running for every endpoint of every service whose
    /// policy has one, as snapshots change: a new endpoint gets a checker at once (and
    /// stays out of load balancing until it passes), a changed check restarts with the
    /// endpoint's health kept, and an endpoint that leaves the config takes its checker
    /// with it (dropping the endpoint drops the task's handle). Runs until `shutdown`.
    pub async fn supervise_health(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut changed = self.store.subscribe();
        loop {
            self.ensure_health_checks();
            tokio::select! {
                () = shutdown.cancelled() => return,
                result = changed.changed() => {
                    if result.is_err() {
                        return;
                    }
                }
            }
        }
    }

    fn ensure_health_checks(&self) {
        let snap = self.store.load();
        for service in snap.services() {
            for endpoint in &service.endpoints {
                let mut task = endpoint
                    .health_task
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let Some(config) = &service.policy.health_check else {
                    *task = None;
                    continue;
                };
                if task.as_ref().is_some_and(|(running, _)| running == config) {
                    continue;
                }
                let state = endpoint
                    .health
                    .get_or_init(|| Arc::new(health::State::new()))
                    .clone();
                // The name the app knows itself by, for `Host` defaults and gRPC's
                // `:authority`.
                let authority = snap
                    .config
                    .service(&service.key)
                    .and_then(|s| s.hostnames.first().cloned())
                    .unwrap_or_else(|| service.key.to_string());
                let check = health_check(config, authority);
                let label: Arc<str> = Arc::from(format!(
                    "{} {}:{}",
                    service.key, endpoint.address, config.port
                ));
                let handle = health::spawn(
                    check,
                    self.probe_dialer(endpoint, config.port),
                    state,
                    label,
                );
                *task = Some((config.clone(), handle));
            }
        }
    }

    /// Handles a connection accepted on the explicit listener bound to `listen`.
    pub async fn explicit(self: Arc<Self>, stream: TcpStream, listen: SocketAddr) {
        let target = self.store.load().outbound_target(listen).cloned();
        if let Some(target) = target {
            self.serve(stream, target).await;
        } else {
            self.metrics.failure("no_service");
            tracing::warn!(
                %listen,
                "the service behind this listener is unknown (not received from the control plane yet, or deleted); closing the connection"
            );
        }
    }

    /// Handles a connection redirected to the capture listener.
    pub async fn captured(self: Arc<Self>, stream: TcpStream) {
        let dst = match crate::transport::orig_dst::original_dst(&stream) {
            Ok(dst) => dst,
            Err(e) => {
                tracing::warn!(error = %e, "no original destination (was the connection redirected?)");
                self.metrics.failure("no_original_dst");
                return;
            }
        };
        if stream.local_addr().ok() == Some(dst) {
            tracing::warn!(%dst, "connection addressed to the capture port itself; refusing to loop");
            return;
        }
        let target = self.store.load().vip_target(dst).cloned();
        match target {
            Some(target) => self.serve(stream, target).await,
            None => self.passthrough(stream, dst).await,
        }
    }

    async fn serve(self: Arc<Self>, mut stream: TcpStream, target: Target) {
        let snap = self.store.load();
        let settings = snap.settings().clone();
        drop(snap);
        let Some(mut outcome) = detect::sniff(
            &mut stream,
            target.port.protocol,
            target.port.port,
            &settings,
        )
        .await
        else {
            return;
        };
        let conn = ConnectionGuard::new(
            &self.metrics,
            ConnectionLabels {
                direction: Direction::Outbound,
                peer: target.service.unchosen.counted.clone(),
                protocol: outcome.detected.as_str(),
            },
        );
        if outcome.detected == Detected::Silent {
            // Connect first; whichever side speaks first decides (a slow HTTP client
            // is still parsed as HTTP).
            let sniff = detect::Sniff::auto(&settings);
            match self
                .tcp(&mut stream, Bytes::new(), Some(sniff), &target, &conn)
                .await
            {
                Some(spoke) => outcome = spoke,
                None => return,
            }
        }
        match outcome.detected {
            Detected::Http1 | Detected::Http2 => {
                let http2 = outcome.detected == Detected::Http2;
                let key = target.service.key.clone();
                let port = target.port.port;
                let routed_by = http::HeaderValue::from_str(&format!("{key}:{port}")).ok();
                let this = self.clone();
                let io = Rewind::new(outcome.prefix, stream);
                let conn = crate::http::server::Connection {
                    http2,
                    settings: &settings,
                    drain: &self.drain,
                    metrics: &self.metrics,
                    routed_by,
                };
                crate::http::server::serve(io, conn, move |req| {
                    let this = this.clone();
                    let key = key.clone();
                    async move { this.request(req, &key, port, http2).await }
                })
                .await;
            }
            Detected::Malformed(refusal) => {
                crate::http::server::refuse_head(&mut stream, refusal, &self.metrics).await;
            }
            Detected::Tls { sni } => {
                tracing::debug!(service = %target.service.key, ?sni, "TLS from the app; forwarding opaque");
                self.tcp(&mut stream, outcome.prefix, None, &target, &conn)
                    .await;
            }
            Detected::Opaque | Detected::Silent => {
                self.tcp(&mut stream, outcome.prefix, None, &target, &conn)
                    .await;
            }
        }
    }

    /// Routes and forwards one HTTP request: the outbound stages, in order
    /// ([`stage`]). A stage that refuses the request ends the list with an [`Error`];
    /// the reply answers either way.
    async fn request(
        &self,
        mut req: Request<RequestBody>,
        key: &str,
        port: u16,
        http2: bool,
    ) -> Response<Metered<Body>> {
        let started = Instant::now();
        let snap = self.store.load();
        let Some(parent) = snap.target(key, port) else {
            return Error::NoService
                .into_response(false)
                .map(Metered::unrecorded);
        };
        let table = snap.routes(&parent);
        let request_bytes = req.body_mut().measure();
        let mut reply = Reply::new(&self.metrics, &parent.service, started, request_bytes);
        let observe = snap.telemetry();
        let detail = observe.access_log().map(|log| Detail::of(log, &req));
        let tap = self.metrics.taps.begin(&req);
        let span = observe
            .tracer
            .as_ref()
            .and_then(|t| t.begin(trace::Kind::Client, false, &mut req));
        reply.observed(observe.metrics, span, detail, tap);
        let result = async {
            // One path for routing and the destination: the one the destination
            // authorises (docs/policies/path-normalization.md).
            crate::http::path::normalize_uri(req.uri_mut(), snap.settings().path_normalization)
                .map_err(|refusal| Error::BadRequest(format!("refused path: {refusal}")))?;
            let mut authority = authority(&req);
            let (rule, backend, label) =
                match stage::route::route(&table, &req, authority.as_ref())? {
                    Routed::Forward {
                        rule,
                        backend,
                        label,
                    } => (rule, backend, label),
                    Routed::Answer(redirect, label) => {
                        reply.answered_by(label);
                        return Ok(redirect);
                    }
                };
            let service = &backend.service;
            reply.forwarding(rule, service, label);
            let mut req = stage::filters::apply(req, rule, &service.key, &mut authority)?;
            let _in_flight = stage::limits::admit(service)?;
            let (hash, cookie) = stage::limits::affinity(service, &req, &snap);
            reply.set_cookie(cookie);
            let version = version(http2);
            forward::prepare(&mut req, version, authority.as_ref());
            let attempts = Attempts::new(rule, service, hash, started, &req);
            let mirrors = stage::mirror::select(rule, attempts.upgrade());
            let (first, held) = if attempts.holds(&req, !mirrors.is_empty()) {
                (None, Some(attempts.hold(req).await?))
            } else {
                (Some(req), None)
            };
            stage::mirror::send(
                &mirrors,
                held.as_ref(),
                rule.timeout,
                &self.metrics,
                |t, e| self.pool(&t.service, e, t.port.target(), version, &snap),
            );
            let port = backend.port.target();
            let send = |e: &Arc<EndpointState>, req| {
                forward::forward(self.pool(service, e, port, version, &snap), req)
            };
            let mut tried = stage::attempt::Tried::default();
            let result = attempts
                .run(first, held.as_ref(), &self.metrics, &mut tried, send)
                .await;
            reply.attempted(&tried, port);
            result
        }
        .await;
        reply.respond(result)
    }

    /// The pool of connections to `endpoint:port` of `service` in `version`.
    fn pool(
        &self,
        service: &ServiceState,
        endpoint: &EndpointState,
        port: u16,
        version: pool::Version,
        snap: &Snapshot,
    ) -> Arc<Pool> {
        endpoint.pool(port, version, || {
            Pool::new(
                version,
                self.dialer(endpoint, port, &service.shared.limiter),
                snap.settings().max_header_bytes,
                service.policy.limits.max_requests_per_connection,
            )
        })
    }

    /// Opaque TCP: one endpoint per connection, bytes copied both ways.
    /// Copies the connection to an endpoint of `target`, `prefix` first. With
    /// `after_silence` (the client said nothing during detection), waits for the first
    /// side to speak once connected: a client that speaks first is detected again, and
    /// if it speaks HTTP the upstream is dropped and its outcome returned, to be served
    /// as HTTP.
    async fn tcp(
        &self,
        client: &mut TcpStream,
        prefix: Bytes,
        after_silence: Option<detect::Sniff>,
        target: &Target,
        conn: &ConnectionGuard,
    ) -> Option<detect::Outcome> {
        let snap = self.store.load();
        let table = snap.routes(target);
        let backend = table.find_tcp().and_then(crate::route::Rule::pick)?;
        let service = &backend.service;
        let hash = match &service.policy.hash_on {
            Some(weft_api::proxy::HashOn::SourceIp) => Some(stage::limits::source_hash(&snap)),
            _ => None,
        };
        let Some((index, endpoint)) = service.pick_for(hash, None).map(|(i, e)| (i, e.clone()))
        else {
            tracing::warn!(service = %service.key, "no endpoints; closing connection");
            return None;
        };
        let port = backend.port.target();
        let wait = snap.settings().connect_timeout;
        let slot = match service.shared.limiter.connection(wait).await {
            Ok(slot) => slot,
            Err(overflow) => {
                Metrics::service_event(&self.metrics.overflows, &service.label, overflow.as_str());
                tracing::warn!(service = %service.key, %overflow, "connection refused by a connection limit");
                return None;
            }
        };
        let mut upstream = match self.connect(&endpoint, port).await {
            Ok(up) => limits::Counted::new(up, slot),
            Err(e) => {
                stage::attempt::observe(
                    service,
                    index,
                    outlier::Outcome::LocalFailure,
                    &self.metrics,
                );
                tracing::warn!(service = %service.key, endpoint = %endpoint.address, error = %e, "connect failed");
                return None;
            }
        };
        let in_flight = endpoint.stats.start();
        let idle_timeout = snap.settings().idle_timeout;
        drop(snap);
        let mut prefix = prefix;
        if let Some(sniff) = after_silence {
            let mut written = 0;
            let settled =
                detect::settle_silence(client, &mut upstream, sniff, idle_timeout, &mut written)
                    .await;
            conn.bytes_via(&endpoint.peer, written);
            match settled {
                detect::AfterSilence::Http(outcome) => return Some(outcome),
                detect::AfterSilence::Copy(first) => prefix = first,
                detect::AfterSilence::Done => return None,
            }
        }
        let mut io = Rewind::new(prefix, client);
        let copied = idle::copy_with_idle_timeout(&mut io, &mut upstream, idle_timeout).await;
        conn.bytes_via(&endpoint.peer, copied.bytes);
        if let Err(e) = copied.result {
            tracing::debug!(error = %e, "tcp connection ended with an error");
        }
        drop(in_flight);
        let _ = upstream.shutdown().await;
        None
    }

    /// Copies a captured connection whose destination is not a mesh service straight
    /// to that destination.
    async fn passthrough(&self, mut stream: TcpStream, dst: SocketAddr) {
        let conn = ConnectionGuard::new(
            &self.metrics,
            ConnectionLabels {
                direction: Direction::Outbound,
                peer: self.store.load().own.outbound("passthrough", None).counted,
                protocol: "tcp",
            },
        );
        let (timeout, idle_timeout) = {
            let snap = self.store.load();
            (
                snap.settings().connect_timeout,
                snap.settings().idle_timeout,
            )
        };
        match tokio::time::timeout(timeout, TcpStream::connect(dst)).await {
            Ok(Ok(mut upstream)) => {
                let _ = upstream.set_nodelay(true);
                let copied =
                    idle::copy_with_idle_timeout(&mut stream, &mut upstream, idle_timeout).await;
                conn.bytes(copied.bytes);
                if let Err(e) = copied.result {
                    tracing::debug!(%dst, error = %e, "passthrough ended with an error");
                }
            }
            Ok(Err(e)) => tracing::debug!(%dst, error = %e, "passthrough connect failed"),
            Err(_) => tracing::debug!(%dst, "passthrough connect timed out"),
        }
    }

    /// Opens a byte stream to `endpoint:port`, through HBONE when it is in the mesh.
    pub async fn connect(
        &self,
        endpoint: &EndpointState,
        port: u16,
    ) -> Result<Box<dyn Io>, ConnectError> {
        connect(
            &self.store,
            &self.hbone,
            endpoint.address,
            &endpoint.dial,
            port,
        )
        .await
    }

    /// Opens connections to `endpoint:port` for a pool, each counted against the
    /// service's connection limit while it is open.
    fn dialer(
        &self,
        endpoint: &EndpointState,
        port: u16,
        limiter: &Arc<limits::Limiter>,
    ) -> pool::Dialer {
        let store = self.store.clone();
        let hbone = self.hbone.clone();
        let address = endpoint.address;
        let dial = endpoint.dial.clone();
        let limiter = limiter.clone();
        Arc::new(move || {
            let store = store.clone();
            let hbone = hbone.clone();
            let dial = dial.clone();
            let limiter = limiter.clone();
            Box::pin(async move {
                let wait = store.load().settings().connect_timeout;
                let slot = limiter
                    .connection(wait)
                    .await
                    .map_err(|e| Box::new(e) as DialError)?;
                let io = connect(&store, &hbone, address, &dial, port)
                    .await
                    .map_err(|e| Box::new(e) as DialError)?;
                Ok(Box::new(limits::Counted::new(io, slot)) as Box<dyn Io>)
            })
        })
    }

    /// Opens checking connections to `endpoint:port` (health checks: not counted
    /// against connection limits, which protect the service from this proxy's
    /// requests, not from its probes).
    pub fn probe_dialer(&self, endpoint: &EndpointState, port: u16) -> pool::Dialer {
        let store = self.store.clone();
        let hbone = self.hbone.clone();
        let address = endpoint.address;
        let dial = endpoint.dial.clone();
        Arc::new(move || {
            let store = store.clone();
            let hbone = hbone.clone();
            let dial = dial.clone();
            Box::pin(async move {
                connect(&store, &hbone, address, &dial, port)
                    .await
                    .map_err(|e| Box::new(e) as DialError)
            })
        })
    }
}

async fn connect(
    store: &Store,
    hbone: &hbone::Pool,
    address: std::net::IpAddr,
    dial: &Dial,
    port: u16,
) -> Result<Box<dyn Io>, ConnectError> {
    let addr = SocketAddr::new(address, port);
    match dial {
        Dial::Hbone { proxy, identity } => {
            let creds = store
                .load()
                .creds
                .clone()
                .ok_or(ConnectError::NoCredentials { addr })?;
            let stream = hbone.connect(&creds, *proxy, identity, addr).await?;
            Ok(Box::new(stream))
        }
        Dial::Direct => {
            let timeout = store.load().settings().connect_timeout;
            let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| ConnectError::Timeout { addr })?
                .map_err(|source| ConnectError::Tcp { addr, source })?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream))
        }
    }
}

/// The HTTP version spoken upstream: the client's.
fn version(http2: bool) -> pool::Version {
    if http2 {
        pool::Version::Http2
    } else {
        pool::Version::Http1
    }
}

/// The checker's form of a policy's health check.
fn health_check(config: &weft_api::proxy::HealthCheck, authority: String) -> health::Check {
    health::Check {
        kind: match &config.check {
            weft_api::proxy::HealthCheckKind::Tcp => health::Kind::Tcp,
            weft_api::proxy::HealthCheckKind::Http {
                path,
                host,
                expected,
            } => health::Kind::Http {
                path: path.clone(),
                host: if host.is_empty() {
                    authority
                } else {
                    host.clone()
                },
                expected: expected.iter().map(|(low, high)| *low..=*high).collect(),
            },
            weft_api::proxy::HealthCheckKind::Grpc { service } => health::Kind::Grpc {
                service: service.clone(),
                authority,
            },
        },
        interval: config.interval,
        timeout: config.timeout,
        unhealthy_threshold: config.unhealthy_threshold,
        healthy_threshold: config.healthy_threshold,
    }
}

/// The request's authority: `:authority` for HTTP/2, `Host` for HTTP/1.
pub fn authority<B>(req: &Request<B>) -> Option<http::uri::Authority> {
    req.uri().authority().cloned().or_else(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse().ok())
    })
}
