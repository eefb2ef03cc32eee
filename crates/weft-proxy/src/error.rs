//! The one classification of every failure on the request path, both sides.
//!
//! A stage that cannot go on returns an [`Error`]; nothing after it guesses again what
//! went wrong. The value alone decides the four things a failure affects (pingora's
//! idea): the status (and shape) of the answer ([`Error::status`],
//! [`Error::into_response`]), the label it is counted and logged under
//! ([`Error::label`], [`Error::record`]), whether the request may be sent again
//! ([`Error::retry`]) and whether outlier detection holds it against the endpoint
//! ([`Error::counts_for_outlier`]). Who is to blame ([`Blame`]) is what decides them.
//!
//! It is not the error of connection handling (detection, TLS, HBONE), which never
//! produces a response, nor of the control plane.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode};

use crate::http::body::Body;
use crate::http::forward;
use crate::http::pool;
use crate::telemetry::{Metrics, Name};

/// `RESOURCE_EXHAUSTED`: what a rate-limited gRPC call is told.
pub const GRPC_RESOURCE_EXHAUSTED: u32 = 8;
/// `UNAVAILABLE`: an aborted gRPC call without a configured status.
pub const GRPC_UNAVAILABLE: u32 = 14;
/// `PERMISSION_DENIED`: what a gRPC call authorization refuses is told.
pub const GRPC_PERMISSION_DENIED: u32 = 7;

/// Why a request was not answered by its upstream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Downstream: the client's doing ===
    /// The request body could not be read from the client.
    #[error("request body could not be read: {0}")]
    BodyUnreadable(String),
    /// The request body did not arrive within the request's timeout.
    #[error("request timed out reading its body")]
    BodyTimeout,
    /// The request cannot be rewritten or redirected as its rule asks (an invalid
    /// result: the request's own parts are at fault). The text is the whole reason.
    #[error("{0}")]
    BadRequest(String),

    // === Upstream: the destination's doing ===
    /// No connection could be opened: nothing was sent.
    #[error("{0}")]
    Connect(String),
    /// The exchange broke after the request was (perhaps in part) sent: a reset, a
    /// closed connection.
    #[error("{0}")]
    Reset(String),
    /// The upstream broke the protocol (an unparsable response, an HTTP/2 protocol
    /// error).
    #[error("{0}")]
    Protocol(String),
    /// The attempt outlasted its per-try timeout or the request's timeout.
    #[error("request timed out")]
    Timeout,
    /// Every endpoint of the service is gone, unhealthy or ejected.
    #[error("no endpoints for {0}")]
    NoEndpoints(Arc<str>),
    /// The local app (inbound side) could not be reached or broke the exchange. It is
    /// not balanced, retried or ejected: whatever failed, the answer is 502.
    #[error("{0}")]
    App(String),

    // === Internal: this proxy's doing ===
    /// A rewrite or redirect failed for a reason that is not the request's.
    #[error("{0}")]
    Internal(String),
    /// A retry found no request to send (unreachable by construction).
    #[error("request could not be resent")]
    NotResent,

    // === Policy: configuration said no ===
    /// The service behind the listener was removed while the connection was open.
    #[error("service no longer configured")]
    NoService,
    /// No route rule matched the request.
    #[error("no route matched")]
    NoRoute,
    /// The matched rule has no backend with weight.
    #[error("no backend with weight")]
    NoBackend,
    /// A connection limit of the destination service (`BackendPolicy.connectionLimits`).
    #[error("{service}: {overflow}")]
    Limit {
        /// The destination service.
        service: Arc<str>,
        /// Which limit.
        overflow: Overflow,
    },
    /// An inbound rate limit (`InboundTrafficPolicy.rateLimits`).
    #[error("rate limited")]
    RateLimited {
        /// `Retry-After`, whole seconds.
        retry_after_secs: u64,
    },
    /// An injected abort (`InboundTrafficPolicy.faults`).
    #[error("fault injected")]
    Fault {
        /// The HTTP status to answer.
        status: StatusCode,
        /// The gRPC status to answer with, whatever the request (`None`: the
        /// request's kind decides).
        grpc_status: Option<u32>,
    },
    /// A plaintext request on a port that turned strict (mTLS only) while its
    /// connection was open.
    #[error("this port accepts mesh (mTLS) connections only")]
    PlaintextRefused,
    /// Refused by authorization: a `deny` rule, or a default `deny` no `allow` rule
    /// lifted. The answer names nothing of the policy; the proxy's log does.
    #[error("access denied")]
    Denied,
    /// Refused by an external authorization server, with its own answer.
    #[error("access denied ({})", .0.status)]
    ExtDenied(Box<ExtDenial>),
}

/// An external authorization server's refusal: what the caller is answered.
#[derive(Debug)]
pub struct ExtDenial {
    /// Its status (403 when the server gave none).
    pub status: StatusCode,
    /// Headers it asked for.
    pub headers: http::HeaderMap,
    /// Its body.
    pub body: bytes::Bytes,
}

/// Who is to blame for a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The client: a request that cannot be served as sent.
    Downstream,
    /// The destination: an endpoint or the local app.
    Upstream,
    /// This proxy.
    Internal,
    /// The configuration refused the request on purpose.
    Policy,
}

/// Whether a failed attempt may be sent again (the route's retry policy still has to
/// ask for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Nothing reached the upstream: safe whatever the method.
    Always,
    /// The upstream may have acted on the request: only a repeatable request, and
    /// only when the policy lists `status` among its codes (`None`: any code listed).
    IfRepeatable {
        /// The status the policy must list.
        status: Option<u16>,
    },
    /// Sending it again cannot help, or is this proxy's own refusal.
    Never,
}

impl Error {
    /// Classifies a failed attempt of the upstream pool. A connection-limit refusal
    /// inside a failed connect is the limit's, not the endpoint's.
    pub fn of_attempt(e: &pool::Error, service: &Arc<str>) -> Self {
        match e {
            pool::Error::Connect { source, .. } => {
                match source.downcast_ref::<Overflow>().copied() {
                    Some(overflow) => Self::Limit {
                        service: service.clone(),
                        overflow,
                    },
                    None => Self::Connect(e.to_string()),
                }
            }
            pool::Error::Http(h) if is_protocol(h) => Self::Protocol(e.to_string()),
            pool::Error::Http(_) => Self::Reset(e.to_string()),
        }
    }

    /// Who is to blame.
    pub fn blame(&self) -> Blame {
        match self {
            Self::BodyUnreadable(_) | Self::BodyTimeout | Self::BadRequest(_) => Blame::Downstream,
            Self::Connect(_)
            | Self::Reset(_)
            | Self::Protocol(_)
            | Self::Timeout
            | Self::NoEndpoints(_)
            | Self::App(_) => Blame::Upstream,
            Self::Internal(_) | Self::NotResent => Blame::Internal,
            Self::NoService
            | Self::NoRoute
            | Self::NoBackend
            | Self::Limit { .. }
            | Self::RateLimited { .. }
            | Self::Fault { .. }
            | Self::PlaintextRefused
            | Self::Denied
            | Self::ExtDenied(_) => Blame::Policy,
        }
    }

    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BodyUnreadable(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout | Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Connect(_)
            | Self::NoEndpoints(_)
            | Self::NoService
            | Self::NoBackend
            | Self::Limit { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Reset(_) | Self::Protocol(_) | Self::App(_) | Self::NotResent => {
                StatusCode::BAD_GATEWAY
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Fault { status, .. } => *status,
            Self::PlaintextRefused | Self::Denied => StatusCode::FORBIDDEN,
            Self::ExtDenied(d) => d.status,
        }
    }

    /// The label it is counted (policy refusals) and logged (all) under.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BodyUnreadable(_) => "downstream_body",
            Self::BodyTimeout => "downstream_timeout",
            Self::BadRequest(_) => "downstream_request",
            Self::Connect(_) => "upstream_connect",
            Self::Reset(_) => "upstream_reset",
            Self::Protocol(_) => "upstream_protocol",
            Self::Timeout => "upstream_timeout",
            Self::NoEndpoints(_) => "no_endpoints",
            Self::App(_) => "app",
            Self::Internal(_) | Self::NotResent => "internal",
            Self::NoService => "no_service",
            Self::NoRoute => "no_route",
            Self::NoBackend => "no_backend",
            Self::Limit { overflow, .. } => overflow.as_str(),
            Self::RateLimited { .. } => "rate_limited",
            Self::Fault { .. } => "fault_abort",
            Self::PlaintextRefused => "plaintext_refused",
            Self::Denied | Self::ExtDenied(_) => "denied",
        }
    }

    /// Its access-log response flag.
    pub fn flags(&self) -> crate::telemetry::access_log::ResponseFlags {
        use crate::telemetry::access_log::ResponseFlags as F;
        match self {
            Self::BodyUnreadable(_) | Self::BodyTimeout | Self::BadRequest(_) => {
                F::DOWNSTREAM_PROTOCOL_ERROR
            }
            Self::Connect(_) | Self::Reset(_) | Self::Protocol(_) | Self::App(_) => {
                F::UPSTREAM_CONNECTION_FAILURE
            }
            Self::Timeout => F::UPSTREAM_REQUEST_TIMEOUT,
            Self::NoEndpoints(_) => F::NO_HEALTHY_UPSTREAM,
            Self::Internal(_) | Self::NotResent => F::EMPTY,
            Self::NoService | Self::NoRoute | Self::NoBackend => F::NO_ROUTE,
            Self::Limit { .. } => F::UPSTREAM_OVERFLOW,
            Self::RateLimited { .. } => F::RATE_LIMITED,
            Self::Fault { .. } => F::FAULT_INJECTED,
            Self::PlaintextRefused | Self::Denied | Self::ExtDenied(_) => F::UNAUTHORIZED,
        }
    }

    /// Whether the request may be sent again.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Connect(_) => Retry::Always,
            Self::Reset(_) | Self::Protocol(_) => Retry::IfRepeatable { status: None },
            Self::Timeout => Retry::IfRepeatable { status: Some(504) },
            _ => Retry::Never,
        }
    }

    /// Whether outlier detection counts it against the endpoint (as a local failure:
    /// a 5xx and a gateway error).
    pub fn counts_for_outlier(&self) -> bool {
        matches!(
            self,
            Self::Connect(_) | Self::Reset(_) | Self::Protocol(_) | Self::Timeout
        )
    }

    /// Whether the route's response header edits (and a new affinity cookie) apply to
    /// its answer, as they do to the upstream's own: only for a failed exchange.
    pub fn is_exchange(&self) -> bool {
        self.counts_for_outlier()
    }

    /// Counts a policy refusal in the metric family that holds it (`service`: the
    /// destination's label). Other failures are counted by their status only.
    pub fn record(&self, metrics: &Metrics, service: &Name) {
        match self {
            Self::Limit {
                service: key,
                overflow,
            } => {
                Metrics::service_event(&metrics.overflows, service, overflow.as_str());
                tracing::debug!(service = %key, %overflow, "request refused by a connection limit");
            }
            Self::RateLimited { .. }
            | Self::Fault { .. }
            | Self::PlaintextRefused
            | Self::Denied
            | Self::ExtDenied(_) => {
                metrics.failure(self.label());
            }
            _ => {}
        }
    }

    /// The proxy's answer. Rate limits and faults answer a gRPC request (`grpc`) the
    /// gRPC way: HTTP 200, trailers-only, with a `grpc-status`.
    pub fn into_response(self, grpc: bool) -> Response<Body> {
        if let Self::ExtDenied(d) = self {
            if grpc {
                return grpc_refusal(GRPC_PERMISSION_DENIED, "access denied");
            }
            let ExtDenial {
                status,
                headers,
                body,
            } = *d;
            let mut resp = Response::new(Body::text(body));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            // The body's framing is this proxy's to decide.
            for framing in [
                http::header::CONTENT_LENGTH,
                http::header::TRANSFER_ENCODING,
                http::header::CONNECTION,
            ] {
                resp.headers_mut().remove(framing);
            }
            return resp;
        }
        let status = self.status();
        let grpc_status = match &self {
            Self::RateLimited { .. } if grpc => Some(GRPC_RESOURCE_EXHAUSTED),
            Self::Fault {
                grpc_status: Some(code),
                ..
            } => Some(*code),
            Self::Fault { .. } if grpc => Some(GRPC_UNAVAILABLE),
            Self::Denied if grpc => Some(GRPC_PERMISSION_DENIED),
            _ => None,
        };
        let mut resp = match grpc_status {
            Some(code) => grpc_refusal(code, &self.to_string()),
            None => forward::local(status, &format!("weft: {self}")),
        };
        let headers = resp.headers_mut();
        match self {
            Self::Limit { overflow, .. } => {
                headers.insert(
                    "x-weft-overflow",
                    HeaderValue::from_static(overflow.as_str()),
                );
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(
                    http::header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs),
                );
            }
            Self::PlaintextRefused => {
                headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

/// A trailers-only gRPC answer: HTTP 200 with `grpc-status` and `grpc-message`.
fn grpc_refusal(code: u32, message: &str) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&message.replace(' ', "%20")) {
        headers.insert("grpc-message", v);
    }
    resp
}

/// Whether a failed exchange broke the protocol rather than the connection.
fn is_protocol(e: &hyper::Error) -> bool {
    if e.is_parse() || e.is_parse_status() || e.is_user() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.reason().is_some_and(|r| {
                matches!(
                    r,
                    h2::Reason::PROTOCOL_ERROR
                        | h2::Reason::FRAME_SIZE_ERROR
                        | h2::Reason::COMPRESSION_ERROR
                        | h2::Reason::FLOW_CONTROL_ERROR
                )
            });
        }
        source = s.source();
    }
    false
}

/// Which connection limit of a service refused the work (`BackendPolicy.limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    /// `maxRequests` requests were in flight.
    #[error("{0} requests already in flight to the service (connectionLimits.maxRequests)")]
    Requests(usize),
    /// `maxPendingRequests` were already waiting for a connection.
    #[error("{0} requests already waiting for a connection to the service (connectionLimits.maxPendingRequests)")]
    Pending(usize),
    /// No connection closed within the connect timeout.
    #[error("{0} connections to the service are open and none closed in time (connectionLimits.maxConnections)")]
    Connections(usize),
}

impl Overflow {
    /// The metric label of the limit.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests(_) => "max_requests",
            Self::Pending(_) => "max_pending_requests",
            Self::Connections(_) => "max_connections",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant and its four decisions (status, label, retry, outlier), with
    /// who is to blame.
    #[test]
    fn every_failure_has_one_status_label_retry_and_outlier_decision() {
        use Blame::{Downstream, Internal, Policy, Upstream};
        let key: Arc<str> = Arc::from("echo.default");
        let if_repeatable = Retry::IfRepeatable { status: None };
        #[rustfmt::skip]
        let table: Vec<(Error, Blame, u16, &str, Retry, bool)> = vec![
            (Error::BodyUnreadable("eof".into()), Downstream, 400, "downstream_body", Retry::Never, false),
            (Error::BodyTimeout, Downstream, 504, "downstream_timeout", Retry::Never, false),
            (Error::BadRequest("bad path".into()), Downstream, 400, "downstream_request", Retry::Never, false),
            (Error::Connect("refused".into()), Upstream, 503, "upstream_connect", Retry::Always, true),
            (Error::Reset("reset".into()), Upstream, 502, "upstream_reset", if_repeatable, true),
            (Error::Protocol("parse".into()), Upstream, 502, "upstream_protocol", if_repeatable, true),
            (Error::Timeout, Upstream, 504, "upstream_timeout", Retry::IfRepeatable { status: Some(504) }, true),
            (Error::NoEndpoints(key.clone()), Upstream, 503, "no_endpoints", Retry::Never, false),
            (Error::App("refused".into()), Upstream, 502, "app", Retry::Never, false),
            (Error::Internal("rewrite".into()), Internal, 500, "internal", Retry::Never, false),
            (Error::NotResent, Internal, 502, "internal", Retry::Never, false),
            (Error::NoService, Policy, 503, "no_service", Retry::Never, false),
            (Error::NoRoute, Policy, 404, "no_route", Retry::Never, false),
            (Error::NoBackend, Policy, 503, "no_backend", Retry::Never, false),
            (Error::Limit { service: key.clone(), overflow: Overflow::Requests(1) }, Policy, 503, "max_requests", Retry::Never, false),
            (Error::Limit { service: key.clone(), overflow: Overflow::Pending(1) }, Policy, 503, "max_pending_requests", Retry::Never, false),
            (Error::Limit { service: key, overflow: Overflow::Connections(1) }, Policy, 503, "max_connections", Retry::Never, false),
            (Error::RateLimited { retry_after_secs: 1 }, Policy, 429, "rate_limited", Retry::Never, false),
            (Error::Fault { status: StatusCode::IM_A_TEAPOT, grpc_status: None }, Policy, 418, "fault_abort", Retry::Never, false),
            (Error::PlaintextRefused, Policy, 403, "plaintext_refused", Retry::Never, false),
            (Error::Denied, Policy, 403, "denied", Retry::Never, false),
            (Error::ExtDenied(Box::new(ExtDenial { status: StatusCode::UNAUTHORIZED, headers: http::HeaderMap::new(), body: bytes::Bytes::new() })), Policy, 401, "denied", Retry::Never, false),
        ];
        for (error, blame, status, label, retry, outlier) in table {
            let name = format!("{error:?}");
            assert_eq!(error.blame(), blame, "{name}: blame");
            assert_eq!(error.status().as_u16(), status, "{name}: status");
            assert_eq!(error.label(), label, "{name}: label");
            assert_eq!(error.retry(), retry, "{name}: retry");
            assert_eq!(error.counts_for_outlier(), outlier, "{name}: outlier");
            let resp = error.into_response(false);
            assert_eq!(resp.status().as_u16(), status, "{name}: response status");
        }
    }

    #[test]
    fn answers_carry_the_headers_their_refusal_promises() {
        let limit = Error::Limit {
            service: Arc::from("echo.default"),
            overflow: Overflow::Requests(3),
        }
        .into_response(false);
        assert_eq!(limit.headers()["x-weft-overflow"], "max_requests");
        let limited = Error::RateLimited {
            retry_after_secs: 2,
        }
        .into_response(false);
        assert_eq!(limited.headers()[http::header::RETRY_AFTER], "2");
        let refused = Error::PlaintextRefused.into_response(false);
        assert_eq!(refused.headers()[http::header::CONNECTION], "close");
    }

    #[test]
    fn grpc_requests_get_grpc_refusals_from_rate_limits_faults_and_denials() {
        #[rustfmt::skip]
        let table: Vec<(Error, bool, Option<&str>, u16)> = vec![
            (Error::RateLimited { retry_after_secs: 1 }, true, Some("8"), 200),
            (Error::RateLimited { retry_after_secs: 1 }, false, None, 429),
            (Error::Denied, true, Some("7"), 200),
            (Error::Denied, false, None, 403),
            (Error::Fault { status: StatusCode::SERVICE_UNAVAILABLE, grpc_status: None }, true, Some("14"), 200),
            (Error::Fault { status: StatusCode::SERVICE_UNAVAILABLE, grpc_status: Some(4) }, false, Some("4"), 200),
            (Error::Connect("refused".into()), true, None, 503),
        ];
        for (error, grpc, grpc_status, status) in table {
            let name = format!("{error:?} grpc={grpc}");
            let resp = error.into_response(grpc);
            assert_eq!(resp.status().as_u16(), status, "{name}");
            assert_eq!(
                resp.headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok()),
                grpc_status,
                "{name}"
            );
        }
    }

    #[test]
    fn a_connection_limit_inside_a_failed_connect_is_the_limits() {
        let key: Arc<str> = Arc::from("echo.default");
        let overflowed = pool::Error::Connect {
            source: Box::new(Overflow::Connections(2)),
            unsent: None,
        };
        assert!(matches!(
            Error::of_attempt(&overflowed, &key),
            Error::Limit {
                overflow: Overflow::Connections(2),
                ..
            }
        ));
        let refused = pool::Error::Connect {
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            unsent: None,
        };
        assert!(matches!(
            Error::of_attempt(&refused, &key),
            Error::Connect(_)
        ));
    }
}
