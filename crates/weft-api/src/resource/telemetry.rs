//! `Telemetry` (`weft.dev/v1alpha1`): what the proxies of some workloads record
//! beyond their counters — spans, access-log lines — and whether they count requests.
//!
//! It attaches through `targetRefs` (the Gateway API policy attachment shape the other
//! policies use) to the whole mesh, to its own namespace, or to services of its
//! namespace, and compiles into the `telemetry` of the `InboundPolicy` of every
//! workload it covers: the proxy model [`crate::proxy::Telemetry`], whose checks
//! `weft-policy` runs on it. Each group (`tracing`, `accessLog`, `metrics`) is decided
//! on its own: the most specific object that sets it wins (Service over Namespace over
//! Mesh), the oldest between two of one level. Durations are Gateway API durations.

use serde::{Deserialize, Serialize};

/// The namespace a `Telemetry` for the whole mesh (`targetRefs: [{kind: Mesh}]`) must
/// live in: the control plane's own, where no workload runs, so that writing to an
/// application's namespace never changes what every other workload records. The same
/// name as the control plane's reserved identity namespace.
pub const MESH_NAMESPACE: &str = "weft-system";

/// `Telemetry.spec`. Every group is optional, but at least one is set; a group left out
/// is decided by a broader object (or keeps the proxy's default: no spans, no access
/// log, requests counted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// What it applies to: one `{kind: Mesh}` (only in namespace `weft-system`), one
    /// `{kind: Namespace}` (this object's namespace), or one or more `{kind: Service,
    /// name}` (the workloads those services of this namespace select).
    #[schemars(length(min = 1))]
    pub target_refs: Vec<TargetRef>,
    /// Spans over OTLP/gRPC. Absent: decided by a broader object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// A line per request. Absent: decided by a broader object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
    /// Request metrics. Absent: decided by a broader object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
}

/// What a `Telemetry` applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetRef {
    /// API group: `""` or `weft.dev`. Default `""`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `Mesh`, `Namespace` or `Service`.
    pub kind: TargetKind,
    /// `Service`: the service's name, in this object's namespace (required).
    /// `Namespace`: this object's namespace, if given. `Mesh`: `default`, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The scope a `Telemetry` covers, broadest first.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum TargetKind {
    /// Every workload of the mesh.
    Mesh,
    /// Every workload of the object's namespace.
    Namespace,
    /// The workloads a service of the object's namespace selects.
    Service,
}

impl TargetKind {
    /// The `kind` as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mesh => "Mesh",
            Self::Namespace => "Namespace",
            Self::Service => "Service",
        }
    }
}

/// `spec.tracing`: either `disabled: true` or an `endpoint`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    /// `true`: no spans, whatever a broader object says (trace context is still passed
    /// on); then no other field may be set. Default `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// The OTLP/gRPC collector, `http://host:port` (4317 is the usual port; https is
    /// not supported yet). Required unless `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Share of new traces sampled, percent (0 to 100, fractions allowed). A request
    /// that arrives with a sampling decision keeps it. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<f64>,
    /// How long one export may take, at most `60s`. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `spec.accessLog`: either `disabled: true` or where and how lines are written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLog {
    /// `true`: no access log, whatever a broader object says; then no other field may
    /// be set. Default `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    /// `json` (an object per line, every field) or `text` (`template`). Default `json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AccessLogFormat>,
    /// With `format: text`: the line, with `{field}` placeholders (`{start_time}
    /// {method} {path} {status}`; `{{` and `}}` for braces). Default: an Envoy-like
    /// line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The file the lines go to, an absolute path on each workload's host. Default:
    /// standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Size in bytes at which the file is rotated (`path` → `path.1` …), at least
    /// 4096. Default 104857600 (100 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Rotated files kept, at most 100. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u32>,
}

/// How an access-log line is written.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum AccessLogFormat {
    /// A JSON object per line.
    #[default]
    Json,
    /// The `template`.
    Text,
}

/// `spec.metrics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    /// Whether the proxies count requests (`weft_proxy_requests_total` and the request
    /// histograms, on both their inbound and outbound sides). Connection, handshake and
    /// policy counters are always kept. Default `true`.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}
