//! `Workload` (`weft.dev/v1alpha1`): one running instance. Normally created by the
//! control plane when a proxy registers, but it may be applied by hand (a host without
//! a proxy, a test). Its labels are `metadata.labels`; its health is in `status`,
//! written by the control plane.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::service::Protocol;

/// Service account used when a workload names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Port of the HBONE listener when a workload does not say otherwise.
pub const DEFAULT_HBONE_PORT: u16 = 15008;

/// `Workload.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// Service account (RFC 1123 label); with the namespace and the mesh trust domain it
    /// forms the SPIFFE ID. Default `default`.
    #[serde(default = "default_service_account")]
    pub service_account: String,
    /// Address peers use to reach the workload (IPv4 or IPv6). Required.
    pub address: IpAddr,
    /// HBONE listener of the workload's proxy (`ip:port`). Default `<address>:15008`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hbone: Option<SocketAddr>,
    /// Ports the application serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Failure zone (e.g. `eu-west-1a`), for locality-aware balancing. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// One port the application serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// Port number, 1-65535.
    pub port: u16,
    /// Application protocol. Default `auto`.
    #[serde(default)]
    pub protocol: Protocol,
}

/// The part of `Workload.status` the compiler reads. The control plane writes more
/// fields; they are ignored here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Health as last observed. Absent: never observed (not an endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
}

/// Workload health as observed by the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Phase {
    /// Its proxy is connected and reports the application healthy.
    Healthy,
    /// Its proxy lost the control-plane connection; it probably still serves.
    Disconnected,
    /// The application is failing its health checks.
    Unhealthy,
}

// === impl Spec ===

impl Spec {
    /// Where peers open HBONE connections to this workload.
    pub fn hbone_address(&self) -> SocketAddr {
        self.hbone
            .unwrap_or(SocketAddr::new(self.address, DEFAULT_HBONE_PORT))
    }
}

// === impl Phase ===

impl Phase {
    /// Whether a workload in this phase receives traffic: `Healthy`, and `Disconnected`
    /// (a control-plane outage must not empty the mesh).
    pub fn is_endpoint(self) -> bool {
        matches!(self, Phase::Healthy | Phase::Disconnected)
    }
}

fn default_service_account() -> String {
    DEFAULT_SERVICE_ACCOUNT.to_owned()
}
