//! What a proxy records beyond its counters: traces, access logs, and whether the
//! request metrics are kept. Locally from `telemetry:` in the proxy config; with a
//! control plane, from the `Telemetry` objects that apply to the workload (its
//! `InboundPolicy` carries them).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The fields an access-log line can carry, by name: the keys of a JSON line and the
/// placeholders of a text template (`{method} {path} {status}`).
pub const ACCESS_LOG_FIELDS: [&str; 21] = [
    "start_time",
    "direction",
    "source_identity",
    "destination_service",
    "destination_workload",
    "destination_identity",
    "upstream_host",
    "route",
    "route_rule",
    "method",
    "authority",
    "path",
    "protocol",
    "status",
    "grpc_status",
    "duration_ms",
    "bytes_received",
    "bytes_sent",
    "retry_count",
    "trace_id",
    "response_flags",
];

/// Default share of new traces sampled, percent.
pub const DEFAULT_SAMPLING_PERCENT: f64 = 1.0;

/// Default size at which an access-log file is rotated: 100 MiB.
pub const DEFAULT_ACCESS_LOG_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// Default number of rotated access-log files kept.
pub const DEFAULT_ACCESS_LOG_MAX_FILES: u32 = 5;

/// Traces, access logs and request metrics of one proxy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Telemetry {
    /// Spans for each request, exported over OTLP/gRPC. Absent: no spans (trace
    /// context is still passed on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Tracing>,
    /// A line for each request. Absent: no access log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLog>,
    /// The request metrics.
    #[serde(default, skip_serializing_if = "MetricsOptions::is_default")]
    pub metrics: MetricsOptions,
}

impl Telemetry {
    /// Whether nothing is configured (the default).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The checks a config's `telemetry:` gets (endpoint, sampling, timeout, template,
    /// path, rotation), every problem with its path as in a config file
    /// (`telemetry.tracing.sampling`): one set of rules wherever the model comes from.
    pub fn validate(&self) -> Result<(), super::ValidationErrors> {
        super::validate::telemetry_alone(self)
    }
}

/// Where spans go, and how many.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracing {
    /// The OTLP/gRPC collector, `http://host:port` (4317 is the usual port).
    pub endpoint: String,
    /// Share of new traces sampled, percent (0 to 100). A request that arrives with a
    /// sampling decision (W3C `traceparent` flags, B3 `sampled`) keeps it. Default 1.
    #[serde(default = "default_sampling")]
    pub sampling: f64,
    /// How long one export may take. Default `10s`.
    #[serde(default = "default_export_timeout", with = "crate::duration")]
    pub timeout: Duration,
}

fn default_sampling() -> f64 {
    DEFAULT_SAMPLING_PERCENT
}

fn default_export_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One line per request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLog {
    /// `json` (one object per line, every field) or `text` (`template`). Default
    /// `json`.
    #[serde(default)]
    pub format: AccessLogFormat,
    /// With `format: text`: the line, with `{field}` placeholders named as in
    /// [`ACCESS_LOG_FIELDS`] and `{{`/`}}` for braces. Default: an Envoy-like line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// The file the lines go to. Absent: standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Size at which the file is rotated (`path` → `path.1` → `path.2` …). Default
    /// 100 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept. Default 5.
    #[serde(default = "default_max_files")]
    pub max_files: u32,
}

fn default_max_bytes() -> u64 {
    DEFAULT_ACCESS_LOG_MAX_BYTES
}

fn default_max_files() -> u32 {
    DEFAULT_ACCESS_LOG_MAX_FILES
}

/// How an access-log line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccessLogFormat {
    /// A JSON object per line.
    #[default]
    Json,
    /// The `template`.
    Text,
}

/// Request metrics options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricsOptions {
    /// Whether requests are counted (`weft_proxy_requests_total` and the request
    /// histograms, both sides). Connection, handshake and policy counters are always
    /// kept. Default `true`.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

impl Default for MetricsOptions {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl MetricsOptions {
    /// Whether these are the defaults.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Checks an access-log text template: every `{field}` is one of
/// [`ACCESS_LOG_FIELDS`], and every brace is closed or doubled.
pub fn check_template(template: &str) -> Result<(), String> {
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' if bytes.get(i + 1) == Some(&b'{') => i += 2,
            b'}' if bytes.get(i + 1) == Some(&b'}') => i += 2,
            b'{' => {
                let Some(end) = template[i + 1..].find('}') else {
                    return Err(format!(
                        "the '{{' at byte {i} is never closed (write '{{{{' for a brace)"
                    ));
                };
                let field = &template[i + 1..i + 1 + end];
                if !ACCESS_LOG_FIELDS.contains(&field) {
                    return Err(format!(
                        "unknown field {{{field}}}: the fields are {}",
                        ACCESS_LOG_FIELDS.join(", ")
                    ));
                }
                i += end + 2;
            }
            b'}' => {
                return Err(format!(
                    "the '}}' at byte {i} closes nothing (write '}}}}' for a brace)"
                ))
            }
            _ => i += 1,
        }
    }
    Ok(())
}
