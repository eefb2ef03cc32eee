//! The user-facing resources: Kubernetes-shaped objects (`apiVersion`, `kind`,
//! `metadata`, `spec`, `status`) that operators apply and the control plane stores.
//!
//! [`Object`] is the untyped document the store and the API move around; each kind's
//! typed `spec` lives in its own module and is parsed (with field paths) by
//! `weft-policy`, which also validates and compiles it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod backend;
pub mod gateway;
pub mod mesh;
pub mod permission;
pub mod route;
pub mod secret;
pub mod service;
pub mod telemetry;
pub mod traffic;
pub mod workload;

/// Group and version of Weft's own kinds.
pub const WEFT_API_VERSION: &str = "weft.dev/v1alpha1";
/// Group and version of the Gateway API kinds (`Gateway`, `HTTPRoute`, `GRPCRoute`).
pub const GATEWAY_API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// Group and version of `TCPRoute` (still alpha upstream).
pub const GATEWAY_API_ALPHA_VERSION: &str = "gateway.networking.k8s.io/v1alpha2";

/// Every kind the control plane stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// Mesh-wide settings (cluster-scoped).
    Mesh,
    /// A name clients use, its ports, and a selector over workloads.
    Service,
    /// One running instance, registered by its proxy.
    Workload,
    /// HTTP routing attached to a service.
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
    /// gRPC routing attached to a service.
    #[serde(rename = "GRPCRoute")]
    GrpcRoute,
    /// TCP routing attached to a service.
    #[serde(rename = "TCPRoute")]
    TcpRoute,
    /// How callers treat a destination service: balancing, limits, ejection, health.
    BackendPolicy,
    /// Local rate limits a service's workloads apply to what they receive.
    RateLimit,
    /// Delays and aborts a service's workloads inject (chaos testing).
    FaultInjection,
    /// Who may call a service's workloads, with which requests.
    TrafficPermission,
    /// What the proxies of the mesh, a namespace or a service's workloads record:
    /// spans, access logs, request metrics.
    Telemetry,
    /// The listeners of an ingress gateway, and which routes attach to them.
    Gateway,
    /// TLS material for gateways (core `v1`, type `kubernetes.io/tls`); write-only
    /// through the API, encrypted at rest.
    Secret,
}

impl Kind {
    /// Every kind, in the order the CLI lists them.
    pub const ALL: [Kind; 13] = [
        Kind::Mesh,
        Kind::Service,
        Kind::Workload,
        Kind::HttpRoute,
        Kind::GrpcRoute,
        Kind::TcpRoute,
        Kind::Gateway,
        Kind::Secret,
        Kind::BackendPolicy,
        Kind::RateLimit,
        Kind::FaultInjection,
        Kind::TrafficPermission,
        Kind::Telemetry,
    ];

    /// The `kind` field value, e.g. `HTTPRoute`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mesh => "Mesh",
            Kind::Service => "Service",
            Kind::Workload => "Workload",
            Kind::HttpRoute => "HTTPRoute",
            Kind::GrpcRoute => "GRPCRoute",
            Kind::TcpRoute => "TCPRoute",
            Kind::BackendPolicy => "BackendPolicy",
            Kind::RateLimit => "RateLimit",
            Kind::FaultInjection => "FaultInjection",
            Kind::TrafficPermission => "TrafficPermission",
            Kind::Telemetry => "Telemetry",
            Kind::Gateway => "Gateway",
            Kind::Secret => "Secret",
        }
    }

    /// Lower-case plural used in API paths and the CLI, e.g. `httproutes`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Mesh => "meshes",
            Kind::Service => "services",
            Kind::Workload => "workloads",
            Kind::HttpRoute => "httproutes",
            Kind::GrpcRoute => "grpcroutes",
            Kind::TcpRoute => "tcproutes",
            Kind::BackendPolicy => "backendpolicies",
            Kind::RateLimit => "ratelimits",
            Kind::FaultInjection => "faultinjections",
            Kind::TrafficPermission => "trafficpermissions",
            Kind::Telemetry => "telemetries",
            Kind::Gateway => "gateways",
            Kind::Secret => "secrets",
        }
    }

    /// The `apiVersion` this kind is written with.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Mesh
            | Kind::Service
            | Kind::Workload
            | Kind::BackendPolicy
            | Kind::RateLimit
            | Kind::FaultInjection
            | Kind::TrafficPermission
            | Kind::Telemetry => WEFT_API_VERSION,
            Kind::HttpRoute | Kind::GrpcRoute | Kind::Gateway => GATEWAY_API_VERSION,
            Kind::TcpRoute => GATEWAY_API_ALPHA_VERSION,
            Kind::Secret => secret::API_VERSION,
        }
    }

    /// `apiVersion` values accepted on input for this kind.
    pub fn accepted_api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::Mesh
            | Kind::Service
            | Kind::Workload
            | Kind::BackendPolicy
            | Kind::RateLimit
            | Kind::FaultInjection
            | Kind::TrafficPermission
            | Kind::Telemetry => &[WEFT_API_VERSION],
            Kind::HttpRoute | Kind::GrpcRoute | Kind::Gateway => &[GATEWAY_API_VERSION],
            Kind::TcpRoute => &[GATEWAY_API_ALPHA_VERSION, GATEWAY_API_VERSION],
            Kind::Secret => &[secret::API_VERSION],
        }
    }

    /// Whether objects of this kind live in a namespace (all but `Mesh`).
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Mesh)
    }

    /// Parses a kind as users type it: `HTTPRoute`, `httproute`, `httproutes`, `svc`…
    pub fn parse_loose(text: &str) -> Option<Kind> {
        let lower = text.to_ascii_lowercase();
        Kind::ALL.into_iter().find(|kind| {
            lower == kind.as_str().to_ascii_lowercase()
                || lower == kind.plural()
                || kind.short_names().contains(&lower.as_str())
        })
    }

    /// Short names accepted by the CLI.
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Mesh => &["mesh"],
            Kind::Service => &["svc"],
            Kind::Workload => &["wl"],
            Kind::HttpRoute => &["route", "routes"],
            Kind::BackendPolicy => &["bp"],
            Kind::RateLimit => &["rl"],
            Kind::FaultInjection => &["fault", "faults"],
            Kind::TrafficPermission => &["tp", "permission", "permissions"],
            Kind::Telemetry => &["tel"],
            Kind::Gateway => &["gtw", "gw"],
            Kind::GrpcRoute | Kind::TcpRoute | Kind::Secret => &[],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown kind name.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown kind {0:?} (expected one of Mesh, Service, Workload, HTTPRoute, GRPCRoute, TCPRoute, Gateway, Secret, BackendPolicy, RateLimit, FaultInjection, TrafficPermission, Telemetry)"
)]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// The object a policy (`BackendPolicy`, …) applies to, in the policy's namespace
/// (Gateway API `LocalPolicyTargetReference`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetRef {
    /// API group: `""` (core) or `weft.dev`, both meaning Weft's `Service`. Default `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind. `Service`.
    pub kind: String,
    /// Name of the target, in the policy's namespace.
    pub name: String,
}

/// Object metadata, as in Kubernetes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Name, unique per kind within the namespace: lower-case RFC 1123 label.
    pub name: String,
    /// Namespace; absent for cluster-scoped kinds (`Mesh`), `default` when omitted for
    /// namespaced ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels, selected by `Service` selectors and `get -l`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by the store: the revision of the last write. Send it back on update to get
    /// optimistic concurrency (409 if it moved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Set by the store on creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set by the store: incremented when the spec (or labels) change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Set by the store on creation (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

/// One stored document of any kind: the spec and status are kept as JSON here and
/// parsed into typed specs by `weft-policy`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Object {
    /// `weft.dev/v1alpha1` or a Gateway API version.
    pub api_version: String,
    /// Kind name as written (`HTTPRoute`); see [`Object::kind`].
    pub kind: String,
    /// Name, namespace, labels, and the store's bookkeeping.
    pub metadata: ObjectMeta,
    /// What the operator asked for.
    #[serde(default)]
    pub spec: serde_json::Value,
    /// What the control plane observed (conditions, health); never written by `apply`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl Object {
    /// The parsed kind, if it is one Weft knows.
    pub fn kind(&self) -> Result<Kind, UnknownKind> {
        self.kind.parse()
    }

    /// Namespace, with `default` for namespaced kinds that left it out, and `""` for
    /// cluster-scoped kinds.
    pub fn namespace(&self) -> &str {
        match (&self.metadata.namespace, self.kind().map(Kind::namespaced)) {
            (_, Ok(false)) => "",
            (Some(ns), _) => ns,
            (None, _) => DEFAULT_NAMESPACE,
        }
    }

    /// The store key of this object.
    pub fn key(&self) -> Result<Key, UnknownKind> {
        Ok(Key {
            kind: self.kind()?,
            namespace: self.namespace().to_owned(),
            name: self.metadata.name.clone(),
        })
    }

    /// The store revision of the last write, if the object came from the store.
    pub fn resource_version(&self) -> Option<u64> {
        self.metadata.resource_version.as_deref()?.parse().ok()
    }
}

/// The namespace objects land in when they do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Identifies one stored object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    /// Kind.
    pub kind: Kind,
    /// Namespace; `""` for cluster-scoped kinds.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}
