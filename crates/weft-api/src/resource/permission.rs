//! `TrafficPermission` (`weft.dev/v1alpha1`): who may call a service's workloads, on
//! which ports, with which requests.
//!
//! Compiled into the `InboundPolicy` of every workload its targets select and enforced
//! by those workloads' own proxies: identity and port when a connection arrives, HTTP
//! conditions on each request. A matching `deny` wins over any `allow`; a request no
//! `allow` matches gets the default action (`Mesh.spec.defaultAction` and its
//! overrides). `docs/policies/traffic-permission.md` explains the model.

use serde::{Deserialize, Serialize};

use super::route::ValueMatch;

/// `TrafficPermission.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// The services (or one port of a service) whose workloads enforce it. Default
    /// (empty): every workload of the permission's namespace, on every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,
    /// What a matching request gets: `allow`, `deny` (wins over every allow),
    /// `audit` (served; logged and counted as a denial would be), or `custom` (the
    /// `provider` decides; asked before any other rule). Default `allow`.
    #[serde(default)]
    pub action: Action,
    /// With `action: custom`: the external authorization server to ask, one of
    /// `Mesh.spec.authorizationProviders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderRef>,
    /// Rules, any of which matches. At least one; `[{}]` matches every request.
    pub rules: Vec<Rule>,
}

/// A target: a `Service` of the permission's namespace, or one of its ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    /// API group: `""` (core) or `weft.dev`, both meaning Weft's `Service`. Default `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind. `Service`.
    pub kind: String,
    /// Name of the service, in the permission's namespace.
    pub name: String,
    /// One of the service's ports (`spec.ports[].port`). Default: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// What a matching request gets.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Served, unless a `deny` matches it too.
    #[default]
    Allow,
    /// Refused: HTTP 403, gRPC `PERMISSION_DENIED`, or the connection closed.
    Deny,
    /// Served; logged and counted as a denial would be (a `deny`'s dry run).
    Audit,
    /// Asks `provider`, an external authorization server: it allows (maybe adding
    /// headers) or denies (with its own answer). HTTP requests only; a TCP connection
    /// a custom rule matches is refused.
    Custom,
}

/// `spec.provider`: an external authorization server by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderRef {
    /// A name of `Mesh.spec.authorizationProviders`.
    pub name: String,
}

/// One rule: any caller of `from` making any request of `to`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Callers, any of which matches. Default (empty): every caller, including
    /// plaintext ones on permissive ports; `[{identity: "*"}]` is every mesh identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Source>,
    /// Requests, any of which matches. Default (empty): every request and connection
    /// on the target's ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<To>,
}

/// A caller: exactly one field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// A SPIFFE ID, or a prefix of one ending in `*`
    /// (`spiffe://cluster.local/ns/shop/*`); `*` alone: every mesh identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// A service account, `name` (in the permission's namespace) or `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Every identity of a namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The identities serving a `Service`, `name` (in the permission's namespace) or
    /// `namespace/name`: its `serviceAccounts`, else those of the workloads it selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `true`: plaintext callers (no identity) on permissive ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthenticated: Option<bool>,
}

/// Requests: every field given must match (each list: any of its entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct To {
    /// Service ports (`spec.ports[].port` of the targets; workload ports when the
    /// permission targets a whole namespace). Default: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Paths, compared with the normalised path (`docs/policies/path-normalization.md`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathRule>,
    /// Methods (`GET`, `POST`, …), compared without regard to case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Host names (`catalog.shop.svc.cluster.local`, or `*.example.com` for the names
    /// under it), without port; compared without regard to case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Headers that must all match (names case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    /// gRPC methods, any of which matches; only gRPC requests match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc: Vec<GrpcRule>,
}

/// A path condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathRule {
    /// `Exact`, `PathPrefix` (on segment boundaries: `/api` covers `/api/x`, not
    /// `/apix`) or `Glob` (`*` within one segment, `**` across segments). Default
    /// `PathPrefix`.
    #[serde(default, rename = "type")]
    pub kind: PathRuleType,
    /// The path, starting with `/`.
    pub value: String,
    /// Compare without regard to ASCII case, for apps that ignore it. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
}

/// How a path is compared.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum PathRuleType {
    /// The whole path.
    Exact,
    /// A prefix on segment boundaries.
    #[default]
    PathPrefix,
    /// `*` within a segment, `**` across segments.
    Glob,
}

/// A gRPC method condition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRule {
    /// Fully qualified service (`shop.v1.Catalog`). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Method name (`GetItem`). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}
