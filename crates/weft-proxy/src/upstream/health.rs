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

use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_TYPE, HOST, TE, USER_AGENT};
use http::uri::Scheme;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::task::JoinHandle;

use crate::http::pool::{DialError, Dialer, Io};

/// Shortest time between two checks of one endpoint; a shorter [`Check::interval`] is
/// raised to it so that a misconfiguration cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Statuses an HTTP check accepts unless configured otherwise.
const DEFAULT_EXPECTED: RangeInclusive<u16> = 200..=399;
/// `user-agent` of HTTP and gRPC checks, so the app can tell them from traffic.
const USER_AGENT_VALUE: &str = "weft-health-check";
/// `:path` of the standard gRPC health check.
const GRPC_PATH: &str = "/grpc.health.v1.Health/Check";
/// `:authority` of a gRPC check whose [`Kind::Grpc::authority`] is empty.
const GRPC_DEFAULT_AUTHORITY: &str = "localhost";
/// Most response body a gRPC check reads; a `HealthCheckResponse` is a few bytes.
const MAX_GRPC_RESPONSE: usize = 4096;
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: u64 = 1;

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

/// The checker task of one endpoint; dropping it stops the checks.
#[derive(Debug)]
#[must_use = "dropping the handle stops the health checks"]
pub struct Handle {
    task: JoinHandle<()>,
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
    #[error("{}", grpc_status_text(*.code, .message))]
    GrpcStatus {
        /// `grpc-status`, e.g. 12 (`UNIMPLEMENTED`) when the server has no health
        /// service.
        code: u32,
        /// `grpc-message` as sent (percent-encoded), at most 128 bytes; may be empty.
        message: String,
    },
    /// The health service answered, but not `SERVING`.
    #[error("health service reports {name} ({0})", name = serving_status_name(*.0))]
    NotServing(u64),
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

// === impl Handle ===

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
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

/// `Failure::GrpcStatus` as text, with a hint for the codes a misconfiguration causes.
fn grpc_status_text(code: u32, message: &str) -> String {
    let hint = match code {
        5 => " (NOT_FOUND: the health server does not know this service)",
        12 => " (UNIMPLEMENTED: the server has no grpc.health.v1.Health service)",
        _ => "",
    };
    if message.is_empty() {
        format!("grpc-status {code}{hint}")
    } else {
        format!("grpc-status {code}{hint}: {message}")
    }
}

/// Name of a `HealthCheckResponse.ServingStatus` value.
fn serving_status_name(status: u64) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "an unknown status",
    }
}

// === checker task ===

/// Starts checking an endpoint with `check` over streams from `dialer`, recording the
/// outcomes in `state`: the first check within 10% of the interval, then one every
/// interval ±10%. State changes are logged with `label` (e.g. the endpoint address) as
/// `endpoint`. Must be called within a Tokio runtime.
pub fn spawn(check: Check, dialer: Dialer, state: Arc<State>, label: Arc<str>) -> Handle {
    Handle {
        task: tokio::spawn(run(check, dialer, state, label)),
    }
}

/// The checker loop; runs until its task is aborted.
async fn run(check: Check, dialer: Dialer, state: Arc<State>, label: Arc<str>) {
    let interval = check.interval.max(MIN_INTERVAL);
    let mut delay = jitter(interval / 10);
    // Whether anything about this endpoint was logged above debug yet: a new endpoint
    // that never passes has no state change to log, but the operator must learn why.
    let mut announced = false;
    loop {
        tokio::time::sleep(delay).await;
        let result = probe(&check, &dialer).await;
        let change = state.observe(&check, result.is_ok());
        let kind = check.kind.name();
        match (&result, change) {
            (_, Some(true)) => {
                tracing::info!(endpoint = %label, check = kind, "endpoint passed its health check; load balancing uses it");
            }
            (Err(failure), Some(false)) => {
                tracing::warn!(
                    endpoint = %label, check = kind, reason = failure.reason(), error = %failure,
                    failures = check.unhealthy_threshold.max(1),
                    "endpoint failed its health checks; load balancing skips it"
                );
            }
            (Err(failure), _) if !announced => {
                tracing::warn!(
                    endpoint = %label, check = kind, reason = failure.reason(), error = %failure,
                    "endpoint has not passed a health check yet; load balancing skips it until one passes"
                );
            }
            (Err(failure), _) => {
                tracing::debug!(endpoint = %label, check = kind, reason = failure.reason(), error = %failure, "health check failed");
            }
            (Ok(()), _) => {
                tracing::debug!(endpoint = %label, check = kind, "health check passed");
            }
        }
        announced |= change.is_some() || result.is_err();
        delay = interval
            .saturating_sub(interval / 10)
            .saturating_add(jitter(interval / 5));
    }
}

/// A random duration from zero to `up_to`.
fn jitter(up_to: Duration) -> Duration {
    let nanos = u64::try_from(up_to.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
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
            let request = http_request(path, host)?;
            let io = dialer().await.map_err(Failure::Dial)?;
            let status = http_status(io, request).await?;
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
            let request = grpc_request(service, authority)?;
            let io = dialer().await.map_err(Failure::Dial)?;
            grpc_check(io, request).await
        }
    }
}

/// The `GET` of an HTTP check.
fn http_request(path: &str, host: &str) -> Result<Request<Empty<Bytes>>, Failure> {
    if !path.starts_with('/') {
        return Err(Failure::InvalidRequest("HTTP path must start with '/'"));
    }
    let uri = Uri::try_from(path)
        .map_err(|_| Failure::InvalidRequest("HTTP path is not a valid request target"))?;
    let host = HeaderValue::try_from(host)
        .map_err(|_| Failure::InvalidRequest("HTTP host is not a valid header value"))?;
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(HOST, host);
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(request)
}

/// Sends `request` over HTTP/1.1 on `io` and returns the response status; the body is
/// dropped unread.
async fn http_status(
    io: Box<dyn Io>,
    request: Request<Empty<Bytes>>,
) -> Result<StatusCode, Failure> {
    let (mut send, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(Failure::Http)?;
    drive(connection, async move {
        send.ready().await.map_err(Failure::Http)?;
        let response = send.send_request(request).await.map_err(Failure::Http)?;
        Ok(response.status())
    })
    .await
}

/// The `Check` call of a gRPC check.
fn grpc_request(service: &str, authority: &str) -> Result<Request<Full<Bytes>>, Failure> {
    let authority = if authority.is_empty() {
        GRPC_DEFAULT_AUTHORITY
    } else {
        authority
    };
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(GRPC_PATH)
        .build()
        .map_err(|_| Failure::InvalidRequest("gRPC authority is not a valid host[:port]"))?;
    let body = grpc_frame(&health_check_request(service))
        .ok_or(Failure::InvalidRequest("gRPC service name is too long"))?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    Ok(request)
}

/// Sends `request` over h2c on `io` and judges the answer.
async fn grpc_check(io: Box<dyn Io>, request: Request<Full<Bytes>>) -> Result<(), Failure> {
    let (mut send, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(Failure::Http)?;
    drive(connection, async move {
        send.ready().await.map_err(Failure::Http)?;
        let response = send.send_request(request).await.map_err(Failure::Http)?;
        grpc_verdict(response).await
    })
    .await
}

/// Passes a gRPC health response: HTTP 200, `grpc-status` 0, `SERVING`.
async fn grpc_verdict(response: Response<Incoming>) -> Result<(), Failure> {
    let (head, mut body) = response.into_parts();
    if head.status != StatusCode::OK {
        return Err(Failure::Status(head.status));
    }
    // Trailers-only: the status is in the headers and there is no message.
    if let Some(outcome) = grpc_outcome(&head.headers) {
        outcome?;
        return Err(Failure::Malformed(
            "grpc-status 0 without a response message",
        ));
    }
    let mut message = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame.map_err(Failure::Http)?.into_data() {
            Ok(data) => {
                if message.len() + data.len() > MAX_GRPC_RESPONSE {
                    return Err(Failure::Malformed("response larger than 4 KiB"));
                }
                message.extend_from_slice(&data);
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    let trailers = trailers.ok_or(Failure::Malformed("response ended without trailers"))?;
    grpc_outcome(&trailers).unwrap_or(Err(Failure::Malformed("no grpc-status in trailers")))?;
    match serving_status(&message)? {
        SERVING => Ok(()),
        status => Err(Failure::NotServing(status)),
    }
}

/// The call's outcome from `grpc-status` in `headers`, or `None` when it is absent.
fn grpc_outcome(headers: &HeaderMap) -> Option<Result<(), Failure>> {
    let value = headers.get("grpc-status")?;
    let Some(code) = value.to_str().ok().and_then(|v| v.parse::<u32>().ok()) else {
        return Some(Err(Failure::Malformed("grpc-status is not a number")));
    };
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .map(|m| {
            let m = String::from_utf8_lossy(m.as_bytes());
            m.chars().take(128).collect()
        })
        .unwrap_or_default();
    Some(Err(Failure::GrpcStatus { code, message }))
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

// === gRPC wire format ===

/// `HealthCheckRequest { string service = 1; }`, encoded.
fn health_check_request(service: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(service.len() + 11);
    // proto3 leaves out a field that has its default value, here "".
    if !service.is_empty() {
        message.push(0x0a); // field 1, wire type 2 (length-delimited)
        put_varint(&mut message, service.len() as u64);
        message.extend_from_slice(service.as_bytes());
    }
    message
}

/// `message` in a gRPC frame: uncompressed flag, 4-byte big-endian length, message;
/// `None` if it is longer than a frame can say.
fn grpc_frame(message: &[u8]) -> Option<Bytes> {
    let len = u32::try_from(message.len()).ok()?;
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(len);
    frame.extend_from_slice(message);
    Some(frame.freeze())
}

/// Appends `value` as a protobuf varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

/// `HealthCheckResponse.status` from a response body holding exactly one gRPC frame.
fn serving_status(body: &[u8]) -> Result<u64, Failure> {
    let Some((&flag, rest)) = body.split_first() else {
        return Err(Failure::Malformed("no response message"));
    };
    if flag != 0 {
        // We sent no `grpc-accept-encoding`, so the server may not compress.
        return Err(Failure::Malformed("compressed or unknown message flag"));
    }
    let (len, message) = rest
        .split_first_chunk::<4>()
        .ok_or(Failure::Malformed("truncated message header"))?;
    if usize::try_from(u32::from_be_bytes(*len)) != Ok(message.len()) {
        return Err(Failure::Malformed(
            "message length does not match the response body",
        ));
    }
    decode_status(message)
}

/// Decodes `HealthCheckResponse { ServingStatus status = 1; }`, skipping unknown fields.
fn decode_status(mut message: &[u8]) -> Result<u64, Failure> {
    // proto3 leaves out a field that has its default value, here UNKNOWN (0).
    let mut status = 0;
    while !message.is_empty() {
        let key = varint(&mut message)?;
        match (key >> 3, key & 0x7) {
            (0, _) => return Err(Failure::Malformed("protobuf field number 0")),
            (1, 0) => status = varint(&mut message)?,
            (1, _) => return Err(Failure::Malformed("status field is not a varint")),
            (_, 0) => {
                varint(&mut message)?;
            }
            (_, 1) => skip(&mut message, 8)?,
            (_, 2) => {
                let len = varint(&mut message)?;
                let len = usize::try_from(len)
                    .map_err(|_| Failure::Malformed("truncated protobuf field"))?;
                skip(&mut message, len)?;
            }
            (_, 5) => skip(&mut message, 4)?,
            _ => return Err(Failure::Malformed("unsupported protobuf wire type")),
        }
    }
    Ok(status)
}

/// Reads a protobuf varint from the front of `input`.
fn varint(input: &mut &[u8]) -> Result<u64, Failure> {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate().take(10) {
        // The tenth byte holds the 64th bit only.
        if i == 9 && byte > 1 {
            return Err(Failure::Malformed("protobuf varint overflows 64 bits"));
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *input = input.get(i + 1..).unwrap_or_default();
            return Ok(value);
        }
    }
    Err(Failure::Malformed(if input.len() >= 10 {
        "protobuf varint longer than 10 bytes"
    } else {
        "truncated protobuf varint"
    }))
}

/// Drops `len` bytes from the front of `input`.
fn skip(input: &mut &[u8], len: usize) -> Result<(), Failure> {
    *input = input
        .get(len..)
        .ok_or(Failure::Malformed("truncated protobuf field"))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;

    use http::request::Parts;
    use http_body_util::combinators::BoxBody;
    use hyper::service::service_fn;
    use tokio::net::{TcpListener, TcpSocket, TcpStream};
    use tokio::sync::mpsc;

    use super::*;
    use crate::http::pool::DialFuture;

    /// Generous deadline for conditions tests wait on, so a bug fails instead of hangs.
    const WAIT: Duration = Duration::from_secs(10);

    fn check(kind: Kind) -> Check {
        Check {
            kind,
            interval: Duration::from_millis(20),
            timeout: Duration::from_secs(2),
            ..Check::default()
        }
    }

    fn tcp_dialer(addr: SocketAddr) -> Dialer {
        Arc::new(move || -> DialFuture {
            Box::pin(async move {
                let stream = TcpStream::connect(addr).await?;
                Ok(Box::new(stream) as Box<dyn Io>)
            })
        })
    }

    /// A loopback port that refuses connections: bound, so no other test takes it, but
    /// not listening.
    fn refusing_port() -> (TcpSocket, SocketAddr) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        (socket, addr)
    }

    async fn until(what: &str, mut condition: impl FnMut() -> bool) {
        let waited = tokio::time::timeout(WAIT, async {
            while !condition() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting for {what}");
    }

    /// Serves one HTTP/1 connection, answering `status` and reporting each request head.
    async fn serve_http1(stream: TcpStream, status: u16, seen: mpsc::UnboundedSender<Parts>) {
        let service = service_fn(move |request: Request<Incoming>| {
            let _ = seen.send(request.into_parts().0);
            let mut response = Response::new(Full::new(Bytes::from_static(b"body")));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            async move { Ok::<_, Infallible>(response) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    /// A loopback HTTP/1 server answering every request with `status`.
    async fn http_server(status: u16) -> (SocketAddr, mpsc::UnboundedReceiver<Parts>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_http1(stream, status, seen.clone()));
            }
        });
        (addr, requests)
    }

    /// What the test gRPC server answers.
    #[derive(Clone, Copy)]
    enum Answer {
        /// A `HealthCheckResponse` with this status, then `grpc-status: 0`.
        Status(u64),
        /// A trailers-only response with this `grpc-status`.
        TrailersOnly(u32),
    }

    fn grpc_answer(answer: Answer) -> Response<BoxBody<Bytes, Infallible>> {
        let response = Response::builder().header(CONTENT_TYPE, "application/grpc");
        match answer {
            Answer::Status(status) => {
                let mut message = vec![0x08]; // field 1, varint
                put_varint(&mut message, status);
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                let body = Full::new(grpc_frame(&message).unwrap())
                    .with_trailers(std::future::ready(Some(Ok(trailers))));
                response.body(body.boxed()).unwrap()
            }
            Answer::TrailersOnly(code) => response
                .header("grpc-status", code.to_string())
                .header("grpc-message", "unknown%20service")
                .body(Empty::new().boxed())
                .unwrap(),
        }
    }

    /// A loopback h2c server answering every call with `answer`, reporting each request
    /// head and body.
    async fn grpc_server(answer: Answer) -> (SocketAddr, mpsc::UnboundedReceiver<(Parts, Bytes)>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let (head, body) = request.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        let _ = seen.send((head, body));
                        Ok::<_, Infallible>(grpc_answer(answer))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        (addr, requests)
    }

    // --- State ---

    #[test]
    fn defaults_match_the_documentation() {
        let check = Check::default();
        assert_eq!(check.kind, Kind::Tcp);
        assert_eq!(check.interval, Duration::from_secs(10));
        assert_eq!(check.timeout, Duration::from_secs(1));
        assert_eq!((check.unhealthy_threshold, check.healthy_threshold), (3, 2));
        assert_eq!(
            Kind::http("/", "svc"),
            Kind::Http {
                path: "/".into(),
                host: "svc".into(),
                expected: vec![200..=399]
            }
        );
    }

    #[test]
    fn new_endpoint_starts_unhealthy() {
        assert!(!State::new().is_healthy());
    }

    #[test]
    fn new_endpoint_becomes_healthy_on_first_pass() {
        let state = State::new();
        let check = Check::default();
        assert_eq!(state.observe(&check, false), None);
        assert_eq!(state.observe(&check, false), None);
        assert!(!state.is_healthy());
        assert_eq!(state.observe(&check, true), Some(true));
        assert!(state.is_healthy());
    }

    #[test]
    fn healthy_endpoint_turns_unhealthy_on_third_consecutive_failure() {
        let state = State::new();
        let check = Check::default();
        state.observe(&check, true);
        assert_eq!(state.observe(&check, false), None);
        assert_eq!(state.observe(&check, false), None);
        assert!(state.is_healthy());
        assert_eq!(state.observe(&check, false), Some(false));
        assert!(!state.is_healthy());
    }

    #[test]
    fn a_pass_resets_the_failure_count() {
        let state = State::new();
        let check = Check::default();
        for passed in [true, false, false, true, false, false] {
            state.observe(&check, passed);
        }
        assert!(state.is_healthy());
    }

    #[test]
    fn unhealthy_endpoint_needs_two_consecutive_passes_to_return() {
        let state = State::new();
        let check = Check::default();
        for passed in [true, false, false, false] {
            state.observe(&check, passed);
        }
        assert_eq!(state.observe(&check, true), None);
        assert_eq!(state.observe(&check, false), None);
        assert_eq!(state.observe(&check, true), None);
        assert!(!state.is_healthy());
        assert_eq!(state.observe(&check, true), Some(true));
        assert!(state.is_healthy());
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let state = State::new();
        let check = Check {
            unhealthy_threshold: 0,
            healthy_threshold: 0,
            ..Check::default()
        };
        assert_eq!(state.observe(&check, true), Some(true));
        assert_eq!(state.observe(&check, false), Some(false));
        assert_eq!(state.observe(&check, true), Some(true));
    }

    // --- Tcp ---

    #[tokio::test]
    async fn tcp_check_passes_on_listening_port() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dialer = tcp_dialer(listener.local_addr().unwrap());
        probe(&check(Kind::Tcp), &dialer).await.unwrap();
    }

    #[tokio::test]
    async fn tcp_check_fails_on_closed_port() {
        let (_socket, addr) = refusing_port();
        let result = probe(&check(Kind::Tcp), &tcp_dialer(addr)).await;
        assert!(matches!(result, Err(Failure::Dial(_))), "{result:?}");
    }

    // --- Http ---

    #[tokio::test]
    async fn http_check_passes_on_200() {
        let (addr, _requests) = http_server(200).await;
        probe(&check(Kind::http("/healthz", "svc")), &tcp_dialer(addr))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn http_check_fails_on_503() {
        let (addr, _requests) = http_server(503).await;
        let result = probe(&check(Kind::http("/healthz", "svc")), &tcp_dialer(addr)).await;
        assert!(
            matches!(
                result,
                Err(Failure::Status(StatusCode::SERVICE_UNAVAILABLE))
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn http_check_honours_expected_ranges() {
        let cases: [(u16, Vec<RangeInclusive<u16>>, bool); 5] = [
            (204, vec![204..=204], true),
            (200, vec![204..=204, 300..=302], false),
            (301, vec![204..=204, 300..=302], true),
            (418, vec![400..=499], true),
            (404, vec![], false),
        ];
        for (status, expected, passes) in cases {
            let (addr, _requests) = http_server(status).await;
            let kind = Kind::Http {
                path: "/".into(),
                host: "svc".into(),
                expected: expected.clone(),
            };
            let result = probe(&check(kind), &tcp_dialer(addr)).await;
            assert_eq!(
                result.is_ok(),
                passes,
                "{status} against {expected:?}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn http_check_sends_path_host_and_identifying_headers() {
        let (addr, mut requests) = http_server(200).await;
        let kind = Kind::http("/ready?deep=1", "reviews.default.svc");
        probe(&check(kind), &tcp_dialer(addr)).await.unwrap();
        let request = requests.recv().await.unwrap();
        assert_eq!(request.method, Method::GET);
        assert_eq!(request.uri.path_and_query().unwrap(), "/ready?deep=1");
        assert_eq!(request.version, Version::HTTP_11);
        assert_eq!(request.headers[HOST], "reviews.default.svc");
        assert_eq!(request.headers[USER_AGENT], "weft-health-check");
        assert_eq!(request.headers[CONNECTION], "close");
    }

    #[tokio::test]
    async fn http_check_fails_within_timeout_when_server_never_answers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (read, mut got_request) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            let _ = read.send(());
            // Hold the connection open without answering.
            std::future::pending::<()>().await;
        });
        let check = Check {
            timeout: Duration::from_millis(200),
            ..check(Kind::http("/", "svc"))
        };
        let started = std::time::Instant::now();
        let result = probe(&check, &tcp_dialer(addr)).await;
        let took = started.elapsed();
        assert!(
            matches!(result, Err(Failure::Timeout(t)) if t == check.timeout),
            "{result:?}"
        );
        assert!(
            took >= check.timeout && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(got_request.try_recv().is_ok(), "the request was not sent");
    }

    #[tokio::test]
    async fn invalid_check_fails_without_dialing() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let dialer: Dialer = {
            let attempts = attempts.clone();
            Arc::new(move || -> DialFuture {
                attempts.fetch_add(1, Ordering::Relaxed);
                Box::pin(async { Err::<Box<dyn Io>, DialError>("unreachable".into()) })
            })
        };
        for kind in [
            Kind::http("healthz", "svc"),
            Kind::http("/", "bad\nhost"),
            Kind::grpc("", "not an authority"),
        ] {
            let result = probe(&check(kind), &dialer).await;
            assert!(
                matches!(result, Err(Failure::InvalidRequest(_))),
                "{result:?}"
            );
        }
        assert_eq!(attempts.load(Ordering::Relaxed), 0);
    }

    // --- Grpc ---

    #[tokio::test]
    async fn grpc_check_passes_when_serving() {
        let (addr, _requests) = grpc_server(Answer::Status(1)).await;
        probe(&check(Kind::grpc("", "")), &tcp_dialer(addr))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn grpc_check_fails_when_not_serving() {
        let (addr, _requests) = grpc_server(Answer::Status(2)).await;
        let result = probe(&check(Kind::grpc("reviews", "")), &tcp_dialer(addr)).await;
        assert!(matches!(result, Err(Failure::NotServing(2))), "{result:?}");
    }

    #[tokio::test]
    async fn grpc_check_fails_on_grpc_status_unimplemented() {
        let (addr, _requests) = grpc_server(Answer::TrailersOnly(12)).await;
        let result = probe(&check(Kind::grpc("", "")), &tcp_dialer(addr)).await;
        let Err(Failure::GrpcStatus { code, message }) = &result else {
            panic!("{result:?}");
        };
        assert_eq!((*code, message.as_str()), (12, "unknown%20service"));
        assert!(result.unwrap_err().to_string().contains("UNIMPLEMENTED"));
    }

    #[tokio::test]
    async fn grpc_check_sends_service_name_and_grpc_headers() {
        let (addr, mut requests) = grpc_server(Answer::Status(1)).await;
        let kind = Kind::grpc("reviews.v1.Reviews", "reviews.default.svc:9090");
        probe(&check(kind), &tcp_dialer(addr)).await.unwrap();
        let (head, body) = requests.recv().await.unwrap();
        assert_eq!(head.method, Method::POST);
        assert_eq!(head.uri.path(), "/grpc.health.v1.Health/Check");
        assert_eq!(head.uri.authority().unwrap(), "reviews.default.svc:9090");
        assert_eq!(head.headers[CONTENT_TYPE], "application/grpc");
        assert_eq!(head.headers[TE], "trailers");
        let mut frame = vec![0, 0, 0, 0, 20, 0x0a, 18];
        frame.extend_from_slice(b"reviews.v1.Reviews");
        assert_eq!(body.as_ref(), frame.as_slice());
    }

    #[test]
    fn whole_server_request_is_an_empty_message() {
        assert_eq!(
            grpc_frame(&health_check_request("")).unwrap().as_ref(),
            [0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn decodes_serving_status_and_skips_unknown_fields() {
        let cases: [(&[u8], u64); 5] = [
            (&[0, 0, 0, 0, 2, 0x08, 0x01], 1),
            (&[0, 0, 0, 0, 0], 0),
            // Unknown fields of each wire type around the status.
            (
                &[
                    0, 0, 0, 0, 13, 0x10, 0x05, 0x1a, 0x02, b'h', b'i', 0x08, 0x02, 0x25, 0, 0, 0,
                    0,
                ],
                2,
            ),
            (
                &[
                    0, 0, 0, 0, 16, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x08, 0x01, 0x2d, 1, 2, 3, 4,
                ],
                1,
            ),
            // The last value of a repeated field wins, as in protobuf.
            (&[0, 0, 0, 0, 4, 0x08, 0x02, 0x08, 0x01], 1),
        ];
        for (body, status) in cases {
            let decoded = serving_status(body);
            assert!(
                matches!(decoded, Ok(s) if s == status),
                "{body:?}: {decoded:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_messages() {
        let cases: [&[u8]; 12] = [
            &[],
            &[1, 0, 0, 0, 0],
            &[0, 0, 0, 0],
            &[0, 0, 0, 0, 2, 0x08],
            &[0, 0, 0, 0, 1, 0x08, 0x01],
            &[0, 0, 0, 0, 1, 0x08],
            &[0, 0, 0, 0, 2, 0x08, 0x81],
            &[0, 0, 0, 0, 2, 0x0a, 0x00],
            &[0, 0, 0, 0, 2, 0x00, 0x01],
            &[0, 0, 0, 0, 3, 0x12, 0x05, 0x00],
            &[0, 0, 0, 0, 1, 0x0b],
            &[
                0, 0, 0, 0, 12, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0x01,
            ],
        ];
        for body in cases {
            let decoded = serving_status(body);
            assert!(
                matches!(decoded, Err(Failure::Malformed(_))),
                "{body:?}: {decoded:?}"
            );
        }
        let overflow = [
            0, 0, 0, 0, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert!(matches!(
            serving_status(&overflow),
            Err(Failure::Malformed(_))
        ));
    }

    #[test]
    fn varint_round_trips() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut encoded = Vec::new();
            put_varint(&mut encoded, value);
            let mut input = encoded.as_slice();
            assert_eq!(varint(&mut input).unwrap(), value);
            assert!(input.is_empty());
        }
    }

    // --- spawn ---

    #[tokio::test]
    async fn endpoint_turns_unhealthy_after_threshold_failures_when_server_goes_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen, _requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (first, _) = listener.accept().await.unwrap();
            serve_http1(first, 200, seen.clone()).await;
            let (second, _) = listener.accept().await.unwrap();
            // Down before the second answer, so every later check is refused.
            drop(listener);
            serve_http1(second, 200, seen).await;
        });
        let state = Arc::new(State::new());
        // Before each check, record what load balancing would see.
        let history = Arc::new(Mutex::new(Vec::new()));
        let dialer: Dialer = {
            let (history, state, inner) = (history.clone(), state.clone(), tcp_dialer(addr));
            Arc::new(move || {
                history.lock().unwrap().push(state.is_healthy());
                inner()
            })
        };
        let _handle = spawn(
            check(Kind::http("/", "svc")),
            dialer,
            state.clone(),
            "test".into(),
        );
        until("six checks", || history.lock().unwrap().len() >= 6).await;
        let history = history.lock().unwrap()[..6].to_vec();
        // pass, pass, then three failures: unhealthy from the third on.
        assert_eq!(history, [false, true, true, true, true, false]);
        assert!(!state.is_healthy());
    }

    #[tokio::test]
    async fn dropping_the_handle_stops_the_checks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        tokio::spawn({
            let accepted = accepted.clone();
            async move {
                while listener.accept().await.is_ok() {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let state = Arc::new(State::new());
        let handle = spawn(
            check(Kind::Tcp),
            tcp_dialer(addr),
            state.clone(),
            "test".into(),
        );
        until("three checks", || accepted.load(Ordering::Relaxed) >= 3).await;
        assert!(state.is_healthy());
        drop(handle);
        // Let a connection already on its way arrive.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let settled = accepted.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(accepted.load(Ordering::Relaxed), settled);
    }

    #[tokio::test(start_paused = true)]
    async fn first_check_is_jittered_and_later_ones_are_an_interval_apart() {
        let started = tokio::time::Instant::now();
        let dials = Arc::new(Mutex::new(Vec::new()));
        let dialer: Dialer = {
            let dials = dials.clone();
            Arc::new(move || -> DialFuture {
                dials.lock().unwrap().push(tokio::time::Instant::now());
                Box::pin(async { Ok(Box::new(tokio::io::duplex(64).0) as Box<dyn Io>) })
            })
        };
        let check = Check::default();
        let _handle = spawn(check.clone(), dialer, Arc::new(State::new()), "test".into());
        tokio::time::sleep(Duration::from_secs(40)).await;
        let dials = dials.lock().unwrap().clone();
        assert!((4..=5).contains(&dials.len()), "{} checks", dials.len());
        assert!(dials[0] - started <= check.interval / 10);
        for pair in dials.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= check.interval * 9 / 10 && gap <= check.interval * 11 / 10,
                "{gap:?}"
            );
        }
    }
}
