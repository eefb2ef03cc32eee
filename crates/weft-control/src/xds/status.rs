//! What `weft inspect proxy` shows about a connected proxy: who it is, what it
//! subscribed to, what was last sent, acknowledged and refused.
//!
//! Internal records keep `Arc`s to the resources sent; the serializable views
//! ([`ProxyStatus`] and friends) copy only names and versions, when asked.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use weft_api::pb::v1 as pb;

use super::snapshot::XdsResource;

/// A connected proxy, as seen by the xDS server.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyStatus {
    /// `Node.id` of the stream's first request (`<namespace>/<name>`).
    pub node_id: String,
    /// Server-assigned id of the stream, unique for the life of the process.
    pub conn_id: u64,
    /// Remote address of the connection, when known.
    pub peer: Option<String>,
    /// When the stream was accepted (RFC 3339).
    pub connected_at: String,
    /// What the proxy registered as, if it sent a registration.
    pub registration: Option<RegistrationSummary>,
    /// Per resource type, sorted by type URL.
    pub types: Vec<TypeStatus>,
}

/// The parts of a [`pb::Registration`] worth showing.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationSummary {
    /// Workload name.
    pub name: String,
    /// Workload namespace.
    pub namespace: String,
    /// Service account the workload runs as.
    pub service_account: String,
    /// Address peers use to reach the workload.
    pub address: String,
    /// Ports the workload serves.
    pub ports: Vec<u32>,
    /// Zone, if set.
    pub zone: String,
    /// Version of the proxy binary.
    pub proxy_version: String,
}

/// The xDS state of one resource type on one stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeStatus {
    /// Resource type URL.
    pub type_url: String,
    /// Subscribed names, sorted; `*` for a wildcard subscription.
    pub subscribed: Vec<String>,
    /// What the proxy holds as far as the server knows (sent or confirmed through
    /// `initial_resource_versions`): version by name.
    pub resources: BTreeMap<String, String>,
    /// Nonce of the response awaiting ACK or NACK, if any.
    pub pending_nonce: Option<String>,
    /// The last response sent.
    pub last_sent: Option<SentStatus>,
    /// The last response acknowledged.
    pub acked: Option<AckStatus>,
    /// The last response refused.
    pub last_nack: Option<NackStatus>,
}

/// A response sent to the proxy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentStatus {
    /// Nonce of the response.
    pub nonce: String,
    /// Resources sent: version by name.
    pub versions: BTreeMap<String, String>,
    /// Names sent in `removed_resources`.
    pub removed: Vec<String>,
    /// When it was sent (RFC 3339).
    pub at: String,
}

/// A response the proxy acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AckStatus {
    /// Nonce of the acknowledged response.
    pub nonce: String,
    /// Resources in that response: version by name.
    pub versions: BTreeMap<String, String>,
    /// When the ACK arrived (RFC 3339).
    pub at: String,
}

/// A response the proxy refused (NACK).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NackStatus {
    /// Nonce of the refused response.
    pub nonce: String,
    /// The proxy's summary (`error_detail.message`).
    pub message: String,
    /// The refused resources and why; resources not listed were applied.
    pub errors: Vec<ResourceError>,
    /// When the NACK arrived (RFC 3339).
    pub at: String,
}

/// One resource a proxy refused, from `weft.proxy.v1.ResourceErrors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceError {
    /// Type URL of the refused resource.
    pub type_url: String,
    /// Name of the refused resource.
    pub name: String,
    /// Why the proxy refused it.
    pub message: String,
}

/// A response sent, with the resources themselves.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) nonce: String,
    pub(crate) at: SystemTime,
    pub(crate) resources: Vec<Arc<XdsResource>>,
    pub(crate) removed: Vec<String>,
}

/// An ACK.
#[derive(Debug, Clone)]
pub(crate) struct Acked {
    pub(crate) nonce: String,
    pub(crate) at: SystemTime,
    pub(crate) versions: BTreeMap<String, String>,
}

/// A NACK.
#[derive(Debug, Clone)]
pub(crate) struct Nack {
    pub(crate) nonce: String,
    pub(crate) at: SystemTime,
    pub(crate) message: String,
    pub(crate) errors: Vec<ResourceError>,
}

// === impl RegistrationSummary ===

impl From<&pb::Registration> for RegistrationSummary {
    fn from(registration: &pb::Registration) -> Self {
        Self {
            name: registration.name.clone(),
            namespace: registration.namespace.clone(),
            service_account: registration.service_account.clone(),
            address: registration.address.clone(),
            ports: registration.ports.iter().map(|p| p.port).collect(),
            zone: registration.zone.clone(),
            proxy_version: registration.proxy_version.clone(),
        }
    }
}

// === impl Sent ===

impl Sent {
    pub(crate) fn status(&self) -> SentStatus {
        SentStatus {
            nonce: self.nonce.clone(),
            versions: self
                .resources
                .iter()
                .map(|r| (r.name.clone(), r.version.clone()))
                .collect(),
            removed: self.removed.clone(),
            at: timestamp(self.at),
        }
    }
}

// === impl Acked ===

impl Acked {
    pub(crate) fn status(&self) -> AckStatus {
        AckStatus {
            nonce: self.nonce.clone(),
            versions: self.versions.clone(),
            at: timestamp(self.at),
        }
    }
}

// === impl Nack ===

impl Nack {
    pub(crate) fn status(&self) -> NackStatus {
        NackStatus {
            nonce: self.nonce.clone(),
            message: self.message.clone(),
            errors: self.errors.clone(),
            at: timestamp(self.at),
        }
    }
}

/// RFC 3339 with milliseconds, UTC.
pub(crate) fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// `peer` for display.
pub(crate) fn peer(addr: Option<SocketAddr>) -> Option<String> {
    addr.map(|a| a.to_string())
}
