//! `BackendPolicy` (`weft.dev/v1alpha1`): how callers treat one destination service —
//! load balancing (incl. session affinity), connection limits, outlier detection,
//! active health checks, slow start, locality and the retry budget.
//!
//! It attaches to a `Service` through `targetRefs` (Gateway API policy attachment,
//! GEP-713) and is applied by every calling proxy: the control plane compiles it into
//! the proxy `Service` resource, so the proxy never sees this YAML. Durations are
//! Gateway API durations (`10s`, `500ms`), validated by `weft-policy`.

use serde::{Deserialize, Serialize};

use super::PolicyTargetRef;

/// `BackendPolicy.spec`. Every section is optional; what is left out keeps its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// The services this policy applies to (same namespace). At least one.
    pub target_refs: Vec<PolicyTargetRef>,
    /// Endpoint choice. Default: `peakEwma`, no slow start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Limits on what one caller sends the service at once. Default: the limits
    /// documented on each field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_limits: Option<ConnectionLimits>,
    /// Passive ejection of failing endpoints. Default: eject after 5 consecutive 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Active health checks. Default: none (endpoints are used while registered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How many retries callers may add. Default: 20% of requests plus 10 per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
    /// Zone preference. Default: prefer the caller's zone while at least 70% of its
    /// endpoints there are usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<Locality>,
}

/// `spec.loadBalancer`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    /// Algorithm. Default `peakEwma`.
    #[serde(default, rename = "type")]
    pub kind: Algorithm,
    /// What to hash for `ringHash` and `maglev` (required there, refused elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    /// Ramp new endpoints up over a window instead of sending them a full share at
    /// once. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStart>,
    /// When fewer than this percentage of endpoints are usable (healthy and not
    /// ejected), ignore health and ejections and balance over all of them: a degraded
    /// service beats none. 0-100; default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_threshold_percent: Option<u32>,
}

/// Load-balancing algorithm, as users write it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Algorithm {
    /// Power of two choices over peak-EWMA latency × outstanding requests.
    #[default]
    PeakEwma,
    /// Power of two choices over outstanding requests.
    LeastRequest,
    /// Round robin.
    RoundRobin,
    /// Consistent hashing on a ring (Ketama): session affinity, smooth resizing.
    RingHash,
    /// Maglev consistent hashing: session affinity, even spread, O(1) lookup.
    Maglev,
}

/// The request property a hashing load balancer keys on. Exactly one field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashOn {
    /// A request header's value (e.g. `x-user-id`). Requests without it are balanced
    /// at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A cookie. With `ttl`, a request without the cookie gets one (random, set on the
    /// response), so a browser session sticks from its first request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<HashCookie>,
    /// The calling workload's address (all of one caller's requests go to one
    /// endpoint). Write `sourceIP: {}`.
    #[serde(default, rename = "sourceIP", skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<SourceIp>,
}

/// `hashOn.cookie`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashCookie {
    /// Cookie name (an RFC 6265 token).
    pub name: String,
    /// Lifetime of a cookie the proxy sets (`1h`); absent: the proxy never sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// `Path` of a cookie the proxy sets. Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `hashOn.sourceIP`: no fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceIp {}

/// `loadBalancer.slowStart`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlowStart {
    /// How long a new endpoint takes to reach its full share (`30s`).
    pub window: String,
}

/// `spec.connectionLimits`: per calling proxy, for the whole service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionLimits {
    /// Upstream connections open at once (TCP connections and HTTP/1 connections).
    /// Default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Requests waiting for a connection at once; more get 503 at once. Default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    /// Requests in flight at once; more get 503 at once. Default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    /// Requests one upstream connection carries before it is closed. Default: no
    /// limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
}

/// `spec.outlierDetection`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Eject after this many 5xx (or local failures) in a row; `0` turns it off.
    /// Default 5.
    #[serde(
        default,
        rename = "consecutive5xx",
        skip_serializing_if = "Option::is_none"
    )]
    pub consecutive_5xx: Option<u32>,
    /// Eject after this many 502/503/504 or local failures in a row. Default: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// How often success rates are judged and ejection multipliers decay. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// First ejection's length; the n-th lasts n times as long. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    /// Longest ejection. Default `300s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_time: Option<String>,
    /// Most endpoints ejected at once, in percent (at least one may always be).
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Eject endpoints whose success rate is far below their peers'. Default: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<SuccessRate>,
    /// Turn ejection off for this service. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// `outlierDetection.successRate`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuccessRate {
    /// Endpoints with enough requests needed before any is judged. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_hosts: Option<u32>,
    /// Requests in an interval an endpoint needs to be judged. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_volume: Option<u32>,
    /// Eject below mean − factor × standard deviation. Default 1.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdev_factor: Option<f64>,
}

/// `spec.healthCheck`: exactly one of `http`, `tcp`, `grpc`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// Service port whose endpoints' target port is checked. Default: the first port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Time between checks of one endpoint. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time one check may take, connection included. Default `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Failed checks in a row that mark a healthy endpoint unhealthy. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    /// Passed checks in a row that bring an unhealthy endpoint back. Default 2. A new
    /// endpoint is unhealthy until its first check passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    /// `GET path`, passing on an expected status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHealthCheck>,
    /// The port accepts a connection. Write `tcp: {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpHealthCheck>,
    /// The gRPC health protocol (`grpc.health.v1.Health/Check`) answers `SERVING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheck>,
}

/// `healthCheck.http`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHealthCheck {
    /// Path to request, starting with `/`.
    pub path: String,
    /// `Host` header. Default: the service's DNS name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Statuses that pass: codes (`200`) or ranges (`"200-299"`). Default `200-399`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_statuses: Vec<StatusRange>,
}

/// A status code or an inclusive range, written `204` or `"200-299"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum StatusRange {
    /// One code.
    Code(u16),
    /// `"low-high"`, inclusive.
    Range(String),
}

/// `healthCheck.tcp`: no fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TcpHealthCheck {}

/// `healthCheck.grpc`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcHealthCheck {
    /// Service name sent in the check. Default `""` (the whole server).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
}

/// `spec.retryBudget`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries allowed as a percentage of requests, 0-100. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Retries allowed per second regardless of traffic. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retries_per_second: Option<u32>,
}

/// `spec.locality`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Locality {
    /// Send a caller's requests to endpoints in its own zone. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer_zone: Option<bool>,
    /// Fail over to every zone while fewer than this percentage of the caller's zone's
    /// endpoints are usable (healthy and not ejected). Default 70.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_healthy_percent: Option<u32>,
}
