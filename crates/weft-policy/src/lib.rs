//! Validation and compilation of user resources (DESIGN §3): one module per kind with
//! its validation (and compilation where the kind compiles to something). The typed
//! specs live in `weft_api::resource`. Pure: no I/O.
//!
//! - [`parse_documents`]: multi-document YAML (or JSON) into [`Object`]s, errors naming
//!   the document and field path.
//! - [`validate`]: one object, alone: its `apiVersion`, metadata and typed spec
//!   (unknown fields rejected), every problem collected with its field path
//!   (`spec.rules[1].backendRefs[0].weight`).
//! - [`compile`]: every stored object → the proxy resources (`weft.proxy.v1`) plus the
//!   status each object should carry (unresolved references become conditions).
//!
//! Where it sits: the control plane's API calls [`validate`] before storing; its
//! compile step calls [`compile`] on the whole store and ships the result over xDS.

mod backend;
mod document;
mod export;
mod field;
mod gateway;
mod inbound;
mod mesh;
mod permission;
mod route;
mod secret;
mod service;
mod status;
mod telemetry;
mod traffic;
mod vip;
mod workload;

use std::collections::BTreeMap;

pub use document::{yaml_error, MAX_DOCUMENTS, MAX_NODES};
pub use export::Export;
pub use secret::status as secret_status;
pub use status::CONTROLLER_NAME;
use weft_api::pb::v1 as pb;
pub use weft_api::proxy::{FieldError, ValidationErrors};
use weft_api::resource::{self as api, Key, Kind, Object};

/// A document that could not be read as an object.
#[derive(Debug, thiserror::Error)]
#[error("document {index}: {message}")]
pub struct ParseError {
    /// 0-based index of the document in the stream (empty documents are not counted).
    pub index: usize,
    /// Field path inside the document, when known (`metadata.name`, `items[2].kind`).
    pub path: Option<String>,
    /// What was wrong (with the path, or the YAML line and column).
    pub message: String,
}

/// Reads a stream of YAML documents (`---` separated) or one JSON document/array into
/// objects. Empty documents are skipped; an array or a `kind: List` with `items`
/// yields its elements. Does not validate specs; see [`validate`]. At most
/// [`MAX_DOCUMENTS`] objects and [`MAX_NODES`] YAML nodes: more is an error naming the
/// limit. Duplicate keys in a mapping are an error.
pub fn parse_documents(text: &str) -> Result<Vec<Object>, ParseError> {
    document::parse(text)
}

/// Validates one object on its own (no cross-object references; those become status
/// conditions at compile time). Fills nothing in; the caller stores the object as given.
pub fn validate(object: &Object) -> Result<(), ValidationErrors> {
    checked(object).map(|_| ())
}

/// Validates a map of Kubernetes labels (keys `[prefix/]name`, values at most 63
/// characters) outside an object, e.g. the labels granted to a workload token; `path`
/// prefixes each error's field path.
pub fn validate_labels(
    path: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), ValidationErrors> {
    let mut errors = field::Errors::default();
    field::labels(&mut errors, path, labels);
    errors.into_result()
}

/// Validates an object's metadata only (name, namespace, labels, annotation keys), as
/// [`validate`] does for every kind: for kinds whose spec is checked elsewhere (a
/// Secret's material, by the API).
pub fn validate_metadata(object: &Object) -> Result<(), ValidationErrors> {
    let mut errors = field::Errors::default();
    metadata(object, object.kind.parse::<Kind>().ok(), &mut errors);
    errors.into_result()
}

/// The result of compiling the whole store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Compiled {
    /// Proxy `Service` resources by resource name (`<name>.<namespace>`).
    pub services: BTreeMap<String, pb::Service>,
    /// Proxy `RouteTable` resources by resource name (`<name>.<namespace>` of the parent
    /// service). Services without routes have none.
    pub route_tables: BTreeMap<String, pb::RouteTable>,
    /// Proxy `InboundPolicy` resources by resource name (`<name>.<namespace>` of the
    /// workload): one per workload.
    pub inbound_policies: BTreeMap<String, pb::InboundPolicy>,
    /// The effective `exportTo` of every compiled service, by its resource name
    /// (`<name>.<namespace>`): the namespaces whose proxies may see the `Service` and
    /// the `RouteTable` of that name.
    pub exports: BTreeMap<String, Export>,
    /// The proxy `TrustBundle` (resource `mesh`), from the CA state the control plane
    /// keeps in `Mesh.status.ca`; `None` before it has written one.
    pub trust_bundle: Option<pb::TrustBundle>,
    /// Status each object that has one should have (routes, services, policies,
    /// gateways). The control plane writes those that differ from what is stored.
    pub statuses: BTreeMap<Key, serde_json::Value>,
    /// When each valid Secret's certificate expires (seconds since the epoch), by
    /// `(namespace, name)`: what the control plane's expiry metric reports.
    pub certificate_expiry: BTreeMap<(String, String), i64>,
}

/// Compiles every stored object (all kinds, as stored, statuses included: a
/// `Workload` is an endpoint only while its `status.phase` is `Healthy` or
/// `Disconnected`).
///
/// Objects that do not validate are not compiled; routes and services among them get
/// an `Accepted: False` (`Invalid`) status. The output is deterministic: the same
/// objects, in any order, give equal results.
pub fn compile<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Compiled {
    let objects: Vec<&Object> = objects.into_iter().collect();
    let mut compiled = Compiled::default();
    let mesh = mesh::spec(&objects);
    compiled.trust_bundle = mesh::ca_status(&objects).map(|ca| ca.trust_bundle());
    let trust_domain = mesh.trust_domain.clone();

    let mut services = Vec::new();
    let mut workloads = Vec::new();
    let mut routes = Vec::new();
    let mut policies = Vec::new();
    let mut traffic_policies = Vec::new();
    let mut permissions = Vec::new();
    let mut telemetries = Vec::new();
    let mut gateways = Vec::new();
    let mut invalid_gateways = std::collections::BTreeSet::new();
    let mut certificates: secret::Certificates = BTreeMap::new();
    for &object in &objects {
        let Ok(key) = object.key() else { continue };
        match checked(object) {
            Ok(Spec::Service(spec)) => services.push((object, spec)),
            Ok(Spec::Workload(spec)) => workloads.push(service::Workload {
                object,
                spec,
                phase: workload::phase(object),
            }),
            Ok(Spec::HttpRoute(spec)) => routes.push(route::http::reduce(object, spec)),
            Ok(Spec::GrpcRoute(spec)) => routes.push(route::grpc::reduce(object, spec)),
            Ok(Spec::TcpRoute(spec)) => routes.push(route::tcp::reduce(object, spec)),
            Ok(Spec::BackendPolicy(spec)) => policies.push(backend::Policy {
                object,
                spec: *spec,
            }),
            Ok(Spec::RateLimit(spec)) => {
                traffic_policies.push(traffic::Policy::RateLimit(object, *spec));
            }
            Ok(Spec::FaultInjection(spec)) => {
                traffic_policies.push(traffic::Policy::Fault(object, *spec));
            }
            Ok(Spec::TrafficPermission(spec)) => permissions.push(permission::Permission {
                object,
                spec: *spec,
            }),
            Ok(Spec::Telemetry(spec)) => {
                telemetries.push(telemetry::Telemetry::new(object, &spec));
            }
            Ok(Spec::Gateway(spec)) => gateways.push(gateway::Gateway {
                object,
                spec: *spec,
            }),
            Ok(Spec::Secret(spec)) => {
                let at = (object.namespace().to_owned(), object.metadata.name.clone());
                compiled
                    .certificate_expiry
                    .insert(at.clone(), spec.certificate.not_after);
                certificates.insert(at, Ok(spec.certificate));
            }
            Ok(Spec::Mesh(_)) => {}
            Err(errors) => {
                let generation = object.metadata.generation;
                match key.kind {
                    Kind::Service => {
                        compiled
                            .statuses
                            .insert(key, status::invalid_service(&errors, generation));
                    }
                    Kind::HttpRoute | Kind::GrpcRoute | Kind::TcpRoute => {
                        compiled
                            .statuses
                            .insert(key, status::invalid_route(&errors, generation));
                    }
                    Kind::BackendPolicy
                    | Kind::RateLimit
                    | Kind::FaultInjection
                    | Kind::TrafficPermission
                    | Kind::Telemetry => {
                        compiled
                            .statuses
                            .insert(key, status::invalid_policy(&errors, generation));
                    }
                    Kind::Gateway => {
                        invalid_gateways
                            .insert((object.namespace().to_owned(), object.metadata.name.clone()));
                        compiled
                            .statuses
                            .insert(key, gateway::invalid_status(&errors, generation));
                    }
                    Kind::Secret => {
                        let why = errors
                            .0
                            .iter()
                            .map(|e| format!("{}: {}", e.path, e.message))
                            .collect::<Vec<_>>()
                            .join("; ");
                        certificates.insert(
                            (object.namespace().to_owned(), object.metadata.name.clone()),
                            Err(why),
                        );
                    }
                    Kind::Mesh | Kind::Workload => {}
                }
            }
        }
    }
    // Stable regardless of input order (the store may list objects in any order).
    services.sort_by_key(|(object, _)| object.key().ok());
    routes.sort_by_key(|r| r.object.key().ok());
    gateways.sort_by_key(|g| g.object.key().ok());

    policies.sort_by_key(|p| p.object.key().ok());
    let by_name = services
        .iter()
        .map(|(object, spec)| {
            (
                (object.namespace().to_owned(), object.metadata.name.clone()),
                spec,
            )
        })
        .collect();
    let (attached, policy_statuses) = backend::compile(&policies, &by_name, &mesh.dns.domain);
    for (p, status) in policies.iter().zip(policy_statuses) {
        if let Ok(key) = p.object.key() {
            compiled.statuses.insert(key, status);
        }
    }

    let mut ports = route::ServicePorts::new();
    let vips = vip::allocate(&services, mesh.dns.vip_range);
    let defaults = backend::Attached::default();
    for ((object, spec), vip) in services.iter().zip(vips) {
        let policy = attached
            .get(&(object.namespace().to_owned(), object.metadata.name.clone()))
            .map_or(&defaults, |(_, a)| a);
        let export = Export::resolve(
            spec.export_to.as_deref().unwrap_or(&mesh.default_export_to),
            object.namespace(),
        );
        let (svc, refused) = service::compile(
            object,
            spec,
            &workloads,
            &trust_domain,
            vip.vip,
            &mesh.dns.domain,
            policy,
        );
        if let Ok(key) = object.key() {
            compiled.statuses.insert(
                key,
                status::service(
                    svc.endpoints.len(),
                    vip.vip,
                    vip.problem.as_deref(),
                    &refused,
                    &export,
                    object.metadata.generation,
                ),
            );
        }
        ports.insert(
            (object.namespace().to_owned(), object.metadata.name.clone()),
            service::ports(spec),
        );
        let name = format!("{}.{}", svc.name, svc.namespace);
        compiled.exports.insert(name.clone(), export);
        compiled.services.insert(name, svc);
    }
    traffic::sort(&mut traffic_policies);
    permission::sort(&mut permissions);
    telemetry::sort(&mut telemetries);
    let cx = permission::Context {
        mesh: &mesh,
        services: &services,
        workloads: &workloads,
    };
    compiled.inbound_policies =
        inbound::compile(&cx, &traffic_policies, &permissions, &telemetries);
    for (p, status) in permissions
        .iter()
        .zip(permission::statuses(&cx, &permissions))
    {
        if let Ok(key) = p.object.key() {
            compiled.statuses.insert(key, status);
        }
    }
    for (t, status) in
        telemetries
            .iter()
            .zip(telemetry::statuses(&telemetries, &services, &workloads))
    {
        if let Ok(key) = t.object.key() {
            compiled.statuses.insert(key, status);
        }
    }
    for (p, status) in traffic_policies
        .iter()
        .zip(traffic::statuses(&traffic_policies, &services))
    {
        if let Ok(key) = p.object().key() {
            compiled.statuses.insert(key, status);
        }
    }
    let attaching: Vec<_> = routes
        .iter()
        .map(|r| gateway::Attaching {
            object: r.object,
            kind: r.kind,
            parent_refs: &r.parent_refs,
            hostnames: &r.hostnames,
        })
        .collect();
    let gateways = gateway::compile(&gateways, &invalid_gateways, &attaching, &certificates);
    route::compile(
        &routes,
        &ports,
        &gateways,
        &mut compiled.route_tables,
        &mut compiled.statuses,
    );
    compiled.statuses.extend(gateways.statuses);
    compiled
}

/// A validated, typed spec.
enum Spec {
    Mesh(api::mesh::Spec),
    Service(api::service::Spec),
    Workload(api::workload::Spec),
    HttpRoute(api::route::HttpSpec),
    GrpcRoute(api::route::GrpcSpec),
    TcpRoute(api::route::TcpSpec),
    BackendPolicy(Box<api::backend::Spec>),
    RateLimit(Box<api::traffic::RateLimitSpec>),
    FaultInjection(Box<api::traffic::FaultSpec>),
    TrafficPermission(Box<api::permission::Spec>),
    Telemetry(Box<api::telemetry::Spec>),
    Gateway(Box<api::gateway::Spec>),
    Secret(Box<api::secret::Spec>),
}

/// Validates `object` and returns its typed spec.
fn checked(object: &Object) -> Result<Spec, ValidationErrors> {
    let mut errors = field::Errors::default();
    let kind = match object.kind() {
        Ok(kind) => Some(kind),
        Err(e) => {
            errors.push("kind", e.to_string());
            None
        }
    };
    if let Some(kind) = kind {
        let accepted = kind.accepted_api_versions();
        if !accepted.contains(&object.api_version.as_str()) {
            errors.push(
                "apiVersion",
                format!(
                    "{:?} is not served for {kind}; use {}",
                    object.api_version,
                    accepted
                        .iter()
                        .map(|v| format!("{v:?}"))
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            );
        }
    }
    metadata(object, kind, &mut errors);
    let spec = kind.and_then(|kind| spec(object, kind, &mut errors));
    errors.into_result()?;
    // A spec that failed to parse always left an error, so `spec` is set here.
    spec.ok_or_else(|| {
        ValidationErrors(vec![FieldError {
            path: "spec".to_owned(),
            message: "could not be read".to_owned(),
        }])
    })
}

fn metadata(object: &Object, kind: Option<Kind>, errors: &mut field::Errors) {
    let meta = &object.metadata;
    field::label(errors, "metadata.name", &meta.name);
    match (&meta.namespace, kind) {
        (Some(ns), Some(kind)) if !kind.namespaced() => errors.push(
            "metadata.namespace",
            format!("{kind} is cluster-scoped; remove the namespace {ns:?}"),
        ),
        (Some(ns), _) => field::label(errors, "metadata.namespace", ns),
        (None, _) => {}
    }
    field::labels(errors, "metadata.labels", &meta.labels);
    field::annotation_keys(errors, "metadata.annotations", &meta.annotations);
}

/// Parses the spec (shape errors carry `spec.…` paths) and runs the kind's checks.
fn spec(object: &Object, kind: Kind, errors: &mut field::Errors) -> Option<Spec> {
    let value = match (&object.spec, kind) {
        (serde_json::Value::Null, Kind::Mesh) => serde_json::json!({}),
        (serde_json::Value::Null, _) => {
            errors.push("spec", format!("required: a {kind} needs a spec"));
            return None;
        }
        (value, _) => value.clone(),
    };
    let parsed = match kind {
        Kind::Mesh => field::parse("spec", value).map(Spec::Mesh),
        Kind::Service => field::parse("spec", value).map(Spec::Service),
        Kind::Workload => field::parse("spec", value).map(Spec::Workload),
        Kind::HttpRoute => field::parse("spec", value).map(Spec::HttpRoute),
        Kind::GrpcRoute => field::parse("spec", value).map(Spec::GrpcRoute),
        Kind::TcpRoute => field::parse("spec", value).map(Spec::TcpRoute),
        Kind::BackendPolicy => {
            field::parse("spec", value).map(|s| Spec::BackendPolicy(Box::new(s)))
        }
        Kind::RateLimit => field::parse("spec", value).map(|s| Spec::RateLimit(Box::new(s))),
        Kind::FaultInjection => {
            field::parse("spec", value).map(|s| Spec::FaultInjection(Box::new(s)))
        }
        Kind::TrafficPermission => {
            field::parse("spec", value).map(|s| Spec::TrafficPermission(Box::new(s)))
        }
        Kind::Telemetry => field::parse("spec", value).map(|s| Spec::Telemetry(Box::new(s))),
        Kind::Gateway => field::parse("spec", value).map(|s| Spec::Gateway(Box::new(s))),
        Kind::Secret => field::parse("spec", value).map(|s| Spec::Secret(Box::new(s))),
    };
    let spec = match parsed {
        Ok(spec) => spec,
        Err(e) => {
            errors.push(e.path, e.message);
            return None;
        }
    };
    match &spec {
        Spec::Mesh(s) => mesh::validate(object, s, errors),
        Spec::Service(s) => service::validate(object, s, errors),
        Spec::Workload(s) => workload::validate(s, errors),
        Spec::HttpRoute(s) => route::http::validate(s, errors),
        Spec::GrpcRoute(s) => route::grpc::validate(s, errors),
        Spec::TcpRoute(s) => route::tcp::validate(s, errors),
        Spec::BackendPolicy(s) => backend::validate(s, errors),
        Spec::RateLimit(s) => traffic::validate_rate_limit(s, errors),
        Spec::FaultInjection(s) => traffic::validate_fault(s, errors),
        Spec::TrafficPermission(s) => permission::validate(s, errors),
        Spec::Telemetry(s) => telemetry::validate(object, s, errors),
        Spec::Gateway(s) => gateway::validate(s, errors),
        Spec::Secret(s) => secret::validate(s, errors),
    }
    Some(spec)
}

#[cfg(test)]
mod tests;

/// The order objects that compete are considered in: oldest first, then by namespace
/// and name (an object without a creation time sorts first). Borrowed: sorting by it
/// copies nothing.
pub(crate) fn age_order(o: &Object) -> (&str, &str, &str) {
    (
        o.metadata.creation_timestamp.as_deref().unwrap_or_default(),
        o.namespace(),
        o.metadata.name.as_str(),
    )
}
