//! `BackendPolicy`: validation, and compilation into the `policy` (and load balancer)
//! of the proxy `Service` resource it targets.
//!
//! One policy per service applies: when several target the same service, the oldest
//! (then the first by name) wins and the others say `Accepted: False, Conflicted` on
//! their status. A service without one gets the defaults
//! ([`proxy::BackendPolicy::default`]), so every caller ejects an endpoint after 5
//! consecutive 5xx and keeps a retry budget even when nobody wrote a policy.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use weft_api::proxy;
use weft_api::resource::backend::{self as api, Algorithm, Spec};
use weft_api::resource::{service, Object};

use crate::field::{self, Errors};
use crate::status;

/// A policy as compile sees it: validated, with what it compiles to.
pub(crate) struct Policy<'a> {
    pub(crate) object: &'a Object,
    pub(crate) spec: Spec,
}

/// What a service gets from the policy that applies to it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Attached {
    pub(crate) load_balancer: proxy::LoadBalancer,
    pub(crate) policy: proxy::BackendPolicy,
}

impl Default for Attached {
    fn default() -> Self {
        Self {
            load_balancer: proxy::LoadBalancer::PeakEwma,
            policy: proxy::BackendPolicy::default(),
        }
    }
}

/// Checks a parsed `BackendPolicy` spec.
pub(crate) fn validate(spec: &Spec, errors: &mut Errors) {
    crate::field::validate_targets(errors, "BackendPolicy", &spec.target_refs);
    build(spec, errors);
}

/// The proxy form of `spec`, with every problem pushed to `errors`. The health check's
/// port is the service port as written; [`compile`] maps it to the target port.
fn build(spec: &Spec, errors: &mut Errors) -> Attached {
    let mut out = Attached::default();
    let policy = &mut out.policy;
    if let Some(lb) = &spec.load_balancer {
        out.load_balancer = match lb.kind {
            Algorithm::PeakEwma => proxy::LoadBalancer::PeakEwma,
            Algorithm::LeastRequest => proxy::LoadBalancer::LeastRequest,
            Algorithm::RoundRobin => proxy::LoadBalancer::RoundRobin,
            Algorithm::RingHash => proxy::LoadBalancer::RingHash,
            Algorithm::Maglev => proxy::LoadBalancer::Maglev,
        };
        policy.hash_on = hash_on(lb, out.load_balancer, errors);
        if let Some(s) = &lb.slow_start {
            policy.slow_start = field::positive_duration(
                errors,
                "spec.loadBalancer.slowStart.window",
                &s.window,
                weft_api::duration::MAX,
            );
        }
        if let Some(p) = lb.panic_threshold_percent {
            policy.panic_threshold_percent =
                percent(errors, "spec.loadBalancer.panicThresholdPercent", p);
        }
    }
    if let Some(l) = &spec.connection_limits {
        let limit = |errors: &mut Errors, field: &str, value: Option<u32>| match value {
            Some(0) => {
                errors.push(
                    format!("spec.connectionLimits.{field}"),
                    "must be at least 1 (0 would refuse every request)",
                );
                None
            }
            v => v,
        };
        let defaults = proxy::Limits::default();
        policy.limits = proxy::Limits {
            max_connections: limit(errors, "maxConnections", l.max_connections)
                .unwrap_or(defaults.max_connections),
            max_pending_requests: limit(errors, "maxPendingRequests", l.max_pending_requests)
                .unwrap_or(defaults.max_pending_requests),
            max_requests: limit(errors, "maxRequests", l.max_requests)
                .unwrap_or(defaults.max_requests),
            max_requests_per_connection: limit(
                errors,
                "maxRequestsPerConnection",
                l.max_requests_per_connection,
            ),
        };
    }
    if let Some(o) = &spec.outlier_detection {
        policy.outlier_detection = outlier(o, errors);
    }
    if let Some(h) = &spec.health_check {
        policy.health_check = health(h, errors);
    }
    if let Some(b) = &spec.retry_budget {
        let defaults = proxy::RetryBudget::default();
        policy.retry_budget = proxy::RetryBudget {
            percent: b.percent.map_or(defaults.percent, |p| {
                percent(errors, "spec.retryBudget.percent", p)
            }),
            min_retries_per_second: b
                .min_retries_per_second
                .unwrap_or(defaults.min_retries_per_second),
        };
    }
    if let Some(l) = &spec.locality {
        let defaults = proxy::Locality::default();
        policy.locality = proxy::Locality {
            prefer_zone: l.prefer_zone.unwrap_or(defaults.prefer_zone),
            min_healthy_percent: l
                .min_healthy_percent
                .map_or(defaults.min_healthy_percent, |p| {
                    percent(errors, "spec.locality.minHealthyPercent", p)
                }),
        };
    }
    out
}

fn hash_on(
    lb: &api::LoadBalancer,
    algorithm: proxy::LoadBalancer,
    errors: &mut Errors,
) -> Option<proxy::HashOn> {
    const PATH: &str = "spec.loadBalancer.hashOn";
    let Some(h) = &lb.hash_on else {
        if algorithm.hashes() {
            errors.push(
                PATH,
                format!(
                    "required by type {}: say what to hash, e.g. {{header: x-user-id}}, {{cookie: {{name: session, ttl: 1h}}}} or {{sourceIP: {{}}}}",
                    algorithm_name(algorithm)
                ),
            );
        }
        return None;
    };
    if !algorithm.hashes() {
        errors.push(
            PATH,
            format!(
                "only used by type ringHash or maglev, not {}",
                algorithm_name(algorithm)
            ),
        );
        return None;
    }
    let given = usize::from(h.header.is_some())
        + usize::from(h.cookie.is_some())
        + usize::from(h.source_ip.is_some());
    if given != 1 {
        errors.push(
            PATH,
            format!("set exactly one of header, cookie and sourceIP ({given} are set)"),
        );
        return None;
    }
    if let Some(name) = &h.header {
        if !proxy::is_token(name) {
            errors.push(
                format!("{PATH}.header"),
                format!("{name:?} is not a header name"),
            );
            return None;
        }
        return Some(proxy::HashOn::Header(name.to_ascii_lowercase()));
    }
    if let Some(c) = &h.cookie {
        if !proxy::is_token(&c.name) {
            errors.push(
                format!("{PATH}.cookie.name"),
                format!("{:?} is not a cookie name (an RFC 6265 token)", c.name),
            );
        }
        let ttl = c.ttl.as_deref().and_then(|t| {
            field::positive_duration(
                errors,
                &format!("{PATH}.cookie.ttl"),
                t,
                weft_api::duration::MAX_LIFETIME,
            )
        });
        let path = c.path.clone().unwrap_or_else(|| "/".to_owned());
        if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b';') {
            errors.push(
                format!("{PATH}.cookie.path"),
                format!("{path:?} must start with '/' and hold no ';' or control characters"),
            );
        }
        return Some(proxy::HashOn::Cookie(proxy::HashCookie {
            name: c.name.clone(),
            ttl,
            path,
        }));
    }
    Some(proxy::HashOn::SourceIp)
}

fn algorithm_name(lb: proxy::LoadBalancer) -> &'static str {
    match lb {
        proxy::LoadBalancer::PeakEwma => "peakEwma",
        proxy::LoadBalancer::LeastRequest => "leastRequest",
        proxy::LoadBalancer::RoundRobin => "roundRobin",
        proxy::LoadBalancer::RingHash => "ringHash",
        proxy::LoadBalancer::Maglev => "maglev",
    }
}

fn outlier(o: &api::OutlierDetection, errors: &mut Errors) -> Option<proxy::OutlierDetection> {
    const PATH: &str = "spec.outlierDetection";
    let d = proxy::OutlierDetection::default();
    let time = |errors: &mut Errors, field: &str, text: &Option<String>, default: Duration| {
        text.as_deref()
            .and_then(|t| {
                field::positive_duration(
                    errors,
                    &format!("{PATH}.{field}"),
                    t,
                    weft_api::duration::MAX,
                )
            })
            .unwrap_or(default)
    };
    let out = proxy::OutlierDetection {
        consecutive_5xx: match o.consecutive_5xx {
            Some(0) => None,
            Some(n) => Some(n),
            None => d.consecutive_5xx,
        },
        consecutive_gateway_errors: o.consecutive_gateway_errors.filter(|n| *n > 0),
        interval: time(errors, "interval", &o.interval, d.interval),
        base_ejection_time: time(
            errors,
            "baseEjectionTime",
            &o.base_ejection_time,
            d.base_ejection_time,
        ),
        max_ejection_time: time(
            errors,
            "maxEjectionTime",
            &o.max_ejection_time,
            d.max_ejection_time,
        ),
        max_ejection_percent: o.max_ejection_percent.map_or(d.max_ejection_percent, |p| {
            percent(errors, &format!("{PATH}.maxEjectionPercent"), p)
        }),
        success_rate: o.success_rate.as_ref().map(|r| {
            let d = proxy::SuccessRate::default();
            let factor = r.stdev_factor.unwrap_or(d.stdev_factor);
            if !(factor.is_finite() && factor > 0.0) {
                errors.push(
                    format!("{PATH}.successRate.stdevFactor"),
                    format!("{factor} must be a positive number (e.g. 1.9)"),
                );
            }
            let at_least_one = |errors: &mut Errors, field: &str, v: Option<u32>, default: u32| {
                if v == Some(0) {
                    errors.push(format!("{PATH}.successRate.{field}"), "must be at least 1");
                }
                v.unwrap_or(default)
            };
            proxy::SuccessRate {
                minimum_hosts: at_least_one(
                    errors,
                    "minimumHosts",
                    r.minimum_hosts,
                    d.minimum_hosts,
                ),
                request_volume: at_least_one(
                    errors,
                    "requestVolume",
                    r.request_volume,
                    d.request_volume,
                ),
                stdev_factor: factor,
            }
        }),
    };
    if out.max_ejection_time < out.base_ejection_time {
        errors.push(
            format!("{PATH}.maxEjectionTime"),
            format!(
                "{:?} is shorter than baseEjectionTime ({:?})",
                out.max_ejection_time, out.base_ejection_time
            ),
        );
    }
    if o.disabled {
        return None;
    }
    Some(out)
}

fn health(h: &api::HealthCheck, errors: &mut Errors) -> Option<proxy::HealthCheck> {
    const PATH: &str = "spec.healthCheck";
    let given = usize::from(h.http.is_some())
        + usize::from(h.tcp.is_some())
        + usize::from(h.grpc.is_some());
    if given != 1 {
        errors.push(
            PATH,
            format!("set exactly one of http, tcp and grpc ({given} are set)"),
        );
        return None;
    }
    let check = if let Some(http) = &h.http {
        if !http.path.starts_with('/')
            || http.path.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            errors.push(
                format!("{PATH}.http.path"),
                format!(
                    "{:?} must start with '/' and hold no spaces or control characters",
                    http.path
                ),
            );
        }
        if let Some(host) = &http.host {
            if host.is_empty() || host.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                errors.push(
                    format!("{PATH}.http.host"),
                    format!("{host:?} is not a host name"),
                );
            }
        }
        let mut expected = Vec::new();
        for (i, r) in http.expected_statuses.iter().enumerate() {
            match status_range(r) {
                Some(range) => expected.push(range),
                None => errors.push(
                    format!("{PATH}.http.expectedStatuses[{i}]"),
                    format!("{} is not a status or range of statuses (100-599), e.g. 200 or \"200-299\"", describe(r)),
                ),
            }
        }
        if expected.is_empty() {
            expected = proxy::default_expected_statuses();
        }
        proxy::HealthCheckKind::Http {
            path: http.path.clone(),
            host: http.host.clone().unwrap_or_default(),
            expected,
        }
    } else if let Some(g) = &h.grpc {
        proxy::HealthCheckKind::Grpc {
            service: g.service.clone(),
        }
    } else {
        proxy::HealthCheckKind::Tcp
    };
    let time = |errors: &mut Errors, field: &str, text: &Option<String>, default: Duration| {
        text.as_deref()
            .and_then(|t| {
                field::positive_duration(
                    errors,
                    &format!("{PATH}.{field}"),
                    t,
                    weft_api::duration::MAX,
                )
            })
            .unwrap_or(default)
    };
    let threshold = |errors: &mut Errors, field: &str, v: Option<u32>, default: u32| {
        if v == Some(0) {
            errors.push(format!("{PATH}.{field}"), "must be at least 1");
        }
        v.filter(|n| *n > 0).unwrap_or(default)
    };
    let interval = time(errors, "interval", &h.interval, Duration::from_secs(10));
    let timeout = time(errors, "timeout", &h.timeout, Duration::from_secs(1));
    if timeout > interval {
        errors.push(
            format!("{PATH}.timeout"),
            "must not be longer than interval (checks would overlap)",
        );
    }
    if let Some(p) = h.port {
        field::port(errors, &format!("{PATH}.port"), p);
    }
    Some(proxy::HealthCheck {
        port: h.port.unwrap_or(0),
        interval,
        timeout,
        unhealthy_threshold: threshold(errors, "unhealthyThreshold", h.unhealthy_threshold, 3),
        healthy_threshold: threshold(errors, "healthyThreshold", h.healthy_threshold, 2),
        check,
    })
}

fn status_range(r: &api::StatusRange) -> Option<(u16, u16)> {
    let valid = |c: u16| (100..=599).contains(&c);
    match r {
        api::StatusRange::Code(c) if valid(*c) => Some((*c, *c)),
        api::StatusRange::Code(_) => None,
        api::StatusRange::Range(text) => {
            let (low, high) = text.split_once('-')?;
            let (low, high): (u16, u16) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
            (valid(low) && valid(high) && low <= high).then_some((low, high))
        }
    }
}

fn describe(r: &api::StatusRange) -> String {
    match r {
        api::StatusRange::Code(c) => c.to_string(),
        api::StatusRange::Range(t) => format!("{t:?}"),
    }
}

fn percent(errors: &mut Errors, path: &str, value: u32) -> u32 {
    if value > 100 {
        errors.push(path, format!("{value} is not a percentage (0-100)"));
        100
    } else {
        value
    }
}

/// The service a policy's targets name, as (namespace, name).
type ServiceKey = (String, String);

/// Resolves `policies` (validated) against `services`: the winner per service, with
/// its health-check port mapped to the endpoints' port and its `Host` defaulted to the
/// service's DNS name. Returns the status of every policy, keyed as `policies` is.
pub(crate) fn compile(
    policies: &[Policy<'_>],
    services: &BTreeMap<ServiceKey, &service::Spec>,
    domain: &str,
) -> (BTreeMap<ServiceKey, (String, Attached)>, Vec<Value>) {
    // Oldest first, then by name: the first to claim a service keeps it.
    let mut order: Vec<usize> = (0..policies.len()).collect();
    order.sort_by(|&a, &b| {
        crate::age_order(policies[a].object).cmp(&crate::age_order(policies[b].object))
    });
    let mut attached: BTreeMap<ServiceKey, (String, Attached)> = BTreeMap::new();
    let mut ancestors: Vec<Vec<Value>> = vec![Vec::new(); policies.len()];
    for i in order {
        let p = &policies[i];
        let ns = p.object.namespace();
        let name = format!("{ns}/{}", p.object.metadata.name);
        let generation = p.object.metadata.generation;
        for t in &p.spec.target_refs {
            let key = (ns.to_owned(), t.name.clone());
            let result = match services.get(&key) {
                None => Err((
                    "TargetNotFound",
                    format!("Service {ns}/{} does not exist", t.name),
                )),
                Some(_) if attached.contains_key(&key) => Err((
                    "Conflicted",
                    format!(
                        "BackendPolicy {} already applies to Service {ns}/{} (the oldest policy wins)",
                        attached[&key].0, t.name
                    ),
                )),
                Some(svc) => resolve(p, svc, ns, &t.name, domain).map_err(|m| ("Invalid", m)),
            };
            let (ok, reason, message) = match result {
                Ok(a) => {
                    attached.insert(key, (name.clone(), a));
                    (
                        true,
                        "Accepted",
                        format!("applies to Service {ns}/{}", t.name),
                    )
                }
                Err((reason, message)) => (false, reason, message),
            };
            ancestors[i].push(status::policy_ancestor(
                ns, &t.name, ok, reason, &message, generation,
            ));
        }
    }
    let statuses = ancestors
        .into_iter()
        .map(|a| json!({ "ancestors": a }))
        .collect();
    (attached, statuses)
}

/// The policy as it applies to one service.
fn resolve(
    p: &Policy<'_>,
    svc: &service::Spec,
    ns: &str,
    name: &str,
    domain: &str,
) -> Result<Attached, String> {
    let mut attached = build(&p.spec, &mut Errors::default());
    attached.policy.source = Some(format!("BackendPolicy/{ns}/{}", p.object.metadata.name));
    if let Some(check) = &mut attached.policy.health_check {
        let port = if check.port == 0 {
            svc.ports.first()
        } else {
            svc.ports.iter().find(|sp| sp.port == check.port)
        };
        let Some(port) = port else {
            return Err(format!(
                "spec.healthCheck.port: Service {ns}/{name} has no port {}",
                check.port
            ));
        };
        check.port = port.target_port.unwrap_or(port.port);
        if let proxy::HealthCheckKind::Http { host, .. } = &mut check.check {
            if host.is_empty() {
                *host = format!("{name}.{ns}.svc.{domain}");
            }
        }
    }
    Ok(attached)
}
