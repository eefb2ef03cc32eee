//! Stage 2, rate limit: the workload's local rate limits (`inbound.rateLimits`, or
//! the mesh's `RateLimit` objects), each checked in order; the first that is out of
//! tokens refuses the request with 429 (gRPC: `RESOURCE_EXHAUSTED`).
//!
//! The token buckets are [`crate::ratelimit`]; this stage asks them about one
//! request.

use std::time::Instant;

use http::Request;

use crate::error::Error;
use crate::outbound::stage::route::view;
use crate::ratelimit::{self, Decision};
use crate::state::InboundTraffic;

/// Whether a request to the app's `port` from the caller keyed `caller` (its SPIFFE
/// ID, for per-identity limits) is within every limit that covers it.
pub fn check<B>(
    traffic: &InboundTraffic,
    req: &Request<B>,
    port: u16,
    caller: Option<&str>,
) -> Result<(), Error> {
    if traffic.limits.is_empty() {
        return Ok(());
    }
    let authority = crate::outbound::authority(req);
    let view = view(req, authority.as_ref());
    let now = Instant::now();
    for (i, scope) in traffic.limits.iter().enumerate() {
        if !scope.covers(port, &view) {
            continue;
        }
        if let Decision::Limited { retry_after } = traffic.limiter.check(i, caller, now) {
            return Err(Error::RateLimited {
                retry_after_secs: ratelimit::retry_after_seconds(retry_after),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::stage::test_config::snapshot;

    /// One request: port, path, caller, whether it is allowed.
    type Try<'a> = (u16, &'a str, Option<&'a str>, bool);

    /// Limits → for a series of requests (port, path, caller), which are refused.
    #[test]
    fn refuses_what_a_covering_limit_has_no_tokens_for() {
        let one_per_minute = ", rateLimits: [{ ports: [8080], requests: 1, per: 1m }]";
        let per_identity = ", rateLimits: [{ requests: 1, per: 1m, perIdentity: true }]";
        let by_path =
            ", rateLimits: [{ matches: [{ path: { prefix: /api } }], requests: 1, per: 1m }]";
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Try>)> = vec![
            ("", vec![(8080, "/", None, true), (8080, "/", None, true)]),
            (one_per_minute, vec![(8080, "/", None, true), (8080, "/", None, false), (9090, "/", None, true)]),
            (per_identity, vec![(8080, "/", Some("a"), true), (8080, "/", Some("a"), false), (8080, "/", Some("b"), true)]),
            (by_path, vec![(8080, "/api/x", None, true), (8080, "/other", None, true), (8080, "/api/y", None, false)]),
        ];
        for (limits, requests) in cases {
            let snap = snapshot(limits);
            for (n, (port, path, caller, allowed)) in requests.into_iter().enumerate() {
                let req = Request::get(path).body(()).expect("request");
                let got = check(snap.inbound_traffic(), &req, port, caller);
                assert_eq!(
                    got.is_ok(),
                    allowed,
                    "{limits}: request {n} ({port} {path})"
                );
                if let Err(e) = got {
                    assert_eq!(e.status().as_u16(), 429);
                    assert_eq!(e.label(), "rate_limited");
                }
            }
        }
    }
}
