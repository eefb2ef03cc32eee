//! Services and their backend policy: unique names and ports, endpoints, limits,
//! outlier detection, health checks.

use std::collections::HashSet;

use super::{looks_like_spiffe, name, Errors};
use crate::proxy::Config;

pub(super) fn services(config: &Config, errors: &mut Errors) {
    let mut keys = HashSet::new();
    let mut vips = HashSet::new();
    for (i, s) in config.services.iter().enumerate() {
        let path = format!("services[{i}]");
        name(&format!("{path}.name"), &s.name, errors);
        name(&format!("{path}.namespace"), &s.namespace, errors);
        if !keys.insert(s.key()) {
            errors.push(
                format!("{path}.name"),
                format!("service {} is defined twice", s.key()),
            );
        }
        if let Some(vip) = s.vip {
            if !vips.insert(vip) {
                errors.push(
                    format!("{path}.vip"),
                    format!("{vip} is used by another service"),
                );
            }
        }
        if s.ports.is_empty() {
            errors.push(format!("{path}.ports"), "a service needs at least one port");
        }
        let mut ports = HashSet::new();
        for (p, port) in s.ports.iter().enumerate() {
            if port.port == 0 || port.target_port == Some(0) {
                errors.push(format!("{path}.ports[{p}]"), "ports must be 1-65535");
            }
            if !ports.insert(port.port) {
                errors.push(
                    format!("{path}.ports[{p}].port"),
                    format!("port {} is listed twice", port.port),
                );
            }
        }
        for (e, ep) in s.endpoints.iter().enumerate() {
            if let Some(id) = &ep.identity {
                if !looks_like_spiffe(id) {
                    errors.push(
                        format!("{path}.endpoints[{e}].identity"),
                        format!(
                            "{id:?} is not a SPIFFE ID (expected spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/ACCOUNT)"
                        ),
                    );
                }
            } else if ep.hbone.is_some() {
                errors.push(
                    format!("{path}.endpoints[{e}].hbone"),
                    "set identity too: HBONE needs the SPIFFE ID the peer proxy must present",
                );
            }
        }
        policy(&path, s, errors);
    }
}

/// A service's `policy`: what its load balancer needs, and values in range.
fn policy(path: &str, s: &crate::proxy::Service, errors: &mut Errors) {
    let p = &s.policy;
    match (&p.hash_on, s.load_balancer.hashes()) {
        (None, true) => errors.push(
            format!("{path}.policy.hashOn"),
            format!(
                "the {:?} load balancer needs something to hash, e.g. hashOn: {{header: x-user-id}}",
                s.load_balancer
            ),
        ),
        (Some(_), false) => errors.push(
            format!("{path}.policy.hashOn"),
            "only used by the ringHash and maglev load balancers; set loadBalancer or remove it",
        ),
        (Some(crate::proxy::HashOn::Header(h)), true) if !crate::proxy::is_token(h) => {
            errors.push(
                format!("{path}.policy.hashOn.header"),
                format!("{h:?} is not a header name"),
            );
        }
        (Some(crate::proxy::HashOn::Cookie(c)), true) if !crate::proxy::is_token(&c.name) => errors.push(
            format!("{path}.policy.hashOn.cookie.name"),
            format!("{:?} is not a cookie name (an RFC 6265 token)", c.name),
        ),
        _ => {}
    }
    for (field, value) in [
        ("panicThresholdPercent", p.panic_threshold_percent),
        ("retryBudget.percent", p.retry_budget.percent),
        ("locality.minHealthyPercent", p.locality.min_healthy_percent),
    ] {
        if value > 100 {
            errors.push(
                format!("{path}.policy.{field}"),
                format!("{value} is not a percentage (0-100)"),
            );
        }
    }
    let limits = &p.limits;
    for (field, value) in [
        ("maxConnections", limits.max_connections),
        ("maxPendingRequests", limits.max_pending_requests),
        ("maxRequests", limits.max_requests),
        (
            "maxRequestsPerConnection",
            limits.max_requests_per_connection.unwrap_or(1),
        ),
    ] {
        if value == 0 {
            errors.push(
                format!("{path}.policy.limits.{field}"),
                "must be at least 1 (a limit of 0 would refuse everything)",
            );
        }
    }
    if let Some(o) = &p.outlier_detection {
        let opath = format!("{path}.policy.outlierDetection");
        if o.max_ejection_percent > 100 {
            errors.push(
                format!("{opath}.maxEjectionPercent"),
                format!("{} is not a percentage (0-100)", o.max_ejection_percent),
            );
        }
        if o.interval.is_zero() || o.base_ejection_time.is_zero() {
            errors.push(
                opath.clone(),
                "interval and baseEjectionTime must be positive",
            );
        }
        if o.max_ejection_time < o.base_ejection_time {
            errors.push(
                format!("{opath}.maxEjectionTime"),
                "must be at least baseEjectionTime",
            );
        }
    }
    if let Some(h) = &p.health_check {
        let hpath = format!("{path}.policy.healthCheck");
        if !s.ports.iter().any(|port| port.target() == h.port) {
            errors.push(
                format!("{hpath}.port"),
                format!(
                    "{} is not a target port of the service (checks go to the endpoints' ports)",
                    h.port
                ),
            );
        }
        if h.interval.is_zero() || h.timeout.is_zero() {
            errors.push(hpath.clone(), "interval and timeout must be positive");
        }
        if h.unhealthy_threshold == 0 || h.healthy_threshold == 0 {
            errors.push(hpath.clone(), "thresholds must be at least 1");
        }
        if let crate::proxy::HealthCheckKind::Http {
            path: p, expected, ..
        } = &h.check
        {
            if !p.starts_with('/') {
                errors.push(
                    format!("{hpath}.check.http.path"),
                    format!("{p:?} must start with '/'"),
                );
            }
            for (i, (low, high)) in expected.iter().enumerate() {
                if !(100..=599).contains(low) || !(100..=599).contains(high) || low > high {
                    errors.push(
                        format!("{hpath}.check.http.expected[{i}]"),
                        format!("[{low}, {high}] is not a status range (100-599, low ≤ high)"),
                    );
                }
            }
        }
    }
}
