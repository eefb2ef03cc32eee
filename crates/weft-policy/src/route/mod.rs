//! Routes (`HTTPRoute`, `GRPCRoute`, `TCPRoute`): the parts the three kinds share —
//! parent and backend references, hostnames, filters — and the compiler that merges
//! every route attached to a service into that service's proxy `RouteTable`.
//!
//! Each kind's module validates its spec and reduces it to [`Route`]: a list of rules
//! whose matches are already proxy matches. From there compile is kind-agnostic:
//!
//! 1. Each `parentRefs[]` entry naming a Service is resolved to it (and a port).
//!    Unresolved parents get `Accepted: False` (`NoMatchingParent`) and attach nothing.
//!    An entry naming a Gateway gets the outcome `crate::gateway` decided, and its
//!    backends are checked as a gateway would use them (each with its port); nothing
//!    is compiled for it.
//! 2. Each rule × match becomes one proxy rule with one match (a rule without matches:
//!    one catch-all rule), so precedence is decided per match, as the Gateway API says.
//! 3. All proxy rules of a parent port are sorted by precedence (see [`Rank`]), then by
//!    route age, namespace/name, and rule and match order.
//! 4. Backends that do not resolve (service missing, port missing) are left out of the
//!    rule and reported as `ResolvedRefs: False` (`BackendNotFound`). A rule left with
//!    no backend is still emitted, with an empty backend list: the proxy answers 503
//!    for it instead of falling through to a lower-precedence rule, which could send
//!    traffic somewhere the operator did not intend.
//!
//! Port scoping: when every route attached to a service is port-less, the table has
//! port-less chunks (every port). As soon as one route attaches to a specific port,
//! the table is emitted per service port (each with the port-less routes merged in),
//! so no two chunks for overlapping ports exist and the proxy needs no merge rule.

pub(crate) mod grpc;
pub(crate) mod http;
pub(crate) mod tcp;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};
use weft_api::pb::v1 as pb;
use weft_api::pb_convert::duration_to_pb;
use weft_api::proxy::{self, StringMatch};
use weft_api::resource::gateway::GROUP as GATEWAY_GROUP;
use weft_api::resource::route::{
    BackendRef, ParentRef, DEFAULT_REF_KIND, DEFAULT_WEIGHT, GATEWAY_KIND, MAX_WEIGHT,
};
use weft_api::resource::{Key, Kind, Object};

use crate::field::{self, Errors};
use crate::{gateway, status};

/// A route of any kind, reduced to what compile needs.
pub(crate) struct Route<'a> {
    pub(crate) object: &'a Object,
    pub(crate) kind: Kind,
    pub(crate) parent_refs: Vec<ParentRef>,
    /// `spec.hostnames` (none for TCP): which listeners of a Gateway it attaches to.
    pub(crate) hostnames: Vec<String>,
    pub(crate) rules: Vec<Rule>,
}

/// One user rule.
pub(crate) struct Rule {
    /// Proxy matches, one proxy rule each; an empty list (TCP) or an empty match means
    /// a catch-all rule.
    pub(crate) matches: Vec<proxy::RouteMatch>,
    pub(crate) backend_refs: Vec<BackendRef>,
    /// The whole request, retries included.
    pub(crate) timeout: Option<Duration>,
    /// One attempt.
    pub(crate) per_try_timeout: Option<Duration>,
    pub(crate) retry: Option<pb::RetryPolicy>,
    pub(crate) request_headers: Option<pb::HeaderEdits>,
    pub(crate) response_headers: Option<pb::HeaderEdits>,
    pub(crate) redirect: Option<pb::Redirect>,
    pub(crate) rewrite: Option<pb::Rewrite>,
    /// Mirror targets with their share in millionths.
    pub(crate) mirrors: Vec<(BackendRef, u32)>,
}

/// What compile knows of a service when resolving references: its ports.
pub(crate) type ServicePorts = BTreeMap<(String, String), BTreeSet<u16>>;

// === validation shared by the kinds ===

pub(crate) fn validate_parent_refs(errors: &mut Errors, refs: &[ParentRef]) {
    if refs.is_empty() {
        errors.push(
            "spec.parentRefs",
            "a route needs at least one parentRef, e.g. [{name: my-service}]",
        );
    }
    for (i, r) in refs.iter().enumerate() {
        let path = format!("spec.parentRefs[{i}]");
        field::label(errors, &format!("{path}.name"), &r.name);
        if r.is_gateway() {
            if let Some(ns) = &r.namespace {
                field::label(errors, &format!("{path}.namespace"), ns);
            }
            if let Some(port) = r.port {
                field::port(errors, &format!("{path}.port"), port);
            }
            if let Some(section) = &r.section_name {
                field::label(errors, &format!("{path}.sectionName"), section);
            }
            continue;
        }
        match (r.group(), r.kind()) {
            ("", DEFAULT_REF_KIND) => {}
            ("", GATEWAY_KIND) => errors.push(
                format!("{path}.group"),
                format!(
                    "a Gateway parent needs group: {GATEWAY_GROUP} (the default group, \"\", is \
                     a Service's)"
                ),
            ),
            (GATEWAY_GROUP, kind) => errors.push(
                format!("{path}.kind"),
                format!(
                    "{kind:?}: the parent of group {GATEWAY_GROUP} is a Gateway, so set kind: \
                     Gateway (kind defaults to Service, whose group is \"\")"
                ),
            ),
            ("", kind) => errors.push(
                format!("{path}.kind"),
                format!(
                    "{kind:?} is not supported: a parent is a Service, or a Gateway (with \
                     group: {GATEWAY_GROUP})"
                ),
            ),
            (group, _) => errors.push(
                format!("{path}.group"),
                format!(
                    "{group:?} is not supported: a parent is a Service (group \"\") or a \
                     Gateway (group {GATEWAY_GROUP})"
                ),
            ),
        }
        if let Some(ns) = &r.namespace {
            field::label(errors, &format!("{path}.namespace"), ns);
        }
        if let Some(port) = r.port {
            field::port(errors, &format!("{path}.port"), port);
        }
        if let Some(section) = &r.section_name {
            errors.push(
                format!("{path}.sectionName"),
                format!(
                    "{section:?}: sectionName selects a Gateway listener and has no meaning for \
                     a Service parent; use port instead"
                ),
            );
        }
    }
}

pub(crate) fn validate_hostnames(errors: &mut Errors, hostnames: &[String]) {
    for (i, h) in hostnames.iter().enumerate() {
        if !gateway::hostname::is_valid(h) {
            errors.push(
                format!("spec.hostnames[{i}]"),
                format!(
                    "{h:?} is not a valid hostname: lowercase DNS name, optionally with one \
                     leading wildcard label (\"*.example.com\"); no IPs or ports"
                ),
            );
        }
    }
}

pub(crate) fn validate_filters(errors: &mut Errors, path: &str, filters: &[Value]) {
    if !filters.is_empty() {
        errors.push(
            path,
            "filters are not supported here: GRPCRoute rules and backendRefs take none \
             (HTTPRoute rules take RequestHeaderModifier, ResponseHeaderModifier, \
             RequestRedirect, URLRewrite and RequestMirror); remove them",
        );
    }
}

pub(crate) fn validate_backend_refs(errors: &mut Errors, path: &str, refs: &[BackendRef]) {
    if refs.is_empty() {
        errors.push(
            format!("{path}.backendRefs"),
            "a rule needs at least one backendRef, e.g. [{name: my-service, port: 80}]",
        );
    } else if refs.iter().all(|b| b.weight == Some(0)) {
        errors.push(
            format!("{path}.backendRefs"),
            "every backendRef has weight 0, so no request could be served; give one a weight > 0",
        );
    }
    for (i, b) in refs.iter().enumerate() {
        validate_backend_ref(errors, &format!("{path}.backendRefs[{i}]"), b);
    }
}

/// One `backendRef` (also a mirror's), at `bpath`.
pub(crate) fn validate_backend_ref(errors: &mut Errors, bpath: &str, b: &BackendRef) {
    if let Some(group) = b.group.as_deref().filter(|g| !g.is_empty()) {
        errors.push(
            format!("{bpath}.group"),
            format!("{group:?} is not supported: backends are Services (group \"\")"),
        );
    }
    if b.kind() != DEFAULT_REF_KIND {
        errors.push(
            format!("{bpath}.kind"),
            format!(
                "{:?} is not supported: only kind Service can be a backend",
                b.kind()
            ),
        );
    }
    field::label(errors, &format!("{bpath}.name"), &b.name);
    if let Some(ns) = &b.namespace {
        field::label(errors, &format!("{bpath}.namespace"), ns);
    }
    if let Some(port) = b.port {
        field::port(errors, &format!("{bpath}.port"), port);
    }
    if let Some(w) = b.weight {
        if w < 0 {
            errors.push(
                format!("{bpath}.weight"),
                format!("{w}: must be ≥ 0 (0 sends nothing to this backend)"),
            );
        } else if w > MAX_WEIGHT {
            errors.push(
                format!("{bpath}.weight"),
                format!("{w}: must be ≤ {MAX_WEIGHT}; weights are relative, scale them down"),
            );
        }
    }
    validate_filters(errors, &format!("{bpath}.filters"), &b.filters);
}

/// `spec.hostnames` as authority matches: exact names stay exact, `*.example.com`
/// becomes a case-insensitive regex for one or more leading labels. `[None]` when
/// there are none (any host).
pub(crate) fn authorities(hostnames: &[String]) -> Vec<Option<StringMatch>> {
    if hostnames.is_empty() {
        return vec![None];
    }
    hostnames
        .iter()
        .map(|h| {
            Some(match h.strip_prefix("*.") {
                Some(rest) => {
                    StringMatch::Regex(format!("(?i)[^.]+(?:\\.[^.]+)*\\.{}", regex::escape(rest)))
                }
                None => StringMatch::Exact(h.clone()),
            })
        })
        .collect()
}

// === compile ===

/// Gateway API precedence of one proxy match, smallest first: host specificity
/// (exact, then wildcard, then any), then path (exact, then regex, then the longest
/// prefix; no path is prefix `/`), then a method, then more headers, then more query
/// parameters. Regex paths rank between exact and prefix, as in Istio and Envoy
/// Gateway (the Gateway API leaves them implementation-specific).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    host: (u8, Reverse<usize>),
    path: (u8, Reverse<usize>),
    method: bool,
    headers: Reverse<usize>,
    query: Reverse<usize>,
}

impl Rank {
    fn of(m: Option<&proxy::RouteMatch>) -> Self {
        let host = match m.and_then(|m| m.authority.as_ref()) {
            Some(StringMatch::Exact(h)) => (0, Reverse(h.len())),
            Some(StringMatch::Prefix(h) | StringMatch::Regex(h)) => (1, Reverse(h.len())),
            None => (2, Reverse(0)),
        };
        let path = match m.and_then(|m| m.path.as_ref()) {
            Some(proxy::PathMatch::Exact(p)) => (0, Reverse(p.len())),
            Some(proxy::PathMatch::Regex(p)) => (1, Reverse(p.len())),
            Some(proxy::PathMatch::Prefix(p)) => (2, Reverse(p.len())),
            None => (2, Reverse(1)),
        };
        Self {
            host,
            path,
            method: m.and_then(|m| m.method.as_ref()).is_none(),
            headers: Reverse(m.map_or(0, |m| m.headers.len())),
            query: Reverse(m.map_or(0, |m| m.query.len())),
        }
    }
}

/// A route (by index) attached to a parent, on one port or on all.
type Attachment = (usize, Option<u16>);

/// How one backend fared against one parent port set.
enum Resolution {
    /// Usable, possibly with a note about some inherited ports missing.
    Resolved(Option<String>),
    /// Left out of the rule.
    Unresolved(String),
}

fn resolve_backend(
    b: &BackendRef,
    route_ns: &str,
    parent_ports: &[u16],
    services: &ServicePorts,
) -> Resolution {
    let ns = b.namespace.as_deref().unwrap_or(route_ns);
    let Some(ports) = services.get(&(ns.to_owned(), b.name.clone())) else {
        return Resolution::Unresolved(format!("backend Service {ns}/{} not found", b.name));
    };
    if let Some(p) = b.port {
        return if ports.contains(&p) {
            Resolution::Resolved(None)
        } else {
            Resolution::Unresolved(format!(
                "backend Service {ns}/{} has no port {p} (ports: {})",
                b.name,
                list(ports)
            ))
        };
    }
    let missing: Vec<u16> = parent_ports
        .iter()
        .copied()
        .filter(|p| !ports.contains(p))
        .collect();
    if missing.is_empty() {
        Resolution::Resolved(None)
    } else {
        let message = format!(
            "backend Service {ns}/{} has no port {} for requests arriving on it; set backendRefs[].port",
            b.name,
            list(&missing)
        );
        if missing.len() == parent_ports.len() {
            Resolution::Unresolved(message)
        } else {
            Resolution::Resolved(Some(message))
        }
    }
}

fn list<'a>(ports: impl IntoIterator<Item = &'a u16>) -> String {
    ports
        .into_iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why backends of `route` would not resolve behind a Gateway parent: a request
/// through a gateway arrives on a listener's port, no port of the service, so each
/// backend needs its own.
fn gateway_backend_problems(route: &Route<'_>, services: &ServicePorts) -> Vec<String> {
    let route_ns = route.object.namespace();
    route
        .rules
        .iter()
        .flat_map(|r| {
            r.backend_refs
                .iter()
                .chain(r.mirrors.iter().map(|(b, _)| b))
        })
        .filter_map(|b| {
            let ns = b.namespace.as_deref().unwrap_or(route_ns);
            if b.port.is_none() && services.contains_key(&(ns.to_owned(), b.name.clone())) {
                return Some(format!(
                    "backend Service {ns}/{} has no port: a request through a Gateway arrives \
                     on a listener's port, not on one of the service's, so set the \
                     backendRef's port",
                    b.name
                ));
            }
            match resolve_backend(b, route_ns, &[], services) {
                Resolution::Resolved(note) => note,
                Resolution::Unresolved(message) => Some(message),
            }
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Compiles every route: the route tables by parent service resource name, and each
/// route's status, with the outcome of each parentRef naming a Gateway taken from
/// `gateways`.
pub(crate) fn compile(
    routes: &[Route<'_>],
    services: &ServicePorts,
    gateways: &gateway::Compiled,
    tables: &mut BTreeMap<String, pb::RouteTable>,
    statuses: &mut BTreeMap<Key, Value>,
) {
    // Parent (namespace, name) → attached (route index, parent port).
    let mut attachments: BTreeMap<(String, String), BTreeSet<Attachment>> = BTreeMap::new();
    for (ri, route) in routes.iter().enumerate() {
        let route_ns = route.object.namespace();
        let mut parents = Vec::new();
        for (pi, pref) in route.parent_refs.iter().enumerate() {
            let pns = pref.namespace.as_deref().unwrap_or(route_ns).to_owned();
            let generation = route.object.metadata.generation;
            if pref.is_gateway() {
                let accepted = match gateways.parents.get(&(ri, pi)) {
                    Some(Ok(message)) => Ok(message.clone()),
                    Some(Err(refusal)) => Err((refusal.reason, refusal.message.clone())),
                    None => Err((
                        "NoMatchingParent",
                        format!("Gateway {pns}/{} not found", pref.name),
                    )),
                };
                let problems = gateway_backend_problems(route, services);
                parents.push(status::route_parent(
                    pref, &pns, generation, &accepted, &problems,
                ));
                continue;
            }
            let parent = (pns.clone(), pref.name.clone());
            let parent_ports = services.get(&parent);
            let accepted = match (parent_ports, pref.port) {
                (None, _) => {
                    let mut message = format!("Service {pns}/{} not found", pref.name);
                    if gateways.names.contains(&parent) {
                        let _ = write!(
                            message,
                            "; a Gateway of that name exists: to attach to it, set group: \
                             {GATEWAY_GROUP} and kind: {GATEWAY_KIND}"
                        );
                    }
                    Err(("NoMatchingParent", message))
                }
                (Some(ports), Some(p)) if !ports.contains(&p) => Err((
                    "NoMatchingParent",
                    format!(
                        "Service {pns}/{} has no port {p} (ports: {})",
                        pref.name,
                        list(ports)
                    ),
                )),
                (Some(_), _) => Ok("attached to the Service".to_owned()),
            };
            let applicable: Vec<u16> = match (pref.port, parent_ports) {
                (Some(p), _) => vec![p],
                (None, Some(ports)) => ports.iter().copied().collect(),
                (None, None) => Vec::new(),
            };
            let problems: Vec<String> = route
                .rules
                .iter()
                .flat_map(|r| {
                    r.backend_refs
                        .iter()
                        .chain(r.mirrors.iter().map(|(b, _)| b))
                })
                .filter_map(
                    |b| match resolve_backend(b, route_ns, &applicable, services) {
                        Resolution::Resolved(note) => note,
                        Resolution::Unresolved(message) => Some(message),
                    },
                )
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if accepted.is_ok() {
                attachments
                    .entry(parent)
                    .or_default()
                    .insert((ri, pref.port));
            }
            parents.push(status::route_parent(
                pref, &pns, generation, &accepted, &problems,
            ));
        }
        if let Ok(key) = route.object.key() {
            statuses.insert(key, json!({ "parents": parents }));
        }
    }

    // (parent namespace, parent name, shadowed rule) for every rule that can never
    // match because an earlier one matches the same requests.
    let mut shadowed: BTreeSet<(String, String, Shadowed)> = BTreeSet::new();
    for ((pns, pname), attached) in attachments {
        let Some(service_ports) = services.get(&(pns.clone(), pname.clone())) else {
            continue;
        };
        let groups: Vec<Option<u16>> = if attached.iter().any(|(_, p)| p.is_some()) {
            service_ports.iter().copied().map(Some).collect()
        } else {
            vec![None]
        };
        let mut chunks = Vec::new();
        for group in groups {
            let members: BTreeSet<usize> = attached
                .iter()
                .filter(|(_, p)| p.is_none() || *p == group)
                .map(|(ri, _)| *ri)
                .collect();
            let applicable: Vec<u16> = match group {
                Some(p) => vec![p],
                None => service_ports.iter().copied().collect(),
            };
            let (port_rules, port_shadowed) =
                port_chunks(routes, &members, group, &applicable, services);
            chunks.extend(port_rules);
            for shadow in port_shadowed {
                shadowed.insert((pns.clone(), pname.clone(), shadow));
            }
        }
        if !chunks.is_empty() {
            let name = format!("{pname}.{pns}");
            tables.insert(
                name.clone(),
                pb::RouteTable {
                    service: name,
                    routes: chunks,
                },
            );
        }
    }
    report_shadowed(routes, &shadowed, statuses);
}

/// A rule of compile's input: (route index, rule index).
type RuleRef = (usize, usize);

/// A rule that can never match, and the rule before it that takes its requests
/// (route index, rule index each).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Shadowed {
    route: usize,
    rule: usize,
    by_route: usize,
    by_rule: usize,
}

/// Adds a `Conflicted` condition to each parent status of a route with rules that an
/// earlier rule (of it or of another route) shadows: same matches, so they never apply.
fn report_shadowed(
    routes: &[Route<'_>],
    shadowed: &BTreeSet<(String, String, Shadowed)>,
    statuses: &mut BTreeMap<Key, serde_json::Value>,
) {
    let mut messages: BTreeMap<(usize, String, String), Vec<String>> = BTreeMap::new();
    for (pns, pname, s) in shadowed {
        let by = routes[s.by_route].object;
        messages
            .entry((s.route, pns.clone(), pname.clone()))
            .or_default()
            .push(format!(
                "rules[{}] never applies: {} {}/{} rules[{}] matches the same requests first",
                s.rule,
                routes[s.by_route].kind,
                by.namespace(),
                by.metadata.name,
                s.by_rule
            ));
    }
    for ((ri, pns, pname), mut lines) in messages {
        lines.dedup();
        let route = &routes[ri];
        let Ok(key) = route.object.key() else {
            continue;
        };
        let Some(parents) = statuses
            .get_mut(&key)
            .and_then(|s| s["parents"].as_array_mut())
        else {
            continue;
        };
        for parent in parents.iter_mut() {
            let r = &parent["parentRef"];
            if r["name"] != pname.as_str()
                || r["namespace"] != pns.as_str()
                || r["kind"] != DEFAULT_REF_KIND
            {
                continue;
            }
            if let Some(conditions) = parent["conditions"].as_array_mut() {
                conditions.push(status::condition(
                    "Conflicted",
                    true,
                    "ShadowedRules",
                    &lines.join("; "),
                    route.object.metadata.generation,
                ));
            }
        }
    }
}

/// The rules of one parent port (or of every port), in precedence order, cut into
/// chunks of consecutive rules from the same route.
fn port_chunks(
    routes: &[Route<'_>],
    members: &BTreeSet<usize>,
    port: Option<u16>,
    applicable: &[u16],
    services: &ServicePorts,
) -> (Vec<pb::Route>, Vec<Shadowed>) {
    type SortKey<'a> = (
        u8,
        Rank,
        (bool, &'a str),
        &'a str,
        &'a str,
        &'a str,
        usize,
        usize,
    );
    let mut entries: Vec<(SortKey<'_>, usize, pb::RouteRule)> = Vec::new();
    for &ri in members {
        let route = &routes[ri];
        let object = route.object;
        let route_ns = object.namespace();
        let age = match &object.metadata.creation_timestamp {
            Some(ts) => (false, ts.as_str()),
            None => (true, ""),
        };
        // TCP rules have no matches; they come after every HTTP/gRPC rule.
        let class = u8::from(route.kind == Kind::TcpRoute);
        for (rule_i, rule) in route.rules.iter().enumerate() {
            let backends: Vec<pb::Backend> = rule
                .backend_refs
                .iter()
                .filter(|b| {
                    matches!(
                        resolve_backend(b, route_ns, applicable, services),
                        Resolution::Resolved(_)
                    )
                })
                .map(|b| pb::Backend {
                    service: format!("{}.{}", b.name, b.namespace.as_deref().unwrap_or(route_ns)),
                    port: b.port.map(u32::from),
                    weight: b.weight.map_or(DEFAULT_WEIGHT, |w| {
                        u32::try_from(w.clamp(0, MAX_WEIGHT)).unwrap_or(0)
                    }),
                })
                .collect();
            let mirrors: Vec<pb::Mirror> = rule
                .mirrors
                .iter()
                .filter(|(b, _)| {
                    matches!(
                        resolve_backend(b, route_ns, applicable, services),
                        Resolution::Resolved(_)
                    )
                })
                .map(|(b, per_million)| pb::Mirror {
                    backend: Some(pb::Backend {
                        service: format!(
                            "{}.{}",
                            b.name,
                            b.namespace.as_deref().unwrap_or(route_ns)
                        ),
                        port: b.port.map(u32::from),
                        weight: 1,
                    }),
                    per_million: *per_million,
                })
                .collect();
            let matches: Vec<Option<&proxy::RouteMatch>> = if rule.matches.is_empty() {
                vec![None]
            } else {
                rule.matches.iter().map(Some).collect()
            };
            for (mi, m) in matches.into_iter().enumerate() {
                let key = (
                    class,
                    Rank::of(m),
                    age,
                    route.kind.as_str(),
                    route_ns,
                    object.metadata.name.as_str(),
                    rule_i,
                    mi,
                );
                let rule = pb::RouteRule {
                    matches: m
                        .filter(|m| **m != proxy::RouteMatch::default())
                        .map(pb::RouteMatch::from)
                        .into_iter()
                        .collect(),
                    backends: backends.clone(),
                    timeout: rule.timeout.map(duration_to_pb),
                    per_try_timeout: rule.per_try_timeout.map(duration_to_pb),
                    retry: rule.retry.clone(),
                    request_headers: rule.request_headers.clone(),
                    response_headers: rule.response_headers.clone(),
                    redirect: rule.redirect.clone(),
                    rewrite: rule.rewrite.clone(),
                    mirrors: mirrors.clone(),
                    source: format!(
                        "{}/{route_ns}/{}",
                        route.kind.as_str(),
                        object.metadata.name
                    ),
                    rule: u32::try_from(rule_i).unwrap_or(u32::MAX),
                };
                entries.push((key, ri, rule));
            }
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    // A rule whose matches equal an earlier rule's never applies (a catch-all after a
    // catch-all included).
    // Per (route, rule): how many matches it has, and a rule that takes one of them.
    let mut candidates: BTreeMap<RuleRef, (usize, Option<RuleRef>)> = BTreeMap::new();
    let mut first_with: Vec<(&Vec<pb::RouteMatch>, usize, usize)> = Vec::new();
    for (key, ri, rule) in &entries {
        let rule_i = key.6;
        let slot = candidates.entry((*ri, rule_i)).or_insert((0, None));
        slot.0 += 1;
        match first_with.iter().find(|(m, _, _)| **m == rule.matches) {
            Some(&(_, by_route, by_rule)) if (by_route, by_rule) != (*ri, rule_i) => {
                slot.1 = Some((by_route, by_rule));
            }
            Some(_) => {}
            None => first_with.push((&rule.matches, *ri, rule_i)),
        }
    }
    // Only a rule whose every match is taken first never applies.
    let mut shadowed = Vec::new();
    for ((route, rule), (matches, by)) in candidates {
        let taken = entries
            .iter()
            .filter(|(key, ri, r)| {
                (*ri, key.6) == (route, rule)
                    && first_with
                        .iter()
                        .any(|(m, br, bi)| **m == r.matches && (*br, *bi) != (route, rule))
            })
            .count();
        if let (Some((by_route, by_rule)), true) = (by, taken == matches) {
            shadowed.push(Shadowed {
                route,
                rule,
                by_route,
                by_rule,
            });
        }
    }
    let mut chunks: Vec<(usize, pb::Route)> = Vec::new();
    for (_, ri, rule) in entries {
        match chunks.last_mut() {
            Some((last, chunk)) if *last == ri => chunk.rules.push(rule),
            _ => {
                let object = routes[ri].object;
                chunks.push((
                    ri,
                    pb::Route {
                        port: port.map(u32::from),
                        rules: vec![rule],
                        source: format!(
                            "{}/{}/{}",
                            routes[ri].kind,
                            object.namespace(),
                            object.metadata.name
                        ),
                    },
                ));
            }
        }
    }
    (chunks.into_iter().map(|(_, c)| c).collect(), shadowed)
}
