//! Routes over services: matches, backends with weights, filters (redirects, rewrites,
//! header edits, mirrors), timeouts and retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::default_weight;

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
    /// Where the rule came from (`HTTPRoute/shop/catalog`): the `route` label of the
    /// requests it routes. Default: `routes[<i>]`, its table's place in the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Its index in `source`'s rules: the `route_rule` label. Default: its index in
    /// this table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<u32>,
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
