//! The outbound side: from the local app to a service.
//!
//! A connection arrives on an explicit listener (which names its service port) or on the
//! transparent capture listener (the original destination names it, via a service VIP).
//! Its protocol is detected; HTTP is served and each request is routed
//! ([`route`]), balanced across endpoints ([`balance`]) and forwarded over a pooled
//! upstream connection; anything else is balanced once per connection and copied.
//! Endpoints in the mesh are reached through HBONE, others directly.

pub mod balance;
pub mod filters;
pub mod hash;
pub mod health;
pub mod limits;
pub mod outlier;
pub mod retry;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::hbone;
use crate::http::body::{Body, RequestBody};
use crate::http::pool::{self, DialError, Io, Pool};
use crate::http::{forward, headers};
use crate::state::{Dial, EndpointState, ServiceState, Store, Target};
use crate::telemetry::{
    ConnectionGuard, ConnectionLabels, Direction, Metrics, Name, RequestLabels, Security,
};
use crate::transport::detect::{self, Detected};
use crate::transport::idle;
use crate::transport::listen::Drain;
use crate::transport::rewind::Rewind;

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
                service: target.service.label.clone(),
                protocol: outcome.detected.as_str(),
                connection_security: Security::Unknown,
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

    /// Routes and forwards one HTTP request.
    async fn request(
        &self,
        mut req: Request<RequestBody>,
        key: &str,
        port: u16,
        http2: bool,
    ) -> Response<Body> {
        let started = Instant::now();
        let snap = self.store.load();
        let Some(parent) = snap.target(key, port) else {
            return forward::local(
                StatusCode::SERVICE_UNAVAILABLE,
                "weft: service no longer configured",
            );
        };
        let table = snap.routes(&parent);
        let mut authority = authority(&req);
        let view = route::RequestView {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            authority: authority.as_ref().map_or("", http::uri::Authority::host),
        };
        let Some(rule) = table.find(&view) else {
            return self.finish(
                &parent.service.label,
                started,
                forward::local(StatusCode::NOT_FOUND, "weft: no route matched"),
            );
        };
        if let Some(redirect) = &rule.redirect {
            let resp = redirect_response(redirect, rule, &req, authority.as_ref());
            return self.finish(&parent.service.label, started, resp);
        }
        let Some(backend) = rule.pick() else {
            return self.finish(
                &parent.service.label,
                started,
                forward::local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "weft: no backend with weight",
                ),
            );
        };
        let label = backend.service.label.clone();
        let service = &backend.service;
        let _in_flight = match service.shared.limiter.request() {
            Ok(guard) => guard,
            Err(overflow) => return self.overflow(service, overflow, started),
        };
        let (hash, new_cookie) = affinity(service, &req, &snap);
        let version = if http2 {
            pool::Version::Http2
        } else {
            pool::Version::Http1
        };
        headers::strip_identity(req.headers_mut());
        if let Some(edits) = &rule.request_headers {
            edits.apply(req.headers_mut());
        }
        if let Some(rewrite) = &rule.rewrite {
            let prefix = rule.matched_prefix(req.uri().path());
            let (mut parts, body) = req.into_parts();
            if let Err(e) = rewrite.apply(&mut parts, prefix) {
                tracing::warn!(service = %backend.service.key, error = %e, "URL rewrite failed");
                let status = if e.is_bad_request() {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                return self.finish(
                    &label,
                    started,
                    forward::local(status, &format!("weft: {e}")),
                );
            }
            req = Request::from_parts(parts, body);
            authority = crate::outbound::authority(&req);
        }
        forward::prepare(&mut req, version, authority.as_ref());
        let deadline = rule.timeout.and_then(|t| started.checked_add(t));
        let method = req.method().clone();
        let policy = &rule.retry;
        let upgrade = req.version() <= http::Version::HTTP_11 && headers::is_upgrade(req.headers());
        // A response can only be retried if the request can be sent again: small
        // bodies are held for that; larger ones are sent once.
        // Mirrors this request is copied to (none allocates nothing).
        let mirrors: Vec<&Target> = if upgrade {
            Vec::new()
        } else {
            rule.mirrors
                .iter()
                .filter(|(_, share)| fastrand::u32(..1_000_000) < *share)
                .map(|(t, _)| t)
                .collect()
        };
        let retryable =
            policy.attempts > 0 && (!policy.codes.is_empty() || !policy.grpc_codes.is_empty());
        let (mut next, resend) = if upgrade || (!retryable && mirrors.is_empty()) {
            (Some(req), None)
        } else {
            match resendable(req, policy, &method, deadline, !mirrors.is_empty()).await {
                Ok(pair) => pair,
                Err(resp) => return self.finish(&label, started, resp),
            }
        };
        for target in mirrors {
            match &resend {
                Some(copy) => self.mirror(target, copy.build(), version, &snap, rule.timeout),
                // The body is streamed (too large or of unknown size): not copied.
                None => {
                    Metrics::service_event(&self.metrics.mirrors, &target.service.label, "skipped");
                }
            }
        }
        let max_retries = if upgrade { 0 } else { policy.attempts };
        service.shared.budget.deposit();
        let mut retried = 0;
        let mut avoid: Option<Arc<EndpointState>> = None;
        loop {
            let Some((index, endpoint)) = service
                .pick_for(hash, avoid.as_ref())
                .map(|(i, e)| (i, e.clone()))
            else {
                return self.finish(
                    &label,
                    started,
                    forward::local(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &format!("weft: no endpoints for {}", backend.service.key),
                    ),
                );
            };
            let Some(req) = next.take().or_else(|| resend.as_ref().map(Resend::build)) else {
                // Unreachable by construction: a retry needs a request to send.
                return self.finish(
                    &label,
                    started,
                    forward::local(StatusCode::BAD_GATEWAY, "weft: request could not be resent"),
                );
            };
            let target_port = backend.port.target();
            let pool = endpoint.pool(target_port, version, || {
                Pool::new(
                    version,
                    self.dialer(&endpoint, target_port, &service.shared.limiter),
                    snap.settings().max_header_bytes,
                    service.policy.limits.max_requests_per_connection,
                )
            });
            let limit = attempt_limit(rule.per_try_timeout, deadline);
            let mut in_flight = endpoint.stats.start();
            let sent = forward::forward(&pool, req);
            let result = match limit {
                Some(t) => tokio::time::timeout(t, sent).await.ok(),
                None => Some(sent.await),
            };
            if let Some(Ok(resp)) = &result {
                if let Some(dial) = resp.extensions().get::<pool::DialTime>() {
                    in_flight.exclude(dial.0);
                }
            }
            drop(in_flight);
            let outcome = match &result {
                Some(Ok(resp)) => retry::Outcome::of_response(resp.status(), resp.headers()),
                Some(Err(e)) if e.is_connect() => retry::Outcome::ConnectFailed,
                Some(Err(_)) => retry::Outcome::Failed,
                None => retry::Outcome::TimedOut,
            };
            // An overflowed connection limit is this proxy's doing, not the endpoint's.
            let overflowed = matches!(&result, Some(Err(e)) if overflow_of(e).is_some());
            if !overflowed {
                self.observe(service, index, outcome);
            }
            let mut result = result;
            if retried < max_retries && retry::retries(policy, outcome, &method) {
                // A failed connect hands the untouched request back; anything else
                // needs the held copy.
                if let Some(Err(e)) = &mut result {
                    next = e.take_unsent();
                }
                let headers = match &result {
                    Some(Ok(resp)) => Some(resp.headers()),
                    _ => None,
                };
                let wait = retry::delay(policy.backoff, retried + 1, headers);
                let in_time = wait.is_some_and(|w| deadline.is_none_or(|d| Instant::now() + w < d));
                if in_time && !overflowed && (next.is_some() || resend.is_some()) {
                    if service.shared.budget.withdraw() {
                        self.metrics.retry(&label, "retried");
                        tracing::debug!(service = %backend.service.key, endpoint = %endpoint.address, ?outcome, retry = retried + 1, "retrying");
                        retried += 1;
                        avoid = Some(endpoint);
                        drop(result);
                        tokio::time::sleep(wait.unwrap_or_default()).await;
                        continue;
                    }
                    self.metrics.retry(&label, "budget_exhausted");
                }
            }
            let mut resp = match result {
                Some(Ok(resp)) => resp,
                Some(Err(e)) if overflow_of(&e).is_some() => {
                    let overflow = overflow_of(&e).unwrap_or(limits::Overflow::Connections(0));
                    return self.overflow(service, overflow, started);
                }
                Some(Err(e)) => {
                    tracing::warn!(service = %backend.service.key, endpoint = %endpoint.address, error = %e, "upstream request failed");
                    let status = if e.is_connect() {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::BAD_GATEWAY
                    };
                    forward::local(status, &format!("weft: {e}"))
                }
                None => forward::local(StatusCode::GATEWAY_TIMEOUT, "weft: request timed out"),
            };
            if let Some(edits) = &rule.response_headers {
                edits.apply(resp.headers_mut());
            }
            if let Some(cookie) = new_cookie {
                resp.headers_mut().append(http::header::SET_COOKIE, cookie);
            }
            return self.finish(&label, started, resp);
        }
    }

    /// Sends a copy of a request to `target` in the background and discards the
    /// answer: the original never waits for it. Copies beyond
    /// [`MAX_MIRRORS_IN_FLIGHT`] are dropped rather than queued.
    fn mirror(
        &self,
        target: &Target,
        req: Request<RequestBody>,
        version: pool::Version,
        snap: &crate::state::Snapshot,
        timeout: Option<std::time::Duration>,
    ) {
        use std::sync::atomic::Ordering;
        let service = &target.service;
        let label = service.label.clone();
        if MIRRORS_IN_FLIGHT.fetch_add(1, Ordering::AcqRel) >= MAX_MIRRORS_IN_FLIGHT {
            MIRRORS_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
            Metrics::service_event(&self.metrics.mirrors, &label, "skipped");
            return;
        }
        let Some(endpoint) = service.pick().cloned() else {
            MIRRORS_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
            Metrics::service_event(&self.metrics.mirrors, &label, "failed");
            return;
        };
        let port = target.port.target();
        let pool = endpoint.pool(port, version, || {
            Pool::new(
                version,
                self.dialer(&endpoint, port, &service.shared.limiter),
                snap.settings().max_header_bytes,
                service.policy.limits.max_requests_per_connection,
            )
        });
        let metrics = self.metrics.clone();
        let limit = timeout.unwrap_or(MIRROR_TIMEOUT);
        tokio::spawn(async move {
            use http_body_util::BodyExt as _;
            let sent = async {
                let resp = forward::forward(&pool, req).await.ok()?;
                // Read the answer through, so the connection can be reused.
                resp.into_body().collect().await.ok().map(|_| ())
            };
            let result = match tokio::time::timeout(limit, sent).await {
                Ok(Some(())) => "sent",
                _ => "failed",
            };
            MIRRORS_IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
            Metrics::service_event(&metrics.mirrors, &label, result);
        });
    }

    /// Feeds an attempt's outcome to the service's outlier detection.
    fn observe(&self, service: &ServiceState, index: usize, outcome: retry::Outcome) {
        let Some(detector) = &service.outlier else {
            return;
        };
        let outcome = match outcome {
            retry::Outcome::Response(status) => outlier::Outcome::Status(status.as_u16()),
            // UNAVAILABLE is gRPC's 503; other gRPC errors are the application's.
            retry::Outcome::Grpc(14) => outlier::Outcome::Status(503),
            retry::Outcome::Grpc(_) => outlier::Outcome::Success,
            retry::Outcome::ConnectFailed | retry::Outcome::Failed | retry::Outcome::TimedOut => {
                outlier::Outcome::LocalFailure
            }
        };
        for ejection in detector.record(&service.endpoints, index, outcome, Instant::now()) {
            let endpoint = service.endpoints.get(ejection.index).map(|e| e.address);
            tracing::warn!(
                service = %service.key,
                endpoint = ?endpoint,
                reason = ejection.reason.as_str(),
                duration = ?ejection.duration,
                "ejecting endpoint (outlier detection)"
            );
            Metrics::service_event(
                &self.metrics.ejections,
                &service.label,
                ejection.reason.as_str(),
            );
        }
    }

    /// A request refused by a connection limit: 503 at once, counted.
    fn overflow(
        &self,
        service: &ServiceState,
        overflow: limits::Overflow,
        started: Instant,
    ) -> Response<Body> {
        Metrics::service_event(&self.metrics.overflows, &service.label, overflow.as_str());
        tracing::debug!(service = %service.key, %overflow, "request refused by a connection limit");
        let mut resp = forward::local(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("weft: {}: {overflow}", service.key),
        );
        resp.headers_mut().insert(
            "x-weft-overflow",
            http::HeaderValue::from_static(overflow.as_str()),
        );
        self.finish(&service.label, started, resp)
    }

    fn finish(&self, service: &Name, started: Instant, resp: Response<Body>) -> Response<Body> {
        self.metrics.request(
            &RequestLabels {
                direction: Direction::Outbound,
                service: service.clone(),
                status: resp.status().as_u16(),
                connection_security: Security::Unknown,
            },
            started.elapsed(),
        );
        resp
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
        let backend = table.find_tcp().and_then(route::Rule::pick)?;
        let service = &backend.service;
        let hash = match &service.policy.hash_on {
            Some(weft_api::proxy::HashOn::SourceIp) => Some(source_hash(&snap)),
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
                self.observe(service, index, retry::Outcome::ConnectFailed);
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
            conn.bytes(written);
            match settled {
                detect::AfterSilence::Http(outcome) => return Some(outcome),
                detect::AfterSilence::Copy(first) => prefix = first,
                detect::AfterSilence::Done => return None,
            }
        }
        let mut io = Rewind::new(prefix, client);
        match idle::copy_with_idle_timeout(&mut io, &mut upstream, idle_timeout).await {
            Ok((a, b)) => conn.bytes(a + b),
            Err(e) => tracing::debug!(error = %e, "tcp connection ended with an error"),
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
                service: Name(Arc::from("passthrough")),
                protocol: "tcp",
                connection_security: Security::Unknown,
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
                if let Ok((a, b)) =
                    idle::copy_with_idle_timeout(&mut stream, &mut upstream, idle_timeout).await
                {
                    conn.bytes(a + b);
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

/// A request held so it can be sent again: its head and its whole body.
struct Resend {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    body: bytes::Bytes,
}

impl Resend {
    fn build(&self) -> Request<RequestBody> {
        let mut req = Request::new(RequestBody::buffered(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Bodies up to this size are held so a request can be retried; larger ones are sent
/// once.
pub const MAX_RETRY_BODY: u64 = 64 * 1024;

/// Splits `req` into the first attempt and a copy for retries (and mirrors) when
/// `policy` may retry it or it is `mirrored`: a repeatable method (any, when mirrored)
/// and a body of known size up to [`MAX_RETRY_BODY`] (read in full first, within the
/// request's deadline). Otherwise the request goes once, streamed. A body that cannot
/// be read is the client's failure: 400.
async fn resendable(
    req: Request<RequestBody>,
    policy: &weft_api::proxy::Retry,
    method: &http::Method,
    deadline: Option<Instant>,
    mirrored: bool,
) -> Result<(Option<Request<RequestBody>>, Option<Resend>), Response<Body>> {
    use http_body::Body as _;
    use http_body_util::BodyExt as _;
    // A mirrored request is copied whatever its method; retries check it again.
    let repeatable = mirrored
        || policy.non_idempotent
        || !policy.grpc_codes.is_empty()
        || retry::idempotent(method);
    let small = req.body().is_end_stream()
        || req
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= MAX_RETRY_BODY);
    if !repeatable || !small {
        return Ok((Some(req), None));
    }
    let (parts, body) = req.into_parts();
    // Most retried requests (GETs) have no body: nothing to read, no timer to arm.
    let empty = body.is_end_stream();
    let collect = body.collect();
    let collected = match deadline {
        _ if empty => None,
        Some(d) => tokio::time::timeout_at(d.into(), collect).await.ok(),
        None => Some(collect.await),
    };
    let body = match collected {
        _ if empty => bytes::Bytes::new(),
        Some(Ok(c)) => c.to_bytes(),
        Some(Err(e)) => {
            return Err(forward::local(
                StatusCode::BAD_REQUEST,
                &format!("weft: request body could not be read: {e}"),
            ))
        }
        None => {
            return Err(forward::local(
                StatusCode::GATEWAY_TIMEOUT,
                "weft: request timed out reading its body",
            ))
        }
    };
    let resend = Resend {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body,
    };
    Ok((None, Some(resend)))
}

/// How long one attempt may take: the per-try timeout, within what is left of the
/// request's.
fn attempt_limit(
    per_try: Option<std::time::Duration>,
    deadline: Option<Instant>,
) -> Option<std::time::Duration> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match (per_try, left) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Copies sent at once by this proxy at most; more are dropped (counted `skipped`).
pub const MAX_MIRRORS_IN_FLIGHT: usize = 256;
/// How long a copy may take when its rule has no timeout.
const MIRROR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

static MIRRORS_IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The answer of a redirect rule: its status and `Location` (the request's, with the
/// redirect's parts replaced).
fn redirect_response<B>(
    redirect: &filters::Redirect,
    rule: &route::Rule<Target>,
    req: &Request<B>,
    authority: Option<&http::uri::Authority>,
) -> Response<Body> {
    let scheme = req.uri().scheme_str().unwrap_or("http");
    let host = authority.map_or("", http::uri::Authority::as_str);
    let prefix = rule.matched_prefix(req.uri().path());
    match redirect.response_location(scheme, host, req.uri(), prefix) {
        Ok(location) => {
            let status = StatusCode::from_u16(redirect.status).unwrap_or(StatusCode::FOUND);
            let mut resp = forward::local(status, "");
            resp.headers_mut().insert(http::header::LOCATION, location);
            resp
        }
        Err(e) => {
            let status = if e.is_bad_request() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            forward::local(status, &format!("weft: redirect: {e}"))
        }
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

/// The connection-limit refusal inside a failed attempt, if that is what it was.
fn overflow_of(e: &pool::Error) -> Option<limits::Overflow> {
    match e {
        pool::Error::Connect { source, .. } => source.downcast_ref::<limits::Overflow>().copied(),
        pool::Error::Http(_) => None,
    }
}

/// The affinity key's hash for a hashing load balancer, and the `Set-Cookie` value to
/// add to the response when the key is a cookie the request lacked (and the policy
/// gives it a lifetime): the new cookie is hashed, so the first request already goes
/// where the later ones will.
fn affinity<B>(
    service: &ServiceState,
    req: &Request<B>,
    snap: &crate::state::Snapshot,
) -> (Option<u64>, Option<http::HeaderValue>) {
    use weft_api::proxy::HashOn;
    if service.table.is_none() {
        return (None, None);
    }
    match &service.policy.hash_on {
        Some(HashOn::Header(name)) => (
            req.headers()
                .get(name.as_str())
                .map(|v| hash::key_hash(v.as_bytes())),
            None,
        ),
        Some(HashOn::Cookie(cookie)) => {
            if let Some(value) = headers::cookie(req.headers(), &cookie.name) {
                return (Some(hash::key_hash(value.as_bytes())), None);
            }
            let Some(ttl) = cookie.ttl else {
                return (None, None);
            };
            let value = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            let set = format!(
                "{}={value}; Path={}; Max-Age={}; HttpOnly",
                cookie.name,
                cookie.path,
                ttl.as_secs()
            );
            (
                Some(hash::key_hash(value.as_bytes())),
                http::HeaderValue::from_str(&set).ok(),
            )
        }
        Some(HashOn::SourceIp) => (Some(source_hash(snap)), None),
        None => (None, None),
    }
}

/// The caller's address as an affinity key: this workload's (the app is local).
fn source_hash(snap: &crate::state::Snapshot) -> u64 {
    hash::key_hash(snap.config.workload.address.to_string().as_bytes())
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
