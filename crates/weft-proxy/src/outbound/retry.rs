//! Retries: which outcomes are sent again, how long to wait first, and the retry
//! budget that keeps retries from multiplying an outage.
//!
//! The budget is per destination service, in each proxy: every request deposits a
//! share of a retry (`BackendPolicy.retryBudget.percent`, default a fifth), a retry
//! withdraws a whole one, and the savings are capped ([`BUDGET_CAP_MILLI`]), so a long
//! healthy spell cannot pay for a storm later. On top of that a small floor
//! (`minRetriesPerSecond`, default 10) lets a quiet client retry at all. With every
//! request failing, a proxy sends at most about 1.2× the requests it was given, plus
//! the floor, however many attempts the routes allow. All of it is atomics: no lock on
//! the request path, and a reload changes the rates without losing the savings.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode};
use weft_api::proxy::Retry;

/// The most a budget saves, in thousandths of a retry: 10 retries.
pub const BUDGET_CAP_MILLI: i64 = 10_000;
/// The longest `Retry-After` honoured; a longer one means "not now": no retry.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The backoff never exceeds this many times its base.
const BACKOFF_CAP_FACTOR: u32 = 10;

/// One destination's retry budget.
#[derive(Debug)]
pub struct Budget {
    /// What each request deposits, in thousandths of a retry.
    ratio_milli: AtomicI64,
    /// Retries allowed each second regardless of the savings.
    floor_per_second: AtomicU32,
    /// Savings, in thousandths of a retry.
    balance: AtomicI64,
    /// The second (since the process started) the floor counter is for.
    second: AtomicU64,
    /// Floor retries used in that second.
    floor_used: AtomicU32,
}

impl Default for Budget {
    fn default() -> Self {
        Self::new(&weft_api::proxy::RetryBudget::default())
    }
}

impl Budget {
    /// An empty budget with `config`'s rates.
    pub fn new(config: &weft_api::proxy::RetryBudget) -> Self {
        let budget = Self {
            ratio_milli: AtomicI64::new(0),
            floor_per_second: AtomicU32::new(0),
            balance: AtomicI64::new(0),
            second: AtomicU64::new(0),
            floor_used: AtomicU32::new(0),
        };
        budget.set(config);
        budget
    }

    /// Applies new rates; the savings carry over.
    pub fn set(&self, config: &weft_api::proxy::RetryBudget) {
        self.ratio_milli
            .store(i64::from(config.percent.min(100)) * 10, Ordering::Relaxed);
        self.floor_per_second
            .store(config.min_retries_per_second, Ordering::Relaxed);
    }

    /// A request was sent (its first attempt).
    pub fn deposit(&self) {
        // In the healthy steady state the savings sit at the cap: a plain load keeps
        // the cache line shared between cores instead of writing it on every request.
        if self.balance.load(Ordering::Relaxed) >= BUDGET_CAP_MILLI {
            return;
        }
        let ratio = self.ratio_milli.load(Ordering::Relaxed);
        let before = self.balance.fetch_add(ratio, Ordering::Relaxed);
        if before + ratio > BUDGET_CAP_MILLI {
            self.balance.fetch_min(BUDGET_CAP_MILLI, Ordering::Relaxed);
        }
    }

    /// Takes one retry from the savings, else from this second's floor. `false`: the
    /// budget is spent, do not retry.
    pub fn withdraw(&self) -> bool {
        if self.balance.fetch_sub(1000, Ordering::Relaxed) >= 1000 {
            return true;
        }
        self.balance.fetch_add(1000, Ordering::Relaxed);
        let now = seconds();
        let second = self.second.load(Ordering::Relaxed);
        if second != now
            && self
                .second
                .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.floor_used.store(0, Ordering::Relaxed);
        }
        self.floor_used.fetch_add(1, Ordering::Relaxed)
            < self.floor_per_second.load(Ordering::Relaxed)
    }
}

/// Whole seconds since the first call (a coarse monotonic clock).
fn seconds() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs()
}

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
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    let ceiling = base.saturating_mul(factor.min(BACKOFF_CAP_FACTOR));
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
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
    fn with_every_request_failing_the_budget_allows_a_fifth_more_plus_the_floor() {
        let budget = Budget::default();
        let mut retried = 0;
        for _ in 0..1000 {
            budget.deposit();
            // Each request would like three retries.
            for _ in 0..3 {
                if budget.withdraw() {
                    retried += 1;
                }
            }
        }
        // 200 from the ratio, at most 10 from the floor of this second (and the next,
        // if the loop straddles one).
        assert!((200..=220).contains(&retried), "{retried} retries");
    }

    #[test]
    fn savings_are_capped_so_a_healthy_spell_cannot_fund_a_storm() {
        let budget = Budget::default();
        for _ in 0..100_000 {
            budget.deposit();
        }
        let mut retried = 0;
        while budget.withdraw() {
            retried += 1;
            assert!(retried < 1000, "unbounded");
        }
        let cap = usize::try_from(BUDGET_CAP_MILLI / 1000).expect("small");
        let floor = 10;
        assert!(retried <= cap + 2 * floor, "{retried}");
        assert!(retried >= cap, "{retried}");
    }

    #[test]
    fn a_configured_budget_changes_the_share_and_the_floor() {
        let budget = Budget::new(&weft_api::proxy::RetryBudget {
            percent: 50,
            min_retries_per_second: 0,
        });
        let mut retried = 0;
        for _ in 0..1000 {
            budget.deposit();
            if budget.withdraw() {
                retried += 1;
            }
        }
        // Half the requests may retry; with no floor, not one more.
        assert_eq!(retried, 500);
        budget.set(&weft_api::proxy::RetryBudget {
            percent: 0,
            min_retries_per_second: 0,
        });
        let mut more = 0;
        for _ in 0..100 {
            budget.deposit();
            if budget.withdraw() {
                more += 1;
            }
        }
        assert_eq!(more, 0, "a zero budget allows no retries");
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
