//! The admin API (loopback only) and the metrics endpoint.
//!
//! Admin, on `listeners.admin` (127.0.0.1:15000): `GET /ready`, `GET /config_dump`
//! (the effective config, its version and the workload identity), `GET /endpoints`
//! (each service's endpoints as load balancing sees them now: outstanding requests,
//! latency estimate, ejected or not, health), `GET /logging` and
//! `POST /logging?level=FILTER`, and `POST /shutdown` when enabled. Metrics, on
//! `listeners.metrics` (:15020): `GET /metrics` (Prometheus text) and `GET /healthz`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::drain::Drain;
use crate::state::Store;
use crate::telemetry::Metrics;

/// Reads and changes the log filter at run time.
pub trait LogControl: Send + Sync {
    /// The current filter, e.g. `info,weft_proxy=debug`.
    fn get(&self) -> String;
    /// Replaces the filter; the error says why the filter is invalid.
    fn set(&self, filter: &str) -> Result<(), String>;
}

/// Whether the proxy is ready (`/ready` answers 200 unless draining); set once.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
    became: tokio::sync::Notify,
}

impl Readiness {
    /// Marks the proxy ready; returns whether it was not ready before.
    pub fn set(&self) -> bool {
        let first = !self.ready.swap(true, Ordering::AcqRel);
        if first {
            self.became.notify_waiters();
        }
        first
    }

    /// Whether the proxy is ready.
    pub fn is_set(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Returns once the proxy is ready.
    pub async fn wait(&self) {
        loop {
            let became = self.became.notified();
            tokio::pin!(became);
            // Registered before the check, so a `set` in between is not missed.
            became.as_mut().enable();
            if self.is_set() {
                return;
            }
            became.await;
        }
    }
}

/// State the admin endpoints read.
pub struct Admin {
    /// Current config.
    pub store: Arc<Store>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Shutdown state.
    pub drain: Drain,
    /// Set once every listener is bound and the config is in.
    pub ready: Readiness,
    /// Log filter control, if the binary installed one.
    pub log: Option<Box<dyn LogControl>>,
    /// Whether `POST /shutdown` is allowed.
    pub shutdown_enabled: bool,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

type Resp = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

impl Admin {
    fn admin(&self, req: &Request<Incoming>) -> Resp {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/ready") => {
                if self.ready.is_set() && !self.drain.is_draining() {
                    reply(StatusCode::OK, "text/plain", "ready\n")
                } else {
                    reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "not ready\n")
                }
            }
            (&Method::GET, "/config_dump") => {
                let snap = self.store.load();
                let dump = serde_json::json!({
                    "version": snap.version,
                    "identity": snap.creds.as_ref().map(|c| c.identity().to_string()),
                    "certificateExpires": snap.creds.as_ref().map(|c| {
                        humantime::format_rfc3339_seconds(c.not_after()).to_string()
                    }),
                    "config": &*snap.config,
                });
                match serde_json::to_vec_pretty(&dump) {
                    Ok(body) => reply(StatusCode::OK, "application/json", body),
                    Err(e) => reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        e.to_string(),
                    ),
                }
            }
            (&Method::GET, "/endpoints") => {
                let snap = self.store.load();
                let now = std::time::Instant::now();
                let mut services: Vec<serde_json::Value> = snap
                    .services()
                    .map(|svc| {
                        let checks = svc.policy.health_check.is_some();
                        let endpoints: Vec<serde_json::Value> = svc
                            .endpoints
                            .iter()
                            .map(|e| {
                                serde_json::json!({
                                    "address": e.address.to_string(),
                                    "outstanding": e.stats.outstanding(),
                                    "latencyMs": e.stats.latency_nanos() / 1e6,
                                    "ejected": e.outlier.is_ejected(now),
                                    "timesEjected": e.outlier.times_ejected(),
                                    "healthy": checks.then(|| e.is_healthy()),
                                })
                            })
                            .collect();
                        serde_json::json!({
                            "service": &*svc.key,
                            "loadBalancer": svc.load_balancer,
                            "policy": svc.policy.source,
                            "requestsInFlight": svc.shared.limiter.requests(),
                            "connections": svc.shared.limiter.connections(),
                            "endpoints": endpoints,
                        })
                    })
                    .collect();
                services.sort_by(|a, b| a["service"].as_str().cmp(&b["service"].as_str()));
                match serde_json::to_vec_pretty(&serde_json::json!({ "services": services })) {
                    Ok(body) => reply(StatusCode::OK, "application/json", body),
                    Err(e) => reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "text/plain",
                        e.to_string(),
                    ),
                }
            }
            (&Method::GET, "/logging") => match &self.log {
                Some(log) => reply(StatusCode::OK, "text/plain", format!("{}\n", log.get())),
                None => reply(
                    StatusCode::NOT_IMPLEMENTED,
                    "text/plain",
                    "log control not installed\n",
                ),
            },
            (&Method::POST, "/logging") => {
                let level = req.uri().query().unwrap_or("").split('&').find_map(|kv| {
                    kv.strip_prefix("level=")
                        .or_else(|| kv.strip_prefix("filter="))
                });
                match (&self.log, level) {
                    (Some(log), Some(level)) => match log.set(level) {
                        Ok(()) => {
                            tracing::info!(filter = %level, "log filter changed");
                            reply(StatusCode::OK, "text/plain", format!("{level}\n"))
                        }
                        Err(e) => reply(StatusCode::BAD_REQUEST, "text/plain", format!("invalid filter {level:?}: {e}\n")),
                    },
                    (_, None) => reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "missing ?level=FILTER (e.g. ?level=debug or ?level=info,weft_proxy=debug)\n",
                    ),
                    (None, _) => reply(StatusCode::NOT_IMPLEMENTED, "text/plain", "log control not installed\n"),
                }
            }
            (&Method::POST, "/shutdown") if self.shutdown_enabled => {
                tracing::info!("shutdown requested through the admin API");
                self.drain.start();
                reply(StatusCode::OK, "text/plain", "draining\n")
            }
            (&Method::POST, "/shutdown") => reply(
                StatusCode::FORBIDDEN,
                "text/plain",
                "POST /shutdown is disabled (start the proxy with --admin-shutdown)\n",
            ),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "endpoints: GET /ready, GET /config_dump, GET|POST /logging, POST /shutdown\n",
            ),
        }
    }

    fn stats(&self, req: &Request<Incoming>) -> Resp {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => reply(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                self.metrics.encode(),
            ),
            (&Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n"),
            _ => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                "endpoints: GET /metrics, GET /healthz\n",
            ),
        }
    }
}

/// Which endpoints a listener serves.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// The admin API.
    Admin,
    /// Metrics and health.
    Metrics,
}

/// Serves `kind` on `listener` until the process exits (admin stays up while draining so
/// `/ready` can report it).
pub async fn serve(admin: Arc<Admin>, listener: TcpListener, kind: Kind) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let admin = admin.clone();
                async move {
                    Ok::<_, Infallible>(match kind {
                        Kind::Admin => admin.admin(&req),
                        Kind::Metrics => admin.stats(&req),
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
