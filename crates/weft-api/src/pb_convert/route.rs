//! Route tables: on the wire a list of `Route` chunks per service in precedence order,
//! in the proxy model one table per (service, port).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{duration_from_pb, duration_to_pb, port, Error};
use crate::pb::v1 as pb;
use crate::proxy;

/// Converts one wire route table into proxy route tables: one per port that has
/// routes (`None` = every port), each holding the rules of that port's `Route` chunks
/// in wire order. Tables are returned with the every-port table first, then by port, so
/// a port-specific table, applied later, overrides the every-port one for its port.
pub fn route_tables_from_pb(table: &pb::RouteTable) -> Result<Vec<proxy::RouteTable>, Error> {
    if table.service.is_empty() {
        return Err(Error::new("service", "must not be empty"));
    }
    let mut by_port: BTreeMap<Option<u16>, Vec<proxy::RouteRule>> = BTreeMap::new();
    for (r, route) in table.routes.iter().enumerate() {
        let path = format!("routes[{r}]");
        let port_key = route
            .port
            .map(|p| port(&format!("{path}.port"), p))
            .transpose()?;
        let rules = route
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| route_rule(&format!("{path}.rules[{i}]"), rule))
            .collect::<Result<Vec<_>, Error>>()?;
        by_port.entry(port_key).or_default().extend(rules);
    }
    Ok(by_port
        .into_iter()
        .map(|(port, rules)| proxy::RouteTable {
            service: table.service.clone(),
            port,
            rules,
        })
        .collect())
}

/// Converts proxy route tables of one service into a wire route table: one `Route`
/// per table, in the order given (`source` left empty: the proxy model does not keep
/// it). `service` is the wire name, `<name>.<namespace>`.
pub fn route_table_to_pb(service: &str, tables: &[proxy::RouteTable]) -> pb::RouteTable {
    pb::RouteTable {
        service: service.to_owned(),
        routes: tables.iter().map(pb::Route::from).collect(),
    }
}

impl From<&proxy::RouteTable> for pb::Route {
    fn from(t: &proxy::RouteTable) -> Self {
        pb::Route {
            port: t.port.map(u32::from),
            rules: t.rules.iter().map(pb::RouteRule::from).collect(),
            source: String::new(),
        }
    }
}

impl From<&proxy::RouteRule> for pb::RouteRule {
    fn from(r: &proxy::RouteRule) -> Self {
        pb::RouteRule {
            matches: r.matches.iter().map(pb::RouteMatch::from).collect(),
            backends: r
                .backends
                .iter()
                .map(|b| pb::Backend {
                    service: b.service.clone(),
                    port: b.port.map(u32::from),
                    weight: b.weight,
                })
                .collect(),
            timeout: r.timeout.map(duration_to_pb),
            per_try_timeout: r.per_try_timeout.map(duration_to_pb),
            retry: r.retry.as_ref().map(|t| pb::RetryPolicy {
                attempts: t.attempts,
                codes: t.codes.iter().map(|c| u32::from(*c)).collect(),
                backoff: Some(duration_to_pb(t.backoff)),
                non_idempotent: t.non_idempotent,
                grpc_codes: t.grpc_codes.clone(),
            }),
            request_headers: r.request_headers.as_ref().map(header_edits_to_pb),
            response_headers: r.response_headers.as_ref().map(header_edits_to_pb),
            redirect: r.redirect.as_ref().map(|d| pb::Redirect {
                scheme: d.scheme.clone().unwrap_or_default(),
                hostname: d.hostname.clone().unwrap_or_default(),
                path: d.path.as_ref().map(path_rewrite_to_pb),
                port: d.port.map_or(0, u32::from),
                status: u32::from(d.status),
            }),
            rewrite: r.rewrite.as_ref().map(|w| pb::Rewrite {
                hostname: w.hostname.clone().unwrap_or_default(),
                path: w.path.as_ref().map(path_rewrite_to_pb),
            }),
            mirrors: r
                .mirrors
                .iter()
                .map(|m| pb::Mirror {
                    backend: Some(pb::Backend {
                        service: m.service.clone(),
                        port: m.port.map(u32::from),
                        weight: 1,
                    }),
                    per_million: proxy::per_million(m.percent),
                })
                .collect(),
            source: r.source.clone().unwrap_or_default(),
            rule: r.rule.unwrap_or_default(),
        }
    }
}

fn path_rewrite_to_pb(p: &proxy::PathRewrite) -> pb::PathRewrite {
    pb::PathRewrite {
        kind: Some(match p {
            proxy::PathRewrite::Full(f) => pb::path_rewrite::Kind::Full(f.clone()),
            proxy::PathRewrite::Prefix(f) => pb::path_rewrite::Kind::Prefix(f.clone()),
        }),
    }
}

pub(super) fn path_rewrite(path: &str, p: &pb::PathRewrite) -> Result<proxy::PathRewrite, Error> {
    let (kind, value) = match &p.kind {
        Some(pb::path_rewrite::Kind::Full(f)) => (proxy::PathRewrite::Full(f.clone()), f),
        Some(pb::path_rewrite::Kind::Prefix(f)) => (proxy::PathRewrite::Prefix(f.clone()), f),
        None => return Err(Error::new(path, "needs full or prefix")),
    };
    if value.starts_with('/') || (value.is_empty() && matches!(kind, proxy::PathRewrite::Prefix(_)))
    {
        Ok(kind)
    } else {
        Err(Error::new(path, format!("{value:?} must start with '/'")))
    }
}

impl From<&proxy::RouteMatch> for pb::RouteMatch {
    fn from(m: &proxy::RouteMatch) -> Self {
        pb::RouteMatch {
            authority: m.authority.as_ref().map(string_match_to_pb),
            path: m.path.as_ref().map(|p| pb::PathMatch {
                kind: Some(match p {
                    proxy::PathMatch::Exact(s) => pb::path_match::Kind::Exact(s.clone()),
                    proxy::PathMatch::Prefix(s) => pb::path_match::Kind::Prefix(s.clone()),
                    proxy::PathMatch::Regex(s) => pb::path_match::Kind::Regex(s.clone()),
                }),
            }),
            method: m.method.clone().unwrap_or_default(),
            headers: m.headers.iter().map(key_value_to_pb).collect(),
            query: m.query.iter().map(key_value_to_pb).collect(),
        }
    }
}

fn string_match_to_pb(m: &proxy::StringMatch) -> pb::StringMatch {
    pb::StringMatch {
        kind: Some(match m {
            proxy::StringMatch::Exact(s) => pb::string_match::Kind::Exact(s.clone()),
            proxy::StringMatch::Prefix(s) => pb::string_match::Kind::Prefix(s.clone()),
            proxy::StringMatch::Regex(s) => pb::string_match::Kind::Regex(s.clone()),
        }),
    }
}

/// The wire form of a header or query match.
pub fn key_value_to_pb(kv: &proxy::KeyValueMatch) -> pb::KeyValueMatch {
    pb::KeyValueMatch {
        name: kv.name.clone(),
        value: Some(string_match_to_pb(&kv.value)),
    }
}

pub(super) fn route_rule(path: &str, r: &pb::RouteRule) -> Result<proxy::RouteRule, Error> {
    let matches = r
        .matches
        .iter()
        .enumerate()
        .map(|(i, m)| route_match(&format!("{path}.matches[{i}]"), m))
        .collect::<Result<Vec<_>, Error>>()?;
    let backends = r
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let bpath = format!("{path}.backends[{i}]");
            if b.service.is_empty() {
                return Err(Error::new(format!("{bpath}.service"), "must not be empty"));
            }
            Ok(proxy::Backend {
                service: b.service.clone(),
                port: b
                    .port
                    .map(|p| port(&format!("{bpath}.port"), p))
                    .transpose()?,
                weight: b.weight,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let duration =
        |field: &str, d: &prost_types::Duration| duration_from_pb(&format!("{path}.{field}"), d);
    let timeout = r
        .timeout
        .as_ref()
        .map(|d| duration("timeout", d))
        .transpose()?;
    let per_try_timeout = r
        .per_try_timeout
        .as_ref()
        .map(|d| duration("perTryTimeout", d))
        .transpose()?;
    let retry = r
        .retry
        .as_ref()
        .map(|t| {
            if t.attempts > proxy::Retry::MAX_ATTEMPTS {
                return Err(Error::new(
                    format!("{path}.retry.attempts"),
                    format!("{} is more than {}", t.attempts, proxy::Retry::MAX_ATTEMPTS),
                ));
            }
            let codes = t
                .codes
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    u16::try_from(*c)
                        .ok()
                        .filter(|c| (400..=599).contains(c))
                        .ok_or_else(|| {
                            Error::new(
                                format!("{path}.retry.codes[{i}]"),
                                format!("{c} is not a 4xx or 5xx status"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, Error>>()?;
            if let Some((i, c)) = t
                .grpc_codes
                .iter()
                .enumerate()
                .find(|(_, c)| **c == 0 || **c > 16)
            {
                return Err(Error::new(
                    format!("{path}.retry.grpcCodes[{i}]"),
                    format!("{c} is not a gRPC error code (1-16)"),
                ));
            }
            Ok(proxy::Retry {
                attempts: t.attempts,
                codes,
                grpc_codes: t.grpc_codes.clone(),
                backoff: t
                    .backoff
                    .as_ref()
                    .map(|d| duration("retry.backoff", d))
                    .transpose()?
                    .unwrap_or(Duration::from_millis(25)),
                non_idempotent: t.non_idempotent,
            })
        })
        .transpose()?;
    let request_headers = r
        .request_headers
        .as_ref()
        .map(|e| header_edits(&format!("{path}.requestHeaders"), e))
        .transpose()?;
    let response_headers = r
        .response_headers
        .as_ref()
        .map(|e| header_edits(&format!("{path}.responseHeaders"), e))
        .transpose()?;
    let redirect = r
        .redirect
        .as_ref()
        .map(|d| {
            let status = u16::try_from(d.status).unwrap_or(0);
            let status = match status {
                0 => 302,
                301 | 302 | 303 | 307 | 308 => status,
                _ => {
                    return Err(Error::new(
                        format!("{path}.redirect.status"),
                        format!(
                            "{} is not a redirect status (301, 302, 303, 307, 308)",
                            d.status
                        ),
                    ))
                }
            };
            Ok(proxy::Redirect {
                scheme: (!d.scheme.is_empty()).then(|| d.scheme.clone()),
                hostname: (!d.hostname.is_empty()).then(|| d.hostname.clone()),
                path: d
                    .path
                    .as_ref()
                    .map(|p| path_rewrite(&format!("{path}.redirect.path"), p))
                    .transpose()?,
                port: match d.port {
                    0 => None,
                    p => Some(port(&format!("{path}.redirect.port"), p)?),
                },
                status,
            })
        })
        .transpose()?;
    let rewrite = r
        .rewrite
        .as_ref()
        .map(|w| {
            Ok::<_, Error>(proxy::Rewrite {
                hostname: (!w.hostname.is_empty()).then(|| w.hostname.clone()),
                path: w
                    .path
                    .as_ref()
                    .map(|p| path_rewrite(&format!("{path}.rewrite.path"), p))
                    .transpose()?,
            })
        })
        .transpose()?;
    let mirrors = r
        .mirrors
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mpath = format!("{path}.mirrors[{i}]");
            let backend = m
                .backend
                .as_ref()
                .filter(|b| !b.service.is_empty())
                .ok_or_else(|| Error::new(format!("{mpath}.backend"), "required"))?;
            if m.per_million > 1_000_000 {
                return Err(Error::new(
                    format!("{mpath}.perMillion"),
                    format!("{} is more than 1000000", m.per_million),
                ));
            }
            Ok(proxy::Mirror {
                service: backend.service.clone(),
                port: backend
                    .port
                    .map(|p| port(&format!("{mpath}.backend.port"), p))
                    .transpose()?,
                percent: proxy::percent_of(m.per_million),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(proxy::RouteRule {
        matches,
        backends,
        timeout,
        per_try_timeout,
        retry,
        request_headers,
        response_headers,
        redirect,
        rewrite,
        mirrors,
        source: (!r.source.is_empty()).then(|| r.source.clone()),
        rule: (!r.source.is_empty()).then_some(r.rule),
    })
}

fn header_edits_to_pb(e: &proxy::HeaderEdits) -> pb::HeaderEdits {
    let pairs = |v: &[(String, String)]| {
        v.iter()
            .map(|(name, value)| pb::HeaderPair {
                name: name.clone(),
                value: value.clone(),
            })
            .collect()
    };
    pb::HeaderEdits {
        set: pairs(&e.set),
        add: pairs(&e.add),
        remove: e.remove.clone(),
    }
}

/// Header edits as the proxy will apply them: editable names, values without line
/// breaks.
pub(super) fn header_edits(path: &str, e: &pb::HeaderEdits) -> Result<proxy::HeaderEdits, Error> {
    let check_name = |field: String, name: &str| match proxy::HeaderEdits::refuse(name) {
        Some(why) => Err(Error::new(field, why)),
        None => Ok(()),
    };
    let pairs = |kind: &str, v: &[pb::HeaderPair]| {
        v.iter()
            .enumerate()
            .map(|(i, p)| {
                check_name(format!("{path}.{kind}[{i}].name"), &p.name)?;
                if p.value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    return Err(Error::new(
                        format!("{path}.{kind}[{i}].value"),
                        "must not contain CR, LF or NUL",
                    ));
                }
                Ok((p.name.to_ascii_lowercase(), p.value.clone()))
            })
            .collect::<Result<Vec<_>, Error>>()
    };
    let remove = e
        .remove
        .iter()
        .enumerate()
        .map(|(i, n)| {
            check_name(format!("{path}.remove[{i}]"), n)?;
            Ok(n.to_ascii_lowercase())
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(proxy::HeaderEdits {
        set: pairs("set", &e.set)?,
        add: pairs("add", &e.add)?,
        remove,
    })
}

pub(super) fn route_match(path: &str, m: &pb::RouteMatch) -> Result<proxy::RouteMatch, Error> {
    let key_values = |field: &str, items: &[pb::KeyValueMatch]| {
        items
            .iter()
            .enumerate()
            .map(|(i, kv)| key_value(&format!("{path}.{field}[{i}]"), kv))
            .collect::<Result<Vec<_>, Error>>()
    };
    Ok(proxy::RouteMatch {
        authority: m
            .authority
            .as_ref()
            .map(|a| string_match(&format!("{path}.authority"), Some(a)))
            .transpose()?,
        path: m
            .path
            .as_ref()
            .map(|p| match &p.kind {
                Some(pb::path_match::Kind::Exact(s)) => Ok(proxy::PathMatch::Exact(s.clone())),
                Some(pb::path_match::Kind::Prefix(s)) => Ok(proxy::PathMatch::Prefix(s.clone())),
                Some(pb::path_match::Kind::Regex(s)) => Ok(proxy::PathMatch::Regex(s.clone())),
                None => Err(Error::new(
                    format!("{path}.path"),
                    "set but empty: give exact, prefix or regex",
                )),
            })
            .transpose()?,
        method: (!m.method.is_empty()).then(|| m.method.clone()),
        headers: key_values("headers", &m.headers)?,
        query: key_values("query", &m.query)?,
    })
}

/// A header or query match at `path`.
pub(super) fn key_value(path: &str, kv: &pb::KeyValueMatch) -> Result<proxy::KeyValueMatch, Error> {
    if kv.name.is_empty() {
        return Err(Error::new(format!("{path}.name"), "must not be empty"));
    }
    Ok(proxy::KeyValueMatch {
        name: kv.name.clone(),
        value: string_match(&format!("{path}.value"), kv.value.as_ref())?,
    })
}

pub(super) fn string_match(
    path: &str,
    m: Option<&pb::StringMatch>,
) -> Result<proxy::StringMatch, Error> {
    match m.and_then(|m| m.kind.as_ref()) {
        Some(pb::string_match::Kind::Exact(s)) => Ok(proxy::StringMatch::Exact(s.clone())),
        Some(pb::string_match::Kind::Prefix(s)) => Ok(proxy::StringMatch::Prefix(s.clone())),
        Some(pb::string_match::Kind::Regex(s)) => Ok(proxy::StringMatch::Regex(s.clone())),
        None => Err(Error::new(path, "missing: give exact, prefix or regex")),
    }
}
