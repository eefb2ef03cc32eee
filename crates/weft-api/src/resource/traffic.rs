//! `RateLimit` and `FaultInjection` (`weft.dev/v1alpha1`): policies the destination's
//! workloads apply to the requests they receive.
//!
//! Both attach to a `Service` with `targetRefs` and compile into the `InboundPolicy` of
//! every workload the service selects, limited to the service's target ports. Matches
//! use the `HTTPRoute` match shape. Durations are Gateway API durations.

use serde::{Deserialize, Serialize};

use super::route::HttpMatch;
use super::PolicyTargetRef;

/// `RateLimit.spec`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimitSpec {
    /// The services whose workloads limit what they receive. At least one.
    pub target_refs: Vec<PolicyTargetRef>,
    /// Limits, each checked in turn; a request must pass every limit that covers it.
    /// At least one.
    pub limits: Vec<Limit>,
}

/// One token bucket (or one per caller).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limit {
    /// Requests allowed per `per`, per workload instance. At least 1.
    pub requests: u32,
    /// The period. Default `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
    /// Requests allowed at once after a quiet spell. Default: `requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// `workload` (default): one bucket for all callers of an instance; `identity`:
    /// one per calling SPIFFE ID (plaintext callers share one).
    #[serde(default)]
    pub by: LimitBy,
    /// Requests the limit covers (any match). Default: every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
}

/// What a limit counts separately.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum LimitBy {
    /// One bucket per workload instance.
    #[default]
    Workload,
    /// One bucket per calling identity, per workload instance.
    Identity,
}

/// `FaultInjection.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// The services whose workloads inject the faults. At least one.
    pub target_refs: Vec<PolicyTargetRef>,
    /// Requests affected (any match). Default: every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    /// Delay a share of requests before the app sees them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Answer a share of requests with an error instead of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

/// `spec.delay`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delay {
    /// Share of requests delayed, 0-100 (fractions allowed).
    pub percent: f64,
    /// How long (`2s`).
    pub fixed_delay: String,
}

/// `spec.abort`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Abort {
    /// Share of requests aborted, 0-100 (fractions allowed).
    pub percent: f64,
    /// HTTP status of the answer. Default 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Answer gRPC calls with this status instead (e.g. 14, UNAVAILABLE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
}
