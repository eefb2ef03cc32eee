//! Stage 3, limits and affinity: the destination's request limit
//! (`BackendPolicy.connectionLimits.maxRequests`) admits the request or refuses it,
//! and the affinity key (`BackendPolicy.hashOn`) is hashed for a hashing balancer.
//!
//! The counters themselves are [`crate::upstream::limits`]; the hash table
//! [`crate::upstream::hash`].

use http::{HeaderValue, Request};

use crate::error::Error;
use crate::http::headers;
use crate::state::Snapshot;
use crate::upstream::hash;
use crate::upstream::limits::RequestGuard;
use crate::upstream::ServiceState;

/// The request, counted in flight against `service`'s limit until the guard drops;
/// refused when the limit is reached.
pub fn admit(service: &ServiceState) -> Result<RequestGuard, Error> {
    service
        .shared
        .limiter
        .request()
        .map_err(|overflow| Error::Limit {
            service: service.key.clone(),
            overflow,
        })
}

/// The affinity key's hash for a hashing load balancer, and the `Set-Cookie` value to
/// add to the response when the key is a cookie the request lacked (and the policy
/// gives it a lifetime): the new cookie is hashed, so the first request already goes
/// where the later ones will.
pub fn affinity<B>(
    service: &ServiceState,
    req: &Request<B>,
    snap: &Snapshot,
) -> (Option<u64>, Option<HeaderValue>) {
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
                HeaderValue::from_str(&set).ok(),
            )
        }
        Some(HashOn::SourceIp) => (Some(source_hash(snap)), None),
        None => (None, None),
    }
}

/// The caller's address as an affinity key: this workload's (the app is local).
pub fn source_hash(snap: &Snapshot) -> u64 {
    hash::key_hash(snap.config.workload.address.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(policy: &str) -> Snapshot {
        let yaml = format!(
            r"
workload: {{ name: client, address: 10.0.0.1 }}
listeners: {{ hbone: null }}
services:
  - name: echo
    ports: [{{ port: 80, targetPort: 8080, protocol: http }}]
    endpoints: [{{ address: 10.0.0.2 }}, {{ address: 10.0.0.3 }}]
    {policy}
"
        );
        let config = weft_api::proxy::Config::from_yaml(&yaml).expect("valid config");
        Snapshot::build(config, None, "v".into(), None).expect("snapshot")
    }

    #[test]
    fn admits_up_to_max_requests_then_refuses_until_one_finishes() {
        let snap = snapshot("policy: { limits: { maxRequests: 2 } }");
        let service = snap.service("echo.default").expect("service");
        let first = admit(service).expect("first admitted");
        let _second = admit(service).expect("second admitted");
        let refused = admit(service).expect_err("third refused");
        assert_eq!(refused.label(), "max_requests");
        assert_eq!(refused.status().as_u16(), 503);
        drop(first);
        assert!(admit(service).is_ok(), "a finished request frees its slot");
    }

    /// A request's headers.
    type Headers<'a> = &'a [(&'a str, &'a str)];

    /// Policy and request → whether a key is hashed, and whether a cookie is set.
    #[test]
    fn hashes_the_configured_key_and_sets_a_missing_cookie() {
        #[rustfmt::skip]
        let cases: Vec<(&str, Headers, bool, bool)> = vec![
            ("loadBalancer: ringHash\n    policy: { hashOn: { header: x-user } }", &[("x-user", "ann")], true, false),
            ("loadBalancer: ringHash\n    policy: { hashOn: { header: x-user } }", &[], false, false),
            ("loadBalancer: ringHash\n    policy: { hashOn: { cookie: { name: s, ttl: 1h } } }", &[("cookie", "s=abc")], true, false),
            ("loadBalancer: ringHash\n    policy: { hashOn: { cookie: { name: s, ttl: 1h } } }", &[], true, true),
            ("loadBalancer: ringHash\n    policy: { hashOn: { cookie: { name: s } } }", &[], false, false),
            ("loadBalancer: ringHash\n    policy: { hashOn: sourceIP }", &[], true, false),
            ("loadBalancer: roundRobin", &[("x-user", "ann")], false, false),
        ];
        for (policy, headers, hashed, cookie) in cases {
            let snap = snapshot(policy);
            let service = snap.service("echo.default").expect("service");
            let mut req = Request::get("/");
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let req = req.body(()).expect("request");
            let (hash, set) = affinity(service, &req, &snap);
            assert_eq!(hash.is_some(), hashed, "{policy} {headers:?}: hashed");
            assert_eq!(set.is_some(), cookie, "{policy} {headers:?}: cookie");
        }
    }
}
