//! Retries: which outcomes are sent again and how long to wait first.
//!
//! Not here: the retry budget that keeps retries from multiplying an outage
//! ([`crate::upstream::budget`], kept per destination service across reloads).

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use weft_api::proxy::Retry;

/// The longest `Retry-After` honoured; a longer one means "not now": no retry.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The backoff never exceeds this many times its base.
const BACKOFF_CAP_FACTOR: u32 = 10;

/// How an attempt ended, as retries see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A response with this status.
    Response(StatusCode),
    /// No response: the attempt failed, and its classification says whether
    /// sending it again is safe ([`crate::error::Error::retry`]).
    Failed(crate::error::Retry),
    /// A gRPC error in the response headers (a trailers-only answer): its
    /// `grpc-status`, never 0.
    Grpc(u32),
}

impl Outcome {
    /// The outcome of a response: its gRPC error if its headers carry one, else its
    /// status.
    pub fn of_response(status: StatusCode, headers: &HeaderMap) -> Self {
        let grpc = headers
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|code| *code != 0);
        match grpc {
            Some(code) if status == StatusCode::OK => Self::Grpc(code),
            _ => Self::Response(status),
        }
    }
}

/// Methods RFC 9110 §9.2.2 calls idempotent: sending them twice has the effect of
/// sending them once.
pub fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether `policy` retries `outcome` of a request with `method`. gRPC status codes
/// are retried whatever the method (every call is a POST): listing one says the
/// server did not act on the call, as `unavailable` and `resource-exhausted` mean.
pub fn retries(policy: &Retry, outcome: Outcome, method: &Method) -> bool {
    use crate::error::Retry as Safe;
    let repeatable = policy.non_idempotent || idempotent(method);
    match outcome {
        // Nothing reached the backend: always safe.
        Outcome::Failed(Safe::Always) => true,
        Outcome::Failed(Safe::Never) => false,
        Outcome::Failed(Safe::IfRepeatable { status: None }) => {
            repeatable && !policy.codes.is_empty()
        }
        Outcome::Failed(Safe::IfRepeatable {
            status: Some(status),
        }) => repeatable && policy.codes.contains(&status),
        Outcome::Response(status) => repeatable && policy.codes.contains(&status.as_u16()),
        Outcome::Grpc(code) => policy.grpc_codes.contains(&code),
    }
}

/// How long to wait before retry number `retry` (1 for the first): the response's
/// `Retry-After` (delay-seconds, up to [`MAX_RETRY_AFTER`]) if it has one, else an
/// exponential backoff from `base` with full jitter, capped at 10× `base`. `None`:
/// the response asked for a longer wait than a retry should take.
pub fn delay(base: Duration, retry: u32, headers: Option<&HeaderMap>) -> Option<Duration> {
    if let Some(after) = headers.and_then(|h| h.get(http::header::RETRY_AFTER)) {
        return match after
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(secs) => {
                let wait = Duration::from_secs(secs);
                (wait <= MAX_RETRY_AFTER).then_some(wait)
            }
            // An HTTP-date: the server wants a wait we cannot judge; fall back to
            // the backoff.
            None => Some(backoff(base, retry)),
        };
    }
    Some(backoff(base, retry))
}

fn backoff(base: Duration, retry: u32) -> Duration {
    let max = base.saturating_mul(BACKOFF_CAP_FACTOR);
    crate::backoff::full_jitter(crate::backoff::ceiling(base, max, retry.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn policy(codes: &[u16], non_idempotent: bool) -> Retry {
        Retry {
            attempts: 3,
            codes: codes.to_vec(),
            grpc_codes: Vec::new(),
            backoff: Duration::from_millis(10),
            non_idempotent,
        }
    }

    #[test]
    fn listed_grpc_codes_in_a_trailers_only_answer_are_retried_whatever_the_method() {
        let mut p = policy(&[], false);
        p.grpc_codes = vec![14];
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", http::HeaderValue::from_static("14"));
        let unavailable = Outcome::of_response(StatusCode::OK, &headers);
        assert_eq!(unavailable, Outcome::Grpc(14));
        assert!(retries(&p, unavailable, &Method::POST));
        headers.insert("grpc-status", http::HeaderValue::from_static("5"));
        let not_found = Outcome::of_response(StatusCode::OK, &headers);
        assert!(!retries(&p, not_found, &Method::POST), "5 is not listed");
        headers.insert("grpc-status", http::HeaderValue::from_static("0"));
        assert_eq!(
            Outcome::of_response(StatusCode::OK, &headers),
            Outcome::Response(StatusCode::OK),
            "0 is success"
        );
    }

    #[test]
    fn only_listed_codes_and_repeatable_methods_are_retried_but_a_failed_connect_always_is() {
        let p = policy(&[503], false);
        assert!(retries(
            &p,
            Outcome::Response(StatusCode::SERVICE_UNAVAILABLE),
            &Method::GET
        ));
        assert!(!retries(
            &p,
            Outcome::Response(StatusCode::INTERNAL_SERVER_ERROR),
            &Method::GET
        ));
        assert!(!retries(
            &p,
            Outcome::Response(StatusCode::SERVICE_UNAVAILABLE),
            &Method::POST
        ));
        assert!(
            retries(
                &p,
                Outcome::Failed(Error::Connect(String::new()).retry()),
                &Method::POST
            ),
            "nothing was sent"
        );
        assert!(retries(
            &p,
            Outcome::Failed(Error::Reset(String::new()).retry()),
            &Method::PUT
        ));
        assert!(!retries(
            &p,
            Outcome::Failed(Error::Reset(String::new()).retry()),
            &Method::POST
        ));
        assert!(
            !retries(&p, Outcome::Failed(Error::Timeout.retry()), &Method::GET),
            "504 is not listed"
        );
        assert!(retries(
            &policy(&[504], false),
            Outcome::Failed(Error::Timeout.retry()),
            &Method::GET
        ));
        let post = policy(&[503], true);
        assert!(retries(
            &post,
            Outcome::Response(StatusCode::SERVICE_UNAVAILABLE),
            &Method::POST
        ));
        let connect_only = Retry::connect_failure_only();
        assert!(!retries(
            &connect_only,
            Outcome::Failed(Error::Reset(String::new()).retry()),
            &Method::GET
        ));
        assert!(retries(
            &connect_only,
            Outcome::Failed(Error::Connect(String::new()).retry()),
            &Method::GET
        ));
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_ten_times_the_base_and_retry_after_wins() {
        let base = Duration::from_millis(10);
        for retry in 1..=8 {
            let cap = base * (1u32 << (retry - 1)).min(10);
            for _ in 0..50 {
                let d = delay(base, retry, None).expect("a delay");
                assert!(d <= cap, "retry {retry}: {d:?} > {cap:?}");
            }
        }
        let mut headers = HeaderMap::new();
        headers.insert(http::header::RETRY_AFTER, "2".parse().expect("value"));
        assert_eq!(delay(base, 1, Some(&headers)), Some(Duration::from_secs(2)));
        headers.insert(http::header::RETRY_AFTER, "3600".parse().expect("value"));
        assert_eq!(
            delay(base, 1, Some(&headers)),
            None,
            "too long to wait: no retry"
        );
        headers.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"),
        );
        assert!(delay(base, 1, Some(&headers)).is_some_and(|d| d <= base));
    }
}
