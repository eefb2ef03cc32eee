//! Stage 5, attempts: sends the request to an endpoint and, when the route's retry
//! policy asks and it is safe, again to another one — within the retry budget, after
//! a backoff, each attempt within its per-try timeout and all within the request's
//! timeout — feeding every outcome to outlier detection.
//!
//! Whether a failure may be retried and whether it counts against the endpoint are the
//! classification's ([`crate::error::Error`]); which statuses the route retries and the
//! backoff are [`crate::outbound::retry`]'s, the budget [`crate::upstream::budget`]'s.
//! Sending itself is the caller's (`send`), so the loop runs in tests without sockets.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};

use crate::error::Error;
use crate::http::body::Body;
use crate::http::request_body::RequestBody;
use crate::http::{headers, pool};
use crate::outbound::retry;
use crate::route::Rule;
use crate::telemetry::Metrics;
use crate::upstream::{outlier, EndpointState, ServiceState, Target};

/// Bodies up to this size are held so a request can be retried; larger ones are sent
/// once.
pub const MAX_RETRY_BODY: u64 = 64 * 1024;

/// The attempts of one request to one service under one rule.
#[derive(Debug)]
pub struct Attempts<'a> {
    service: &'a ServiceState,
    rule: &'a Rule<Target>,
    /// The affinity key's hash, for a hashing balancer.
    hash: Option<u64>,
    /// The request's timeout, from when it arrived.
    deadline: Option<Instant>,
    method: http::Method,
    /// A protocol upgrade (WebSocket): sent once, never held or mirrored.
    upgrade: bool,
}

/// A request held so it can be sent again: its head and its whole body.
#[derive(Debug)]
pub struct Resend {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    body: bytes::Bytes,
}

// === impl Attempts ===

impl<'a> Attempts<'a> {
    /// The attempts of `req`, which arrived at `started`, to `service` under `rule`.
    pub fn new<B>(
        rule: &'a Rule<Target>,
        service: &'a ServiceState,
        hash: Option<u64>,
        started: Instant,
        req: &Request<B>,
    ) -> Self {
        Self {
            service,
            rule,
            hash,
            deadline: rule.timeout.and_then(|t| started.checked_add(t)),
            method: req.method().clone(),
            upgrade: req.version() <= http::Version::HTTP_11 && headers::is_upgrade(req.headers()),
        }
    }

    /// Whether the request upgrades its connection (and is therefore sent once).
    pub fn upgrade(&self) -> bool {
        self.upgrade
    }

    /// Whether `req` is held for retries (and mirrors) before its first attempt: when
    /// the rule may retry it or it is `mirrored`, a repeatable method (any, when
    /// mirrored) and a body of known size up to [`MAX_RETRY_BODY`]. Otherwise the
    /// request goes once, streamed. A plain function, so a request that is not held is
    /// not moved into and out of [`Self::hold`]'s future.
    pub fn holds(&self, req: &Request<RequestBody>, mirrored: bool) -> bool {
        use http_body::Body as _;
        let policy = &self.rule.retry;
        let retryable =
            policy.attempts > 0 && (!policy.codes.is_empty() || !policy.grpc_codes.is_empty());
        if self.upgrade || (!retryable && !mirrored) {
            return false;
        }
        // A mirrored request is copied whatever its method; retries check it again.
        let repeatable = mirrored
            || policy.non_idempotent
            || !policy.grpc_codes.is_empty()
            || retry::idempotent(&self.method);
        repeatable
            && (req.body().is_end_stream()
                || req
                    .body()
                    .size_hint()
                    .exact()
                    .is_some_and(|n| n <= MAX_RETRY_BODY))
    }

    /// Holds `req` (one [`Self::holds`] accepted): its head and its whole body, read
    /// first within the request's deadline.
    pub async fn hold(&self, req: Request<RequestBody>) -> Result<Resend, Error> {
        use http_body::Body as _;
        use http_body_util::BodyExt as _;
        let (parts, body) = req.into_parts();
        // Most retried requests (GETs) have no body: nothing to read, no timer to arm.
        let body = if body.is_end_stream() {
            bytes::Bytes::new()
        } else {
            let collect = body.collect();
            let collected = match self.deadline {
                Some(d) => tokio::time::timeout_at(d.into(), collect)
                    .await
                    .map_err(|_| Error::BodyTimeout)?,
                None => collect.await,
            };
            collected
                .map_err(|e| Error::BodyUnreadable(e.to_string()))?
                .to_bytes()
        };
        Ok(Resend {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }

    /// Sends the request (`next`, else built from `resend`) through `send` until an
    /// answer is final: a response or failure the policy does not retry, no retry
    /// left, no time left, or no budget.
    pub async fn run<F, Fut>(
        &self,
        mut next: Option<Request<RequestBody>>,
        resend: Option<&Resend>,
        metrics: &Metrics,
        tried: &mut Tried,
        send: F,
    ) -> Result<Response<Body>, Error>
    where
        F: Fn(&Arc<EndpointState>, Request<RequestBody>) -> Fut,
        Fut: Future<Output = Result<Response<Body>, pool::Error>>,
    {
        let service = self.service;
        let policy = &self.rule.retry;
        let max_retries = if self.upgrade { 0 } else { policy.attempts };
        service.shared.budget.deposit();
        let mut retried = 0;
        let mut avoid: Option<Arc<EndpointState>> = None;
        loop {
            let Some((index, endpoint)) = service
                .pick_for(self.hash, avoid.as_ref())
                .map(|(i, e)| (i, e.clone()))
            else {
                return Err(Error::NoEndpoints(service.key.clone()));
            };
            // Plain matches, not `Option` combinators: each combinator moves (copies)
            // the request once more.
            let req = match (next.take(), resend) {
                (Some(req), _) => req,
                (None, Some(resend)) => resend.build(),
                (None, None) => return Err(Error::NotResent),
            };
            // One attempt, within its time limit. Inline rather than its own `async
            // fn`: every nested future holds another copy of the request, and the
            // whole request future is moved (copied) a few times per request.
            let limit = attempt_limit(self.rule.per_try_timeout, self.deadline);
            let mut in_flight = endpoint.stats.start();
            // Boxed: the send future (pool, hyper's dispatch) is the largest part of
            // the request's future; in a box the timeout and the await move a pointer,
            // not kilobytes, at the cost of one allocation (bench/RESULTS.md, issue 14).
            let sent = Box::pin(send(&endpoint, req));
            let sent = match limit {
                Some(t) => tokio::time::timeout(t, sent).await,
                None => Ok(sent.await),
            };
            let result = match sent {
                Ok(Ok(resp)) => {
                    // Load statistics measure the endpoint, not this proxy's dialling.
                    if let Some(dial) = resp.extensions().get::<pool::DialTime>() {
                        in_flight.exclude(dial.0);
                    }
                    Ok(resp)
                }
                Ok(Err(mut e)) => {
                    // A failed connect hands the untouched request back.
                    next = e.take_unsent();
                    Err(Error::of_attempt(&e, &service.key))
                }
                Err(_elapsed) => Err(Error::Timeout),
            };
            drop(in_flight);
            let outcome = match &result {
                Ok(resp) => retry::Outcome::of_response(resp.status(), resp.headers()),
                Err(e) => retry::Outcome::Failed(e.retry()),
            };
            if let Some(seen) = outlier_outcome(outcome, result.as_ref().err()) {
                observe(service, index, seen, metrics);
            }
            let retryable = retry::retries(policy, outcome, &self.method);
            tried.retries = retried;
            tried.exhausted = retryable && max_retries > 0 && retried >= max_retries;
            if retried < max_retries && retryable {
                let headers = result.as_ref().ok().map(Response::headers);
                let wait = retry::delay(policy.backoff, retried + 1, headers);
                let in_time =
                    wait.is_some_and(|w| self.deadline.is_none_or(|d| Instant::now() + w < d));
                if in_time && (next.is_some() || resend.is_some()) {
                    if service.shared.budget.withdraw() {
                        metrics.retry(&service.label, "retried");
                        tracing::debug!(service = %service.key, endpoint = %endpoint.address, ?outcome, retry = retried + 1, "retrying");
                        retried += 1;
                        avoid = Some(endpoint);
                        drop(result);
                        tokio::time::sleep(wait.unwrap_or_default()).await;
                        continue;
                    }
                    metrics.retry(&service.label, "budget_exhausted");
                }
            }
            if let Err(e) = &result {
                // Timeouts are not logged here: the 504 says it, as before.
                if e.is_exchange() && !matches!(e, Error::Timeout) {
                    tracing::warn!(service = %service.key, endpoint = %endpoint.address, error = %e, reason = e.label(), "upstream request failed");
                }
            }
            tried.endpoint = Some(endpoint);
            return result;
        }
    }
}

/// What the attempts did, for the answer's records.
#[derive(Debug, Default)]
pub struct Tried {
    /// The last endpoint tried.
    pub endpoint: Option<Arc<EndpointState>>,
    /// Retries sent.
    pub retries: u32,
    /// The last answer could have been retried, but the rule's retries were spent.
    pub exhausted: bool,
}

// === impl Resend ===

impl Resend {
    /// A fresh copy of the held request.
    pub fn build(&self) -> Request<RequestBody> {
        let mut req = Request::new(RequestBody::buffered(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// How long one attempt may take: the per-try timeout, within what is left of the
/// request's.
fn attempt_limit(per_try: Option<Duration>, deadline: Option<Instant>) -> Option<Duration> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match (per_try, left) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What outlier detection sees of an attempt: a response by its status, a failure
/// as the classification says (`None`: not held against the endpoint).
fn outlier_outcome(outcome: retry::Outcome, failure: Option<&Error>) -> Option<outlier::Outcome> {
    Some(match (failure, outcome) {
        (Some(e), _) => {
            return e
                .counts_for_outlier()
                .then_some(outlier::Outcome::LocalFailure)
        }
        (None, retry::Outcome::Response(status)) => outlier::Outcome::Status(status.as_u16()),
        // UNAVAILABLE is gRPC's 503; other gRPC errors are the application's.
        (None, retry::Outcome::Grpc(14)) => outlier::Outcome::Status(503),
        (None, _) => outlier::Outcome::Success,
    })
}

/// Feeds what an attempt to endpoint `index` of `service` saw to its outlier
/// detection, and logs and counts the ejections that follow.
pub fn observe(service: &ServiceState, index: usize, seen: outlier::Outcome, metrics: &Metrics) {
    let Some(detector) = &service.outlier else {
        return;
    };
    for ejection in detector.record(&service.endpoints, index, seen, Instant::now()) {
        let endpoint = service.endpoints.get(ejection.index).map(|e| e.address);
        tracing::warn!(
            service = %service.key,
            endpoint = ?endpoint,
            reason = ejection.reason.as_str(),
            duration = ?ejection.duration,
            "ejecting endpoint (outlier detection)"
        );
        Metrics::service_event(&metrics.ejections, &service.label, ejection.reason.as_str());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::net::IpAddr;
    use std::sync::Mutex;

    use super::*;
    use crate::state::Snapshot;
    use crate::upstream::limits::Overflow;

    /// What the scripted upstream does with one attempt.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Answers with this status.
        Status(u16),
        /// Fails to connect (and hands the request back, as the pool does).
        Refused,
        /// Is refused by a connection limit.
        Overflow,
        /// Answers 200 after this long.
        Slow(Duration),
    }

    fn snapshot(policy: &str, rule: &str) -> Snapshot {
        let yaml = format!(
            r"
workload: {{ name: client, address: 10.0.0.1 }}
listeners: {{ hbone: null }}
services:
  - name: echo
    ports: [{{ port: 80, targetPort: 8080, protocol: http }}]
    endpoints: [{{ address: 10.0.0.2 }}, {{ address: 10.0.0.3 }}, {{ address: 10.0.0.4 }}]
    policy: {policy}
routes:
  - service: echo
    rules:
      - backends: [{{ service: echo }}]
        {rule}
"
        );
        let config = weft_api::proxy::Config::from_yaml(&yaml).expect("valid config");
        Snapshot::build(config, None, "v".into(), None).expect("snapshot")
    }

    /// What a scripted run ended with: the status answered (or of the failure), the
    /// endpoints tried in order, and how long it took on the paused clock.
    async fn run_script(
        snap: &Snapshot,
        method: http::Method,
        steps: &[Step],
    ) -> (u16, Vec<IpAddr>, Duration) {
        let target = snap.target("echo.default", 80).expect("target");
        let table = snap.routes(&target);
        let rule = &table.rules[0];
        let service = &target.service;
        let req = Request::builder()
            .method(method)
            .uri("/")
            .body(RequestBody::buffered(bytes::Bytes::new()))
            .expect("request");
        let attempts = Attempts::new(rule, service, None, Instant::now(), &req);
        let (first, held) = if attempts.holds(&req, false) {
            (None, Some(attempts.hold(req).await.expect("held")))
        } else {
            (Some(req), None)
        };
        let script = Mutex::new(steps.iter().copied().collect::<VecDeque<_>>());
        let tried = Mutex::new(Vec::new());
        let send = |endpoint: &Arc<EndpointState>, req: Request<RequestBody>| {
            tried.lock().expect("lock").push(endpoint.address);
            let step = script.lock().expect("lock").pop_front();
            async move {
                match step.expect("a step for every attempt") {
                    Step::Status(code) => {
                        let mut resp = Response::new(Body::empty());
                        *resp.status_mut() = http::StatusCode::from_u16(code).expect("status");
                        Ok(resp)
                    }
                    Step::Refused => Err(pool::Error::Connect {
                        source: Box::new(std::io::Error::from(
                            std::io::ErrorKind::ConnectionRefused,
                        )),
                        unsent: Some(Box::new(req)),
                    }),
                    Step::Overflow => Err(pool::Error::Connect {
                        source: Box::new(Overflow::Connections(1)),
                        unsent: Some(Box::new(req)),
                    }),
                    Step::Slow(wait) => {
                        tokio::time::sleep(wait).await;
                        Ok(Response::new(Body::empty()))
                    }
                }
            }
        };
        let metrics = Metrics::new();
        let clock = tokio::time::Instant::now();
        let result = attempts
            .run(first, held.as_ref(), &metrics, &mut Tried::default(), send)
            .await;
        let status = match result {
            Ok(resp) => resp.status().as_u16(),
            Err(e) => e.status().as_u16(),
        };
        let tried = tried.into_inner().expect("lock");
        (status, tried, clock.elapsed())
    }

    /// Name, backend policy, rule, method, script → final status, attempts made, and
    /// how long it took on the paused clock.
    struct Case(
        &'static str,
        &'static str,
        &'static str,
        http::Method,
        Vec<Step>,
        u16,
        usize,
        std::ops::RangeInclusive<Duration>,
    );

    /// Rule, method and script → final status, attempts made, and the paused clock's
    /// bounds on how long it took.
    #[tokio::test(start_paused = true)]
    async fn retries_what_the_rule_lists_while_it_is_safe_and_in_budget() {
        use Step::{Overflow, Refused, Slow, Status};
        let retry = "retry: { attempts: 2, codes: [503], backoff: 25ms }";
        let retry_504 =
            "perTryTimeout: 1s\n        retry: { attempts: 2, codes: [504], backoff: 25ms }";
        let per_try_only =
            "perTryTimeout: 1s\n        retry: { attempts: 2, codes: [503], backoff: 25ms }";
        let no_budget = "{ retryBudget: { percent: 0, minRetriesPerSecond: 0 } }";
        let get = http::Method::GET;
        let post = http::Method::POST;
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            Case("a listed status is retried", "{}", retry, get.clone(), vec![Status(503), Status(200)], 200, 2, ms(0)..=ms(25)),
            Case("retries stop at the rule's attempts", "{}", retry, get.clone(), vec![Status(503), Status(503), Status(503)], 503, 3, ms(0)..=ms(75)),
            Case("an unlisted status is final", "{}", retry, get.clone(), vec![Status(502)], 502, 1, ms(0)..=ms(0)),
            Case("a POST is not retried on a status", "{}", retry, post.clone(), vec![Status(503)], 503, 1, ms(0)..=ms(0)),
            Case("a refused connect is retried even for a POST", "{}", retry, post, vec![Refused, Status(200)], 200, 2, ms(0)..=ms(25)),
            Case("a connection limit is neither retried nor waited for", "{}", retry, get.clone(), vec![Overflow], 503, 1, ms(0)..=ms(0)),
            Case("a slow attempt is cut at its per-try timeout and retried", "{}", retry_504, get.clone(), vec![Slow(secs(10)), Status(200)], 200, 2, secs(1)..=ms(1025)),
            Case("a per-try timeout not listed is final", "{}", per_try_only, get.clone(), vec![Slow(secs(10))], 504, 1, secs(1)..=secs(1)),
            Case("no budget, no retry", no_budget, retry, get, vec![Status(503), Status(200)], 503, 1, ms(0)..=ms(0)),
        ];
        for Case(name, policy, rule, method, steps, status, attempts, took_within) in cases {
            let snap = snapshot(policy, rule);
            let (got, tried, took) = run_script(&snap, method, &steps).await;
            assert_eq!(got, status, "{name}: status");
            assert_eq!(tried.len(), attempts, "{name}: attempts ({tried:?})");
            assert!(
                took_within.contains(&took),
                "{name}: took {took:?}, expected {took_within:?}"
            );
            for pair in tried.windows(2) {
                assert_ne!(
                    pair[0], pair[1],
                    "{name}: a retry avoids the endpoint that failed"
                );
            }
        }
    }

    /// Attempt outcome → what outlier detection records.
    #[test]
    fn outlier_detection_sees_responses_and_upstream_failures_only() {
        use http::StatusCode;
        let key: Arc<str> = Arc::from("echo.default");
        #[rustfmt::skip]
        let cases: Vec<(retry::Outcome, Option<Error>, Option<outlier::Outcome>)> = vec![
            (retry::Outcome::Response(StatusCode::OK), None, Some(outlier::Outcome::Status(200))),
            (retry::Outcome::Response(StatusCode::BAD_GATEWAY), None, Some(outlier::Outcome::Status(502))),
            (retry::Outcome::Grpc(14), None, Some(outlier::Outcome::Status(503))),
            (retry::Outcome::Grpc(5), None, Some(outlier::Outcome::Success)),
            (retry::Outcome::Failed(crate::error::Retry::Always), Some(Error::Connect("refused".into())), Some(outlier::Outcome::LocalFailure)),
            (retry::Outcome::Failed(crate::error::Retry::Never), Some(Error::Limit { service: key, overflow: Overflow::Pending(1) }), None),
        ];
        for (outcome, failure, seen) in cases {
            assert_eq!(
                outlier_outcome(outcome, failure.as_ref()),
                seen,
                "{outcome:?} {failure:?}"
            );
        }
    }
}
