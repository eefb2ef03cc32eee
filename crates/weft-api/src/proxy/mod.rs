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

mod authorization;
mod inbound;
mod route;
mod service;
mod telemetry;
mod validate;

pub use authorization::{
    Action, Authorization, DefaultAction, ExtAuthz, GrpcMethod, Operation, PathPattern,
    PathPatternType, Permission, Principal, DEFAULT_EXT_AUTHZ_TIMEOUT,
};
pub use inbound::{Fault, FaultAbort, FaultDelay, Inbound, InboundPolicy, MtlsMode, RateLimit};
pub use route::{
    Backend, HeaderEdits, KeyValueMatch, Mirror, PathMatch, PathRewrite, Redirect, Retry, Rewrite,
    RouteMatch, RouteRule, RouteTable, StringMatch,
};
pub use service::{
    default_expected_statuses, BackendPolicy, Endpoint, HashCookie, HashOn, HealthCheck,
    HealthCheckKind, Limits, LoadBalancer, Locality, OutlierDetection, RetryBudget, Service,
    ServicePort, SuccessRate,
};

pub use telemetry::{
    check_template, AccessLog, AccessLogFormat, MetricsOptions, Telemetry, Tracing,
    ACCESS_LOG_FIELDS, DEFAULT_ACCESS_LOG_MAX_BYTES, DEFAULT_ACCESS_LOG_MAX_FILES,
    DEFAULT_SAMPLING_PERCENT,
};
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
    /// Traces, access logs and request metrics. With a control plane, the
    /// `Telemetry` objects that apply to this workload replace it.
    #[serde(default, skip_serializing_if = "Telemetry::is_default")]
    pub telemetry: Telemetry,
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
///
/// `portOffset` moves every listener left at its default port by the same amount, so a
/// second proxy on one host needs one setting (`portOffset: 100`: admin 15100, HBONE
/// 15108, ...). Addresses written out are used as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    deny_unknown_fields,
    try_from = "ListenersFile"
)]
pub struct Listeners {
    /// Added to the port of every listener left at its default. Default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub port_offset: u16,
    /// Admin API. Default `127.0.0.1:15000`; keep it on loopback.
    pub admin: SocketAddr,
    /// Prometheus metrics and `/healthz`. Default `0.0.0.0:15020`.
    pub metrics: Option<SocketAddr>,
    /// HBONE server (mTLS HTTP/2 CONNECT from other proxies). Default `0.0.0.0:15008`.
    pub hbone: Option<SocketAddr>,
    /// Transparent outbound capture (SO_ORIGINAL_DST). Default `127.0.0.1:15001`.
    pub outbound_capture: Option<SocketAddr>,
    /// Inbound capture of plaintext from clients outside the mesh (SO_ORIGINAL_DST),
    /// for permissive ports. Bound only while some port is permissive; with every
    /// port strict nothing listens, so redirected plaintext is refused. Default
    /// `0.0.0.0:15006`.
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
            port_offset: 0,
            admin: default_admin(),
            metrics: default_metrics(),
            hbone: default_hbone(),
            outbound_capture: default_capture(),
            inbound_capture: default_inbound_capture(),
            dns: None,
        }
    }
}

/// `listeners` as written: each address left out (its default, moved by `portOffset`),
/// `null` (off), or given.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListenersFile {
    #[serde(default)]
    port_offset: u16,
    #[serde(default)]
    admin: Option<SocketAddr>,
    #[serde(default, deserialize_with = "written")]
    metrics: Written,
    #[serde(default, deserialize_with = "written")]
    hbone: Written,
    #[serde(default, deserialize_with = "written")]
    outbound_capture: Written,
    #[serde(default, deserialize_with = "written")]
    inbound_capture: Written,
    #[serde(default)]
    dns: Option<SocketAddr>,
}

/// A listener address as written in the file.
#[derive(Default)]
enum Written {
    /// Left out: the default, moved by `portOffset`.
    #[default]
    Default,
    /// `null`: no listener.
    Off,
    /// An address, used as written.
    At(SocketAddr),
}

/// Reads a written field: `null` is [`Written::Off`]; a left-out field never gets here.
fn written<'de, D>(d: D) -> Result<Written, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<SocketAddr>::deserialize(d)?.map_or(Written::Off, Written::At))
}

impl TryFrom<ListenersFile> for Listeners {
    type Error = String;

    fn try_from(file: ListenersFile) -> Result<Self, String> {
        let offset = file.port_offset;
        let moved = |name: &str, default: SocketAddr| -> Result<SocketAddr, String> {
            default
                .port()
                .checked_add(offset)
                .map(|port| SocketAddr::new(default.ip(), port))
                .ok_or_else(|| {
                    format!(
                        "portOffset {offset} moves the default {name} port {} past 65535; \
                         use an offset of at most {}",
                        default.port(),
                        u16::MAX - MAX_DEFAULT_PORT
                    )
                })
        };
        let either = |name: &str,
                      given: Written,
                      default: Option<SocketAddr>|
         -> Result<Option<SocketAddr>, String> {
            match (given, default) {
                (Written::At(addr), _) => Ok(Some(addr)),
                (Written::Off, _) | (Written::Default, None) => Ok(None),
                (Written::Default, Some(default)) => moved(name, default).map(Some),
            }
        };
        Ok(Self {
            port_offset: offset,
            admin: match file.admin {
                Some(admin) => admin,
                None => moved("admin", default_admin())?,
            },
            metrics: either("metrics", file.metrics, default_metrics())?,
            hbone: either("hbone", file.hbone, default_hbone())?,
            outbound_capture: either("outboundCapture", file.outbound_capture, default_capture())?,
            inbound_capture: either(
                "inboundCapture",
                file.inbound_capture,
                default_inbound_capture(),
            )?,
            dns: file.dns,
        })
    }
}

/// The highest default listener port (metrics, 15020): what bounds `portOffset`.
const MAX_DEFAULT_PORT: u16 = 15020;

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
fn is_zero(n: &u16) -> bool {
    *n == 0
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
    /// Runtime threads; 0 means one per CPU. Default 1: a sidecar shares its host with
    /// the app, and one thread spent 27% less CPU per request than two on a 2-core host
    /// (bench/RESULTS.md, issue 15). Raise it for a proxy that must use more than one
    /// core.
    pub worker_threads: u16,
    /// How request paths are normalised before routing, authorization and
    /// forwarding (`docs/policies/path-normalization.md`). Default `mergeSlashes`. With a
    /// control plane, `Mesh.spec.pathNormalization` replaces it.
    pub path_normalization: PathNormalization,
}

/// How request paths are normalised: what routes and permissions compare and what
/// the app receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PathNormalization {
    /// As sent.
    None,
    /// Dot-segments removed, unreserved escapes decoded, and what apps read in
    /// different ways (`%2F`, `%5C`, escaped dot-segments, double escapes of `.`, `/`,
    /// `\` and `%`, `..;`, `\`, control bytes, escapes that are not UTF-8) refused
    /// with 400.
    Base,
    /// `base`, and runs of `/` merged into one (as nginx and most servers read them).
    #[default]
    MergeSlashes,
    /// `mergeSlashes`, with `%2F`, `%5C` and `\` decoded to `/` first.
    DecodeAndMergeSlashes,
}

impl PathNormalization {
    /// Whether it is the default, `mergeSlashes`.
    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The name as written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Base => "base",
            Self::MergeSlashes => "mergeSlashes",
            Self::DecodeAndMergeSlashes => "decodeAndMergeSlashes",
        }
    }
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
            worker_threads: 1,
            path_normalization: PathNormalization::MergeSlashes,
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
