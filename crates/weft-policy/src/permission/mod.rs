//! `TrafficPermission` and the mesh's default actions: validation, and compilation into
//! the `Authorization` of every workload's `InboundPolicy`.
//!
//! The proxy never sees selectors or names: a permission becomes one `Permission`
//! message per rule on each workload its targets select, with its ports as workload
//! ports (a service port becomes its target port) and its callers as SPIFFE ID
//! patterns (a namespace, a service account, or the identities serving a service).
//! A rule that cannot match on a workload (its ports are not there, its callers
//! resolve to nobody) is left out there, never widened: an empty list means
//! "everything" on the wire.

use std::collections::{BTreeMap, BTreeSet};

use weft_api::pb::v1 as pb;
use weft_api::pb_convert::default_action_to_pb;
use weft_api::proxy::{self, is_token};
use weft_api::resource::mesh::{self, DefaultAction};
use weft_api::resource::permission::{Action, PathRuleType, Rule, Source, Spec, To};
use weft_api::resource::{service, Object};

use crate::field::{self, Errors};
use crate::service::Workload;

mod conditions;
mod cover;

pub(crate) use conditions::statuses;

/// Checks a parsed `TrafficPermission` spec.
pub(crate) fn validate(spec: &Spec, errors: &mut Errors) {
    for (i, t) in spec.target_refs.iter().enumerate() {
        let path = format!("spec.targetRefs[{i}]");
        field::service_ref(
            errors,
            &path,
            (t.group.as_deref(), &t.kind, &t.name),
            "a TrafficPermission targets a Service (or omit targetRefs for every workload of \
             the namespace)",
        );
        if t.port == Some(0) {
            errors.push(format!("{path}.port"), "must be 1-65535");
        }
    }
    match (spec.action, &spec.provider) {
        (Action::Custom, None) => errors.push(
            "spec.provider",
            "action: custom needs the provider to ask, e.g. provider: {name: opa} (one of \
             Mesh.spec.authorizationProviders)",
        ),
        (Action::Custom, Some(p)) => field::label(errors, "spec.provider.name", &p.name),
        (_, Some(_)) => errors.push(
            "spec.provider",
            "only action: custom asks a provider; remove it or set action: custom",
        ),
        (_, None) => {}
    }
    if spec.rules.is_empty() {
        errors.push(
            "spec.rules",
            "a TrafficPermission needs at least one rule; `[{}]` matches every request",
        );
    }
    for (r, rule) in spec.rules.iter().enumerate() {
        let path = format!("spec.rules[{r}]");
        for (i, s) in rule.from.iter().enumerate() {
            validate_source(errors, &format!("{path}.from[{i}]"), s);
        }
        for (i, to) in rule.to.iter().enumerate() {
            validate_to(errors, &format!("{path}.to[{i}]"), to);
        }
    }
}

fn validate_source(errors: &mut Errors, path: &str, s: &Source) {
    let set = [
        s.identity.is_some(),
        s.service_account.is_some(),
        s.namespace.is_some(),
        s.service.is_some(),
        s.unauthenticated.is_some(),
    ]
    .into_iter()
    .filter(|x| *x)
    .count();
    if set != 1 {
        errors.push(
            path,
            format!(
                "names {set} kinds of caller; give exactly one of identity, serviceAccount, \
                 namespace, service or unauthenticated (one entry per caller: `from` \
                 matches any of its entries)"
            ),
        );
    }
    if let Some(id) = &s.identity {
        if let Err(why) = identity_pattern(id) {
            errors.push(format!("{path}.identity"), why);
        }
    }
    if let Some(sa) = &s.service_account {
        let (ns, name) = in_namespace(sa, "x");
        field::label(errors, &format!("{path}.serviceAccount"), name);
        field::label(errors, &format!("{path}.serviceAccount"), ns);
    }
    if let Some(ns) = &s.namespace {
        field::label(errors, &format!("{path}.namespace"), ns);
    }
    if let Some(svc) = &s.service {
        let (ns, name) = in_namespace(svc, "x");
        field::label(errors, &format!("{path}.service"), name);
        field::label(errors, &format!("{path}.service"), ns);
    }
    if s.unauthenticated == Some(false) {
        errors.push(
            format!("{path}.unauthenticated"),
            "false names nobody; remove the entry (plaintext callers match only `true`)",
        );
    }
}

/// Splits `namespace/name` (or `name`, in `namespace`).
fn in_namespace<'a>(reference: &'a str, namespace: &'a str) -> (&'a str, &'a str) {
    reference.split_once('/').unwrap_or((namespace, reference))
}

/// A SPIFFE ID, a prefix of one ending in `*`, or `*`.
fn identity_pattern(id: &str) -> Result<(), String> {
    if id == "*" {
        return Ok(());
    }
    let exact = id.strip_suffix('*').unwrap_or(id);
    if !exact.starts_with("spiffe://") {
        return Err(format!(
            "{id:?} is not a SPIFFE ID: write spiffe://<trust domain>/ns/<namespace>/sa/<name>, \
             a prefix of one ending in '*', or \"*\" for every mesh identity"
        ));
    }
    if exact.contains('*') {
        return Err(format!(
            "{id:?}: '*' may only end the pattern (a prefix), as in spiffe://cluster.local/ns/shop/*"
        ));
    }
    if !exact
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:/%".contains(&b))
    {
        return Err(format!("{id:?} has characters a SPIFFE ID cannot contain"));
    }
    Ok(())
}

fn validate_to(errors: &mut Errors, path: &str, to: &To) {
    for (i, p) in to.ports.iter().enumerate() {
        if *p == 0 {
            errors.push(format!("{path}.ports[{i}]"), "must be 1-65535");
        }
    }
    for (i, p) in to.paths.iter().enumerate() {
        let ppath = format!("{path}.paths[{i}].value");
        if let Err(why) = path_value(p.kind, &p.value) {
            errors.push(ppath, why);
        }
    }
    for (i, m) in to.methods.iter().enumerate() {
        if !is_token(m) {
            errors.push(
                format!("{path}.methods[{i}]"),
                format!("{m:?} is not an HTTP method (a token such as GET or POST)"),
            );
        }
    }
    for (i, h) in to.hosts.iter().enumerate() {
        let name = h.strip_prefix("*.").unwrap_or(h);
        if h.contains(':') {
            errors.push(
                format!("{path}.hosts[{i}]"),
                format!("{h:?}: give the host without a port (restrict ports with `ports`)"),
            );
        } else if !field::is_subdomain(&name.to_ascii_lowercase()) {
            errors.push(
                format!("{path}.hosts[{i}]"),
                format!("{h:?} is not a DNS name (or `*.` followed by one)"),
            );
        }
    }
    crate::route::http::value_matches(errors, &format!("{path}.headers"), &to.headers, true);
    for (i, g) in to.grpc.iter().enumerate() {
        let gpath = format!("{path}.grpc[{i}]");
        for (field_name, value) in [("service", &g.service), ("method", &g.method)] {
            if let Some(v) = value {
                if v.is_empty() || v.contains('/') || !v.is_ascii() {
                    errors.push(
                        format!("{gpath}.{field_name}"),
                        format!("{v:?} is not a gRPC {field_name} name (no '/'; omit for any)"),
                    );
                }
            }
        }
    }
}

/// Whether `value` can ever equal a normalised path: a pattern the normaliser would
/// rewrite (`//`, dot-segments, percent-encoding) matches nothing.
fn path_value(kind: PathRuleType, value: &str) -> Result<(), String> {
    if !value.starts_with('/') {
        return Err(format!("{value:?} must start with '/'"));
    }
    if value.contains(['?', '#']) {
        return Err(format!(
            "{value:?}: paths are matched without query or fragment; remove them"
        ));
    }
    if value.contains('%') {
        return Err(format!(
            "{value:?}: write the decoded path; requests are matched after percent-decoding"
        ));
    }
    if value.contains("//")
        || value.split('/').any(|s| s == "." || s == "..")
        || value.contains('\\')
        || value.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(format!(
            "{value:?} is not a normalised path (no '//', '.' or '..' segments, '\\\\' or \
             control characters); requests are matched after normalisation, so it would \
             never match"
        ));
    }
    if kind == PathRuleType::Glob {
        if value.contains("***") {
            return Err(format!(
                "{value:?}: use `*` (one segment) or `**` (any depth)"
            ));
        }
    } else if value.contains('*') {
        return Err(format!(
            "{value:?} contains '*': use type: Glob for wildcards"
        ));
    }
    Ok(())
}

/// A validated permission.
pub(crate) struct Permission<'a> {
    pub(crate) object: &'a Object,
    pub(crate) spec: Spec,
}

impl Permission<'_> {
    fn source(&self) -> String {
        format!(
            "TrafficPermission/{}/{}",
            self.object.namespace(),
            self.object.metadata.name
        )
    }
}

/// Oldest first, then by namespace and name (the order rules are listed in; the
/// decision does not depend on it).
pub(crate) fn sort(permissions: &mut [Permission<'_>]) {
    permissions.sort_by(|a, b| crate::age_order(a.object).cmp(&crate::age_order(b.object)));
}

/// What compile needs besides the permissions.
pub(crate) struct Context<'a> {
    pub(crate) mesh: &'a mesh::Spec,
    pub(crate) services: &'a [(&'a Object, service::Spec)],
    pub(crate) workloads: &'a [Workload<'a>],
}

impl Context<'_> {
    fn service(&self, namespace: &str, name: &str) -> Option<&service::Spec> {
        self.services
            .iter()
            .find(|(o, _)| o.namespace() == namespace && o.metadata.name == name)
            .map(|(_, s)| s)
    }

    fn identity(&self, namespace: &str, account: &str) -> String {
        format!(
            "spiffe://{}/ns/{namespace}/sa/{account}",
            self.mesh.trust_domain
        )
    }

    /// The wire form of the mesh's provider `name`, if it has one.
    fn provider(&self, name: &str) -> Option<pb::ExtAuthzProvider> {
        self.mesh
            .authorization_providers
            .iter()
            .find(|p| p.name == name)
            .map(|p| pb::ExtAuthzProvider {
                name: p.name.clone(),
                address: p.address.to_string(),
                timeout: Some(weft_api::pb_convert::duration_to_pb(
                    p.timeout
                        .as_deref()
                        .and_then(|t| weft_api::resource::route::parse_duration(t).ok())
                        .unwrap_or(weft_api::proxy::DEFAULT_EXT_AUTHZ_TIMEOUT),
                )),
                fail_open: p.fail_open,
            })
    }

    /// The identities serving `namespace/name`: its `serviceAccounts`, else those of
    /// the workloads it selects.
    fn service_identities(&self, namespace: &str, name: &str) -> BTreeSet<String> {
        let Some(spec) = self.service(namespace, name) else {
            return BTreeSet::new();
        };
        let accounts: BTreeSet<&str> = if spec.service_accounts.is_empty() {
            self.workloads
                .iter()
                .filter(|w| {
                    w.object.namespace() == namespace
                        && crate::service::selects(spec, &w.object.metadata.labels)
                })
                .map(|w| w.spec.service_account.as_str())
                .collect()
        } else {
            spec.service_accounts.iter().map(String::as_str).collect()
        };
        accounts
            .into_iter()
            .map(|sa| self.identity(namespace, sa))
            .collect()
    }

    /// The callers of `from` as principals; empty when they resolve to nobody.
    fn principals(&self, namespace: &str, from: &[Source]) -> Vec<pb::Principal> {
        let identity = |id: String| pb::Principal {
            kind: Some(pb::principal::Kind::Identity(id)),
        };
        let mut out = Vec::new();
        for s in from {
            if let Some(id) = &s.identity {
                out.push(identity(id.clone()));
            } else if let Some(sa) = &s.service_account {
                let (ns, name) = in_namespace(sa, namespace);
                out.push(identity(self.identity(ns, name)));
            } else if let Some(ns) = &s.namespace {
                out.push(identity(format!(
                    "spiffe://{}/ns/{ns}/sa/*",
                    self.mesh.trust_domain
                )));
            } else if let Some(svc) = &s.service {
                let (ns, name) = in_namespace(svc, namespace);
                out.extend(self.service_identities(ns, name).into_iter().map(identity));
            } else if s.unauthenticated == Some(true) {
                out.push(pb::Principal {
                    kind: Some(pb::principal::Kind::Unauthenticated(true)),
                });
            }
        }
        out
    }
}

/// The `Authorization` of a workload in `namespace` with `labels`: its default
/// actions, and every rule of every permission that applies to it. `None` when it
/// changes nothing (no rules, every default `allow`).
pub(crate) fn for_workload(
    cx: &Context<'_>,
    permissions: &[Permission<'_>],
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<pb::Authorization> {
    let (default, ports) = default_actions(cx, namespace, labels);
    let mut rules = Vec::new();
    let mut providers: Vec<pb::ExtAuthzProvider> = Vec::new();
    for p in permissions {
        if p.object.namespace() != namespace {
            continue;
        }
        let Some(targets) = target_ports(cx, p, namespace, labels) else {
            continue;
        };
        let provider = p
            .spec
            .provider
            .as_ref()
            .filter(|_| p.spec.action == Action::Custom)
            .map(|r| cx.provider(&r.name));
        for (index, rule) in p.spec.rules.iter().enumerate() {
            let Some(mut compiled) = compile_rule(cx, p, namespace, &targets, rule) else {
                continue;
            };
            compiled.rule = u32::try_from(index).unwrap_or(u32::MAX);
            match &provider {
                Some(Some(server)) => {
                    compiled.provider.clone_from(&server.name);
                    if !providers.iter().any(|known| known.name == server.name) {
                        providers.push(server.clone());
                    }
                }
                // A provider that does not exist cannot allow anything: its rules
                // refuse what they match until it does (the status says so).
                Some(None) => compiled.action = pb::AuthzAction::Deny as i32,
                None => {}
            }
            rules.push(compiled);
        }
    }
    if rules.is_empty() && default == DefaultAction::Allow && ports.is_empty() {
        return None;
    }
    Some(pb::Authorization {
        default_action: default_action_to_pb(proxy_action(default)) as i32,
        ports: ports
            .into_iter()
            .map(|(port, a)| pb::PortAuthzAction {
                port: u32::from(port),
                action: default_action_to_pb(proxy_action(a)) as i32,
            })
            .collect(),
        rules,
        providers,
    })
}

fn proxy_action(a: DefaultAction) -> proxy::DefaultAction {
    match a {
        DefaultAction::Allow => proxy::DefaultAction::Allow,
        DefaultAction::Deny => proxy::DefaultAction::Deny,
        DefaultAction::Audit => proxy::DefaultAction::Audit,
    }
}

/// The workload's default action and its per-port exceptions: the namespace's
/// override (else the mesh's), and on each target port of a service with its own
/// override, that one (the strictest where services disagree).
fn default_actions(
    cx: &Context<'_>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> (DefaultAction, BTreeMap<u16, DefaultAction>) {
    let overrides = &cx.mesh.default_action_overrides;
    let default = overrides
        .iter()
        .find(|o| o.namespace == namespace && o.service.is_none())
        .map_or(cx.mesh.default_action, |o| o.default_action);
    let mut ports: BTreeMap<u16, DefaultAction> = BTreeMap::new();
    for o in overrides {
        let Some(name) = &o.service else { continue };
        if o.namespace != namespace {
            continue;
        }
        let Some(spec) = cx.service(namespace, name) else {
            continue;
        };
        if !crate::service::selects(spec, labels) {
            continue;
        }
        for p in &spec.ports {
            let target = p.target_port.unwrap_or(p.port);
            ports
                .entry(target)
                .and_modify(|a| *a = strictest(*a, o.default_action))
                .or_insert(o.default_action);
        }
    }
    ports.retain(|_, a| *a != default);
    (default, ports)
}

fn strictest(a: DefaultAction, b: DefaultAction) -> DefaultAction {
    let rank = |x: DefaultAction| match x {
        DefaultAction::Allow => 0,
        DefaultAction::Audit => 1,
        DefaultAction::Deny => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// The workload ports `p` covers on a workload with `labels` (service port → its
/// target port), or `None` when none of its targets selects it. Empty: every port
/// (no targets: the whole namespace).
fn target_ports(
    cx: &Context<'_>,
    p: &Permission<'_>,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Option<Targets> {
    if p.spec.target_refs.is_empty() {
        return Some(Targets::Namespace);
    }
    // Service port → workload port, over every target that selects this workload.
    let mut map: BTreeMap<u16, BTreeSet<u16>> = BTreeMap::new();
    for t in &p.spec.target_refs {
        let Some(spec) = cx.service(namespace, &t.name) else {
            continue;
        };
        if !crate::service::selects(spec, labels) {
            continue;
        }
        for port in &spec.ports {
            if t.port.is_some_and(|only| only != port.port) {
                continue;
            }
            map.entry(port.port)
                .or_default()
                .insert(port.target_port.unwrap_or(port.port));
        }
    }
    (!map.is_empty()).then_some(Targets::Services(map))
}

/// Where a permission applies on one workload.
enum Targets {
    /// Every port (`to.ports` are workload ports).
    Namespace,
    /// These service ports, each with its workload ports.
    Services(BTreeMap<u16, BTreeSet<u16>>),
}

impl Targets {
    /// The workload ports of the permission; empty: every port.
    fn all(&self) -> Vec<u32> {
        match self {
            Self::Namespace => Vec::new(),
            Self::Services(map) => map
                .values()
                .flatten()
                .copied()
                .collect::<BTreeSet<u16>>()
                .into_iter()
                .map(u32::from)
                .collect(),
        }
    }

    /// `ports` (service ports, or workload ports for a namespace) as workload ports of
    /// this workload; empty when none is here.
    fn resolve(&self, ports: &[u16]) -> Vec<u32> {
        let set: BTreeSet<u16> = match self {
            Self::Namespace => ports.iter().copied().collect(),
            Self::Services(map) => ports
                .iter()
                .filter_map(|p| map.get(p))
                .flatten()
                .copied()
                .collect(),
        };
        set.into_iter().map(u32::from).collect()
    }
}

/// One rule on one workload, or `None` when it cannot match there.
fn compile_rule(
    cx: &Context<'_>,
    p: &Permission<'_>,
    namespace: &str,
    targets: &Targets,
    rule: &Rule,
) -> Option<pb::Permission> {
    let from = cx.principals(namespace, &rule.from);
    if !rule.from.is_empty() && from.is_empty() {
        return None;
    }
    let mut to = Vec::with_capacity(rule.to.len());
    for op in &rule.to {
        let ports = targets.resolve(&op.ports);
        if !op.ports.is_empty() && ports.is_empty() {
            continue;
        }
        to.push(operation(op, ports));
    }
    if !rule.to.is_empty() && to.is_empty() {
        return None;
    }
    Some(pb::Permission {
        action: match p.spec.action {
            Action::Allow => pb::AuthzAction::Allow,
            Action::Deny => pb::AuthzAction::Deny,
            Action::Audit => pb::AuthzAction::Audit,
            Action::Custom => pb::AuthzAction::Custom,
        } as i32,
        ports: targets.all(),
        from,
        to,
        source: p.source(),
        rule: 0,
        provider: String::new(),
    })
}

fn operation(op: &To, ports: Vec<u32>) -> pb::Operation {
    let model = proxy::Operation {
        ports: Vec::new(),
        paths: op
            .paths
            .iter()
            .map(|p| proxy::PathPattern {
                kind: match p.kind {
                    PathRuleType::Exact => proxy::PathPatternType::Exact,
                    PathRuleType::PathPrefix => proxy::PathPatternType::PathPrefix,
                    PathRuleType::Glob => proxy::PathPatternType::Glob,
                },
                value: p.value.clone(),
                ignore_case: p.ignore_case,
            })
            .collect(),
        methods: op.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
        hosts: op.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        headers: op
            .headers
            .iter()
            .map(crate::route::http::value_match)
            .collect(),
        grpc: op
            .grpc
            .iter()
            .map(|g| proxy::GrpcMethod {
                service: g.service.clone(),
                method: g.method.clone(),
            })
            .collect(),
    };
    // Workload ports, already resolved from the targets' service ports.
    pb::Operation {
        ports,
        ..weft_api::pb_convert::operation_to_pb(&model)
    }
}
