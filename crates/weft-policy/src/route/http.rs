//! `HTTPRoute`: validation and reduction to proxy matches.

use std::collections::HashSet;

use weft_api::pb::v1 as pb;
use weft_api::proxy::{self, KeyValueMatch, StringMatch};
use weft_api::resource::route::{
    parse_duration, HeaderModifier, HttpMatch, HttpSpec, PathMatchType, ValueMatch, ValueMatchType,
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
        header_filters(Some(errors), &format!("{rpath}.filters"), &rule.filters);
        super::validate_backend_refs(errors, &rpath, &rule.backend_refs);
        if let Some(t) = &rule.timeouts {
            let parse = |errors: &mut Errors, field: &str, text: &Option<String>| {
                let text = text.as_deref()?;
                parse_duration(text)
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
            Ok(_) => {}
            Err(e) => errors.push(format!("{path}.backoff"), e),
        }
    }
}

fn validate_match(errors: &mut Errors, path: &str, m: &HttpMatch) {
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

/// Reduces a valid spec: each match × hostname becomes one proxy match. Durations
/// were validated, so a parse failure here cannot happen and is treated as "none".
pub(crate) fn reduce(object: &Object, spec: HttpSpec) -> Route<'_> {
    let authorities = super::authorities(&spec.hostnames);
    let rules = spec
        .rules
        .into_iter()
        .map(|rule| {
            let headers = header_filters(None, "", &rule.filters);
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
                        path: m.path.as_ref().and_then(|p| match p.kind {
                            PathMatchType::PathPrefix if p.value == "/" => None,
                            PathMatchType::PathPrefix => {
                                Some(proxy::PathMatch::Prefix(p.value.clone()))
                            }
                            PathMatchType::Exact => Some(proxy::PathMatch::Exact(p.value.clone())),
                            PathMatchType::RegularExpression => {
                                Some(proxy::PathMatch::Regex(p.value.clone()))
                            }
                        }),
                        method: m.method.clone(),
                        headers: m.headers.iter().map(value_match).collect(),
                        query: m.query_params.iter().map(value_match).collect(),
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
                request_headers: headers.0,
                response_headers: headers.1,
            }
        })
        .collect();
    Route {
        object,
        kind: Kind::HttpRoute,
        parent_refs: spec.parent_refs,
        rules,
    }
}

/// The header modifier filters of a rule, as proxy edits `(request, response)`;
/// with `errors`, every problem is reported with its path (and other filter types are
/// refused, naming them).
fn header_filters(
    mut errors: Option<&mut Errors>,
    path: &str,
    filters: &[serde_json::Value],
) -> (Option<pb::HeaderEdits>, Option<pb::HeaderEdits>) {
    let mut request = None;
    let mut response = None;
    for (i, filter) in filters.iter().enumerate() {
        let fpath = format!("{path}[{i}]");
        let kind = filter["type"].as_str().unwrap_or_default();
        let (field, slot) = match kind {
            "RequestHeaderModifier" => ("requestHeaderModifier", &mut request),
            "ResponseHeaderModifier" => ("responseHeaderModifier", &mut response),
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
                            "{other:?} is not supported yet; supported: RequestHeaderModifier, \
                             ResponseHeaderModifier"
                        ),
                    );
                }
                continue;
            }
        };
        let body = filter[field].clone();
        let parsed: Result<HeaderModifier, _> = if body.is_null() {
            Err(weft_api::proxy::FieldError {
                path: format!("{fpath}.{field}"),
                message: format!("required with type {kind}"),
            })
        } else {
            field::parse(&format!("{fpath}.{field}"), body)
        };
        let modifier = match parsed {
            Ok(m) => m,
            Err(e) => {
                if let Some(errors) = errors.as_deref_mut() {
                    errors.push(e.path, e.message);
                }
                continue;
            }
        };
        if let Some(errors) = errors.as_deref_mut() {
            if slot.is_some() {
                errors.push(
                    format!("{fpath}.type"),
                    format!("{kind} appears twice in this rule; merge them"),
                );
            }
            validate_modifier(errors, &format!("{fpath}.{field}"), &modifier);
        }
        let pairs = |v: &[weft_api::resource::route::HeaderValue]| {
            v.iter()
                .map(|h| pb::HeaderPair {
                    name: h.name.to_ascii_lowercase(),
                    value: h.value.clone(),
                })
                .collect()
        };
        *slot = Some(pb::HeaderEdits {
            set: pairs(&modifier.set),
            add: pairs(&modifier.add),
            remove: modifier
                .remove
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
        });
    }
    (request, response)
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
    }
}

/// Retries when a rule's `retry` does not say how many.
const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
