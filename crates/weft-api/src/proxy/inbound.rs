//! What the proxy enforces on requests it receives: mTLS modes per port, rate limits,
//! faults, the identity header.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Authorization, Config, RouteMatch};

/// The inbound side's behaviour: which connections it accepts, and what it tells the
/// app about the caller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inbound {
    /// mTLS mode of every port without its own (`workload.ports[].mtls`). Default
    /// `strict`. With a control plane, the mesh's mode (its `InboundPolicy`) replaces
    /// this and every port's own.
    #[serde(default)]
    pub mtls: MtlsMode,
    /// A request header that carries the caller's verified SPIFFE ID to the app
    /// (e.g. `x-weft-peer-identity`), in addition to `x-forwarded-client-cert`. The
    /// proxy always removes it from incoming requests first, so nobody can spoof it;
    /// plaintext callers (permissive ports) arrive without it. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_header: Option<String>,
    /// Local rate limits on received requests, each checked in order. With a control
    /// plane, the mesh's `InboundPolicy` (from `RateLimit` objects) replaces these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// Faults injected into received requests; the first that matches applies. With a
    /// control plane, from `FaultInjection` objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// Who may call this workload, and with which requests. Default: every caller
    /// the port's mTLS mode admits. With a control plane, from `TrafficPermission`
    /// objects and `Mesh.spec.defaultAction`.
    #[serde(default, skip_serializing_if = "Authorization::is_default")]
    pub authorization: Authorization,
}

/// A local rate limit: a token bucket over matching requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Workload ports it covers. Default: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Any one match selects a request. Default: every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
    /// Requests allowed per `per`.
    pub requests: u32,
    /// The period. Default `1s`.
    #[serde(default = "default_rate_period", with = "crate::duration")]
    pub per: Duration,
    /// Requests allowed at once after a quiet spell. Default: `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// One bucket per calling SPIFFE ID (plaintext callers share one). Default: one
    /// bucket for all callers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_identity: bool,
    /// The `RateLimit/<namespace>/<name>` it came from, for debugging output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn default_rate_period() -> Duration {
    Duration::from_secs(1)
}

/// An injected fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// Workload ports it covers. Default: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    /// Any one match selects a request. Default: every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
    /// Delay a share of the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Abort a share of the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
    /// The `FaultInjection/<namespace>/<name>` it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Delay before a request is forwarded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    /// Share of requests delayed, 0-100.
    pub percent: f64,
    /// How long.
    #[serde(with = "crate::duration")]
    pub duration: Duration,
}

/// An answer instead of the app's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    /// Share of requests aborted, 0-100.
    pub percent: f64,
    /// HTTP status of the answer (200-599). Default 503.
    #[serde(default = "default_abort_status")]
    pub http_status: u16,
    /// Answer as a gRPC error with this status (e.g. 14, UNAVAILABLE) instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
}

fn default_abort_status() -> u16 {
    503
}

/// mTLS enforcement on an inbound port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MtlsMode {
    /// Only HBONE (mTLS) from authenticated mesh peers.
    #[default]
    Strict,
    /// HBONE, and plaintext redirected to `listeners.inboundCapture` from clients not
    /// yet in the mesh (served without a caller identity).
    Permissive,
}

impl MtlsMode {
    /// The mode's name as written in config and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Permissive => "permissive",
        }
    }
}

/// The mesh's word on this workload's inbound side: the proxy model of the control
/// plane's `InboundPolicy`. In control-plane mode it replaces `inbound.mtls` and every
/// `workload.ports[].mtls` of the bootstrap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundPolicy {
    /// Mode of every port not in `ports`.
    pub mtls: MtlsMode,
    /// Per-port modes, by workload port.
    #[serde(default)]
    pub ports: std::collections::BTreeMap<u16, MtlsMode>,
    /// Local rate limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// Injected faults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// Authorization.
    #[serde(default, skip_serializing_if = "Authorization::is_default")]
    pub authorization: Authorization,
    /// How this workload's proxy normalises request paths (`settings.pathNormalization`).
    #[serde(default, skip_serializing_if = "super::PathNormalization::is_default")]
    pub path_normalization: super::PathNormalization,
    /// Traces, access logs and request metrics (`Telemetry` objects).
    #[serde(default, skip_serializing_if = "super::Telemetry::is_default")]
    pub telemetry: super::Telemetry,
}

impl InboundPolicy {
    /// Makes `config`'s modes the policy's: the workload mode, and each declared port's
    /// own mode (ports the policy does not name follow the workload mode).
    pub fn apply_to(&self, config: &mut Config) {
        config.inbound.mtls = self.mtls;
        config.inbound.rate_limits.clone_from(&self.rate_limits);
        config.inbound.faults.clone_from(&self.faults);
        config.inbound.authorization.clone_from(&self.authorization);
        config.settings.path_normalization = self.path_normalization;
        config.telemetry.clone_from(&self.telemetry);
        for port in &mut config.workload.ports {
            port.mtls = self.ports.get(&port.port).copied();
        }
    }
}
