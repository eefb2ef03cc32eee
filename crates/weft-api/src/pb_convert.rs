//! Conversions between the wire resources ([`pb::v1`](crate::pb::v1)) and the proxy
//! model ([`proxy`]).
//!
//! The proxy converts what it receives over xDS with [`TryFrom`] / [`route_tables_from_pb`];
//! a malformed field fails the one resource (the proxy NACKs it) with an [`Error`] that
//! names the field path inside that resource (`endpoints[2].address`). The reverse
//! direction is infallible and is used to persist accepted config and in tests.
//!
//! Route tables differ in shape: on the wire a `RouteTable` holds a list of `Route`
//! chunks, each with an optional port and the user resource it came from, in precedence
//! order; the proxy model has one table per (service, port). [`route_tables_from_pb`]
//! concatenates the chunks of each port in order.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::pb::v1 as pb;
use crate::proxy::{self, FieldError};

mod backend;
mod inbound;
pub use backend::policy_to_pb;
pub use inbound::{fault_to_pb, rate_limit_to_pb};

/// A wire resource field that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Error {
    /// Field path inside the resource, e.g. `endpoints[2].address`.
    pub path: String,
    /// What is wrong, with the offending value.
    pub message: String,
}

impl Error {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<Error> for FieldError {
    fn from(e: Error) -> Self {
        FieldError {
            path: e.path,
            message: e.message,
        }
    }
}

// === Service ===

impl TryFrom<&pb::Service> for proxy::Service {
    type Error = Error;

    fn try_from(s: &pb::Service) -> Result<Self, Error> {
        if s.name.is_empty() {
            return Err(Error::new("name", "must not be empty"));
        }
        let vip = if s.vip.is_empty() {
            None
        } else {
            Some(ip("vip", &s.vip)?)
        };
        let ports = s
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = format!("ports[{i}]");
                Ok(proxy::ServicePort {
                    port: port(&format!("{path}.port"), p.port)?,
                    target_port: match p.target_port {
                        0 => None,
                        t => Some(port(&format!("{path}.targetPort"), t)?),
                    },
                    protocol: protocol(&format!("{path}.protocol"), p.protocol)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let load_balancer = match pb::LoadBalancer::try_from(s.load_balancer) {
            Ok(pb::LoadBalancer::PeakEwma) => proxy::LoadBalancer::PeakEwma,
            Ok(pb::LoadBalancer::LeastRequest) => proxy::LoadBalancer::LeastRequest,
            Ok(pb::LoadBalancer::RoundRobin) => proxy::LoadBalancer::RoundRobin,
            Ok(pb::LoadBalancer::RingHash) => proxy::LoadBalancer::RingHash,
            Ok(pb::LoadBalancer::Maglev) => proxy::LoadBalancer::Maglev,
            Err(_) => {
                return Err(Error::new(
                    "loadBalancer",
                    format!(
                        "unknown load balancer {} (a newer control plane?)",
                        s.load_balancer
                    ),
                ))
            }
        };
        let endpoints = s
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| endpoint(&format!("endpoints[{i}]"), e))
            .collect::<Result<Vec<_>, Error>>()?;
        let policy = match &s.policy {
            Some(p) => backend::policy("policy", p)?,
            None => proxy::BackendPolicy::default(),
        };
        if load_balancer.hashes() && policy.hash_on.is_none() {
            return Err(Error::new(
                "policy.hashOn",
                "required by the ringHash and maglev load balancers",
            ));
        }
        Ok(proxy::Service {
            name: s.name.clone(),
            namespace: if s.namespace.is_empty() {
                crate::resource::DEFAULT_NAMESPACE.to_owned()
            } else {
                s.namespace.clone()
            },
            vip,
            ports,
            load_balancer,
            endpoints,
            hostnames: s
                .hostnames
                .iter()
                .enumerate()
                .map(|(i, h)| hostname(&format!("hostnames[{i}]"), h))
                .collect::<Result<Vec<_>, Error>>()?,
            policy,
        })
    }
}

/// A DNS name as the control plane sends it: lowercase labels, no trailing dot.
fn hostname(path: &str, h: &str) -> Result<String, Error> {
    let valid = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if valid {
        Ok(h.to_owned())
    } else {
        Err(Error::new(
            path,
            format!("{h:?} is not a DNS name (lowercase labels separated by '.')"),
        ))
    }
}

impl From<&proxy::Service> for pb::Service {
    fn from(s: &proxy::Service) -> Self {
        pb::Service {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            vip: s.vip.map(|v| v.to_string()).unwrap_or_default(),
            ports: s
                .ports
                .iter()
                .map(|p| pb::ServicePort {
                    port: u32::from(p.port),
                    target_port: p.target_port.map_or(0, u32::from),
                    protocol: protocol_to_pb(p.protocol) as i32,
                })
                .collect(),
            load_balancer: load_balancer_to_pb(s.load_balancer) as i32,
            endpoints: s
                .endpoints
                .iter()
                .map(|e| pb::Endpoint {
                    address: e.address.to_string(),
                    identity: e.identity.clone().unwrap_or_default(),
                    hbone: e.hbone.map(|h| h.to_string()).unwrap_or_default(),
                    workload: String::new(),
                    zone: e.zone.clone().unwrap_or_default(),
                })
                .collect(),
            hostnames: s.hostnames.clone(),
            policy: Some(backend::policy_to_pb(&s.policy)),
        }
    }
}

/// Maps a proxy load balancer to its wire value.
pub fn load_balancer_to_pb(lb: proxy::LoadBalancer) -> pb::LoadBalancer {
    match lb {
        proxy::LoadBalancer::PeakEwma => pb::LoadBalancer::PeakEwma,
        proxy::LoadBalancer::LeastRequest => pb::LoadBalancer::LeastRequest,
        proxy::LoadBalancer::RoundRobin => pb::LoadBalancer::RoundRobin,
        proxy::LoadBalancer::RingHash => pb::LoadBalancer::RingHash,
        proxy::LoadBalancer::Maglev => pb::LoadBalancer::Maglev,
    }
}

/// Maps a proxy protocol to its wire value.
pub fn protocol_to_pb(p: proxy::Protocol) -> pb::Protocol {
    match p {
        proxy::Protocol::Auto => pb::Protocol::Auto,
        proxy::Protocol::Http => pb::Protocol::Http,
        proxy::Protocol::Http2 => pb::Protocol::Http2,
        proxy::Protocol::Grpc => pb::Protocol::Grpc,
        proxy::Protocol::Tcp => pb::Protocol::Tcp,
    }
}

fn endpoint(path: &str, e: &pb::Endpoint) -> Result<proxy::Endpoint, Error> {
    let address = ip(&format!("{path}.address"), &e.address)?;
    let hbone = if e.hbone.is_empty() {
        None
    } else {
        Some(e.hbone.parse::<SocketAddr>().map_err(|_| {
            Error::new(
                format!("{path}.hbone"),
                format!("{:?} is not an ip:port address", e.hbone),
            )
        })?)
    };
    let identity = if e.identity.is_empty() {
        if hbone.is_some() {
            return Err(Error::new(
                format!("{path}.hbone"),
                "set without an identity: HBONE needs the SPIFFE ID the peer must present",
            ));
        }
        None
    } else if e.identity.starts_with("spiffe://") {
        Some(e.identity.clone())
    } else {
        return Err(Error::new(
            format!("{path}.identity"),
            format!("{:?} is not a SPIFFE ID", e.identity),
        ));
    };
    Ok(proxy::Endpoint {
        address,
        identity,
        hbone,
        zone: (!e.zone.is_empty()).then(|| e.zone.clone()),
    })
}

fn ip(path: &str, text: &str) -> Result<IpAddr, Error> {
    text.parse()
        .map_err(|_| Error::new(path, format!("{text:?} is not an IP address")))
}

fn port(path: &str, value: u32) -> Result<u16, Error> {
    match u16::try_from(value) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Error::new(path, format!("{value} is not a port (1-65535)"))),
    }
}

fn protocol(path: &str, value: i32) -> Result<proxy::Protocol, Error> {
    Ok(match pb::Protocol::try_from(value) {
        Ok(pb::Protocol::Auto) => proxy::Protocol::Auto,
        Ok(pb::Protocol::Http) => proxy::Protocol::Http,
        Ok(pb::Protocol::Http2) => proxy::Protocol::Http2,
        Ok(pb::Protocol::Grpc) => proxy::Protocol::Grpc,
        Ok(pb::Protocol::Tcp) => proxy::Protocol::Tcp,
        Err(_) => {
            return Err(Error::new(
                path,
                format!("unknown protocol {value} (a newer control plane?)"),
            ))
        }
    })
}

// === InboundPolicy ===

impl TryFrom<&pb::InboundPolicy> for proxy::InboundPolicy {
    type Error = Error;

    fn try_from(p: &pb::InboundPolicy) -> Result<Self, Error> {
        let mut ports = BTreeMap::new();
        for (i, entry) in p.ports.iter().enumerate() {
            let number = port(&format!("ports[{i}].port"), entry.port)?;
            let mode = mtls_mode(&format!("ports[{i}].mtls"), entry.mtls)?;
            if ports.insert(number, mode).is_some() {
                return Err(Error::new(
                    format!("ports[{i}].port"),
                    format!("port {number} is listed twice"),
                ));
            }
        }
        Ok(proxy::InboundPolicy {
            mtls: mtls_mode("mtls", p.mtls)?,
            ports,
            rate_limits: p
                .rate_limits
                .iter()
                .enumerate()
                .map(|(i, l)| inbound::rate_limit(&format!("rateLimits[{i}]"), l))
                .collect::<Result<_, Error>>()?,
            faults: p
                .faults
                .iter()
                .enumerate()
                .map(|(i, f)| inbound::fault(&format!("faults[{i}]"), f))
                .collect::<Result<_, Error>>()?,
        })
    }
}

impl From<&proxy::InboundPolicy> for pb::InboundPolicy {
    fn from(p: &proxy::InboundPolicy) -> Self {
        pb::InboundPolicy {
            workload: String::new(),
            mtls: mtls_mode_to_pb(p.mtls) as i32,
            ports: p
                .ports
                .iter()
                .map(|(&port, &mode)| pb::PortMtls {
                    port: u32::from(port),
                    mtls: mtls_mode_to_pb(mode) as i32,
                })
                .collect(),
            rate_limits: p
                .rate_limits
                .iter()
                .map(inbound::rate_limit_to_pb)
                .collect(),
            faults: p.faults.iter().map(inbound::fault_to_pb).collect(),
        }
    }
}

/// The wire form of an mTLS mode.
pub fn mtls_mode_to_pb(mode: proxy::MtlsMode) -> pb::MtlsMode {
    match mode {
        proxy::MtlsMode::Strict => pb::MtlsMode::Strict,
        proxy::MtlsMode::Permissive => pb::MtlsMode::Permissive,
    }
}

fn mtls_mode(path: &str, value: i32) -> Result<proxy::MtlsMode, Error> {
    match pb::MtlsMode::try_from(value) {
        Ok(pb::MtlsMode::Strict) => Ok(proxy::MtlsMode::Strict),
        Ok(pb::MtlsMode::Permissive) => Ok(proxy::MtlsMode::Permissive),
        Err(_) => Err(Error::new(
            path,
            format!("unknown mTLS mode {value} (a newer control plane?)"),
        )),
    }
}

// === RouteTable ===

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

fn path_rewrite(path: &str, p: &pb::PathRewrite) -> Result<proxy::PathRewrite, Error> {
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

/// Converts a duration to its wire form, saturating at `i64::MAX` seconds.
pub fn duration_to_pb(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0), // always < 1e9
    }
}

/// Reads a wire duration; negative or out-of-range values are an error at `path`.
fn duration_from_pb(path: &str, d: &prost_types::Duration) -> Result<Duration, Error> {
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000);
    match (u64::try_from(d.seconds), nanos) {
        (Ok(s), Some(n)) => Ok(Duration::new(s, n)),
        _ => Err(Error::new(
            path,
            format!("{}s {}ns is not a valid duration", d.seconds, d.nanos),
        )),
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

fn key_value_to_pb(kv: &proxy::KeyValueMatch) -> pb::KeyValueMatch {
    pb::KeyValueMatch {
        name: kv.name.clone(),
        value: Some(string_match_to_pb(&kv.value)),
    }
}

fn route_rule(path: &str, r: &pb::RouteRule) -> Result<proxy::RouteRule, Error> {
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
fn header_edits(path: &str, e: &pb::HeaderEdits) -> Result<proxy::HeaderEdits, Error> {
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

fn route_match(path: &str, m: &pb::RouteMatch) -> Result<proxy::RouteMatch, Error> {
    let key_values = |field: &str, items: &[pb::KeyValueMatch]| {
        items
            .iter()
            .enumerate()
            .map(|(i, kv)| {
                let kpath = format!("{path}.{field}[{i}]");
                if kv.name.is_empty() {
                    return Err(Error::new(format!("{kpath}.name"), "must not be empty"));
                }
                Ok(proxy::KeyValueMatch {
                    name: kv.name.clone(),
                    value: string_match(&format!("{kpath}.value"), kv.value.as_ref())?,
                })
            })
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

fn string_match(path: &str, m: Option<&pb::StringMatch>) -> Result<proxy::StringMatch, Error> {
    match m.and_then(|m| m.kind.as_ref()) {
        Some(pb::string_match::Kind::Exact(s)) => Ok(proxy::StringMatch::Exact(s.clone())),
        Some(pb::string_match::Kind::Prefix(s)) => Ok(proxy::StringMatch::Prefix(s.clone())),
        Some(pb::string_match::Kind::Regex(s)) => Ok(proxy::StringMatch::Regex(s.clone())),
        None => Err(Error::new(path, "missing: give exact, prefix or regex")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mutation of a valid resource and the field path it must be rejected at.
    type Case<T> = (fn(&mut T), &'static str);

    fn service() -> proxy::Service {
        proxy::Service {
            name: "echo".into(),
            namespace: "shop".into(),
            vip: Some("10.96.0.10".parse().expect("ip")),
            ports: vec![
                proxy::ServicePort {
                    port: 80,
                    target_port: Some(8080),
                    protocol: proxy::Protocol::Http,
                },
                proxy::ServicePort {
                    port: 9000,
                    target_port: None,
                    protocol: proxy::Protocol::Grpc,
                },
            ],
            load_balancer: proxy::LoadBalancer::RoundRobin,
            endpoints: vec![
                proxy::Endpoint {
                    address: "10.0.0.2".parse().expect("ip"),
                    identity: Some("spiffe://cluster.local/ns/shop/sa/echo".into()),
                    hbone: Some("10.0.0.2:15009".parse().expect("addr")),
                    zone: Some("zone-a".into()),
                },
                proxy::Endpoint {
                    address: "fd00::3".parse().expect("ip"),
                    identity: None,
                    hbone: None,
                    zone: None,
                },
            ],
            hostnames: vec!["echo.shop.svc.cluster.local".into()],
            policy: proxy::BackendPolicy {
                hash_on: Some(proxy::HashOn::Header("x-user".into())),
                ..proxy::BackendPolicy::default()
            },
        }
    }

    fn tables() -> Vec<proxy::RouteTable> {
        let rule = proxy::RouteRule {
            matches: vec![proxy::RouteMatch {
                authority: Some(proxy::StringMatch::Regex("(?i).+\\.example\\.com".into())),
                path: Some(proxy::PathMatch::Prefix("/api".into())),
                method: Some("GET".into()),
                headers: vec![proxy::KeyValueMatch {
                    name: "x-canary".into(),
                    value: proxy::StringMatch::Exact("1".into()),
                }],
                query: vec![proxy::KeyValueMatch {
                    name: "v".into(),
                    value: proxy::StringMatch::Prefix("2".into()),
                }],
            }],
            backends: vec![
                proxy::Backend {
                    service: "echo.shop".into(),
                    port: Some(80),
                    weight: 50,
                },
                proxy::Backend {
                    service: "echo-v2.shop".into(),
                    port: None,
                    weight: 50,
                },
            ],
            timeout: Some(Duration::from_millis(1500)),
            per_try_timeout: Some(Duration::from_millis(500)),
            retry: Some(proxy::Retry {
                attempts: 3,
                codes: vec![502, 503],
                grpc_codes: vec![14],
                backoff: Duration::from_millis(10),
                non_idempotent: false,
            }),
            request_headers: Some(proxy::HeaderEdits {
                set: vec![("x-env".into(), "prod".into())],
                add: vec![("x-tag".into(), "a".into())],
                remove: vec!["x-debug".into()],
            }),
            response_headers: None,
            redirect: None,
            rewrite: None,
            mirrors: Vec::new(),
        };
        let catch_all = proxy::RouteRule {
            matches: vec![],
            backends: vec![proxy::Backend {
                service: "echo.shop".into(),
                port: None,
                weight: 1,
            }],
            timeout: None,
            per_try_timeout: None,
            retry: None,
            request_headers: None,
            response_headers: None,
            redirect: None,
            rewrite: None,
            mirrors: Vec::new(),
        };
        vec![
            proxy::RouteTable {
                service: "echo.shop".into(),
                port: None,
                rules: vec![catch_all.clone()],
            },
            proxy::RouteTable {
                service: "echo.shop".into(),
                port: Some(80),
                rules: vec![rule, catch_all],
            },
        ]
    }

    #[test]
    fn service_round_trips_through_the_wire_form() {
        let original = service();
        let wire = pb::Service::from(&original);
        assert_eq!(proxy::Service::try_from(&wire), Ok(original));
    }

    #[test]
    fn route_tables_round_trip_through_the_wire_form() {
        let original = tables();
        let wire = route_table_to_pb("echo.shop", &original);
        assert_eq!(route_tables_from_pb(&wire), Ok(original));
        let back = route_table_to_pb("echo.shop", &route_tables_from_pb(&wire).expect("valid"));
        assert_eq!(back, wire);
    }

    #[test]
    fn chunks_of_the_same_port_are_concatenated_in_order() {
        let t = tables();
        let mut wire = route_table_to_pb("echo.shop", &t[1..]);
        let mut second = wire.routes[0].clone();
        second.rules.truncate(1);
        second.source = "HTTPRoute/shop/b".into();
        wire.routes.push(second);
        wire.routes.insert(0, pb::Route::from(&t[0]));
        let got = route_tables_from_pb(&wire).expect("valid");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].port, None);
        assert_eq!(got[1].port, Some(80));
        assert_eq!(got[1].rules.len(), 3);
        assert_eq!(got[1].rules[2], t[1].rules[0]);
    }

    #[test]
    fn names_the_endpoint_whose_address_is_not_an_ip() {
        let mut wire = pb::Service::from(&service());
        wire.endpoints.push(pb::Endpoint {
            address: "10.0.0.x".into(),
            ..pb::Endpoint::default()
        });
        let err = proxy::Service::try_from(&wire).expect_err("bad address");
        assert_eq!(
            err.to_string(),
            "endpoints[2].address: \"10.0.0.x\" is not an IP address"
        );
    }

    #[test]
    fn rejects_malformed_service_fields_by_path() {
        let cases: Vec<Case<pb::Service>> = vec![
            (|s| s.vip = "nope".into(), "vip"),
            (|s| s.hostnames = vec!["Echo.shop".into()], "hostnames[0]"),
            (|s| s.hostnames = vec!["echo..shop".into()], "hostnames[0]"),
            (|s| s.ports[1].port = 70_000, "ports[1].port"),
            (|s| s.ports[0].target_port = 65_536, "ports[0].targetPort"),
            (|s| s.ports[0].protocol = 42, "ports[0].protocol"),
            (|s| s.load_balancer = 9, "loadBalancer"),
            (
                |s| s.endpoints[0].hbone = "10.0.0.2".into(),
                "endpoints[0].hbone",
            ),
            (
                |s| s.endpoints[0].identity = "echo".into(),
                "endpoints[0].identity",
            ),
            (
                |s| s.endpoints[1].hbone = "[fd00::3]:15008".into(),
                "endpoints[1].hbone",
            ),
            (|s| s.name.clear(), "name"),
        ];
        for (mutate, path) in cases {
            let mut wire = pb::Service::from(&service());
            mutate(&mut wire);
            let err = proxy::Service::try_from(&wire).expect_err(path);
            assert_eq!(err.path, path, "{err}");
        }
    }

    #[test]
    fn rejects_malformed_route_fields_by_path() {
        let cases: Vec<Case<pb::RouteTable>> = vec![
            (|t| t.routes[1].port = Some(0), "routes[1].port"),
            (
                |t| t.routes[1].rules[0].matches[0].path = Some(pb::PathMatch { kind: None }),
                "routes[1].rules[0].matches[0].path",
            ),
            (
                |t| t.routes[1].rules[0].matches[0].headers[0].value = None,
                "routes[1].rules[0].matches[0].headers[0].value",
            ),
            (
                |t| t.routes[1].rules[0].backends[1].service.clear(),
                "routes[1].rules[0].backends[1].service",
            ),
            (
                |t| {
                    t.routes[1].rules[0].timeout = Some(prost_types::Duration {
                        seconds: -1,
                        nanos: 0,
                    });
                },
                "routes[1].rules[0].timeout",
            ),
            (|t| t.service.clear(), "service"),
        ];
        for (mutate, path) in cases {
            let mut wire = route_table_to_pb("echo.shop", &tables());
            mutate(&mut wire);
            let err = route_tables_from_pb(&wire).expect_err(path);
            assert_eq!(err.path, path, "{err}");
        }
    }

    #[test]
    fn inbound_policy_round_trips_and_refuses_unknown_modes_by_path() {
        let policy = proxy::InboundPolicy {
            mtls: proxy::MtlsMode::Strict,
            ports: BTreeMap::from([(8080, proxy::MtlsMode::Permissive)]),
            rate_limits: Vec::new(),
            faults: Vec::new(),
        };
        let wire = pb::InboundPolicy::from(&policy);
        assert_eq!(proxy::InboundPolicy::try_from(&wire), Ok(policy));
        let mut bad = wire.clone();
        bad.ports[0].mtls = 7;
        assert_eq!(
            proxy::InboundPolicy::try_from(&bad)
                .expect_err("unknown mode")
                .to_string(),
            "ports[0].mtls: unknown mTLS mode 7 (a newer control plane?)"
        );
        let mut twice = wire;
        twice.ports.push(twice.ports[0]);
        assert!(proxy::InboundPolicy::try_from(&twice)
            .expect_err("duplicate port")
            .to_string()
            .starts_with("ports[1].port: port 8080 is listed twice"));
    }
}
