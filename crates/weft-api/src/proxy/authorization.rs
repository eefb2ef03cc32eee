//! Authorization on the inbound side: who may call this workload, on which ports, with
//! which requests. The proxy model of the `TrafficPermission`s that apply to a workload
//! (compiled by the control plane: selectors, services, namespaces and service
//! accounts are already identity patterns here), and the local config's
//! `inbound.authorization`.
//!
//! How a request is decided (`docs/policies/traffic-permission.md`): a `deny` rule that
//! matches refuses it; `audit` rules that match are logged and counted and change
//! nothing; an `allow` rule that matches lets it through; with none, the port's
//! default action decides (`allow`, `deny`, or `audit`: served, but logged and counted
//! as a denial would be).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::KeyValueMatch;

/// `inbound.authorization`: the rules and the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authorization {
    /// What happens to a request no `allow` rule matches. Default `allow`.
    #[serde(default)]
    pub default_action: DefaultAction,
    /// Per workload port, a default action other than `defaultAction`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u16, DefaultAction>,
    /// The rules, in any order: a matching `deny` wins over every `allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Permission>,
    /// External authorization servers `custom` rules ask, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ExtAuthz>,
}

/// An Envoy external authorization server (`envoy.service.auth.v3.Authorization`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthz {
    /// The name `custom` rules use.
    pub name: String,
    /// Its gRPC endpoint, in plaintext HTTP/2: a loopback address.
    pub address: std::net::SocketAddr,
    /// How long a check may take. Default `200ms`.
    #[serde(default = "default_ext_authz_timeout", with = "crate::duration")]
    pub timeout: std::time::Duration,
    /// Serve the request when the server cannot answer (default: refuse with 403).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
}

/// The default time an external authorization check may take.
pub const DEFAULT_EXT_AUTHZ_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

fn default_ext_authz_timeout() -> std::time::Duration {
    DEFAULT_EXT_AUTHZ_TIMEOUT
}

impl Authorization {
    /// The default action of workload port `port`.
    pub fn default_for(&self, port: u16) -> DefaultAction {
        self.ports
            .get(&port)
            .copied()
            .unwrap_or(self.default_action)
    }

    /// Whether it is the default (nothing configured).
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// Whether this changes nothing: every request allowed, nothing audited.
    pub fn is_open(&self) -> bool {
        self.rules.is_empty()
            && self.default_action == DefaultAction::Allow
            && self.ports.values().all(|a| *a == DefaultAction::Allow)
    }
}

/// What decides a request no `allow` rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DefaultAction {
    /// Served.
    #[default]
    Allow,
    /// Refused.
    Deny,
    /// Served, and logged and counted as a denial: what `deny` would refuse, seen
    /// before it is switched on.
    Audit,
}

impl DefaultAction {
    /// The name as written in config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Audit => "audit",
        }
    }

    /// The strictest of two: `deny` over `audit` over `allow`.
    #[must_use]
    pub fn strictest(self, other: Self) -> Self {
        let rank = |a: Self| match a {
            Self::Allow => 0,
            Self::Audit => 1,
            Self::Deny => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Lets the request through (unless a `deny` rule matches it too).
    #[default]
    Allow,
    /// Refuses it, whatever else matches.
    Deny,
    /// Changes nothing; logged and counted as a denial would be (a `deny` rule's dry
    /// run).
    Audit,
    /// Asks the rule's `provider` (HTTP requests; a TCP connection it matches is
    /// refused).
    Custom,
}

impl Action {
    /// The name as written in config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Audit => "audit",
            Self::Custom => "custom",
        }
    }
}

/// One rule: an action for the requests from any of `from` to any of `to`, on `ports`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Permission {
    /// What a match does. Default `allow`.
    #[serde(default)]
    pub action: Action,
    /// Workload ports it covers. Default: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Callers, any of which matches. Default (empty): every caller, plaintext ones on
    /// permissive ports included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Principal>,
    /// Requests, any of which matches. Default (empty): everything on `ports`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Operation>,
    /// Where it came from (`TrafficPermission/<namespace>/<name>`), for logs, metrics
    /// and `weft explain`. Default: `inbound.authorization.rules[<index>]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Index of the rule in its source's `spec.rules`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rule: u32,
    /// With `action: custom`: the name of the provider (`providers[].name`) to ask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A caller: exactly one field set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Principal {
    /// A verified SPIFFE ID, or a prefix of one ending in `*`
    /// (`spiffe://cluster.local/ns/shop/*`); `*` alone is every mesh identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Plaintext callers on a permissive port (no identity).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unauthenticated: bool,
}

impl Principal {
    /// A principal matching `pattern`.
    pub fn identity(pattern: impl Into<String>) -> Self {
        Self {
            identity: Some(pattern.into()),
            unauthenticated: false,
        }
    }

    /// The principal of plaintext callers.
    pub fn unauthenticated() -> Self {
        Self {
            identity: None,
            unauthenticated: true,
        }
    }
}

/// Requests: every non-empty field must match (each list: any of its entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Workload ports. Default: every port of the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Paths, compared with the normalised path (no query).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathPattern>,
    /// Methods, compared without regard to case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Hosts (`Host` or `:authority` without port, lower case, no trailing dot); an
    /// entry `*.example.com` matches every name under `example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Headers that must all match (any of a header's values may).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<KeyValueMatch>,
    /// gRPC methods, any of which matches (gRPC requests only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc: Vec<GrpcMethod>,
}

impl Operation {
    /// Whether it says anything about HTTP requests (more than ports).
    pub fn is_http(&self) -> bool {
        !(self.paths.is_empty()
            && self.methods.is_empty()
            && self.hosts.is_empty()
            && self.headers.is_empty()
            && self.grpc.is_empty())
    }
}

/// A path condition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathPattern {
    /// How `value` is compared.
    #[serde(rename = "type")]
    pub kind: PathPatternType,
    /// The path, prefix or glob, starting with `/`.
    pub value: String,
    /// Compare without regard to ASCII case (for apps that ignore it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_case: bool,
}

/// How a path is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PathPatternType {
    /// The whole path.
    Exact,
    /// A prefix on segment boundaries (`/api` matches `/api` and `/api/x`, not `/apix`).
    PathPrefix,
    /// `*` is any run of characters within one segment, `**` any run including `/`.
    Glob,
}

/// A gRPC method: `service` (`package.Service`) and `method`, each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMethod {
    /// Fully qualified service (`shop.v1.Catalog`). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Method (`GetItem`). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}
