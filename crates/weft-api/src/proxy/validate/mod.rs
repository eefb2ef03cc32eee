//! Cross-field validation of a proxy [`Config`].
//!
//! Serde already rejects unknown fields and wrong types; this module checks what a type
//! cannot say: references resolve, names and ports are unique, regexes compile. It
//! collects every problem instead of stopping at the first, so an operator fixes a file
//! in one pass.

use std::collections::HashSet;
use std::fmt;

use super::{Config, KeyValueMatch, MtlsMode, PathMatch, StringMatch};

mod authorization;
mod route;
mod service;
#[cfg(test)]
mod tests;

use route::routes;
use service::services;

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
    authorization::authorization(&config.inbound.authorization, &mut errors);
    services(config, &mut errors);
    routes(config, &mut errors);
    settings(config, &mut errors);
    durations(config, &mut errors);
    telemetry(&config.telemetry, &mut errors);
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

/// The checks of `telemetry:` alone, for what else builds the proxy model (a control
/// plane's `Telemetry` objects); paths as in a config file (`telemetry.tracing.sampling`).
pub(super) fn telemetry_alone(t: &super::Telemetry) -> Result<(), ValidationErrors> {
    let mut errors = Errors::default();
    telemetry(t, &mut errors);
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(errors.0))
    }
}

fn telemetry(t: &super::Telemetry, errors: &mut Errors) {
    if let Some(tracing) = &t.tracing {
        if tracing.endpoint.starts_with("https://") {
            errors.push(
                "telemetry.tracing.endpoint",
                format!(
                    "{:?}: https collectors are not supported yet; run a collector on this \
                     host and give its http://127.0.0.1:4317",
                    tracing.endpoint
                ),
            );
        } else if !is_http_host_port(&tracing.endpoint) {
            errors.push(
                "telemetry.tracing.endpoint",
                format!(
                    "{:?} is not an OTLP/gRPC endpoint: write http://host:port (e.g. \
                     http://127.0.0.1:4317)",
                    tracing.endpoint
                ),
            );
        }
        if !(0.0..=100.0).contains(&tracing.sampling) {
            errors.push(
                "telemetry.tracing.sampling",
                format!("{} is not a percentage: must be 0 to 100", tracing.sampling),
            );
        }
        if tracing.timeout.is_zero() || tracing.timeout > std::time::Duration::from_secs(60) {
            errors.push(
                "telemetry.tracing.timeout",
                format!("{:?}: must be more than 0 and at most 60s", tracing.timeout),
            );
        }
    }
    if let Some(log) = &t.access_log {
        match (log.format, &log.template) {
            (super::AccessLogFormat::Json, Some(_)) => errors.push(
                "telemetry.accessLog.template",
                "a template is for format: text; JSON lines carry every field",
            ),
            (super::AccessLogFormat::Text, Some(template)) => {
                if let Err(e) = super::check_template(template) {
                    errors.push("telemetry.accessLog.template", e);
                }
            }
            _ => {}
        }
        if let Some(path) = &log.path {
            if !path.is_absolute() {
                errors.push(
                    "telemetry.accessLog.path",
                    format!("{}: must be an absolute path", path.display()),
                );
            }
        }
        if log.max_bytes < 4096 {
            errors.push(
                "telemetry.accessLog.maxBytes",
                format!("{}: must be at least 4096", log.max_bytes),
            );
        }
        if log.max_files > 100 {
            errors.push(
                "telemetry.accessLog.maxFiles",
                format!("{}: at most 100 rotated files are kept", log.max_files),
            );
        }
    }
}

/// Whether `endpoint` is `http://host:port` (a name, an IPv4 address or a bracketed
/// IPv6 address; a port 1-65535; nothing after it but an optional `/`).
fn is_http_host_port(endpoint: &str) -> bool {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}
