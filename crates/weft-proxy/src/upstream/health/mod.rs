//! Active health checking of one endpoint, like Envoy's health checkers.
//!
//! For a destination service whose `BackendPolicy` configures `healthCheck`, the calling
//! proxy [`spawn`]s one task per endpoint. Every [`Check::interval`] it opens a stream
//! with the endpoint's [`Dialer`] (an HBONE tunnel through the endpoint's proxy, or plain
//! TCP — the same dialer requests use), runs one [`Kind`] of check on it bounded by
//! [`Check::timeout`], and feeds the outcome to the endpoint's shared [`State`]. The load
//! balancer never picks an endpoint whose [`State::is_healthy`] is false.
//!
//! A new endpoint starts unhealthy and turns healthy on its first passing check, so a
//! dead endpoint never gets traffic, not even before its first check has failed. After
//! that, [`Check::unhealthy_threshold`] consecutive failures take it out of load
//! balancing and [`Check::healthy_threshold`] consecutive passes bring it back.
//!
//! What it is not: passive health checking (outlier detection from live traffic), the
//! policy model, or the wiring. The caller builds a [`Check`] from the policy, keeps the
//! [`Handle`] while the endpoint is in the config, and drops it when the endpoint leaves.
//!
//! Here: the check's model, an endpoint's [`State`] and one [`probe`]; the checker task
//! is [`schedule`], the two L7 checks [`http1`] and [`grpc`].

mod grpc;
mod http1;
mod schedule;

pub use schedule::{spawn, Handle};

use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;

use crate::http::pool::{DialError, Dialer};

/// Shortest time between two checks of one endpoint; a shorter [`Check::interval`] is
/// raised to it so that a misconfiguration cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Statuses an HTTP check accepts unless configured otherwise.
const DEFAULT_EXPECTED: RangeInclusive<u16> = 200..=399;
/// `user-agent` of HTTP and gRPC checks, so the app can tell them from traffic.
const USER_AGENT_VALUE: &str = "weft-health-check";

/// How and how often to check one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What one check does. Default: [`Kind::Tcp`].
    pub kind: Kind,
    /// Time from the end of one check to the start of the next, varied by ±10% so that
    /// proxies do not check in lockstep; the first check starts within 10% of it.
    /// Default: 10s. Values below 10ms count as 10ms.
    pub interval: Duration,
    /// Deadline of one check, dial included; a check that takes longer fails.
    /// Default: 1s.
    pub timeout: Duration,
    /// Consecutive failed checks that take a healthy endpoint out of load balancing.
    /// Default: 3. 0 counts as 1.
    pub unhealthy_threshold: u32,
    /// Consecutive passed checks that bring an unhealthy endpoint back; a new endpoint
    /// needs only one. Default: 2. 0 counts as 1.
    pub healthy_threshold: u32,
}

/// What one check does on the dialed stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// Passes when the dial succeeds; nothing is sent.
    ///
    /// Over plain TCP that proves the endpoint's port accepts connections (the kernel
    /// completes the handshake; the app may still be wedged).
    ///
    /// Through HBONE it proves less, and nothing about the app: the peer's HBONE server
    /// answers the `CONNECT` with `200` as soon as the target is authorized (its address
    /// is the workload's and its port is declared), then hands the stream to the inbound
    /// side, which waits for the first bytes to detect the protocol before it connects to
    /// the app. This check sends no bytes and closes, so it shows that the peer proxy is
    /// up, accepts our identity and knows the port — not that the app listens. Use
    /// [`Kind::Http`] or [`Kind::Grpc`] to check the app itself.
    #[default]
    Tcp,
    /// An HTTP/1.1 `GET path` with `Host: host`, `user-agent: weft-health-check` and
    /// `connection: close`; passes when the response status is in `expected`. The body
    /// is not read.
    Http {
        /// Request target, starting with `/` (a query may follow). Default (from
        /// [`Kind::http`]): none, it is required.
        path: String,
        /// `Host` header, e.g. the service name. Default (from [`Kind::http`]): none,
        /// it is required.
        host: String,
        /// Passing statuses. Default (from [`Kind::http`]): `[200..=399]`; an empty
        /// list means the same. Through HBONE the peer proxy answers `502` when it
        /// cannot reach the app, so keep 5xx out of it.
        expected: Vec<RangeInclusive<u16>>,
    },
    /// The standard gRPC health check (`grpc.health.v1.Health/Check`) over HTTP/2
    /// without TLS (h2c); passes when the HTTP status is `200`, `grpc-status` is `0` and
    /// the answer is `SERVING`.
    Grpc {
        /// `HealthCheckRequest.service`. Default (from [`Kind::grpc`]): `""`, the whole
        /// server.
        service: String,
        /// `:authority` of the request, e.g. the service name. Default: `""`, which
        /// sends `localhost` (HTTP/2 cannot carry `:scheme` without an authority).
        authority: String,
    },
}

/// An endpoint's health, shared (via `Arc`) by its checker task and load balancing.
///
/// Starts unhealthy; see the [module documentation](self) for the transitions.
#[derive(Debug, Default)]
pub struct State {
    /// What load balancing reads. Default: `false` (unhealthy).
    healthy: AtomicBool,
    /// Consecutive outcomes; written only by [`State::observe`].
    streak: Mutex<Streak>,
}

/// The run of identical outcomes behind [`State::healthy`].
#[derive(Debug, Default)]
struct Streak {
    /// Consecutive passed checks, 0 after a failure.
    passes: u32,
    /// Consecutive failed checks, 0 after a pass.
    failures: u32,
    /// Whether the endpoint has ever been healthy; until then one pass is enough.
    ever_healthy: bool,
}

/// Why one check failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No stream to the endpoint: refused, unreachable, or (through HBONE) the peer
    /// proxy refused the tunnel.
    #[error("dial failed: {0}")]
    Dial(#[source] DialError),
    /// The check, dial included, took longer than [`Check::timeout`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The HTTP or HTTP/2 exchange broke (connection reset, protocol error).
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
    /// The response status is not an expected one (for gRPC: not `200`).
    #[error("HTTP status {0}")]
    Status(StatusCode),
    /// The gRPC call failed.
    #[error("{}", grpc::status_text(*.code, .message))]
    GrpcStatus {
        /// `grpc-status`, e.g. 12 (`UNIMPLEMENTED`) when the server has no health
        /// service.
        code: u32,
        /// `grpc-message` as sent (percent-encoded), at most 128 bytes; may be empty.
        message: String,
    },
    /// The health service answered, but not `SERVING`.
    #[error("health service reports {name} ({0})", name = grpc::serving_status_name(*.0))]
    NotServing(i32),
    /// The response does not follow the protocol.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// The configured check cannot be sent; fix the `healthCheck` policy.
    #[error("invalid health check: {0}")]
    InvalidRequest(&'static str),
}

// === impl Check ===

impl Default for Check {
    fn default() -> Self {
        Check {
            kind: Kind::Tcp,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

// === impl Kind ===

impl Kind {
    /// An HTTP check of `path` with `Host: host`, passing on 200–399.
    pub fn http(path: impl Into<String>, host: impl Into<String>) -> Self {
        Kind::Http {
            path: path.into(),
            host: host.into(),
            expected: vec![DEFAULT_EXPECTED],
        }
    }

    /// A gRPC health check of `service` (`""`: the whole server), sent with
    /// `:authority` `authority` (`""`: `localhost`).
    pub fn grpc(service: impl Into<String>, authority: impl Into<String>) -> Self {
        Kind::Grpc {
            service: service.into(),
            authority: authority.into(),
        }
    }

    /// Short name for logs.
    fn name(&self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Http { .. } => "http",
            Kind::Grpc { .. } => "grpc",
        }
    }
}

// === impl State ===

impl State {
    /// A new endpoint's state: unhealthy until its first check passes.
    #[must_use]
    pub fn new() -> Self {
        State::default()
    }

    /// Whether load balancing may pick the endpoint.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Records one check's outcome under `check`'s thresholds; returns the new health
    /// when it changed.
    pub fn observe(&self, check: &Check, passed: bool) -> Option<bool> {
        let mut streak = self.streak.lock().unwrap_or_else(PoisonError::into_inner);
        if passed {
            streak.passes = streak.passes.saturating_add(1);
            streak.failures = 0;
        } else {
            streak.failures = streak.failures.saturating_add(1);
            streak.passes = 0;
        }
        let healthy = self.healthy.load(Ordering::Relaxed);
        let next = if healthy {
            streak.failures < check.unhealthy_threshold.max(1)
        } else {
            let needed = if streak.ever_healthy {
                check.healthy_threshold.max(1)
            } else {
                1
            };
            streak.passes >= needed
        };
        if next == healthy {
            return None;
        }
        streak.ever_healthy = true;
        self.healthy.store(next, Ordering::Release);
        Some(next)
    }
}

// === impl Failure ===

impl Failure {
    /// A short label for metrics and structured logs: `dial`, `timeout`, `http`,
    /// `status`, `grpc_status`, `not_serving`, `malformed` or `invalid_request`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Dial(_) => "dial",
            Failure::Timeout(_) => "timeout",
            Failure::Http(_) => "http",
            Failure::Status(_) => "status",
            Failure::GrpcStatus { .. } => "grpc_status",
            Failure::NotServing(_) => "not_serving",
            Failure::Malformed(_) => "malformed",
            Failure::InvalidRequest(_) => "invalid_request",
        }
    }
}

// === one check ===

/// Runs one check now: dial, exchange, verdict, all within [`Check::timeout`].
///
/// # Errors
///
/// Why the check failed; see [`Failure`].
pub async fn probe(check: &Check, dialer: &Dialer) -> Result<(), Failure> {
    tokio::time::timeout(check.timeout, exchange(&check.kind, dialer))
        .await
        .unwrap_or(Err(Failure::Timeout(check.timeout)))
}

/// One check without its deadline. The request is built before dialing, so that an
/// invalid check opens no connection.
async fn exchange(kind: &Kind, dialer: &Dialer) -> Result<(), Failure> {
    match kind {
        Kind::Tcp => dialer().await.map(drop).map_err(Failure::Dial),
        Kind::Http {
            path,
            host,
            expected,
        } => {
            let request = http1::request(path, host)?;
            let io = dialer().await.map_err(Failure::Dial)?;
            let status = http1::status(io, request).await?;
            let expected: &[RangeInclusive<u16>] = if expected.is_empty() {
                &[DEFAULT_EXPECTED]
            } else {
                expected
            };
            if expected
                .iter()
                .any(|range| range.contains(&status.as_u16()))
            {
                Ok(())
            } else {
                Err(Failure::Status(status))
            }
        }
        Kind::Grpc { service, authority } => {
            let request = grpc::request(service, authority)?;
            let io = dialer().await.map_err(Failure::Dial)?;
            grpc::check(io, request).await
        }
    }
}

/// Runs `exchange` while driving its HTTP `connection`; ends with the exchange.
async fn drive<C, F, T>(connection: C, exchange: F) -> Result<T, Failure>
where
    C: Future<Output = Result<(), hyper::Error>>,
    F: Future<Output = Result<T, Failure>>,
{
    tokio::pin!(connection, exchange);
    tokio::select! {
        biased;
        result = &mut exchange => result,
        // The connection can end as it hands over the response (`connection: close`),
        // or with the error the exchange is about to report; either way the exchange
        // has the answer now.
        _ = &mut connection => exchange.await,
    }
}

#[cfg(test)]
mod tests;
