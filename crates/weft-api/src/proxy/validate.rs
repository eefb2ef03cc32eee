//! Cross-field validation of a proxy [`Config`].
//!
//! Serde already rejects unknown fields and wrong types; this module checks what a type
//! cannot say: references resolve, names and ports are unique, regexes compile. It
//! collects every problem instead of stopping at the first, so an operator fixes a file
//! in one pass.

use std::collections::HashSet;
use std::fmt;

use super::{Config, KeyValueMatch, MtlsMode, PathMatch, RouteTable, Service, StringMatch};

/// One problem, located by field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `routes[0].rules[1].backends[0].service`.
    pub path: String,
    /// What is wrong, with the offending value and a hint.
    pub message: String,
}

/// Whether references between services, routes and listeners must resolve within the
/// config itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum References {
    /// Every reference must resolve (a complete local config file).
    #[default]
    Required,
    /// Control-plane mode: references may point at services not present yet (a
    /// bootstrap file whose services come from the control plane, or a config
    /// assembled from xDS resources) and are skipped at run time while unresolved; and
    /// `certificates` may be absent, since the control plane issues them.
    Deferred,
}

/// Every problem found in a config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>, References);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

pub(super) fn config(config: &Config, references: References) -> Result<(), ValidationErrors> {
    let mut errors = Errors(Vec::new(), references);
    workload(config, &mut errors);
    listeners(config, &mut errors);
    inbound(config, &mut errors);
    services(config, &mut errors);
    routes(config, &mut errors);
    settings(config, &mut errors);
    durations(config, &mut errors);
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors.0))
    }
}

fn workload(config: &Config, errors: &mut Errors) {
    let w = &config.workload;
    name("workload.name", &w.name, errors);
    name("workload.namespace", &w.namespace, errors);
    name("workload.serviceAccount", &w.service_account, errors);
    if w.trust_domain.is_empty()
        || !w
            .trust_domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
    {
        errors.push(
            "workload.trustDomain",
            format!(
                "{:?} is not a valid trust domain (lowercase letters, digits, '-', '.', '_')",
                w.trust_domain
            ),
        );
    }
    let mut seen = HashSet::new();
    for (i, p) in w.ports.iter().enumerate() {
        if p.port == 0 {
            errors.push(format!("workload.ports[{i}].port"), "must be 1-65535");
        } else if !seen.insert(p.port) {
            errors.push(
                format!("workload.ports[{i}].port"),
                format!("port {} is listed twice", p.port),
            );
        }
    }
}

fn listeners(config: &Config, errors: &mut Errors) {
    let l = &config.listeners;
    if !l.admin.ip().is_loopback() {
        errors.push(
            "listeners.admin",
            format!(
                "{} is not a loopback address; the admin API can change log levels and dump \
                 config, so it only binds 127.0.0.1 or ::1",
                l.admin
            ),
        );
    }
    // With a control plane (deferred references) the certificate can come from it.
    if l.hbone.is_some() && config.certificates.is_none() && errors.1 == References::Required {
        errors.push(
            "certificates",
            "required while listeners.hbone is enabled (set listeners.hbone: null to run \
             without an identity)",
        );
    }
    let mut bound: Vec<(String, std::net::SocketAddr)> = vec![("listeners.admin".into(), l.admin)];
    bound.extend(l.metrics.map(|a| ("listeners.metrics".into(), a)));
    bound.extend(l.hbone.map(|a| ("listeners.hbone".into(), a)));
    bound.extend(
        l.outbound_capture
            .map(|a| ("listeners.outboundCapture".into(), a)),
    );
    bound.extend(
        l.inbound_capture
            .map(|a| ("listeners.inboundCapture".into(), a)),
    );
    if let Some(dns) = l.dns {
        if !dns.ip().is_loopback() {
            errors.push(
                "listeners.dns",
                format!(
                    "{dns} is not a loopback address: the mesh DNS answers only this host's \
                     apps; use 127.0.0.1:15053"
                ),
            );
        }
        bound.push(("listeners.dns".into(), dns));
    }
    for (i, u) in config.dns.upstreams.iter().enumerate() {
        if u.port() == 0 || u.ip().is_unspecified() {
            errors.push(
                format!("dns.upstreams[{i}]"),
                format!("{u} is not a resolver address; give IP:PORT, e.g. 10.0.0.2:53"),
            );
        }
        if Some(*u) == l.dns {
            errors.push(
                format!("dns.upstreams[{i}]"),
                format!("{u} is listeners.dns itself: queries would loop"),
            );
        }
    }
    if l.inbound_capture.is_none() {
        if let Some(i) = config
            .workload
            .ports
            .iter()
            .position(|p| config.port_mtls(p.port) == MtlsMode::Permissive)
        {
            errors.push(
                format!("workload.ports[{i}]"),
                "is permissive but listeners.inboundCapture is null: plaintext clients would \
                 have nowhere to arrive; set listeners.inboundCapture (default 0.0.0.0:15006) \
                 or make the port strict",
            );
        }
    }
    for (i, o) in config.outbound.iter().enumerate() {
        let path = format!("outbound[{i}]");
        bound.push((format!("{path}.listen"), o.listen));
        match config.service(&o.service) {
            None if errors.1 == References::Deferred => {}
            None => errors.push(
                format!("{path}.service"),
                format!("no service {:?} in services", o.service),
            ),
            Some(s) if !s.ports.iter().any(|p| p.port == o.port) => errors.push(
                format!("{path}.port"),
                format!("service {:?} has no port {}", o.service, o.port),
            ),
            Some(_) => {}
        }
    }
    for (i, (path, addr)) in bound.iter().enumerate() {
        if let Some((other, _)) = bound[..i].iter().find(|(_, a)| a == addr) {
            errors.push(path.clone(), format!("{addr} is already used by {other}"));
        }
    }
}

/// Headers the proxy sets or that carry hop-by-hop meaning: an identity header must be
/// none of them (the same list routes may not edit).
const RESERVED_HEADERS: &[&str] = super::HeaderEdits::PROTECTED;

fn inbound(config: &Config, errors: &mut Errors) {
    inbound_policies(config, errors);
    let Some(header) = &config.inbound.identity_header else {
        return;
    };
    let valid = !header.is_empty()
        && header.len() <= 64
        && header
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        errors.push(
            "inbound.identityHeader",
            format!(
                "{header:?} is not a header name this proxy can set: use lowercase letters, \
                 digits and '-', at most 64 characters (e.g. x-weft-peer-identity)"
            ),
        );
    } else if RESERVED_HEADERS.contains(&header.as_str()) {
        errors.push(
            "inbound.identityHeader",
            format!("{header:?} is a header with its own meaning; pick another, e.g. x-weft-peer-identity"),
        );
    }
}

/// `inbound.rateLimits` and `inbound.faults`.
fn inbound_policies(config: &Config, errors: &mut Errors) {
    let served = |p: &u16| config.workload.ports.iter().any(|w| w.port == *p);
    let scope = |errors: &mut Errors, path: &str, ports: &[u16], matches: &[super::RouteMatch]| {
        for (i, p) in ports.iter().enumerate() {
            if !served(p) {
                errors.push(
                    format!("{path}.ports[{i}]"),
                    format!("{p} is not one of workload.ports"),
                );
            }
        }
        for (m, mat) in matches.iter().enumerate() {
            if let Some(p) = &mat.path {
                path_match(&format!("{path}.matches[{m}].path"), p, errors);
            }
            key_values(
                &format!("{path}.matches[{m}].headers"),
                &mat.headers,
                true,
                errors,
            );
        }
    };
    for (i, l) in config.inbound.rate_limits.iter().enumerate() {
        let path = format!("inbound.rateLimits[{i}]");
        scope(errors, &path, &l.ports, &l.matches);
        if l.requests == 0 {
            errors.push(format!("{path}.requests"), "must be at least 1");
        }
        if l.per.is_zero() {
            errors.push(format!("{path}.per"), "must be longer than 0s");
        }
        if l.burst == Some(0) {
            errors.push(format!("{path}.burst"), "must be at least 1");
        }
    }
    for (i, f) in config.inbound.faults.iter().enumerate() {
        let path = format!("inbound.faults[{i}]");
        scope(errors, &path, &f.ports, &f.matches);
        if f.delay.is_none() && f.abort.is_none() {
            errors.push(path.clone(), "needs a delay, an abort, or both");
        }
        if let Some(d) = &f.delay {
            if !(0.0..=100.0).contains(&d.percent) {
                errors.push(
                    format!("{path}.delay.percent"),
                    format!("{} is not a percentage (0-100)", d.percent),
                );
            }
        }
        if let Some(a) = &f.abort {
            if !(0.0..=100.0).contains(&a.percent) {
                errors.push(
                    format!("{path}.abort.percent"),
                    format!("{} is not a percentage (0-100)", a.percent),
                );
            }
            if !(200..=599).contains(&a.http_status) {
                errors.push(
                    format!("{path}.abort.httpStatus"),
                    format!("{} is not an HTTP status (200-599)", a.http_status),
                );
            }
            if a.grpc_status.is_some_and(|s| s == 0 || s > 16) {
                errors.push(
                    format!("{path}.abort.grpcStatus"),
                    "must be a gRPC error code (1-16, e.g. 14 UNAVAILABLE)",
                );
            }
        }
    }
}

fn services(config: &Config, errors: &mut Errors) {
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
        (Some(crate::proxy::HashOn::Header(h)), true) if !super::is_token(h) => {
            errors.push(
                format!("{path}.policy.hashOn.header"),
                format!("{h:?} is not a header name"),
            );
        }
        (Some(crate::proxy::HashOn::Cookie(c)), true) if !super::is_token(&c.name) => errors.push(
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

fn routes(config: &Config, errors: &mut Errors) {
    let mut parents = HashSet::new();
    for (i, table) in config.routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        let Some(parent) = config.service(&table.service) else {
            if errors.1 == References::Deferred {
                rules(config, table, None, &path, errors);
            } else {
                errors.push(
                    format!("{path}.service"),
                    format!("no service {:?} in services", table.service),
                );
            }
            continue;
        };
        if let Some(port) = table.port {
            if !parent.ports.iter().any(|p| p.port == port) {
                errors.push(
                    format!("{path}.port"),
                    format!("service {:?} has no port {port}", table.service),
                );
            }
        }
        if !parents.insert((parent.key(), table.port)) {
            errors.push(
                format!("{path}.service"),
                "another route table already attaches to this service and port; merge the rules",
            );
        }
        rules(config, table, Some(parent), &path, errors);
    }
}

fn rules(
    config: &Config,
    table: &RouteTable,
    parent: Option<&Service>,
    path: &str,
    errors: &mut Errors,
) {
    if table.rules.is_empty() {
        errors.push(format!("{path}.rules"), "a route needs at least one rule");
    }
    for (r, rule) in table.rules.iter().enumerate() {
        let rpath = format!("{path}.rules[{r}]");
        for (field, edits) in [
            ("requestHeaders", &rule.request_headers),
            ("responseHeaders", &rule.response_headers),
        ] {
            let Some(edits) = edits else { continue };
            let names = edits
                .set
                .iter()
                .map(|(n, _)| ("set", n))
                .chain(edits.add.iter().map(|(n, _)| ("add", n)))
                .chain(edits.remove.iter().map(|n| ("remove", n)));
            for (kind, name) in names {
                if let Some(why) = super::HeaderEdits::refuse(name) {
                    errors.push(format!("{rpath}.{field}.{kind}"), why);
                }
            }
            for (name, value) in edits.set.iter().chain(&edits.add) {
                if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    errors.push(
                        format!("{rpath}.{field}"),
                        format!("the value of {name:?} contains CR, LF or NUL"),
                    );
                }
            }
        }
        for (m, mat) in rule.matches.iter().enumerate() {
            let mpath = format!("{rpath}.matches[{m}]");
            if let Some(a) = &mat.authority {
                string_match(&format!("{mpath}.authority"), a, errors);
            }
            if let Some(p) = &mat.path {
                path_match(&format!("{mpath}.path"), p, errors);
            }
            if let Some(method) = &mat.method {
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                    errors.push(
                        format!("{mpath}.method"),
                        format!("{method:?} is not an HTTP method (uppercase, e.g. \"GET\")"),
                    );
                }
            }
            key_values(&format!("{mpath}.headers"), &mat.headers, true, errors);
            key_values(&format!("{mpath}.query"), &mat.query, false, errors);
        }
        filters(config, &rpath, rule, errors);
        if rule.redirect.is_none() || !rule.backends.is_empty() {
            backends(config, table, parent, &rpath, rule, errors);
        }
    }
}

/// A rule's redirect, rewrite and mirrors.
fn filters(config: &Config, rpath: &str, rule: &super::RouteRule, errors: &mut Errors) {
    use super::PathRewrite;
    let prefix_only = rule
        .matches
        .iter()
        .all(|m| matches!(m.path, Some(super::PathMatch::Prefix(_)) | None));
    let path_rewrite = |errors: &mut Errors, field: &str, p: &PathRewrite| {
        let (PathRewrite::Full(v) | PathRewrite::Prefix(v)) = p;
        let empty_prefix = v.is_empty() && matches!(p, PathRewrite::Prefix(_));
        if !v.starts_with('/') && !empty_prefix {
            errors.push(
                format!("{rpath}.{field}.path"),
                format!("{v:?} must start with '/'"),
            );
        }
        if matches!(p, PathRewrite::Prefix(_)) && !prefix_only {
            errors.push(
                format!("{rpath}.{field}.path.prefix"),
                "replaces the matched prefix, so every match of the rule must be a path prefix",
            );
        }
    };
    if let Some(d) = &rule.redirect {
        if let Some(p) = &d.path {
            path_rewrite(errors, "redirect", p);
        }
        if !matches!(d.status, 301 | 302 | 303 | 307 | 308) {
            errors.push(
                format!("{rpath}.redirect.status"),
                format!(
                    "{} is not a redirect status (301, 302, 303, 307, 308)",
                    d.status
                ),
            );
        }
        if !matches!(d.scheme.as_deref(), None | Some("http" | "https")) {
            errors.push(format!("{rpath}.redirect.scheme"), "must be http or https");
        }
        if rule.rewrite.is_some() || !rule.mirrors.is_empty() {
            errors.push(
                format!("{rpath}.redirect"),
                "a redirect answers the client itself; it cannot be combined with rewrite or mirrors",
            );
        }
    }
    if let Some(w) = &rule.rewrite {
        if let Some(p) = &w.path {
            path_rewrite(errors, "rewrite", p);
        }
    }
    let deferred = errors.1 == References::Deferred;
    for (m, mirror) in rule.mirrors.iter().enumerate() {
        let mpath = format!("{rpath}.mirrors[{m}]");
        if !(0.0..=100.0).contains(&mirror.percent) {
            errors.push(
                format!("{mpath}.percent"),
                format!("{} is not a percentage (0-100)", mirror.percent),
            );
        }
        if !deferred && config.service(&mirror.service).is_none() {
            errors.push(
                format!("{mpath}.service"),
                format!("no service {:?} in services", mirror.service),
            );
        }
    }
}

fn backends(
    config: &Config,
    table: &RouteTable,
    parent: Option<&Service>,
    rpath: &str,
    rule: &super::RouteRule,
    errors: &mut Errors,
) {
    let deferred = errors.1 == References::Deferred;
    if rule.backends.is_empty() {
        errors.push(
            format!("{rpath}.backends"),
            "a rule needs at least one backend",
        );
    } else if !deferred && rule.backends.iter().all(|b| b.weight == 0) {
        errors.push(
            format!("{rpath}.backends"),
            "every backend has weight 0, so no request could be served; give one a weight > 0",
        );
    }
    for (b, backend) in rule.backends.iter().enumerate() {
        let bpath = format!("{rpath}.backends[{b}]");
        if deferred {
            // Compiled by the control plane, which reports unresolved backends as
            // route conditions; the proxy skips what it cannot resolve.
            continue;
        }
        let Some(service) = config.service(&backend.service) else {
            errors.push(
                format!("{bpath}.service"),
                format!("no service {:?} in services", backend.service),
            );
            continue;
        };
        let wanted: Vec<u16> = match (backend.port, table.port, parent) {
            (Some(p), _, _) | (None, Some(p), _) => vec![p],
            (None, None, Some(parent)) => parent.ports.iter().map(|p| p.port).collect(),
            (None, None, None) => Vec::new(),
        };
        for port in wanted {
            if !service.ports.iter().any(|p| p.port == port) {
                errors.push(
                    format!("{bpath}.port"),
                    format!(
                        "backend service {:?} has no port {port}; set backends[].port",
                        backend.service
                    ),
                );
            }
        }
    }
}

fn settings(config: &Config, errors: &mut Errors) {
    let s = &config.settings;
    for (field, value) in [
        ("settings.maxHeaderBytes", s.max_header_bytes),
        ("settings.maxHeaders", u32::from(s.max_headers)),
        ("settings.maxConcurrentStreams", s.max_concurrent_streams),
        ("settings.maxHboneStreams", s.max_hbone_streams),
        ("settings.maxConnections", s.max_connections),
    ] {
        if value == 0 {
            errors.push(field, "must be at least 1");
        }
    }
    if s.max_header_bytes < 1024 {
        errors.push(
            "settings.maxHeaderBytes",
            format!(
                "{} is too small for real clients; use at least 1024",
                s.max_header_bytes
            ),
        );
    }
    for (field, value) in [
        ("settings.detectTimeout", s.detect_timeout),
        ("settings.connectTimeout", s.connect_timeout),
        ("settings.requestHeaderTimeout", s.request_header_timeout),
        ("settings.idleTimeout", s.idle_timeout),
    ] {
        if value.is_zero() {
            errors.push(field, "must be greater than 0");
        }
    }
}

/// Every duration against its maximum ([`crate::duration::MAX`], or
/// [`crate::duration::MAX_LIFETIME`] for a cookie's TTL): each becomes an `Instant +
/// Duration` somewhere, and an absurd one would overflow it.
fn durations(config: &Config, errors: &mut Errors) {
    use crate::duration::{at_most, MAX, MAX_LIFETIME};
    use std::time::Duration;

    let mut found: Vec<(String, Duration, Duration)> = Vec::new();
    let mut timer = |path: String, value: Duration| found.push((path, value, MAX));
    let s = &config.settings;
    timer("settings.detectTimeout".into(), s.detect_timeout);
    timer("settings.connectTimeout".into(), s.connect_timeout);
    timer("settings.drainTimeout".into(), s.drain_timeout);
    timer(
        "settings.requestHeaderTimeout".into(),
        s.request_header_timeout,
    );
    timer("settings.idleTimeout".into(), s.idle_timeout);
    timer("dns.ttl".into(), config.dns.ttl);
    for (i, l) in config.inbound.rate_limits.iter().enumerate() {
        timer(format!("inbound.rateLimits[{i}].per"), l.per);
    }
    for (i, f) in config.inbound.faults.iter().enumerate() {
        if let Some(d) = &f.delay {
            timer(format!("inbound.faults[{i}].delay.duration"), d.duration);
        }
    }
    for (i, svc) in config.services.iter().enumerate() {
        let p = &svc.policy;
        let path = format!("services[{i}].policy");
        if let Some(d) = p.slow_start {
            timer(format!("{path}.slowStart"), d);
        }
        if let Some(o) = &p.outlier_detection {
            timer(format!("{path}.outlierDetection.interval"), o.interval);
            timer(
                format!("{path}.outlierDetection.baseEjectionTime"),
                o.base_ejection_time,
            );
            timer(
                format!("{path}.outlierDetection.maxEjectionTime"),
                o.max_ejection_time,
            );
        }
        if let Some(h) = &p.health_check {
            timer(format!("{path}.healthCheck.interval"), h.interval);
            timer(format!("{path}.healthCheck.timeout"), h.timeout);
        }
    }
    for (i, table) in config.routes.iter().enumerate() {
        for (r, rule) in table.rules.iter().enumerate() {
            let rpath = format!("routes[{i}].rules[{r}]");
            if let Some(t) = rule.timeout {
                timer(format!("{rpath}.timeout"), t);
            }
            if let Some(t) = rule.per_try_timeout {
                timer(format!("{rpath}.perTryTimeout"), t);
            }
            if let Some(retry) = &rule.retry {
                timer(format!("{rpath}.retry.backoff"), retry.backoff);
            }
        }
    }
    for (i, svc) in config.services.iter().enumerate() {
        if let Some(super::HashOn::Cookie(c)) = &svc.policy.hash_on {
            if let Some(ttl) = c.ttl {
                found.push((
                    format!("services[{i}].policy.hashOn.cookie.ttl"),
                    ttl,
                    MAX_LIFETIME,
                ));
            }
        }
    }
    for (path, value, max) in found {
        if let Err(why) = at_most(value, max) {
            errors.push(path, why);
        }
    }
}

fn name(path: &str, value: &str, errors: &mut Errors) {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if !ok {
        errors.push(
            path,
            format!(
                "{value:?} is not a valid name (lowercase letters, digits and '-', at most 63)"
            ),
        );
    }
}

fn looks_like_spiffe(id: &str) -> bool {
    id.strip_prefix("spiffe://")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(td, path)| !td.is_empty() && !path.is_empty())
}

fn string_match(path: &str, m: &StringMatch, errors: &mut Errors) {
    if let StringMatch::Regex(re) = m {
        regex(path, re, errors);
    }
}

fn path_match(path: &str, m: &PathMatch, errors: &mut Errors) {
    match m {
        PathMatch::Exact(p) | PathMatch::Prefix(p) if !p.starts_with('/') => {
            errors.push(path, format!("{p:?} must start with '/'"));
        }
        PathMatch::Regex(re) => regex(path, re, errors),
        _ => {}
    }
}

fn key_values(path: &str, items: &[KeyValueMatch], header: bool, errors: &mut Errors) {
    for (i, kv) in items.iter().enumerate() {
        let valid_name = !kv.name.is_empty()
            && (!header
                || kv
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b)));
        if !valid_name {
            errors.push(
                format!("{path}[{i}].name"),
                format!("{:?} is not a valid name", kv.name),
            );
        }
        string_match(&format!("{path}[{i}].value"), &kv.value, errors);
    }
}

fn regex(path: &str, re: &str, errors: &mut Errors) {
    if let Err(e) = regex::Regex::new(re) {
        errors.push(
            path,
            format!("{re:?} is not a valid regular expression: {e}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::proxy::{Config, Error};

    const BASE: &str = r"
workload: { name: client, address: 10.0.0.1 }
listeners: { hbone: null }
outbound:
  - { listen: 127.0.0.1:18080, service: echo, port: 80 }
services:
  - name: echo
    ports: [{ port: 80, targetPort: 8080, protocol: http }]
    endpoints: [{ address: 10.0.0.2, identity: spiffe://cluster.local/ns/default/sa/echo }]
  - name: echo-v2
    ports: [{ port: 80 }]
";

    fn errors_of(extra: &str) -> Vec<String> {
        match Config::from_yaml(&format!("{BASE}{extra}")) {
            Err(Error::Invalid(e)) => {
                e.0.into_iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect()
            }
            Err(other) => vec![other.to_string()],
            Ok(_) => vec![],
        }
    }

    #[test]
    fn accepts_a_valid_config() {
        assert_eq!(errors_of(""), Vec::<String>::new());
    }

    #[test]
    fn names_the_unresolved_backend_by_field_path() {
        let errs = errors_of(
            "routes:\n  - service: echo\n    rules:\n      - backends: [{ service: echo }, { service: nope, weight: 3 }]\n",
        );
        assert_eq!(
            errs,
            vec!["routes[0].rules[0].backends[1].service: no service \"nope\" in services"]
        );
    }

    #[test]
    fn rejects_unknown_fields_with_their_path() {
        let err = Config::from_yaml(&BASE.replace("protocol: http", "protocol: http, colour: red"))
            .expect_err("unknown field must fail");
        let text = err.to_string();
        assert!(text.starts_with("services[0].ports[0]"), "{text}");
        assert!(text.contains("colour"), "{text}");
    }

    #[test]
    fn rejects_negative_weight_with_its_path() {
        let err = Config::from_yaml(&format!(
            "{BASE}routes:\n  - service: echo\n    rules:\n      - backends: [{{ service: echo, weight: -1 }}]\n"
        ))
        .expect_err("negative weight must fail");
        assert!(
            err.to_string()
                .starts_with("routes[0].rules[0].backends[0].weight"),
            "{err}"
        );
    }

    #[test]
    fn rejects_an_absurd_route_timeout_with_its_path_and_the_maximum() {
        let errors = errors_of(
            "routes:\n  - service: echo\n    rules:\n      - backends: [{ service: echo }]\n        timeout: 100000000h\n        retry: { attempts: 1, backoff: 25h }\n",
        );
        assert_eq!(
            errors,
            [
                "routes[0].rules[0].timeout: 100000000h is longer than the maximum, 24h",
                "routes[0].rules[0].retry.backoff: 25h is longer than the maximum, 24h",
            ]
        );
    }

    #[test]
    fn bounds_settings_and_allows_a_long_cookie_ttl() {
        let errors = errors_of("settings: { idleTimeout: 48h }\n");
        assert_eq!(
            errors,
            ["settings.idleTimeout: 48h is longer than the maximum, 24h"]
        );
        let cookie = "  - name: sticky\n    ports: [{ port: 80 }]\n    loadBalancer: ringHash\n    policy:\n      hashOn: { cookie: { name: s, ttl: TTL } }\n";
        let parse = |ttl: &str| Config::from_yaml(&format!("{BASE}{}", cookie.replace("TTL", ttl)));
        assert!(parse("720h").is_ok(), "{:?}", parse("720h"));
        let err = parse("9000h").expect_err("longer than a year");
        assert!(
            err.to_string()
                .contains("hashOn.cookie.ttl: 9000h is longer than the maximum, 8760h"),
            "{err}"
        );
    }

    #[test]
    fn rejects_invalid_regex() {
        let errs = errors_of(
            "routes:\n  - service: echo\n    rules:\n      - matches: [{ path: { regex: '(' } }]\n        backends: [{ service: echo }]\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "routes[0].rules[0].matches[0].path: \"(\" is not a valid regular expression"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn rejects_admin_off_loopback() {
        let errs = errors_of("").len();
        assert_eq!(errs, 0);
        let err = Config::from_yaml(
            &BASE.replace("{ hbone: null }", "{ hbone: null, admin: 0.0.0.0:15000 }"),
        )
        .expect_err("admin on 0.0.0.0 must fail");
        assert!(
            err.to_string()
                .starts_with("listeners.admin: 0.0.0.0:15000 is not a loopback"),
            "{err}"
        );
    }

    #[test]
    fn rejects_listener_address_conflicts() {
        let err = Config::from_yaml(&BASE.replace("127.0.0.1:18080", "127.0.0.1:15000"))
            .expect_err("conflict must fail");
        assert!(
            err.to_string()
                .contains("outbound[0].listen: 127.0.0.1:15000 is already used by listeners.admin"),
            "{err}"
        );
    }

    #[test]
    fn requires_certificates_when_hbone_is_on() {
        let err = Config::from_yaml(&BASE.replace("listeners: { hbone: null }\n", ""))
            .expect_err("hbone without certs must fail");
        assert!(
            err.to_string().starts_with("certificates: required"),
            "{err}"
        );
    }

    #[test]
    fn rejects_backend_without_the_route_port() {
        let errs = errors_of(
            "  - name: other\n    ports: [{ port: 9 }]\nroutes:\n  - service: echo\n    rules:\n      - backends: [{ service: other }]\n",
        );
        assert_eq!(errs, vec!["routes[0].rules[0].backends[0].port: backend service \"other\" has no port 80; set backends[].port"]);
    }

    #[test]
    fn reports_bad_yaml() {
        let err = Config::from_yaml("workload: [").expect_err("broken yaml must fail");
        assert!(matches!(err, Error::Yaml(_)), "{err}");
    }

    #[test]
    fn durations_are_human_readable() {
        let cfg = Config::from_yaml(&format!("{BASE}settings: {{ detectTimeout: 50ms }}\n"))
            .expect("valid");
        assert_eq!(
            cfg.settings.detect_timeout,
            std::time::Duration::from_millis(50)
        );
        let err = Config::from_yaml(&format!("{BASE}settings: {{ detectTimeout: 50 }}\n"))
            .expect_err("bare number");
        assert!(
            err.to_string().starts_with("settings.detectTimeout"),
            "{err}"
        );
    }

    #[test]
    fn a_port_mode_overrides_the_workload_mode() {
        let cfg = Config::from_yaml(&BASE.replace(
            "workload: { name: client, address: 10.0.0.1 }",
            "workload:\n  name: client\n  address: 10.0.0.1\n  ports: [{ port: 8080, mtls: permissive }, { port: 9090 }]",
        ))
        .expect("valid");
        assert_eq!(cfg.port_mtls(8080), crate::proxy::MtlsMode::Permissive);
        assert_eq!(cfg.port_mtls(9090), crate::proxy::MtlsMode::Strict);
        assert!(cfg.accepts_plaintext());
        let strict = Config::from_yaml(BASE).expect("valid");
        assert!(!strict.accepts_plaintext(), "strict is the default");
    }

    #[test]
    fn rejects_a_permissive_port_without_the_inbound_capture_listener() {
        let errs = errors_of_yaml(&BASE.replace(
            "workload: { name: client, address: 10.0.0.1 }\nlisteners: { hbone: null }",
            "workload: { name: client, address: 10.0.0.1, ports: [{ port: 8080 }] }\n\
             listeners: { hbone: null, inboundCapture: null }\ninbound: { mtls: permissive }",
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "workload.ports[0]: is permissive but listeners.inboundCapture is null"
            ),
            "{errs:?}"
        );
    }

    #[test]
    fn rejects_identity_headers_that_are_malformed_or_reserved() {
        for (header, expect) in [
            ("X-Caller", "is not a header name"),
            ("x caller", "is not a header name"),
            ("", "is not a header name"),
            ("host", "with its own meaning"),
            ("x-forwarded-client-cert", "with its own meaning"),
        ] {
            let errs = errors_of(&format!("inbound: {{ identityHeader: {header:?} }}\n"));
            assert_eq!(errs.len(), 1, "{header}: {errs:?}");
            assert!(
                errs[0].starts_with("inbound.identityHeader:") && errs[0].contains(expect),
                "{header}: {errs:?}"
            );
        }
        let ok = Config::from_yaml(&format!(
            "{BASE}inbound: {{ identityHeader: x-weft-peer-identity }}\n"
        ))
        .expect("valid");
        assert_eq!(
            ok.inbound.identity_header.as_deref(),
            Some("x-weft-peer-identity")
        );
    }

    #[test]
    fn backend_policy_problems_are_named_by_field_path() {
        let base = BASE.replace("  - name: echo-v2\n    ports: [{ port: 80 }]\n", "");
        let with = |policy: &str| {
            errors_of_yaml(&format!(
                "{base}  - name: echo-v2\n    ports: [{{ port: 80, targetPort: 8080 }}]\n{policy}"
            ))
        };
        assert_eq!(
            with("    loadBalancer: maglev\n"),
            vec!["services[1].policy.hashOn: the Maglev load balancer needs something to hash, e.g. hashOn: {header: x-user-id}"]
        );
        assert_eq!(
            with("    policy: { hashOn: sourceIP }\n"),
            vec!["services[1].policy.hashOn: only used by the ringHash and maglev load balancers; set loadBalancer or remove it"]
        );
        let errors = with(
            "    policy:\n      retryBudget: { percent: 120 }\n      limits: { maxRequests: 0 }\n      healthCheck: { port: 80, check: { http: { path: healthz, host: echo } } }\n",
        );
        assert_eq!(
            errors,
            vec![
                "services[1].policy.retryBudget.percent: 120 is not a percentage (0-100)",
                "services[1].policy.limits.maxRequests: must be at least 1 (a limit of 0 would refuse everything)",
                "services[1].policy.healthCheck.port: 80 is not a target port of the service (checks go to the endpoints' ports)",
                "services[1].policy.healthCheck.check.http.path: \"healthz\" must start with '/'",
            ]
        );
        assert_eq!(
            with("    loadBalancer: ringHash\n    policy:\n      hashOn: { cookie: { name: session, ttl: 1h } }\n      healthCheck: { port: 8080, check: tcp }\n"),
            Vec::<String>::new()
        );
    }

    fn errors_of_yaml(yaml: &str) -> Vec<String> {
        match Config::from_yaml(yaml) {
            Err(Error::Invalid(e)) => {
                e.0.into_iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect()
            }
            Ok(_) => Vec::new(),
            Err(other) => panic!("expected validation errors, got {other:?}"),
        }
    }
}
