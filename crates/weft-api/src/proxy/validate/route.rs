//! Routes: references to services and ports, matches, filters and backends.

use std::collections::HashSet;

use super::{key_values, path_match, string_match, Errors, References};
use crate::proxy::{Config, RouteTable, Service};

pub(super) fn routes(config: &Config, errors: &mut Errors) {
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
                if let Some(why) = crate::proxy::HeaderEdits::refuse(name) {
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
fn filters(config: &Config, rpath: &str, rule: &crate::proxy::RouteRule, errors: &mut Errors) {
    use crate::proxy::PathRewrite;
    let prefix_only = rule
        .matches
        .iter()
        .all(|m| matches!(m.path, Some(crate::proxy::PathMatch::Prefix(_)) | None));
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
    rule: &crate::proxy::RouteRule,
    errors: &mut Errors,
) {
    let deferred = errors.1 == References::Deferred;
    // From a control plane, a rule whose every backend failed to resolve comes with
    // none: it answers 503 rather than falling through to a lower rule (the route's
    // status says `BackendNotFound`). In a local file it is a mistake.
    if rule.backends.is_empty() && !deferred {
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
