//! The proxy-side model: everything one `weft proxy` needs, and nothing it does not.
//!
//! A proxy runs from a [`Config`]: its own workload (identity, address, inbound ports),
//! the services it calls with their endpoints, the routes over those services, and where
//! its certificates are. The same model is read from a local YAML file today and is what
//! the control plane compiles user resources into later. The proxy never sees selectors
//! or policy precedence, only this.
//!
//! [`Config::from_yaml`] parses and validates; every error names the field path
//! (`routes[0].rules[1].backends[0].weight`), the value, and a hint.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod validate;

pub use validate::{FieldError, References, ValidationErrors};

/// Ports that carry server-speaks-first protocols: protocol detection is skipped on them
/// unless the config declares a protocol (MySQL, PostgreSQL, SMTP, and friends).
pub const SERVER_FIRST_PORTS: &[u16] = &[25, 110, 143, 587, 3306, 4222, 5432, 6379, 11211, 27017];

/// The whole configuration of one proxy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// The workload this proxy fronts.
    pub workload: Workload,
    /// Certificate, key and trust bundle (PEM files). Required for HBONE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatePaths>,
    /// Addresses the proxy itself binds.
    #[serde(default)]
    pub listeners: Listeners,
    /// Explicit outbound listeners (`127.0.0.1:PORT` → a service port).
    #[serde(default)]
    pub outbound: Vec<OutboundListener>,
    /// Services this workload calls, with their endpoints.
    #[serde(default)]
    pub services: Vec<Service>,
    /// Routes attached to services (GAMMA style: the parent is a service).
    #[serde(default)]
    pub routes: Vec<RouteTable>,
    /// What the inbound side accepts and what it tells the app.
    #[serde(default)]
    pub inbound: Inbound,
    /// Timeouts and limits.
    #[serde(default)]
    pub settings: Settings,
    /// The mesh DNS (`listeners.dns`): where names outside the mesh are resolved.
    #[serde(default)]
    pub dns: Dns,
}

/// How the mesh DNS resolves names it does not own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Dns {
    /// Resolvers that answer every name that is not a mesh service (`ip:port`).
    /// Default: the `nameserver`s of `/etc/resolv.conf` (or, when that names only
    /// systemd-resolved's stub, of `/run/systemd/resolve/resolv.conf`).
    pub upstreams: Vec<SocketAddr>,
    /// TTL of the answers for mesh services. Default `30s`.
    #[serde(with = "crate::duration")]
    pub ttl: Duration,
}

impl Default for Dns {
    fn default() -> Self {
        Self {
            upstreams: Vec::new(),
            ttl: Duration::from_secs(30),
        }
    }
}

/// The workload this proxy runs next to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// Workload name (unique within its namespace).
    pub name: String,
    /// Namespace. Default `default`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Service account; with the namespace and trust domain it forms the SPIFFE ID.
    /// Default `default`.
    #[serde(default = "default_namespace")]
    pub service_account: String,
    /// Trust domain. Default `cluster.local`.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// The address peers use to reach this workload (the HBONE CONNECT target host).
    pub address: IpAddr,
    /// Where the application listens. Default `127.0.0.1`.
    #[serde(default = "default_app_address")]
    pub app_address: IpAddr,
    /// Ports the application serves; inbound connections to other ports are refused.
    #[serde(default)]
    pub ports: Vec<WorkloadPort>,
    /// Labels the proxy registers with the control plane (`Service` selectors match
    /// them). Unused in local-file mode.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Zone (failure domain) the workload runs in, registered with the control plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// One port the application serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadPort {
    /// Port number.
    pub port: u16,
    /// Application protocol. Default `auto` (detected).
    #[serde(default)]
    pub protocol: Protocol,
    /// mTLS mode of this port, overriding `inbound.mtls`. Default: none (the
    /// workload's mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsMode>,
}

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
}

impl InboundPolicy {
    /// Makes `config`'s modes the policy's: the workload mode, and each declared port's
    /// own mode (ports the policy does not name follow the workload mode).
    pub fn apply_to(&self, config: &mut Config) {
        config.inbound.mtls = self.mtls;
        config.inbound.rate_limits.clone_from(&self.rate_limits);
        config.inbound.faults.clone_from(&self.faults);
        for port in &mut config.workload.ports {
            port.mtls = self.ports.get(&port.port).copied();
        }
    }
}

impl Config {
    /// The mTLS mode of inbound port `port`: its own, else the workload's.
    pub fn port_mtls(&self, port: u16) -> MtlsMode {
        self.workload
            .ports
            .iter()
            .find(|p| p.port == port)
            .and_then(|p| p.mtls)
            .unwrap_or(self.inbound.mtls)
    }

    /// Whether any declared port accepts plaintext (the inbound capture listener is
    /// needed only then).
    pub fn accepts_plaintext(&self) -> bool {
        self.workload
            .ports
            .iter()
            .any(|p| self.port_mtls(p.port) == MtlsMode::Permissive)
    }
}

/// Application protocol of a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// Detect: TLS, HTTP/1.x, HTTP/2 prior knowledge, else opaque. Server-first ports
    /// ([`SERVER_FIRST_PORTS`]) are treated as `tcp`.
    #[default]
    Auto,
    /// HTTP/1.x or HTTP/2 (which one is still detected, but without giving up early).
    Http,
    /// HTTP/2 prior knowledge.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Opaque TCP: bytes are copied, no detection.
    Tcp,
}

/// PEM files for this workload's mTLS identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificatePaths {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf.
    pub key: PathBuf,
    /// Trust bundle: the CA certificates peers must chain to.
    pub trust_bundle: PathBuf,
}

/// Addresses the proxy binds. `null` disables a listener.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listeners {
    /// Admin API. Default `127.0.0.1:15000`; keep it on loopback.
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
    /// Prometheus metrics and `/healthz`. Default `0.0.0.0:15020`.
    #[serde(default = "default_metrics")]
    pub metrics: Option<SocketAddr>,
    /// HBONE server (mTLS HTTP/2 CONNECT from other proxies). Default `0.0.0.0:15008`.
    #[serde(default = "default_hbone")]
    pub hbone: Option<SocketAddr>,
    /// Transparent outbound capture (SO_ORIGINAL_DST). Default `127.0.0.1:15001`.
    #[serde(default = "default_capture")]
    pub outbound_capture: Option<SocketAddr>,
    /// Inbound capture of plaintext from clients outside the mesh (SO_ORIGINAL_DST),
    /// for permissive ports. Bound only while some port is permissive; with every
    /// port strict nothing listens, so redirected plaintext is refused. Default
    /// `0.0.0.0:15006`.
    #[serde(default = "default_inbound_capture")]
    pub inbound_capture: Option<SocketAddr>,
    /// Mesh DNS (UDP and TCP): answers service names with their VIPs and forwards
    /// the rest to `dns.upstreams`; `weft redirect install` sends the host's DNS here.
    /// Setting it puts the proxy in transparent mode: with a control plane it
    /// subscribes to every service, since the app may dial any of them by name. Must
    /// be a loopback address (an open resolver is an amplifier). Default: none; the
    /// usual value is `127.0.0.1:15053`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<SocketAddr>,
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            admin: default_admin(),
            metrics: default_metrics(),
            hbone: default_hbone(),
            outbound_capture: default_capture(),
            inbound_capture: default_inbound_capture(),
            dns: None,
        }
    }
}

/// An explicit outbound listener: the app connects here to reach a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundListener {
    /// Address to listen on, usually `127.0.0.1:PORT`.
    pub listen: SocketAddr,
    /// Target service, `name` or `name.namespace`.
    pub service: String,
    /// Target service port.
    pub port: u16,
}

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

/// An RFC 7230 token: what header and cookie names must be.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A share in percent (0-100, clamped) as millionths, the wire form of mirror, fault
/// and other shares: exact to four decimals.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 0..=1e6
pub fn per_million(percent: f64) -> u32 {
    (percent.clamp(0.0, 100.0) * 10_000.0).round() as u32
}

/// Millionths as a percentage; the inverse of [`per_million`].
pub fn percent_of(per_million: u32) -> f64 {
    f64::from(per_million) / 10_000.0
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
}

impl Endpoint {
    /// Where to open the HBONE connection, if the endpoint is in the mesh.
    pub fn hbone_address(&self) -> Option<SocketAddr> {
        self.identity
            .as_ref()
            .map(|_| self.hbone.unwrap_or(SocketAddr::new(self.address, 15008)))
    }
}

/// Routes attached to one service (all ports, or one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteTable {
    /// Parent service, `name` or `name.namespace`.
    pub service: String,
    /// Parent port; absent means every port of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Rules, tried in order; the first whose matches hold wins.
    pub rules: Vec<RouteRule>,
}

/// One routing rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteRule {
    /// Any one match selects the rule; none means match everything.
    #[serde(default)]
    pub matches: Vec<RouteMatch>,
    /// Weighted backends.
    pub backends: Vec<Backend>,
    /// Whole-request timeout (until the response headers), retries included.
    /// Absent: none.
    #[serde(
        default,
        with = "crate::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Timeout of one attempt. Absent: none.
    #[serde(
        default,
        with = "crate::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_try_timeout: Option<Duration>,
    /// Retries. Absent: a connection that could not be made is retried once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Edits of the request's headers. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderEdits>,
    /// Edits of the response's headers. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderEdits>,
    /// Answer with a redirect instead of forwarding. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// Change the request before it is forwarded. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// Copies of the request go to these too; their responses are discarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Mirror>,
}

/// A redirect answer (`Location` built from the request, with these replaced).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    /// `http` or `https`. Default: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host. Default: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path. Default: the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// Port. Default: the scheme's well-known port when `scheme` is set, else the
    /// request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Status: 301, 302 (default, as in the Gateway API), 303, 307, 308.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    302
}

/// A request rewrite.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rewrite {
    /// New `Host` / `:authority`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// New path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

/// How a path is replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum PathRewrite {
    /// The whole path.
    Full(String),
    /// The part the rule's path prefix matched (the rule must match by prefix).
    Prefix(String),
}

/// Where copies of a rule's requests go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirror {
    /// Service, `name` or `name.namespace`.
    pub service: String,
    /// Service port. Default: the port the request arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Share of requests copied, 0-100. Default 100.
    #[serde(default = "default_mirror_percent")]
    pub percent: f64,
}

fn default_mirror_percent() -> f64 {
    100.0
}

/// Header edits, applied in order: `set` (replacing), `add` (beside), `remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderEdits {
    /// `(name, value)` set, replacing any of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    /// `(name, value)` added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    /// Names removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderEdits {
    /// Headers no route may edit: hop-by-hop and framing headers the proxy owns,
    /// `host` (a rewrite's job), and the caller identity the receiving proxy sets.
    /// (A configured `inbound.identityHeader` needs no entry: the receiving proxy
    /// strips it from every request before setting the verified one.)
    pub const PROTECTED: &'static [&'static str] = &[
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "content-length",
        "x-forwarded-client-cert",
    ];

    /// Why `name` cannot be edited, if it cannot.
    pub fn refuse(name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Some(format!("{name:?} is not a header name"));
        }
        Self::PROTECTED
            .contains(&lower.as_str())
            .then(|| format!("{name:?} is managed by the proxy and cannot be edited by a route"))
    }
}

/// When and how often a request is sent again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// Retries after the first attempt (at most 10).
    pub attempts: u32,
    /// Response codes retried (400-599).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    /// gRPC status codes retried (1-16), whatever the method, when a trailers-only
    /// answer carries one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc_codes: Vec<u32>,
    /// Base of the exponential backoff. Default `25ms`.
    #[serde(default = "default_backoff", with = "crate::duration")]
    pub backoff: Duration,
    /// Also retry non-idempotent methods. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_idempotent: bool,
}

impl Retry {
    /// The most retries a rule may ask for.
    pub const MAX_ATTEMPTS: u32 = 10;

    /// What a rule without a retry policy does: one retry of a connection that could
    /// not be made (nothing was sent, so it is always safe).
    pub fn connect_failure_only() -> Self {
        Self {
            attempts: 1,
            codes: Vec::new(),
            grpc_codes: Vec::new(),
            backoff: default_backoff(),
            non_idempotent: false,
        }
    }
}

fn default_backoff() -> Duration {
    Duration::from_millis(25)
}

/// Conditions that must all hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    /// `Host` / `:authority` (port stripped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Request path (query excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// HTTP method, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Headers; names are case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<KeyValueMatch>,
    /// Query parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<KeyValueMatch>,
}

/// Path match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum PathMatch {
    /// Exactly this path.
    Exact(String),
    /// This path prefix, on segment boundaries (`/api` matches `/api/x`, not `/apix`).
    Prefix(String),
    /// A regular expression matching the whole path.
    Regex(String),
}

/// String match for authorities, headers and query values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum StringMatch {
    /// Exactly this value.
    Exact(String),
    /// Starts with this value.
    Prefix(String),
    /// A regular expression matching the whole value.
    Regex(String),
}

/// A named value (header or query parameter) and how to match it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValueMatch {
    /// Header or parameter name.
    pub name: String,
    /// How to match its value.
    pub value: StringMatch,
}

/// A weighted backend of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// Service, `name` or `name.namespace`.
    pub service: String,
    /// Service port. Default: the port the request arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Relative weight. Default 1; 0 sends nothing.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

/// Timeouts and limits. Defaults follow Envoy's edge recommendations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// How long protocol detection waits for the client's first bytes before treating
    /// the connection as opaque TCP (server-speaks-first protocols). Default `300ms`.
    #[serde(with = "crate::duration")]
    pub detect_timeout: Duration,
    /// TCP and HBONE connect timeout. Default `2s`.
    #[serde(with = "crate::duration")]
    pub connect_timeout: Duration,
    /// How long SIGTERM waits for in-flight requests. Default `10s`.
    #[serde(with = "crate::duration")]
    pub drain_timeout: Duration,
    /// Time allowed to receive a request's headers. Default `10s`.
    #[serde(with = "crate::duration")]
    pub request_header_timeout: Duration,
    /// Close an opaque TCP connection when neither side has sent anything for this
    /// long. Default `5m`. (Idle HTTP/1 keep-alive connections are closed after
    /// `requestHeaderTimeout`; HTTP/2 and HBONE connections live until the peer or the
    /// drain closes them.)
    #[serde(with = "crate::duration")]
    pub idle_timeout: Duration,
    /// Maximum size of a request header block, bytes. Default 65536.
    pub max_header_bytes: u32,
    /// Maximum number of request headers. Default 100.
    pub max_headers: u16,
    /// Maximum concurrent HTTP/2 streams per connection. Default 100.
    pub max_concurrent_streams: u32,
    /// Maximum concurrent HBONE streams per pooled connection to a peer proxy; more
    /// streams open another connection. Default 100.
    pub max_hbone_streams: u32,
    /// Maximum concurrent connections per listener. Default 16384.
    pub max_connections: u32,
    /// Worker threads; 0 means one per CPU. Default 0.
    pub worker_threads: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            detect_timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(10),
            request_header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_concurrent_streams: 100,
            max_hbone_streams: 100,
            max_connections: 16384,
            worker_threads: 0,
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not YAML.
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    /// The YAML does not have the expected shape.
    #[error("{path}: {message}")]
    Shape {
        /// Field path, e.g. `services[0].ports[0].port`.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The shape is right but values are inconsistent.
    #[error("{0}")]
    Invalid(#[from] ValidationErrors),
}

impl Config {
    /// Parses YAML and validates the result.
    pub fn from_yaml(text: &str) -> Result<Self, Error> {
        let value: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| Error::Yaml(e.to_string()))?;
        Self::from_value(value)
    }

    /// Deserializes a JSON value (already parsed) and validates it.
    pub fn from_value(value: serde_json::Value) -> Result<Self, Error> {
        Self::from_value_with(value, References::Required)
    }

    /// Parses YAML as a bootstrap for control-plane mode: services and routes named by
    /// listeners and routes may arrive later over xDS ([`References::Deferred`]).
    pub fn from_yaml_with(text: &str, references: References) -> Result<Self, Error> {
        let value: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| Error::Yaml(e.to_string()))?;
        Self::from_value_with(value, references)
    }

    /// [`Config::from_value`] with a choice of reference checking.
    pub fn from_value_with(
        value: serde_json::Value,
        references: References,
    ) -> Result<Self, Error> {
        let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            Error::Shape {
                path: if path == "." {
                    "(top level)".to_owned()
                } else {
                    path
                },
                message: e.into_inner().to_string(),
            }
        })?;
        config.validate_with(references)?;
        Ok(config)
    }

    /// Cross-field checks: references resolve, names are unique, values are in range.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        validate::config(self, References::Required)
    }

    /// [`Config::validate`] with a choice of reference checking.
    pub fn validate_with(&self, references: References) -> Result<(), ValidationErrors> {
        validate::config(self, references)
    }

    /// This workload's SPIFFE ID as a string.
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.workload.trust_domain, self.workload.namespace, self.workload.service_account
        )
    }

    /// Finds a service by `name` or `name.namespace` (bare names resolve in the
    /// workload's namespace).
    pub fn service(&self, reference: &str) -> Option<&Service> {
        let (name, namespace) = split_reference(reference, &self.workload.namespace);
        self.services
            .iter()
            .find(|s| s.name == name && s.namespace == namespace)
    }
}

/// Splits `name.namespace` (or `name`, in `default_namespace`).
pub fn split_reference<'a>(reference: &'a str, default_namespace: &'a str) -> (&'a str, &'a str) {
    reference
        .split_once('.')
        .unwrap_or((reference, default_namespace))
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Http => "http",
            Self::Http2 => "http2",
            Self::Grpc => "grpc",
            Self::Tcp => "tcp",
        })
    }
}

fn default_namespace() -> String {
    "default".to_owned()
}
fn default_trust_domain() -> String {
    "cluster.local".to_owned()
}
fn default_app_address() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}
fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15000))
}
#[allow(clippy::unnecessary_wraps)] // serde default for an Option field
fn default_metrics() -> Option<SocketAddr> {
    Some(SocketAddr::from(([0, 0, 0, 0], 15020)))
}
#[allow(clippy::unnecessary_wraps)]
fn default_hbone() -> Option<SocketAddr> {
    Some(SocketAddr::from(([0, 0, 0, 0], 15008)))
}
#[allow(clippy::unnecessary_wraps)]
fn default_capture() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 15001)))
}
#[allow(clippy::unnecessary_wraps)]
fn default_inbound_capture() -> Option<SocketAddr> {
    Some(SocketAddr::from(([0, 0, 0, 0], 15006)))
}
fn default_weight() -> u32 {
    1
}
