//! Route kinds, in the Gateway API shapes: `HTTPRoute` and `GRPCRoute`
//! (`gateway.networking.k8s.io/v1`) and `TCPRoute` (`gateway.networking.k8s.io/v1alpha2`,
//! `v1` accepted too). A route's parent is a mesh `Service` (GAMMA, the default) or a
//! `Gateway` (one listener of it with `sectionName`).
//!
//! Field names, defaults and value ranges follow the Gateway API so the same YAML works
//! on Kubernetes. Fields the mesh does not implement yet (some `filters`) are accepted
//! by the parser so that validation can reject them with a clear message instead of an
//! "unknown field".

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `HTTPRoute.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSpec {
    /// Services (GAMMA) or Gateways whose traffic these rules route. At least one.
    pub parent_refs: Vec<ParentRef>,
    /// `Host` values the rules apply to: exact (`api.example.com`) or one leading
    /// wildcard label (`*.example.com`). Default: any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules; at least one.
    pub rules: Vec<HttpRule>,
}

/// One `HTTPRoute` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRule {
    /// Optional rule name (RFC 1123 label), for status and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any one match selects the rule. Default: one match of path prefix `/`
    /// (everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpMatch>,
    /// Filters, in Gateway API shape: `RequestHeaderModifier` and
    /// `ResponseHeaderModifier` ([`HeaderModifier`]), `RequestRedirect`
    /// ([`RequestRedirect`]), `URLRewrite` ([`UrlRewrite`]) and `RequestMirror`
    /// ([`RequestMirror`]); validation names any other type. Kept as JSON so an
    /// unsupported filter gets an error naming it, not a parse failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<serde_json::Value>,
    /// Weighted backends. At least one, unless the rule redirects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
    /// Timeouts. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpTimeouts>,
    /// Retries (Gateway API GEP-1731 shape, with Weft's extensions). Default: a
    /// connection that could not be made is retried once on another endpoint, nothing
    /// else. Every retry is also bounded by the destination's retry budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<HttpRetry>,
}

/// A `RequestRedirect` filter's body: the client is told to go elsewhere; no backend
/// is contacted. Unset fields keep the request's value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestRedirect {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host name of the `Location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Path of the `Location`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// Port of the `Location`. Default: the well-known port of `scheme` when it is
    /// set, else the request's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

/// A `URLRewrite` filter's body: the request is changed before it is forwarded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlRewrite {
    /// New `Host` (and `:authority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// New path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// How a redirect or rewrite changes the path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The whole new path, with `ReplaceFullPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// What replaces the matched `PathPrefix`, with `ReplacePrefixMatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// A `RequestMirror` filter's body: a copy of matching requests goes to another
/// backend too; its responses are discarded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestMirror {
    /// Where copies go (`weight` is not used).
    pub backend_ref: BackendRef,
    /// Share of requests copied, 0-100. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Share of requests copied as a fraction (instead of `percent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

/// `numerator / denominator` (denominator default 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fraction {
    /// Numerator, at most the denominator.
    pub numerator: u32,
    /// Denominator, at least 1. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denominator: Option<u32>,
}

/// A `RequestHeaderModifier` / `ResponseHeaderModifier` filter's body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderModifier {
    /// Headers set, replacing any of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValue>,
    /// Headers added, beside any of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValue>,
    /// Header names removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderValue {
    /// Header name (case-insensitive).
    pub name: String,
    /// Value.
    pub value: String,
}

/// `HTTPRoute` rule retries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Response codes (400-599) that are retried, e.g. `[502, 503, 504]`. Default:
    /// none (only connection failures and resets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u16>,
    /// Retries after the first attempt, 0-10. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Base of the exponential backoff between attempts (with full jitter, at most 10×
    /// the base). A `Retry-After` of up to 10 s on a retried response is honoured
    /// instead. Default `25ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// Also retry requests whose method is not idempotent (POST, PATCH, CONNECT).
    /// Default false: a request that may have had effects is not sent twice.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_idempotent: bool,
}

/// Conditions that must all hold for an HTTP request to match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatch {
    /// Request path. Default: prefix `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// Headers that must all match (names case-insensitive, unique).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    /// Query parameters that must all match (names case-sensitive, unique).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<ValueMatch>,
    /// HTTP method (`GET`, `POST`, …). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `HTTPRoute` path match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PathMatch {
    /// How `value` is compared. Default `PathPrefix`.
    #[serde(default, rename = "type")]
    pub kind: PathMatchType,
    /// Path (starting with `/`) or regular expression. Default `/`.
    #[serde(default = "default_path")]
    pub value: String,
}

/// How a path is compared.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum PathMatchType {
    /// The whole path equals the value.
    Exact,
    /// The path starts with the value on a segment boundary (`/api` matches `/api/x`,
    /// not `/apix`).
    #[default]
    PathPrefix,
    /// The value is a regular expression matching the whole path.
    RegularExpression,
}

/// Header or query-parameter match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueMatch {
    /// How `value` is compared. Default `Exact`.
    #[serde(default, rename = "type")]
    pub kind: ValueMatchType,
    /// Header or parameter name.
    pub name: String,
    /// Expected value, or a regular expression matching the whole value.
    pub value: String,
}

/// How a header, query-parameter or gRPC method value is compared.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ValueMatchType {
    /// Equal.
    #[default]
    Exact,
    /// A regular expression matching the whole value.
    RegularExpression,
}

/// `HTTPRoute` rule timeouts, as Gateway API durations (GEP-2257: `10s`, `500ms`,
/// `1h30m`; `0s` disables).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTimeouts {
    /// From the start of the request until the response headers, retries included.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// One attempt to the backend; at most `request`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// `GRPCRoute.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcSpec {
    /// Services (GAMMA) or Gateways whose traffic these rules route. At least one.
    pub parent_refs: Vec<ParentRef>,
    /// `Host` / `:authority` values the rules apply to. Default: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules; at least one.
    pub rules: Vec<GrpcRule>,
}

/// One `GRPCRoute` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRule {
    /// Optional rule name (RFC 1123 label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any one match selects the rule. Default: every call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<GrpcMatch>,
    /// Request filters. Not supported yet: validation rejects a non-empty list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<serde_json::Value>,
    /// Weighted backends. At least one.
    pub backend_refs: Vec<BackendRef>,
    /// Retries on gRPC status codes (Weft's extension; Gateway API has none for
    /// gRPC yet). Default: a connection that could not be made is retried once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<GrpcRetry>,
}

/// `GRPCRoute` rule retries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcRetry {
    /// gRPC status codes retried, by name: `unavailable`, `resource-exhausted`,
    /// `cancelled`, `deadline-exceeded`, `internal`, `unknown`, `aborted`, … A code is
    /// retried whatever the call: list only codes that mean the server did not act.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
    /// Retries after the first attempt, 0-10. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Base of the exponential backoff. Default `25ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

/// gRPC status codes by the names a `GrpcRetry` uses (gRPC's `UPPER_SNAKE` names in
/// lower kebab case).
pub const GRPC_CODES: [(&str, u32); 16] = [
    ("cancelled", 1),
    ("unknown", 2),
    ("invalid-argument", 3),
    ("deadline-exceeded", 4),
    ("not-found", 5),
    ("already-exists", 6),
    ("permission-denied", 7),
    ("resource-exhausted", 8),
    ("failed-precondition", 9),
    ("aborted", 10),
    ("out-of-range", 11),
    ("unimplemented", 12),
    ("internal", 13),
    ("unavailable", 14),
    ("data-loss", 15),
    ("unauthenticated", 16),
];

/// The number of gRPC status code `name` (`unavailable` or `UNAVAILABLE`).
pub fn grpc_code(name: &str) -> Option<u32> {
    let name = name.to_ascii_lowercase().replace('_', "-");
    GRPC_CODES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Conditions that must all hold for a gRPC call to match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMatch {
    /// gRPC service and method. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<GrpcMethodMatch>,
    /// Metadata (headers) that must all match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
}

/// gRPC method match; the call path is `/<service>/<method>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GrpcMethodMatch {
    /// How `service` and `method` are compared. Default `Exact`.
    #[serde(default, rename = "type")]
    pub kind: ValueMatchType,
    /// Fully-qualified service (`pkg.Greeter`). Default: any. At least one of
    /// `service` and `method` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Method (`SayHello`). Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `TCPRoute.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSpec {
    /// Services (GAMMA) or Gateways whose connections this route forwards. At least
    /// one.
    pub parent_refs: Vec<ParentRef>,
    /// Exactly one rule.
    pub rules: Vec<TcpRule>,
}

/// The `TCPRoute` rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRule {
    /// Optional rule name (RFC 1123 label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Weighted backends, chosen per connection. At least one.
    pub backend_refs: Vec<BackendRef>,
}

/// The object a route attaches to: a mesh `Service` (GAMMA; the default) or a
/// `Gateway` (`group: gateway.networking.k8s.io`, `kind: Gateway`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentRef {
    /// API group: `""` (the default, the core group of `Service`) or
    /// `gateway.networking.k8s.io` (a `Gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind: `Service` (the default) or `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Service or Gateway name.
    pub name: String,
    /// Its namespace. Default: the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only this port: a port of the service, or the listeners of the Gateway on this
    /// port. Default: every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Only this listener of a Gateway, by name. Refused for a `Service` parent (use
    /// `port`). Default: every listener the route may attach to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// A weighted backend of a rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendRef {
    /// API group; `""` (the default) is the core group of `Service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind. Default `Service`, the only kind supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Service name.
    pub name: String,
    /// Service namespace. Default: the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Service port. Default: the port the request arrived on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Relative weight, 0-1000000. Default 1; 0 sends nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Per-backend filters. Not supported yet: validation rejects a non-empty list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<serde_json::Value>,
}

/// Kind of `parentRefs[]` and `backendRefs[]` when not written.
pub const DEFAULT_REF_KIND: &str = "Service";
/// Kind of a `parentRefs[]` entry naming a Gateway.
pub const GATEWAY_KIND: &str = "Gateway";
/// Weight of a backend that does not set one.
pub const DEFAULT_WEIGHT: u32 = 1;
/// Largest backend weight the Gateway API allows.
pub const MAX_WEIGHT: i64 = 1_000_000;

// === impl ParentRef ===

impl ParentRef {
    /// The kind, `Service` when not written.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(DEFAULT_REF_KIND)
    }

    /// The group, `""` when not written.
    pub fn group(&self) -> &str {
        self.group.as_deref().unwrap_or_default()
    }

    /// Whether it names a `Gateway` (group `gateway.networking.k8s.io`, kind
    /// `Gateway`) rather than a mesh `Service`.
    pub fn is_gateway(&self) -> bool {
        self.group() == super::gateway::GROUP && self.kind() == GATEWAY_KIND
    }
}

// === impl BackendRef ===

impl BackendRef {
    /// The kind, `Service` when not written.
    pub fn kind(&self) -> &str {
        self.kind.as_deref().unwrap_or(DEFAULT_REF_KIND)
    }
}

fn default_path() -> String {
    "/".to_owned()
}

/// Parses a Gateway API duration (GEP-2257): one to four `<1-5 digits><unit>` parts with
/// units `h`, `m`, `s`, `ms`, e.g. `10s`, `500ms`, `1h30m`. `0s` means zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "{text:?} is not a Gateway API duration (1-4 parts of up to 5 digits and a unit \
             h, m, s or ms, e.g. \"10s\", \"500ms\", \"1h30m\")"
        )
    };
    let bytes = text.as_bytes();
    let (mut total, mut parts, mut i) = (Duration::ZERO, 0, 0);
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() || digits.len() > 5 {
            return Err(invalid());
        }
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        let unit = if text[i..].starts_with("ms") {
            i += 2;
            Duration::from_millis(n)
        } else {
            let unit = match bytes.get(i) {
                Some(b'h') => Duration::from_secs(n * 3600),
                Some(b'm') => Duration::from_secs(n * 60),
                Some(b's') => Duration::from_secs(n),
                _ => return Err(invalid()),
            };
            i += 1;
            unit
        };
        total += unit;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(invalid());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gateway_api_durations() {
        for (text, want) in [
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("1h30m", Duration::from_secs(5400)),
            ("0s", Duration::ZERO),
            ("1h1m1s1ms", Duration::from_millis(3_661_001)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_durations_outside_gep_2257() {
        for text in [
            "",
            "10",
            "1.5s",
            "10 s",
            "1d",
            "123456s",
            "1h1m1s1ms1h",
            "s",
            "-1s",
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains("e.g. \"10s\""), "{err}");
        }
    }
}
