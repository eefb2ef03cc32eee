//! `GRPCRoute`: validation and reduction to proxy matches. A gRPC call is an HTTP/2
//! POST to `/<service>/<method>`, so method matches become path matches.

use weft_api::proxy::{self, PathMatch};
use weft_api::resource::route::{
    grpc_code, parse_duration, GrpcMatch, GrpcMethodMatch, GrpcRetry, GrpcSpec, ValueMatchType,
};
use weft_api::resource::{Kind, Object};

use super::http::{value_match, value_matches};
use super::{Route, Rule};
use crate::field::{self, Errors};

/// Checks a parsed `GRPCRoute` spec.
pub(crate) fn validate(spec: &GrpcSpec, errors: &mut Errors) {
    super::validate_parent_refs(errors, &spec.parent_refs);
    super::validate_hostnames(errors, &spec.hostnames);
    if spec.rules.is_empty() {
        errors.push("spec.rules", "a route needs at least one rule");
    }
    for (r, rule) in spec.rules.iter().enumerate() {
        let rpath = format!("spec.rules[{r}]");
        if let Some(name) = &rule.name {
            field::label(errors, &format!("{rpath}.name"), name);
        }
        for (m, mat) in rule.matches.iter().enumerate() {
            let mpath = format!("{rpath}.matches[{m}]");
            if let Some(method) = &mat.method {
                validate_method(errors, &format!("{mpath}.method"), method);
            }
            value_matches(errors, &format!("{mpath}.headers"), &mat.headers, true);
        }
        super::validate_filters(errors, &format!("{rpath}.filters"), &rule.filters);
        super::validate_backend_refs(errors, &rpath, &rule.backend_refs);
        if let Some(r) = &rule.retry {
            validate_retry(errors, &format!("{rpath}.retry"), r);
        }
    }
}

fn validate_retry(errors: &mut Errors, path: &str, r: &GrpcRetry) {
    let max = proxy::Retry::MAX_ATTEMPTS;
    if r.attempts.is_some_and(|n| n > max) {
        errors.push(
            format!("{path}.attempts"),
            format!("more than {max} retries; the retry budget bounds the rest"),
        );
    }
    for (i, c) in r.codes.iter().enumerate() {
        if grpc_code(c).is_none() {
            errors.push(
                format!("{path}.codes[{i}]"),
                format!(
                    "{c:?} is not a gRPC status code name, e.g. unavailable or resource-exhausted"
                ),
            );
        }
    }
    if let Some(b) = &r.backoff {
        match parse_duration(b) {
            Ok(d) if d.is_zero() => {
                errors.push(format!("{path}.backoff"), "must be longer than 0s");
            }
            Ok(d) => {
                if let Err(why) = weft_api::duration::at_most(d, weft_api::duration::MAX) {
                    errors.push(format!("{path}.backoff"), why);
                }
            }
            Err(e) => errors.push(format!("{path}.backoff"), e),
        }
    }
}

fn validate_method(errors: &mut Errors, path: &str, m: &GrpcMethodMatch) {
    if m.service.is_none() && m.method.is_none() {
        errors.push(
            path,
            "give service, method or both (e.g. {service: helloworld.Greeter, method: SayHello})",
        );
    }
    let ident = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match m.kind {
        ValueMatchType::Exact => {
            if let Some(s) = &m.service {
                if !s.split('.').all(ident) {
                    errors.push(
                        format!("{path}.service"),
                        format!("{s:?} is not a gRPC service name (dot-separated identifiers, e.g. \"helloworld.Greeter\")"),
                    );
                }
            }
            if let Some(name) = &m.method {
                if !ident(name) {
                    errors.push(
                        format!("{path}.method"),
                        format!(
                            "{name:?} is not a gRPC method name (an identifier, e.g. \"SayHello\")"
                        ),
                    );
                }
            }
        }
        ValueMatchType::RegularExpression => {
            if let Some(s) = &m.service {
                field::regex(errors, &format!("{path}.service"), s);
            }
            if let Some(name) = &m.method {
                field::regex(errors, &format!("{path}.method"), name);
            }
        }
    }
}

/// The path match for a method match: service and method → exact `/svc/method`;
/// service only → prefix `/svc/` (the proxy's prefix is segment-aware, so it matches
/// `/svc/Any` and never `/svc2/Any`); method only, or regular expressions → a regex
/// over the whole path.
pub(crate) fn method_path(m: &GrpcMethodMatch) -> Option<PathMatch> {
    match (m.kind, m.service.as_deref(), m.method.as_deref()) {
        (_, None, None) => None,
        (ValueMatchType::Exact, Some(s), Some(name)) => {
            Some(PathMatch::Exact(format!("/{s}/{name}")))
        }
        (ValueMatchType::Exact, Some(s), None) => Some(PathMatch::Prefix(format!("/{s}/"))),
        (ValueMatchType::Exact, None, Some(name)) => {
            Some(PathMatch::Regex(format!("/[^/]+/{}", regex::escape(name))))
        }
        (ValueMatchType::RegularExpression, s, name) => Some(PathMatch::Regex(format!(
            "/(?:{})/(?:{})",
            s.unwrap_or("[^/]+"),
            name.unwrap_or("[^/]+")
        ))),
    }
}

/// Reduces a valid spec: each match × hostname becomes one proxy match.
pub(crate) fn reduce(object: &Object, spec: GrpcSpec) -> Route<'_> {
    let authorities = super::authorities(&spec.hostnames);
    let rules = spec
        .rules
        .into_iter()
        .map(|rule| {
            let defaults = [GrpcMatch::default()];
            let user = if rule.matches.is_empty() {
                &defaults[..]
            } else {
                &rule.matches[..]
            };
            let mut matches = Vec::new();
            for m in user {
                for authority in &authorities {
                    matches.push(proxy::RouteMatch {
                        authority: authority.clone(),
                        path: m.method.as_ref().and_then(method_path),
                        method: None,
                        headers: m.headers.iter().map(value_match).collect(),
                        query: Vec::new(),
                    });
                }
            }
            Rule {
                matches,
                backend_refs: rule.backend_refs,
                timeout: None,
                per_try_timeout: None,
                retry: rule.retry.as_ref().map(|r| weft_api::pb::v1::RetryPolicy {
                    attempts: r.attempts.unwrap_or(2),
                    codes: Vec::new(),
                    grpc_codes: r.codes.iter().filter_map(|c| grpc_code(c)).collect(),
                    backoff: r
                        .backoff
                        .as_deref()
                        .and_then(|b| parse_duration(b).ok())
                        .map(weft_api::pb_convert::duration_to_pb),
                    non_idempotent: false,
                }),
                request_headers: None,
                response_headers: None,
                redirect: None,
                rewrite: None,
                mirrors: Vec::new(),
            }
        })
        .collect();
    Route {
        object,
        kind: Kind::GrpcRoute,
        parent_refs: spec.parent_refs,
        hostnames: spec.hostnames,
        rules,
    }
}
