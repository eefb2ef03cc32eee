//! `HTTPRoute`: validation and reduction to proxy matches.

use std::collections::HashSet;

use weft_api::pb::v1 as pb;
use weft_api::proxy::{self, KeyValueMatch, StringMatch};
use weft_api::resource::route::{
    parse_duration, HeaderModifier, HttpMatch, HttpSpec, PathMatchType, PathModifier,
    RequestMirror, RequestRedirect, UrlRewrite, ValueMatch, ValueMatchType,
};
use weft_api::resource::{Kind, Object};

use super::{Route, Rule};
use crate::field::{self, Errors};

/// Methods the Gateway API allows in `matches[].method`.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Checks a parsed `HTTPRoute` spec.
pub(crate) fn validate(spec: &HttpSpec, errors: &mut Errors) {
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
            validate_match(errors, &format!("{rpath}.matches[{m}]"), mat);
        }
        let compiled = filters(Some(errors), &format!("{rpath}.filters"), &rule.filters);
        let prefix_only = rule.matches.iter().all(|m| {
            m.path
                .as_ref()
                .is_none_or(|p| p.kind == PathMatchType::PathPrefix)
        });
        if compiled.uses_prefix && !prefix_only {
            errors.push(
                format!("{rpath}.filters"),
                "ReplacePrefixMatch replaces the matched prefix, so every match of the rule \
                 must have a PathPrefix path",
            );
        }
        for (i, (mirror, _)) in compiled.mirrors.iter().enumerate() {
            super::validate_backend_ref(
                errors,
                &format!("{rpath}.mirrors[{i}].backendRef"),
                mirror,
            );
        }
        // A redirect answers without a backend, so its rule needs none.
        if compiled.redirect.is_none() || !rule.backend_refs.is_empty() {
            super::validate_backend_refs(errors, &rpath, &rule.backend_refs);
        }
        if let Some(t) = &rule.timeouts {
            let parse = |errors: &mut Errors, field: &str, text: &Option<String>| {
                let text = text.as_deref()?;
                parse_duration(text)
                    .and_then(|d| {
                        weft_api::duration::at_most(d, weft_api::duration::MAX).map(|()| d)
                    })
                    .map_err(|e| errors.push(format!("{rpath}.timeouts.{field}"), e))
                    .ok()
            };
            let request = parse(errors, "request", &t.request);
            let backend = parse(errors, "backendRequest", &t.backend_request);
            if let (Some(req), Some(back)) = (request, backend) {
                if !req.is_zero() && (back.is_zero() || back > req) {
                    errors.push(
                        format!("{rpath}.timeouts.backendRequest"),
                        format!(
                            "{:?} is longer than timeouts.request {:?}; one attempt cannot outlast the whole request",
                            t.backend_request.as_deref().unwrap_or_default(),
                            t.request.as_deref().unwrap_or_default()
                        ),
                    );
                }
            }
        }
        if let Some(r) = &rule.retry {
            validate_retry(errors, &format!("{rpath}.retry"), r);
        }
    }
}

fn validate_retry(errors: &mut Errors, path: &str, r: &weft_api::resource::route::HttpRetry) {
    let max = weft_api::proxy::Retry::MAX_ATTEMPTS;
    if let Some(n) = r.attempts {
        if n > max {
            errors.push(
                format!("{path}.attempts"),
                format!("{n} retries is more than {max}; the retry budget bounds the rest"),
            );
        }
    }
    for (i, code) in r.codes.iter().enumerate() {
        if !(400..=599).contains(code) {
            errors.push(
                format!("{path}.codes[{i}]"),
                format!("{code} is not a 4xx or 5xx status, e.g. 503"),
            );
        }
    }
    if let Some(b) = &r.backoff {
        match parse_duration(b) {
            Ok(d) if d.is_zero() => errors.push(
                format!("{path}.backoff"),
                "0s would retry at once, in lockstep; use e.g. 25ms",
            ),
            Ok(d) => {
                if let Err(why) = weft_api::duration::at_most(d, weft_api::duration::MAX) {
                    errors.push(format!("{path}.backoff"), why);
                }
            }
            Err(e) => errors.push(format!("{path}.backoff"), e),
        }
    }
}

pub(crate) fn validate_match(errors: &mut Errors, path: &str, m: &HttpMatch) {
    if let Some(p) = &m.path {
        let ppath = format!("{path}.path.value");
        match p.kind {
            PathMatchType::Exact | PathMatchType::PathPrefix => {
                if !p.value.starts_with('/') {
                    errors.push(ppath, format!("{:?} must start with '/'", p.value));
                } else if p.value.contains("//") || p.value.contains('?') || p.value.contains('#') {
                    errors.push(
                        ppath,
                        format!(
                            "{:?} must be a plain path: no \"//\", query or fragment",
                            p.value
                        ),
                    );
                }
            }
            PathMatchType::RegularExpression => field::regex(errors, &ppath, &p.value),
        }
    }
    value_matches(errors, &format!("{path}.headers"), &m.headers, true);
    value_matches(
        errors,
        &format!("{path}.queryParams"),
        &m.query_params,
        false,
    );
    if let Some(method) = &m.method {
        if !METHODS.contains(&method.as_str()) {
            errors.push(
                format!("{path}.method"),
                format!(
                    "{method:?} is not a method the Gateway API allows (one of {})",
                    METHODS.join(", ")
                ),
            );
        }
    }
}

/// Header (case-insensitive names, HTTP token characters) or query-parameter matches.
pub(crate) fn value_matches(errors: &mut Errors, path: &str, items: &[ValueMatch], header: bool) {
    let mut seen = HashSet::new();
    for (i, kv) in items.iter().enumerate() {
        let token = !kv.name.is_empty()
            && kv.name.len() <= 256
            && kv
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!#$%&'*+^`|~".contains(&b));
        if !token {
            errors.push(
                format!("{path}[{i}].name"),
                format!(
                    "{:?} is not a valid name (letters, digits and -_.!#$%&'*+^`|~)",
                    kv.name
                ),
            );
        }
        let key = if header {
            kv.name.to_ascii_lowercase()
        } else {
            kv.name.clone()
        };
        if !seen.insert(key) {
            errors.push(
                format!("{path}[{i}].name"),
                format!("{:?} is matched twice; merge the two entries", kv.name),
            );
        }
        if kv.kind == ValueMatchType::RegularExpression {
            field::regex(errors, &format!("{path}[{i}].value"), &kv.value);
        }
    }
}

pub(crate) fn value_match(kv: &ValueMatch) -> KeyValueMatch {
    KeyValueMatch {
        name: kv.name.clone(),
        value: match kv.kind {
            ValueMatchType::Exact => StringMatch::Exact(kv.value.clone()),
            ValueMatchType::RegularExpression => StringMatch::Regex(kv.value.clone()),
        },
    }
}

/// A (validated) `HTTPRoute` match as a proxy match, without an authority.
pub(crate) fn proxy_match(m: &HttpMatch) -> proxy::RouteMatch {
    proxy::RouteMatch {
        authority: None,
        path: m.path.as_ref().and_then(|p| match p.kind {
            PathMatchType::PathPrefix if p.value == "/" => None,
            PathMatchType::PathPrefix => Some(proxy::PathMatch::Prefix(p.value.clone())),
            PathMatchType::Exact => Some(proxy::PathMatch::Exact(p.value.clone())),
            PathMatchType::RegularExpression => Some(proxy::PathMatch::Regex(p.value.clone())),
        }),
        method: m.method.clone(),
        headers: m.headers.iter().map(value_match).collect(),
        query: m.query_params.iter().map(value_match).collect(),
    }
}

/// Reduces a valid spec: each match × hostname becomes one proxy match. Durations
/// were validated, so a parse failure here cannot happen and is treated as "none".
pub(crate) fn reduce(object: &Object, spec: HttpSpec) -> Route<'_> {
    let authorities = super::authorities(&spec.hostnames);
    let rules = spec
        .rules
        .into_iter()
        .map(|rule| {
            let filters = filters(None, "", &rule.filters);
            let defaults = [HttpMatch::default()];
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
                        ..proxy_match(m)
                    });
                }
            }
            Rule {
                matches,
                backend_refs: rule.backend_refs,
                timeout: rule
                    .timeouts
                    .as_ref()
                    .and_then(|t| nonzero(t.request.as_deref())),
                per_try_timeout: rule
                    .timeouts
                    .as_ref()
                    .and_then(|t| nonzero(t.backend_request.as_deref())),
                retry: rule.retry.as_ref().map(retry),
                request_headers: filters.request_headers,
                response_headers: filters.response_headers,
                redirect: filters.redirect,
                rewrite: filters.rewrite,
                mirrors: filters.mirrors,
            }
        })
        .collect();
    Route {
        object,
        kind: Kind::HttpRoute,
        parent_refs: spec.parent_refs,
        hostnames: spec.hostnames,
        rules,
    }
}

/// What a rule's filters compile to.
#[derive(Default)]
struct Filters {
    request_headers: Option<pb::HeaderEdits>,
    response_headers: Option<pb::HeaderEdits>,
    redirect: Option<pb::Redirect>,
    rewrite: Option<pb::Rewrite>,
    mirrors: Vec<(weft_api::resource::route::BackendRef, u32)>,
    /// A redirect or rewrite replaces the matched prefix.
    uses_prefix: bool,
}

/// The filters of a rule in proxy form; with `errors`, every problem is reported with
/// its path (and unsupported filter types are refused, naming them).
fn filters(mut errors: Option<&mut Errors>, path: &str, list: &[serde_json::Value]) -> Filters {
    let mut out = Filters::default();
    let mut seen = HashSet::new();
    for (i, filter) in list.iter().enumerate() {
        let fpath = format!("{path}[{i}]");
        let kind = filter["type"].as_str().unwrap_or_default();
        let field = match kind {
            "RequestHeaderModifier" => "requestHeaderModifier",
            "ResponseHeaderModifier" => "responseHeaderModifier",
            "RequestRedirect" => "requestRedirect",
            "URLRewrite" => "urlRewrite",
            "RequestMirror" => "requestMirror",
            "" => {
                if let Some(e) = errors.as_deref_mut() {
                    e.push(
                        format!("{fpath}.type"),
                        "required, e.g. RequestHeaderModifier",
                    );
                }
                continue;
            }
            other => {
                if let Some(e) = errors.as_deref_mut() {
                    e.push(
                        format!("{fpath}.type"),
                        format!(
                            "{other:?} is not supported; supported: RequestHeaderModifier, \
                             ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror"
                        ),
                    );
                }
                continue;
            }
        };
        let body = filter[field].clone();
        let bpath = format!("{fpath}.{field}");
        if body.is_null() {
            if let Some(e) = errors.as_deref_mut() {
                e.push(bpath, format!("required with type {kind}"));
            }
            continue;
        }
        // Mirrors may repeat (one per target); the others may not.
        if kind != "RequestMirror" && !seen.insert(kind) {
            if let Some(e) = errors.as_deref_mut() {
                e.push(
                    format!("{fpath}.type"),
                    format!("{kind} appears twice in this rule; merge them"),
                );
            }
            continue;
        }
        let mut problems = Errors::default();
        match kind {
            "RequestHeaderModifier" | "ResponseHeaderModifier" => {
                let Some(modifier) = parse_into::<HeaderModifier>(&mut problems, &bpath, body)
                else {
                    merge(&mut errors, problems);
                    continue;
                };
                validate_modifier(&mut problems, &bpath, &modifier);
                let edits = header_edits(&modifier);
                if kind == "RequestHeaderModifier" {
                    out.request_headers = Some(edits);
                } else {
                    out.response_headers = Some(edits);
                }
            }
            "RequestRedirect" => {
                if let Some(r) = parse_into::<RequestRedirect>(&mut problems, &bpath, body) {
                    out.redirect = Some(redirect(&mut problems, &bpath, &r, &mut out.uses_prefix));
                }
            }
            "URLRewrite" => {
                if let Some(r) = parse_into::<UrlRewrite>(&mut problems, &bpath, body) {
                    if let Some(h) = &r.hostname {
                        hostname(&mut problems, &format!("{bpath}.hostname"), h);
                    }
                    out.rewrite = Some(pb::Rewrite {
                        hostname: r.hostname.clone().unwrap_or_default(),
                        path: r.path.as_ref().and_then(|p| {
                            path_modifier(
                                &mut problems,
                                &format!("{bpath}.path"),
                                p,
                                &mut out.uses_prefix,
                            )
                        }),
                    });
                }
            }
            _ => {
                if let Some(m) = parse_into::<RequestMirror>(&mut problems, &bpath, body) {
                    let per_million = mirror_share(&mut problems, &bpath, &m);
                    out.mirrors.push((m.backend_ref, per_million));
                }
            }
        }
        merge(&mut errors, problems);
    }
    if out.redirect.is_some() && (out.rewrite.is_some() || !out.mirrors.is_empty()) {
        if let Some(e) = errors {
            e.push(
                path,
                "RequestRedirect answers the client itself; it cannot be combined with \
                 URLRewrite or RequestMirror",
            );
        }
    }
    out
}

fn merge(errors: &mut Option<&mut Errors>, problems: Errors) {
    if let Some(e) = errors.as_deref_mut() {
        e.extend(problems);
    }
}

fn parse_into<T: serde::de::DeserializeOwned + serde::Serialize>(
    errors: &mut Errors,
    path: &str,
    body: serde_json::Value,
) -> Option<T> {
    field::parse(path, body)
        .map_err(|e| errors.push(e.path, e.message))
        .ok()
}

fn header_edits(modifier: &HeaderModifier) -> pb::HeaderEdits {
    let pairs = |v: &[weft_api::resource::route::HeaderValue]| {
        v.iter()
            .map(|h| pb::HeaderPair {
                name: h.name.to_ascii_lowercase(),
                value: h.value.clone(),
            })
            .collect()
    };
    pb::HeaderEdits {
        set: pairs(&modifier.set),
        add: pairs(&modifier.add),
        remove: modifier
            .remove
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
    }
}

fn redirect(
    errors: &mut Errors,
    path: &str,
    r: &RequestRedirect,
    uses_prefix: &mut bool,
) -> pb::Redirect {
    if let Some(scheme) = &r.scheme {
        if scheme != "http" && scheme != "https" {
            errors.push(
                format!("{path}.scheme"),
                format!("{scheme:?} must be http or https"),
            );
        }
    }
    if let Some(h) = &r.hostname {
        hostname(errors, &format!("{path}.hostname"), h);
    }
    if let Some(p) = r.port {
        field::port(errors, &format!("{path}.port"), p);
    }
    let status = r.status_code.unwrap_or(302);
    if ![301, 302, 303, 307, 308].contains(&status) {
        errors.push(
            format!("{path}.statusCode"),
            format!("{status} is not a redirect status; use 301, 302, 303, 307 or 308"),
        );
    }
    pb::Redirect {
        scheme: r.scheme.clone().unwrap_or_default(),
        hostname: r.hostname.clone().unwrap_or_default(),
        path: r
            .path
            .as_ref()
            .and_then(|p| path_modifier(errors, &format!("{path}.path"), p, uses_prefix)),
        port: r.port.map_or(0, u32::from),
        status: u32::from(status),
    }
}

fn hostname(errors: &mut Errors, path: &str, h: &str) {
    if !field::is_subdomain(h) {
        errors.push(
            path,
            format!("{h:?} is not a host name (lowercase DNS labels)"),
        );
    }
}

fn path_modifier(
    errors: &mut Errors,
    path: &str,
    p: &PathModifier,
    uses_prefix: &mut bool,
) -> Option<pb::PathRewrite> {
    use weft_api::pb::v1::path_rewrite::Kind as K;
    let (kind, value, field) = match p.kind.as_str() {
        "ReplaceFullPath" => (
            K::Full as fn(String) -> K,
            &p.replace_full_path,
            "replaceFullPath",
        ),
        "ReplacePrefixMatch" => {
            *uses_prefix = true;
            (
                K::Prefix as fn(String) -> K,
                &p.replace_prefix_match,
                "replacePrefixMatch",
            )
        }
        other => {
            errors.push(
                format!("{path}.type"),
                format!(
                    "{other:?} is not a path modifier; use ReplaceFullPath or ReplacePrefixMatch"
                ),
            );
            return None;
        }
    };
    let Some(value) = value else {
        errors.push(
            format!("{path}.{field}"),
            format!("required with type {}", p.kind),
        );
        return None;
    };
    if !value.starts_with('/')
        || value
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#')
    {
        errors.push(
            format!("{path}.{field}"),
            format!(
                "{value:?} must start with '/' and hold no spaces, '?', '#' or control characters"
            ),
        );
    }
    Some(pb::PathRewrite {
        kind: Some(kind(value.clone())),
    })
}

/// A mirror's share in millionths, from `percent` or `fraction`.
fn mirror_share(errors: &mut Errors, path: &str, m: &RequestMirror) -> u32 {
    match (m.percent, m.fraction) {
        (Some(_), Some(_)) => {
            errors.push(path, "set percent or fraction, not both");
            0
        }
        (Some(p), None) if p > 100 => {
            errors.push(
                format!("{path}.percent"),
                format!("{p} is not a percentage (0-100)"),
            );
            0
        }
        (Some(p), None) => p * 10_000,
        (None, Some(f)) => {
            let d = f.denominator.unwrap_or(100);
            if d == 0 || f.numerator > d {
                errors.push(
                    format!("{path}.fraction"),
                    format!("{}/{d} is not a fraction between 0 and 1", f.numerator),
                );
                0
            } else {
                u32::try_from(u64::from(f.numerator) * 1_000_000 / u64::from(d))
                    .unwrap_or(1_000_000)
            }
        }
        (None, None) => 1_000_000,
    }
}

/// The most edits one modifier may hold.
const MAX_HEADER_EDITS: usize = 32;

fn validate_modifier(errors: &mut Errors, path: &str, m: &HeaderModifier) {
    if m.set.len() + m.add.len() + m.remove.len() > MAX_HEADER_EDITS {
        errors.push(
            path,
            format!("more than {MAX_HEADER_EDITS} edits; a route is not the place for that many"),
        );
    }
    let mut seen = HashSet::new();
    for (kind, list) in [("set", &m.set), ("add", &m.add)] {
        for (i, h) in list.iter().enumerate() {
            if let Some(why) = proxy::HeaderEdits::refuse(&h.name) {
                errors.push(format!("{path}.{kind}[{i}].name"), why);
            } else if !seen.insert(h.name.to_ascii_lowercase()) {
                errors.push(
                    format!("{path}.{kind}[{i}].name"),
                    format!("{:?} is edited twice in this modifier", h.name),
                );
            }
            if h.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                errors.push(
                    format!("{path}.{kind}[{i}].value"),
                    "must not contain CR, LF or NUL",
                );
            }
        }
    }
    for (i, name) in m.remove.iter().enumerate() {
        if let Some(why) = proxy::HeaderEdits::refuse(name) {
            errors.push(format!("{path}.remove[{i}]"), why);
        }
    }
}

/// A timeout as written, `0s` meaning none.
fn nonzero(text: Option<&str>) -> Option<std::time::Duration> {
    text.and_then(|t| parse_duration(t).ok())
        .filter(|d| !d.is_zero())
}

/// The proxy's retry policy for a validated rule's `retry`.
fn retry(r: &weft_api::resource::route::HttpRetry) -> pb::RetryPolicy {
    pb::RetryPolicy {
        attempts: r.attempts.unwrap_or(DEFAULT_RETRY_ATTEMPTS),
        codes: r.codes.iter().map(|c| u32::from(*c)).collect(),
        backoff: r
            .backoff
            .as_deref()
            .and_then(|b| parse_duration(b).ok())
            .map(weft_api::pb_convert::duration_to_pb),
        non_idempotent: r.non_idempotent,
        grpc_codes: Vec::new(),
    }
}

/// Retries when a rule's `retry` does not say how many.
const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
