//! `RateLimit` and `FaultInjection`: validation, and compilation into the
//! `InboundPolicy` of every workload their target services select.
//!
//! Both are enforced by the destination's own proxies, on the requests they receive:
//! a rate limit is per workload instance (N instances allow N times the rate), and a
//! fault is injected before the app sees the request, so callers' retries, timeouts
//! and outlier detection meet it as they would a real failure. Every `RateLimit`
//! that covers a request applies; of the `FaultInjection`s, the oldest that matches.

use std::time::Duration;

use serde_json::Value;
use weft_api::pb::v1 as pb;
use weft_api::pb_convert::duration_to_pb;
use weft_api::resource::route::parse_duration;
use weft_api::resource::traffic::{FaultSpec, LimitBy, RateLimitSpec};
use weft_api::resource::{service, Object, PolicyTargetRef};

use crate::field::{self, Errors};
use crate::route::http::{proxy_match, validate_match};
use crate::status;

/// Checks a parsed `RateLimit` spec.
pub(crate) fn validate_rate_limit(spec: &RateLimitSpec, errors: &mut Errors) {
    field::validate_targets(errors, "RateLimit", &spec.target_refs);
    if spec.limits.is_empty() {
        errors.push(
            "spec.limits",
            "a RateLimit needs at least one limit, e.g. [{requests: 100, per: 1s}]",
        );
    }
    for (i, l) in spec.limits.iter().enumerate() {
        let path = format!("spec.limits[{i}]");
        if l.requests == 0 {
            errors.push(
                format!("{path}.requests"),
                "must be at least 1 (to refuse everything, use an authorization policy)",
            );
        }
        if let Some(per) = &l.per {
            field::positive_duration(errors, &format!("{path}.per"), per, weft_api::duration::MAX);
        }
        if l.burst == Some(0) {
            errors.push(format!("{path}.burst"), "must be at least 1");
        }
        for (m, mat) in l.matches.iter().enumerate() {
            validate_match(errors, &format!("{path}.matches[{m}]"), mat);
        }
    }
}

/// Checks a parsed `FaultInjection` spec.
pub(crate) fn validate_fault(spec: &FaultSpec, errors: &mut Errors) {
    field::validate_targets(errors, "FaultInjection", &spec.target_refs);
    if spec.delay.is_none() && spec.abort.is_none() {
        errors.push("spec", "a FaultInjection needs a delay, an abort, or both");
    }
    let share = |errors: &mut Errors, path: &str, p: f64| {
        if !(0.0..=100.0).contains(&p) {
            errors.push(path, format!("{p} is not a percentage (0-100)"));
        }
    };
    if let Some(d) = &spec.delay {
        share(errors, "spec.delay.percent", d.percent);
        field::positive_duration(
            errors,
            "spec.delay.fixedDelay",
            &d.fixed_delay,
            weft_api::duration::MAX,
        );
    }
    if let Some(a) = &spec.abort {
        share(errors, "spec.abort.percent", a.percent);
        if let Some(s) = a.http_status {
            if !(200..=599).contains(&s) {
                errors.push(
                    "spec.abort.httpStatus",
                    format!("{s} is not an HTTP status (200-599)"),
                );
            }
        }
        if let Some(g) = a.grpc_status {
            if g == 0 || g > 16 {
                errors.push(
                    "spec.abort.grpcStatus",
                    format!("{g} is not a gRPC error code (1-16, e.g. 14 UNAVAILABLE)"),
                );
            }
        }
    }
    for (m, mat) in spec.matches.iter().enumerate() {
        validate_match(errors, &format!("spec.matches[{m}]"), mat);
    }
}

/// A validated policy of either kind.
pub(crate) enum Policy<'a> {
    RateLimit(&'a Object, RateLimitSpec),
    Fault(&'a Object, FaultSpec),
}

impl Policy<'_> {
    pub(crate) fn object(&self) -> &Object {
        match self {
            Self::RateLimit(o, _) | Self::Fault(o, _) => o,
        }
    }

    fn targets(&self) -> &[PolicyTargetRef] {
        match self {
            Self::RateLimit(_, s) => &s.target_refs,
            Self::Fault(_, s) => &s.target_refs,
        }
    }

    fn source(&self) -> String {
        let o = self.object();
        let kind = match self {
            Self::RateLimit(..) => "RateLimit",
            Self::Fault(..) => "FaultInjection",
        };
        format!("{kind}/{}/{}", o.namespace(), o.metadata.name)
    }
}

/// Oldest first, then by namespace and name: the order faults are tried in.
pub(crate) fn sort(policies: &mut [Policy<'_>]) {
    policies.sort_by(|a, b| crate::age_order(a.object()).cmp(&crate::age_order(b.object())));
}

/// What `policies` add to the `InboundPolicy` of a workload in `namespace` with
/// `labels`, given the services that exist.
pub(crate) fn for_workload(
    policies: &[Policy<'_>],
    services: &[(&Object, service::Spec)],
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
    policy: &mut pb::InboundPolicy,
) {
    for p in policies {
        if p.object().namespace() != namespace {
            continue;
        }
        let mut ports: Vec<u32> = Vec::new();
        for t in p.targets() {
            let Some((_, spec)) = services
                .iter()
                .find(|(o, _)| o.namespace() == namespace && o.metadata.name == t.name)
            else {
                continue;
            };
            if !crate::service::selects(spec, labels) {
                continue;
            }
            for port in &spec.ports {
                let target = u32::from(port.target_port.unwrap_or(port.port));
                if !ports.contains(&target) {
                    ports.push(target);
                }
            }
        }
        if ports.is_empty() {
            continue;
        }
        ports.sort_unstable();
        match p {
            Policy::RateLimit(_, spec) => {
                for l in &spec.limits {
                    policy.rate_limits.push(pb::RateLimit {
                        ports: ports.clone(),
                        matches: l
                            .matches
                            .iter()
                            .map(|m| pb::RouteMatch::from(&proxy_match(m)))
                            .collect(),
                        requests: l.requests,
                        per: Some(duration_to_pb(
                            l.per
                                .as_deref()
                                .and_then(|t| parse_duration(t).ok())
                                .unwrap_or(Duration::from_secs(1)),
                        )),
                        burst: l.burst.unwrap_or(0),
                        per_identity: l.by == LimitBy::Identity,
                        source: p.source(),
                    });
                }
            }
            Policy::Fault(_, spec) => {
                policy.faults.push(pb::Fault {
                    ports,
                    matches: spec
                        .matches
                        .iter()
                        .map(|m| pb::RouteMatch::from(&proxy_match(m)))
                        .collect(),
                    delay_per_million: spec
                        .delay
                        .as_ref()
                        .map_or(0, |d| weft_api::proxy::per_million(d.percent)),
                    delay: spec
                        .delay
                        .as_ref()
                        .and_then(|d| parse_duration(&d.fixed_delay).ok().map(duration_to_pb)),
                    abort_per_million: spec
                        .abort
                        .as_ref()
                        .map_or(0, |a| weft_api::proxy::per_million(a.percent)),
                    abort_http_status: spec
                        .abort
                        .as_ref()
                        .map_or(0, |a| u32::from(a.http_status.unwrap_or(503))),
                    abort_grpc_status: spec.abort.as_ref().and_then(|a| a.grpc_status),
                    source: p.source(),
                });
            }
        }
    }
}

/// The status of each policy: per target, whether the service exists.
pub(crate) fn statuses(
    policies: &[Policy<'_>],
    services: &[(&Object, service::Spec)],
) -> Vec<Value> {
    policies
        .iter()
        .map(|p| {
            let o = p.object();
            let ns = o.namespace();
            let ancestors: Vec<Value> = p
                .targets()
                .iter()
                .map(|t| {
                    let exists = services
                        .iter()
                        .any(|(s, _)| s.namespace() == ns && s.metadata.name == t.name);
                    let (reason, message) = if exists {
                        (
                            "Accepted",
                            format!("applies to the workloads of Service {ns}/{}", t.name),
                        )
                    } else {
                        (
                            "TargetNotFound",
                            format!("Service {ns}/{} does not exist", t.name),
                        )
                    };
                    status::policy_ancestor(
                        ns,
                        &t.name,
                        exists,
                        reason,
                        &message,
                        o.metadata.generation,
                    )
                })
                .collect();
            serde_json::json!({ "ancestors": ancestors })
        })
        .collect()
}
