//! Services the proxy calls: ports, endpoints, and the backend policy over them
//! (load balancing, limits, outlier detection, health checks, locality, retry budget).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{default_namespace, Protocol};

/// A service this workload calls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// Service name.
    pub name: String,
    /// Namespace. Default `default`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Virtual IP clients dial in transparent mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<IpAddr>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Load balancer across endpoints. Default `peakEwma`.
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    /// Endpoints (workload instances) of this service.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Fully qualified names the proxy's mesh DNS answers with `vip`, besides the
    /// short forms it always answers (`<name>.<namespace>.svc`, `<name>.<namespace>`
    /// and, in the workload's namespace, `<name>`). The control plane sets
    /// `<name>.<namespace>.svc.<Mesh.spec.dns.domain>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// How this proxy treats the service's endpoints. Default: every default.
    #[serde(default)]
    pub policy: BackendPolicy,
}

/// What a calling proxy applies to one destination service, besides its load
/// balancer: affinity, limits, ejection, health checks, slow start, locality and the
/// retry budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendPolicy {
    /// What `ringHash` and `maglev` key on; required for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    /// New endpoints ramp up to a full share over this window. Default: none.
    #[serde(
        default,
        with = "crate::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub slow_start: Option<Duration>,
    /// Limits on what this proxy sends the service at once.
    #[serde(default)]
    pub limits: Limits,
    /// Passive ejection of failing endpoints. Default: after 5 consecutive 5xx;
    /// `null` turns it off.
    #[serde(default = "default_outlier_detection")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Active health checks. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// How many retries may be added to the requests sent.
    #[serde(default)]
    pub retry_budget: RetryBudget,
    /// Zone preference.
    #[serde(default)]
    pub locality: Locality,
    /// Below this percentage of usable endpoints, balance over all of them. Default 50.
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold_percent: u32,
    /// The `BackendPolicy/<namespace>/<name>` this came from, for debugging output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Default for BackendPolicy {
    fn default() -> Self {
        Self {
            hash_on: None,
            slow_start: None,
            limits: Limits::default(),
            outlier_detection: default_outlier_detection(),
            health_check: None,
            retry_budget: RetryBudget::default(),
            locality: Locality::default(),
            panic_threshold_percent: default_panic_threshold(),
            source: None,
        }
    }
}

#[allow(clippy::unnecessary_wraps)] // a serde default for an optional field
fn default_outlier_detection() -> Option<OutlierDetection> {
    Some(OutlierDetection::default())
}

fn default_panic_threshold() -> u32 {
    50
}

/// The request property a hashing load balancer keys on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum HashOn {
    /// A request header's value (lower-case name).
    Header(String),
    /// A cookie.
    Cookie(HashCookie),
    /// The caller's address.
    #[serde(rename = "sourceIP")]
    SourceIp,
}

/// A cookie a hashing load balancer keys on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashCookie {
    /// Cookie name.
    pub name: String,
    /// Lifetime of a cookie the proxy sets on a response when the request had none.
    /// Default: never set one.
    #[serde(
        default,
        with = "crate::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// `Path` of a cookie the proxy sets. Default `/`.
    #[serde(default = "default_cookie_path")]
    pub path: String,
}

fn default_cookie_path() -> String {
    "/".to_owned()
}

/// Limits per calling proxy, for the whole service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Upstream connections open at once (TCP and HTTP/1). Default 1024.
    #[serde(default = "default_limit")]
    pub max_connections: u32,
    /// Requests waiting for a connection; more get 503 at once. Default 1024.
    #[serde(default = "default_limit")]
    pub max_pending_requests: u32,
    /// Requests in flight; more get 503 at once. Default 1024.
    #[serde(default = "default_limit")]
    pub max_requests: u32,
    /// Requests per upstream connection before it is closed. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
}

impl Limits {
    /// The default of each count limit.
    pub const DEFAULT: u32 = 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: Self::DEFAULT,
            max_pending_requests: Self::DEFAULT,
            max_requests: Self::DEFAULT,
            max_requests_per_connection: None,
        }
    }
}

fn default_limit() -> u32 {
    Limits::DEFAULT
}

/// Passive outlier detection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Eject after this many 5xx or local failures in a row. Default 5; absent: not
    /// counted.
    #[serde(
        default = "default_consecutive_5xx",
        rename = "consecutive5xx",
        skip_serializing_if = "Option::is_none"
    )]
    pub consecutive_5xx: Option<u32>,
    /// Eject after this many 502/503/504 or local failures in a row. Default: not
    /// counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Success-rate evaluation and multiplier decay period. Default `10s`.
    #[serde(default = "default_outlier_interval", with = "crate::duration")]
    pub interval: Duration,
    /// First ejection's length; the n-th lasts n times as long. Default `30s`.
    #[serde(default = "default_base_ejection", with = "crate::duration")]
    pub base_ejection_time: Duration,
    /// Longest ejection. Default `300s`.
    #[serde(default = "default_max_ejection", with = "crate::duration")]
    pub max_ejection_time: Duration,
    /// Most endpoints ejected at once, in percent (one may always be). Default 10.
    #[serde(default = "default_max_ejection_percent")]
    pub max_ejection_percent: u32,
    /// Success-rate ejection. Default: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<SuccessRate>,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_5xx: default_consecutive_5xx(),
            consecutive_gateway_errors: None,
            interval: default_outlier_interval(),
            base_ejection_time: default_base_ejection(),
            max_ejection_time: default_max_ejection(),
            max_ejection_percent: default_max_ejection_percent(),
            success_rate: None,
        }
    }
}

#[allow(clippy::unnecessary_wraps)] // a serde default for an optional field
fn default_consecutive_5xx() -> Option<u32> {
    Some(5)
}

fn default_outlier_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_base_ejection() -> Duration {
    Duration::from_secs(30)
}

fn default_max_ejection() -> Duration {
    Duration::from_secs(300)
}

fn default_max_ejection_percent() -> u32 {
    10
}

/// Success-rate outlier detection.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuccessRate {
    /// Endpoints with enough requests needed before any is judged. Default 5.
    #[serde(default = "default_minimum_hosts")]
    pub minimum_hosts: u32,
    /// Requests per interval an endpoint needs to be judged. Default 100.
    #[serde(default = "default_request_volume")]
    pub request_volume: u32,
    /// Eject below mean − factor × standard deviation. Default 1.9.
    #[serde(default = "default_stdev_factor")]
    pub stdev_factor: f64,
}

impl Default for SuccessRate {
    fn default() -> Self {
        Self {
            minimum_hosts: default_minimum_hosts(),
            request_volume: default_request_volume(),
            stdev_factor: default_stdev_factor(),
        }
    }
}

fn default_minimum_hosts() -> u32 {
    5
}

fn default_request_volume() -> u32 {
    100
}

fn default_stdev_factor() -> f64 {
    1.9
}

/// Active health checks of every endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// Endpoint port checked (a target port of the service).
    pub port: u16,
    /// Time between checks. Default `10s`.
    #[serde(default = "default_check_interval", with = "crate::duration")]
    pub interval: Duration,
    /// Time one check may take, connection included. Default `1s`.
    #[serde(default = "default_check_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// Failures in a row that mark an endpoint unhealthy. Default 3.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// Passes in a row that bring it back. Default 2.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    /// What is checked.
    pub check: HealthCheckKind,
}

/// What a health check does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum HealthCheckKind {
    /// `GET path`; passes on an expected status.
    Http {
        /// Path, starting with `/`.
        path: String,
        /// `Host` header.
        host: String,
        /// Passing statuses, inclusive ranges. Default `[[200, 399]]`.
        #[serde(default = "default_expected_statuses")]
        expected: Vec<(u16, u16)>,
    },
    /// The port accepts a connection.
    Tcp,
    /// `grpc.health.v1.Health/Check` answers `SERVING`.
    Grpc {
        /// Service name sent. Default `""`.
        #[serde(default)]
        service: String,
    },
}

fn default_check_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_unhealthy_threshold() -> u32 {
    3
}

fn default_healthy_threshold() -> u32 {
    2
}

/// The statuses a health check passes on when none are listed.
pub fn default_expected_statuses() -> Vec<(u16, u16)> {
    vec![(200, 399)]
}

/// The retry budget: retries allowed beyond first attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries as a percentage of requests, 0-100. Default 20.
    #[serde(default = "default_budget_percent")]
    pub percent: u32,
    /// Retries per second allowed regardless of traffic. Default 10.
    #[serde(default = "default_budget_floor")]
    pub min_retries_per_second: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            percent: default_budget_percent(),
            min_retries_per_second: default_budget_floor(),
        }
    }
}

fn default_budget_percent() -> u32 {
    20
}

fn default_budget_floor() -> u32 {
    10
}

/// Zone preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Locality {
    /// Prefer endpoints in this workload's zone. Default true.
    #[serde(default = "default_prefer_zone")]
    pub prefer_zone: bool,
    /// Use every zone while fewer than this percentage of the local zone's endpoints
    /// are usable. Default 70.
    #[serde(default = "default_min_healthy_percent")]
    pub min_healthy_percent: u32,
}

impl Default for Locality {
    fn default() -> Self {
        Self {
            prefer_zone: default_prefer_zone(),
            min_healthy_percent: default_min_healthy_percent(),
        }
    }
}

fn default_prefer_zone() -> bool {
    true
}

fn default_min_healthy_percent() -> u32 {
    70
}

impl Service {
    /// `name.namespace`, the key routes and listeners use.
    pub fn key(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

/// One service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// The port clients use.
    pub port: u16,
    /// The port the endpoints serve on. Default: same as `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u16>,
    /// Application protocol. Default `auto`.
    #[serde(default)]
    pub protocol: Protocol,
}

impl ServicePort {
    /// The endpoint port this service port maps to.
    pub fn target(&self) -> u16 {
        self.target_port.unwrap_or(self.port)
    }
}

/// Per-request (HTTP) or per-connection (TCP) load-balancing algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LoadBalancer {
    /// Power of two choices over peak-EWMA latency × outstanding requests.
    #[default]
    PeakEwma,
    /// Power of two choices over outstanding requests.
    LeastRequest,
    /// Round robin.
    RoundRobin,
    /// Consistent hashing on a ring (Ketama) over `policy.hashOn`.
    RingHash,
    /// Maglev consistent hashing over `policy.hashOn`.
    Maglev,
}

impl LoadBalancer {
    /// Whether the algorithm hashes a request property (and needs `hashOn`).
    pub fn hashes(self) -> bool {
        matches!(self, Self::RingHash | Self::Maglev)
    }
}

/// One endpoint of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Workload address (the CONNECT target host).
    pub address: IpAddr,
    /// SPIFFE ID the endpoint's proxy must present. Absent: the endpoint is outside the
    /// mesh and is dialled directly in plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// HBONE address of the endpoint's proxy. Default `ADDRESS:15008`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hbone: Option<SocketAddr>,
    /// Zone (failure domain) the endpoint runs in, for zone preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The workload behind it, `<namespace>/<name>`: the `destination_workload` and
    /// `destination_namespace` labels of the requests it serves. Default: unknown
    /// (empty labels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
}

impl Endpoint {
    /// Where to open the HBONE connection, if the endpoint is in the mesh.
    pub fn hbone_address(&self) -> Option<SocketAddr> {
        self.identity
            .as_ref()
            .map(|_| self.hbone.unwrap_or(SocketAddr::new(self.address, 15008)))
    }
}
