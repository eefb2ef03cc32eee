//! `Service` (`weft.dev/v1alpha1`): a name clients use, its ports and protocols, an
//! optional VIP, and a label selector over `Workload`s (its endpoints).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::proxy;

// The `exportTo` vocabulary is the mesh's (its `defaultExportTo` uses it too).
pub use crate::resource::mesh::{EXPORT_ALL, EXPORT_OWN, EXPORT_PATTERN};

/// `Service.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// Workloads (in the service's namespace) whose labels include every one of these
    /// (`matchLabels` semantics). Empty or absent selects nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// Ports clients use; at least one, unique by number and by name.
    pub ports: Vec<Port>,
    /// The service accounts (of the service's namespace) allowed to serve it: a
    /// selected workload running as another one is not an endpoint, and the status
    /// says so, so a workload cannot join the service by copying its labels. Default
    /// (empty): any service account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Virtual IP clients dial in transparent mode. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<IpAddr>,
    /// The namespaces whose proxies may see this service (its endpoints, identities
    /// and route tables) over xDS: namespace names (RFC 1123 labels), `"."` for the
    /// service's own namespace, or `["*"]` for every namespace (Istio semantics). The
    /// service's own namespace always sees it. A proxy outside these namespaces is told
    /// the service does not exist, so its DNS name does not resolve there. Default:
    /// `Mesh.spec.defaultExportTo` (itself `["*"]` unless the operator changes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(regex(pattern = EXPORT_PATTERN)))]
    pub export_to: Option<Vec<String>>,
    /// Moved to `BackendPolicy.spec.loadBalancer.type`; kept only so that validation
    /// can say so instead of "unknown field".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub load_balancer: Option<serde_json::Value>,
}

/// One service port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// Optional name (RFC 1123 label), unique within the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The port clients use, 1-65535.
    pub port: u16,
    /// The port the workloads serve on, 1-65535. Default: same as `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
    /// Application protocol. Default `auto` (detected).
    #[serde(default)]
    pub protocol: Protocol,
    /// mTLS mode of this port on the selected workloads (their `targetPort`),
    /// overriding `Mesh.spec.mtls.mode`: `permissive` lets clients outside the mesh
    /// reach it in plaintext while they migrate. When two services disagree about one
    /// workload port, `strict` wins. Default: the mesh's mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<crate::resource::mesh::MtlsMode>,
}

/// Application protocol of a port, as users write it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// Detected per connection: TLS, HTTP/1.x, HTTP/2, else opaque TCP.
    #[default]
    Auto,
    /// HTTP/1.x or HTTP/2.
    Http,
    /// HTTP/2 prior knowledge.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Opaque TCP, no detection.
    Tcp,
}

// === impl Protocol ===

impl From<Protocol> for proxy::Protocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Auto => Self::Auto,
            Protocol::Http => Self::Http,
            Protocol::Http2 => Self::Http2,
            Protocol::Grpc => Self::Grpc,
            Protocol::Tcp => Self::Tcp,
        }
    }
}
