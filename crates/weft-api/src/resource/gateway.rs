//! `Gateway` (`gateway.networking.k8s.io/v1`): the listeners of an ingress gateway —
//! port, protocol, hostname, TLS certificates — and which routes may attach to each.
//!
//! Field names, defaults and value ranges follow the Gateway API, so the same YAML
//! works on Kubernetes. `weft-policy` validates it, decides which routes attach to
//! which listener, and writes the Gateway API status (`Accepted`, `Programmed`, per
//! listener `ResolvedRefs`, `Conflicted` and `attachedRoutes`). The gateway process
//! that serves the listeners is not part of this module.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The API group of the Gateway API kinds (`Gateway`, `HTTPRoute`, …).
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The only `gatewayClassName` Weft serves.
pub const CLASS_NAME: &str = "weft";

/// The label every namespace has, holding its name (as Kubernetes sets it). Weft has
/// no `Namespace` objects, so it is the one label an `allowedRoutes` namespace
/// selector can select on.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// `Gateway.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// The class of gateway. Weft serves `weft` only.
    pub gateway_class_name: String,
    /// Where the gateway accepts connections; 1-64, names unique.
    #[schemars(length(min = 1, max = 64))]
    pub listeners: Vec<Listener>,
    /// Addresses requested for the gateway. Not supported: a gateway listens on the
    /// addresses of the host it runs on, so a non-empty list is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
}

/// A requested gateway address (Gateway API `GatewaySpecAddress`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Address {
    /// `IPAddress`, `Hostname` or a domain-prefixed type. Default `IPAddress`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The address.
    pub value: String,
}

/// One listener: a port, a protocol, and what may attach to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listener {
    /// The listener's name (RFC 1123 label), unique in the Gateway; routes name it in
    /// `parentRefs[].sectionName`.
    pub name: String,
    /// The host names it serves: exact (`shop.example.com`) or one leading wildcard
    /// label (`*.example.com`, any name with one or more labels before
    /// `.example.com`). HTTP, HTTPS and TLS only. Default: any host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port, 1-65535.
    pub port: u16,
    /// What it speaks.
    pub protocol: Protocol,
    /// TLS settings; required for `HTTPS` and `TLS`, refused for `HTTP` and `TCP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Which routes may attach. Default: routes of the Gateway's namespace, of every
    /// kind the protocol carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
}

/// A listener's protocol.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum Protocol {
    /// Plaintext HTTP/1.1 and HTTP/2: `HTTPRoute`, `GRPCRoute`.
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP over TLS the gateway terminates: `HTTPRoute`, `GRPCRoute`.
    #[serde(rename = "HTTPS")]
    Https,
    /// TLS the gateway passes through, chosen by SNI (`TLSRoute`, not supported yet).
    #[serde(rename = "TLS")]
    Tls,
    /// Opaque TCP: `TCPRoute`.
    #[serde(rename = "TCP")]
    Tcp,
}

/// A listener's TLS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// `Terminate` (for `HTTPS`: the gateway ends TLS with `certificateRefs`) or
    /// `Passthrough` (for `TLS`: the backend ends it). Default `Terminate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TlsMode>,
    /// The certificates and keys, chosen by SNI. At least one with `Terminate`; none
    /// with `Passthrough`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<CertificateRef>,
}

/// Who ends a listener's TLS.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum TlsMode {
    /// The gateway, with its certificate.
    #[default]
    Terminate,
    /// The backend: the gateway routes by SNI and copies bytes.
    Passthrough,
}

/// A reference to the `Secret` holding a certificate and its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateRef {
    /// API group: `""` (the core group of `Secret`). Default `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind: `Secret`. Default `Secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The Secret's name.
    pub name: String,
    /// The Secret's namespace. Default: the Gateway's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Which routes may attach to a listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedRoutes {
    /// The namespaces routes may come from. Default: the Gateway's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
    /// The route kinds allowed. Default: every kind the protocol carries
    /// (`HTTPRoute` and `GRPCRoute` on HTTP and HTTPS, `TCPRoute` on TCP).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<RouteGroupKind>,
}

/// `allowedRoutes.namespaces`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteNamespaces {
    /// `Same` (the Gateway's namespace), `All`, or `Selector` (those `selector`
    /// matches). Default `Same`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FromNamespaces>,
    /// With `from: Selector`: a label selector over namespaces. A namespace's one
    /// label is `kubernetes.io/metadata.name: <its name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Where routes may come from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum FromNamespaces {
    /// Every namespace.
    All,
    /// The Gateway's namespace.
    #[default]
    Same,
    /// The namespaces `selector` matches.
    Selector,
}

/// A Kubernetes label selector: every `matchLabels` pair and every
/// `matchExpressions` requirement must hold. Empty: everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Requirements on labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// How the label's value relates to `values`.
    pub operator: SelectorOperator,
    /// Values: at least one for `In` and `NotIn`, none for `Exists` and
    /// `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A `matchExpressions` operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum SelectorOperator {
    /// The label is set to one of `values`.
    In,
    /// The label is absent or set to none of `values`.
    NotIn,
    /// The label is set.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A route kind, in `allowedRoutes.kinds` and `status.listeners[].supportedKinds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteGroupKind {
    /// API group. Default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `HTTPRoute`, `GRPCRoute` or `TCPRoute`.
    pub kind: String,
}

// === impl Protocol ===

impl Protocol {
    /// The name as written, e.g. `HTTPS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tls => "TLS",
            Protocol::Tcp => "TCP",
        }
    }

    /// Whether the listener matches host names (HTTP `Host`, TLS SNI); a TCP listener
    /// cannot.
    pub fn has_hostname(self) -> bool {
        !matches!(self, Protocol::Tcp)
    }
}

// === impl Tls ===

impl Tls {
    /// The mode, `Terminate` when not written.
    pub fn mode(&self) -> TlsMode {
        self.mode.unwrap_or_default()
    }
}

// === impl CertificateRef ===

impl CertificateRef {
    /// The kind, `Secret` when not written.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or("Secret")
    }
}

// === impl RouteNamespaces ===

impl RouteNamespaces {
    /// `from`, `Same` when not written.
    pub fn from(&self) -> FromNamespaces {
        self.from.unwrap_or_default()
    }
}

// === impl RouteGroupKind ===

impl RouteGroupKind {
    /// The group, `gateway.networking.k8s.io` when not written.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or(GROUP)
    }
}
