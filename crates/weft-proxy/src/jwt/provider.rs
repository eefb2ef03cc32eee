//! The configuration of one token issuer ([`Provider`]) and its validation.
//!
//! This is the shape a future `RequestAuthentication`-style policy kind embeds (as its
//! `spec.providers[]`, say): plain serde, camelCase, unknown fields refused. It is read
//! and validated here, then compiled by [`crate::jwt::Verifier::build`] and
//! [`crate::jwt::JwksCache::build`]; nothing in it is looked at on the request path.
//!
//! ```yaml
//! issuer: https://auth.example.com
//! audiences: [orders-api]
//! jwks:
//!   uri: https://auth.example.com/.well-known/jwks.json
//!   caBundle: /etc/ssl/certs/ca-certificates.crt
//! claimsToHeaders:
//!   - { claim: email, header: x-user-email }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};
use weft_api::proxy::{FieldError, ValidationErrors};

/// Default of [`Provider::clock_skew`]: `60s`.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Largest [`Provider::clock_skew`]: `5m`. More would keep an expired token alive for
/// long enough to matter.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Default of [`Jwks::refresh_interval`]: `5m`.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Shortest [`Jwks::refresh_interval`]: `1s`.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Default of [`Jwks::timeout`]: `5s`.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest [`Jwks::timeout`]: `1m`. A fetch runs while requests with a new `kid` wait
/// for it.
pub const MAX_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Header names a claim may never be copied into: those the mesh sets, strips or reads
/// as identity, and the hop-by-hop and framing headers (RFC 9110 §7.6.1) that would
/// change how the request is carried.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "b3",
    "connection",
    "content-length",
    "cookie",
    "forwarded",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-forwarded-client-cert",
    "x-request-id",
];

/// Prefixes of header names a claim may never be copied into: the mesh's own headers,
/// the `x-forwarded-*` family the gateway sets, and B3 trace context.
const FORBIDDEN_HEADER_PREFIXES: &[&str] = &["x-weft-", "x-forwarded-", "x-b3-"];

/// One issuer whose tokens are accepted, and what to do with them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    /// The exact `iss` a token must carry (compared byte for byte, no normalisation).
    pub issuer: String,
    /// The token's `aud` (a string or an array) must contain at least one of these. At
    /// least one is required: a token minted for another service of the same issuer
    /// must not be accepted here.
    pub audiences: Vec<String>,
    /// Where the issuer's public keys come from.
    pub jwks: Jwks,
    /// Headers a token is read from, in order. Default: `Authorization` with the prefix
    /// `Bearer ` (RFC 6750 §2.1).
    #[serde(default = "default_from_headers")]
    pub from_headers: Vec<FromHeader>,
    /// Cookies a token is read from, after the headers. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// Claims of a verified token copied into request headers for the backend. The
    /// named headers are always removed from the incoming request first, token or not,
    /// so a client cannot supply them. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims_to_headers: Vec<ClaimToHeader>,
    /// Whether the token is passed on to the backend. Default: `false` (the token is
    /// removed from where it was found before the request is forwarded).
    #[serde(default)]
    pub forward_original_token: bool,
    /// Whether a request without a token is refused (401). Default: `true`. With
    /// `false` such a request goes on unauthenticated; a token that is present but
    /// invalid is refused either way.
    #[serde(default = "default_required")]
    pub required: bool,
    /// Allowed difference between our clock and the issuer's for `exp`, `nbf` and
    /// `iat`. Default: `60s`; at most `5m`.
    #[serde(default = "default_clock_skew", with = "weft_api::duration")]
    pub clock_skew: Duration,
}

/// Where an issuer's JSON Web Key Set (RFC 7517) comes from: exactly one of `file` and
/// `uri`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Jwks {
    /// A local file, re-read when its modification time or size changes (checked every
    /// `refreshInterval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// An `https://` URL, fetched every `refreshInterval` and when a token names a key
    /// the cached set does not have (at most once per 30 s). Plain `http://` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// PEM file of the CA certificates that may sign the `uri` server's certificate.
    /// Required with `uri` (the proxy ships no public root store; for a public issuer
    /// use the host's bundle, e.g. `/etc/ssl/certs/ca-certificates.crt`); refused with
    /// `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<PathBuf>,
    /// How often the set is re-read. Default: `5m`; at least `1s`, at most `24h`.
    #[serde(default = "default_refresh_interval", with = "weft_api::duration")]
    pub refresh_interval: Duration,
    /// Limit on one fetch of `uri` (connect, TLS, request and body). Default: `5s`; at
    /// most `1m`. Refused with `file`, unless left at its default.
    #[serde(default = "default_fetch_timeout", with = "weft_api::duration")]
    pub timeout: Duration,
}

/// A header a token is read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromHeader {
    /// The header name (case-insensitive).
    pub name: String,
    /// Text before the token, matched case-insensitively (`Bearer `). Default: empty,
    /// the whole value is the token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// One claim copied into one request header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// A top-level claim name (`email`, `groups`; a dot is part of the name, not a
    /// path).
    pub claim: String,
    /// The header set to the claim's value.
    pub header: String,
}

fn default_from_headers() -> Vec<FromHeader> {
    vec![FromHeader {
        name: "Authorization".to_owned(),
        prefix: "Bearer ".to_owned(),
    }]
}

fn default_required() -> bool {
    true
}

fn default_clock_skew() -> Duration {
    DEFAULT_CLOCK_SKEW
}

fn default_refresh_interval() -> Duration {
    DEFAULT_REFRESH_INTERVAL
}

fn default_fetch_timeout() -> Duration {
    DEFAULT_FETCH_TIMEOUT
}

/// Every problem found so far, located by field path.
struct Errors<'a> {
    base: &'a str,
    found: Vec<FieldError>,
}

// === impl Errors ===

impl<'a> Errors<'a> {
    fn new(base: &'a str) -> Self {
        Self {
            base,
            found: Vec::new(),
        }
    }

    fn push(&mut self, field: &str, message: impl Into<String>) {
        let path = if self.base.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.base)
        };
        self.found.push(FieldError {
            path,
            message: message.into(),
        });
    }

    fn into_result(self) -> Result<(), ValidationErrors> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.found))
        }
    }
}

// === impl Provider ===

impl Provider {
    /// Checks every field; each error names its path under `base` (e.g.
    /// `spec.providers[0]`, or `""` for none), the value and what to write instead.
    pub fn validate(&self, base: &str) -> Result<(), ValidationErrors> {
        let mut errors = Errors::new(base);
        self.check(&mut errors);
        errors.into_result()
    }

    fn check(&self, errors: &mut Errors<'_>) {
        if self.issuer.is_empty() {
            errors.push(
                "issuer",
                "must not be empty: write the exact `iss` the issuer puts in its tokens",
            );
        } else if has_control_or_space(&self.issuer) {
            errors.push(
                "issuer",
                format!(
                    "{:?} contains whitespace or control characters; an `iss` never does",
                    self.issuer
                ),
            );
        }
        if self.audiences.is_empty() {
            errors.push(
                "audiences",
                "at least one audience is required: without one, a token the issuer minted \
                 for any other service would be accepted here",
            );
        }
        for (i, audience) in self.audiences.iter().enumerate() {
            if audience.is_empty() {
                errors.push(
                    &format!("audiences[{i}]"),
                    "must not be empty: write a value the issuer puts in `aud`",
                );
            } else if audience.chars().any(char::is_control) {
                errors.push(
                    &format!("audiences[{i}]"),
                    format!("{audience:?} contains control characters"),
                );
            }
        }
        self.jwks.check(errors);
        self.check_locations(errors);
        self.check_claims_to_headers(errors);
        if self.clock_skew > MAX_CLOCK_SKEW {
            errors.push(
                "clockSkew",
                format!(
                    "{} is longer than the maximum, {}; fix the clocks (NTP) rather than \
                     widening the window in which an expired token is accepted",
                    weft_api::duration::display(self.clock_skew),
                    weft_api::duration::display(MAX_CLOCK_SKEW)
                ),
            );
        }
    }

    fn check_locations(&self, errors: &mut Errors<'_>) {
        if self.from_headers.is_empty() && self.from_cookies.is_empty() {
            errors.push(
                "fromHeaders",
                "is empty and so is fromCookies: there is nowhere to read a token from; \
                 leave fromHeaders out for the default `Authorization: Bearer`",
            );
        }
        for (i, location) in self.from_headers.iter().enumerate() {
            if let Err(message) = header_name(&location.name) {
                errors.push(&format!("fromHeaders[{i}].name"), message);
            }
            if !location.prefix.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                errors.push(
                    &format!("fromHeaders[{i}].prefix"),
                    format!(
                        "{:?}: a prefix is printable ASCII (e.g. \"Bearer \")",
                        location.prefix
                    ),
                );
            }
        }
        for (i, cookie) in self.from_cookies.iter().enumerate() {
            if cookie.is_empty() || !cookie.bytes().all(is_token_byte) {
                errors.push(
                    &format!("fromCookies[{i}]"),
                    format!(
                        "{cookie:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"
                    ),
                );
            }
        }
    }

    fn check_claims_to_headers(&self, errors: &mut Errors<'_>) {
        let token_headers: Vec<String> = self
            .from_headers
            .iter()
            .map(|h| h.name.to_ascii_lowercase())
            .collect();
        let mut seen: Vec<String> = Vec::new();
        for (i, mapping) in self.claims_to_headers.iter().enumerate() {
            if mapping.claim.is_empty() {
                errors.push(
                    &format!("claimsToHeaders[{i}].claim"),
                    "must not be empty: name a claim of the token, e.g. \"email\"",
                );
            }
            let path = format!("claimsToHeaders[{i}].header");
            let name = match header_name(&mapping.header) {
                Ok(name) => name,
                Err(message) => {
                    errors.push(&path, message);
                    continue;
                }
            };
            let lower = name.as_str();
            if let Some(reason) = forbidden_header(lower) {
                errors.push(
                    &path,
                    format!(
                        "{:?} {reason}; a claim may not be copied into it: choose an \
                         application header such as \"x-user-email\"",
                        mapping.header
                    ),
                );
            } else if token_headers.iter().any(|h| h == lower) {
                errors.push(
                    &path,
                    format!(
                        "{:?} is where the token is read from (fromHeaders); choose \
                         another header",
                        mapping.header
                    ),
                );
            } else if seen.iter().any(|h| h == lower) {
                errors.push(
                    &path,
                    format!(
                        "{:?} is already the target of another claim; one header holds \
                         one claim",
                        mapping.header
                    ),
                );
            }
            seen.push(lower.to_owned());
        }
    }
}

// === impl Jwks ===

impl Jwks {
    /// Checks the key-set source alone; errors are located under `base` (e.g.
    /// `spec.providers[0].jwks`).
    pub fn validate(&self, base: &str) -> Result<(), ValidationErrors> {
        let mut errors = Errors::new(base);
        self.check_fields(&mut errors, "");
        errors.into_result()
    }

    fn check(&self, errors: &mut Errors<'_>) {
        self.check_fields(errors, "jwks.");
    }

    fn check_fields(&self, errors: &mut Errors<'_>, prefix: &str) {
        let at = |field: &str| format!("{prefix}{field}");
        match (&self.file, &self.uri) {
            (None, None) => errors.push(
                prefix.trim_end_matches('.'),
                "needs one of `file` (a local JWKS file) or `uri` (an https:// URL)",
            ),
            (Some(_), Some(_)) => errors.push(
                prefix.trim_end_matches('.'),
                "has both `file` and `uri`; keep one",
            ),
            (Some(file), None) => {
                if file.as_os_str().is_empty() {
                    errors.push(
                        &at("file"),
                        "must not be empty: write the path of a JWKS file",
                    );
                }
                if let Some(bundle) = &self.ca_bundle {
                    errors.push(
                        &at("caBundle"),
                        format!(
                            "{}: a CA bundle is only used to fetch `uri`; remove it",
                            bundle.display()
                        ),
                    );
                }
                if self.timeout != DEFAULT_FETCH_TIMEOUT {
                    errors.push(
                        &at("timeout"),
                        format!(
                            "{}: the timeout only applies to fetching `uri`; remove it",
                            weft_api::duration::display(self.timeout)
                        ),
                    );
                }
            }
            (None, Some(uri)) => {
                if let Err(message) = https_uri(uri) {
                    errors.push(&at("uri"), message);
                }
                match &self.ca_bundle {
                    None => errors.push(
                        &at("caBundle"),
                        format!(
                            "is required with uri {uri:?}: the PEM file of the CAs that may \
                             sign its server certificate (for a public issuer, the host's \
                             bundle, e.g. /etc/ssl/certs/ca-certificates.crt)"
                        ),
                    ),
                    Some(bundle) if bundle.as_os_str().is_empty() => errors.push(
                        &at("caBundle"),
                        "must not be empty: write the path of a PEM CA bundle",
                    ),
                    Some(_) => {}
                }
                if self.timeout.is_zero() || self.timeout > MAX_FETCH_TIMEOUT {
                    errors.push(
                        &at("timeout"),
                        format!(
                            "{} is outside 1ms..{}",
                            weft_api::duration::display(self.timeout),
                            weft_api::duration::display(MAX_FETCH_TIMEOUT)
                        ),
                    );
                }
            }
        }
        if self.refresh_interval < MIN_REFRESH_INTERVAL
            || self.refresh_interval > weft_api::duration::MAX
        {
            errors.push(
                &at("refreshInterval"),
                format!(
                    "{} is outside {}..{} (default {})",
                    weft_api::duration::display(self.refresh_interval),
                    weft_api::duration::display(MIN_REFRESH_INTERVAL),
                    weft_api::duration::display(weft_api::duration::MAX),
                    weft_api::duration::display(DEFAULT_REFRESH_INTERVAL),
                ),
            );
        }
    }
}

/// Parses an `https://` URL with a host, or says why it is not one.
pub(super) fn https_uri(uri: &str) -> Result<http::Uri, String> {
    let parsed: http::Uri = uri
        .parse()
        .map_err(|e| format!("{uri:?} is not a URL ({e}); write https://host[:port]/path"))?;
    match parsed.scheme_str() {
        Some("https") => {}
        Some("http") => {
            return Err(format!(
                "{uri:?} uses plain http, which is refused: anyone on the path could \
                 replace the keys and mint tokens; serve the key set over https://"
            ))
        }
        _ => {
            return Err(format!(
                "{uri:?} is not an https:// URL; write https://host[:port]/path"
            ))
        }
    }
    let Some(authority) = parsed.authority() else {
        return Err(format!(
            "{uri:?} has no host; write https://host[:port]/path"
        ));
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "{uri:?} carries credentials (user@host), which are never sent; remove them"
        ));
    }
    if authority.host().is_empty() {
        return Err(format!(
            "{uri:?} has no host; write https://host[:port]/path"
        ));
    }
    Ok(parsed)
}

/// Parses a header name, or says why it is not one.
fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        format!("{name:?} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)")
    })
}

/// Why a (lower-case) header may not receive a claim, if it may not.
pub(super) fn forbidden_header(lower: &str) -> Option<&'static str> {
    if FORBIDDEN_HEADERS.contains(&lower) {
        return Some(
            "is a header the mesh sets, strips or reads (identity, hop-by-hop or framing)",
        );
    }
    if FORBIDDEN_HEADER_PREFIXES
        .iter()
        .any(|prefix| lower.starts_with(prefix))
    {
        return Some(
            "belongs to a family of headers the mesh sets (x-weft-*, x-forwarded-*, x-b3-*)",
        );
    }
    None
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn has_control_or_space(text: &str) -> bool {
    text.chars().any(|c| c.is_control() || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Provider, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    fn minimal() -> Provider {
        parse(
            "issuer: https://auth.example.com\naudiences: [orders]\njwks: {file: /etc/weft/jwks.json}\n",
        )
        .expect("the minimal provider parses")
    }

    /// The `path: message` of every problem found.
    fn problems(provider: &Provider) -> Vec<String> {
        match provider.validate("spec.providers[0]") {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .0
                .into_iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
        }
    }

    #[test]
    fn defaults_read_bearer_tokens_require_them_and_strip_them() {
        let provider = minimal();
        assert_eq!(
            provider.from_headers,
            vec![FromHeader {
                name: "Authorization".into(),
                prefix: "Bearer ".into()
            }]
        );
        assert!(provider.from_cookies.is_empty());
        assert!(provider.required);
        assert!(!provider.forward_original_token);
        assert_eq!(provider.clock_skew, Duration::from_secs(60));
        assert_eq!(provider.jwks.refresh_interval, Duration::from_secs(300));
        assert_eq!(problems(&provider), Vec::<String>::new());
    }

    #[test]
    fn parses_camel_case_fields_and_human_durations() {
        let provider = parse(
            "issuer: https://auth.example.com
audiences: [a, b]
jwks:
  uri: https://auth.example.com/jwks
  caBundle: /etc/ca.pem
  refreshInterval: 10m
  timeout: 2s
fromHeaders: [{name: x-token}]
fromCookies: [session]
claimsToHeaders: [{claim: email, header: x-user-email}]
forwardOriginalToken: true
required: false
clockSkew: 30s
",
        )
        .expect("a full provider parses");
        assert_eq!(provider.jwks.refresh_interval, Duration::from_secs(600));
        assert_eq!(provider.jwks.timeout, Duration::from_secs(2));
        assert_eq!(provider.from_headers[0].prefix, "");
        assert_eq!(provider.from_cookies, vec!["session".to_owned()]);
        assert!(provider.forward_original_token);
        assert!(!provider.required);
        assert_eq!(provider.clock_skew, Duration::from_secs(30));
        assert_eq!(problems(&provider), Vec::<String>::new());
    }

    #[test]
    fn refuses_unknown_fields_naming_them() {
        let err = parse("issuer: x\naudiences: [a]\njwks: {file: /j}\nforwardToken: true\n")
            .expect_err("an unknown field is refused");
        assert!(err.contains("forwardToken"), "{err}");
        let err = parse("issuer: x\naudiences: [a]\njwks: {file: /j, url: https://x}\n")
            .expect_err("an unknown jwks field is refused");
        assert!(err.contains("url"), "{err}");
    }

    #[test]
    fn refuses_a_provider_without_audiences() {
        let mut provider = minimal();
        provider.audiences.clear();
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.providers[0].audiences: at least one audience"),
            "{found:?}"
        );
    }

    #[test]
    fn refuses_plain_http_jwks_with_a_clear_reason() {
        let mut provider = minimal();
        provider.jwks.file = None;
        provider.jwks.uri = Some("http://auth.example.com/jwks".into());
        provider.jwks.ca_bundle = Some("/etc/ca.pem".into());
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "spec.providers[0].jwks.uri: \"http://auth.example.com/jwks\" uses plain http"
            ),
            "{found:?}"
        );
        assert!(found[0].contains("https://"), "{found:?}");
    }

    #[test]
    fn requires_a_ca_bundle_with_a_uri_and_refuses_one_with_a_file() {
        let mut provider = minimal();
        provider.jwks.file = None;
        provider.jwks.uri = Some("https://auth.example.com/jwks".into());
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.providers[0].jwks.caBundle: is required"),
            "{found:?}"
        );

        let mut provider = minimal();
        provider.jwks.ca_bundle = Some("/etc/ca.pem".into());
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "spec.providers[0].jwks.caBundle: /etc/ca.pem: a CA bundle is only used"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn needs_exactly_one_jwks_source() {
        let mut provider = minimal();
        provider.jwks.file = None;
        assert_eq!(
            problems(&provider),
            vec!["spec.providers[0].jwks: needs one of `file` (a local JWKS file) or `uri` (an https:// URL)"]
        );
        let mut provider = minimal();
        provider.jwks.uri = Some("https://auth.example.com/jwks".into());
        assert_eq!(
            problems(&provider),
            vec!["spec.providers[0].jwks: has both `file` and `uri`; keep one"]
        );
    }

    #[test]
    fn refuses_uris_with_credentials_or_without_a_host() {
        for (uri, expected) in [
            (
                "https://user:pw@auth.example.com/jwks",
                "carries credentials",
            ),
            ("https:///jwks", "not a URL"),
            ("ftp://auth.example.com/jwks", "is not an https:// URL"),
            ("auth.example.com/jwks", "is not a URL"),
        ] {
            let err = https_uri(uri).expect_err(uri);
            assert!(err.contains(expected), "{uri}: {err}");
        }
        assert!(https_uri("https://auth.example.com:8443/jwks?x=1").is_ok());
    }

    #[test]
    fn refuses_claim_headers_the_mesh_owns_or_that_hold_the_token() {
        for header in [
            "x-weft-principal",
            "X-Weft-Anything",
            "x-forwarded-client-cert",
            "x-forwarded-for",
            "host",
            "Connection",
            "transfer-encoding",
            "authorization",
            "cookie",
            "traceparent",
            "x-request-id",
        ] {
            let mut provider = minimal();
            provider.claims_to_headers = vec![ClaimToHeader {
                claim: "sub".into(),
                header: header.into(),
            }];
            let found = problems(&provider);
            assert_eq!(found.len(), 1, "{header}: {found:?}");
            assert!(
                found[0].starts_with(&format!(
                    "spec.providers[0].claimsToHeaders[0].header: {header:?}"
                )),
                "{found:?}"
            );
        }
        let mut provider = minimal();
        provider.from_headers = vec![FromHeader {
            name: "x-token".into(),
            prefix: String::new(),
        }];
        provider.claims_to_headers = vec![ClaimToHeader {
            claim: "sub".into(),
            header: "X-Token".into(),
        }];
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("is where the token is read from"),
            "{found:?}"
        );
    }

    #[test]
    fn refuses_invalid_or_duplicate_claim_headers_and_empty_claims() {
        let mut provider = minimal();
        provider.claims_to_headers = vec![
            ClaimToHeader {
                claim: "email".into(),
                header: "x-user-email".into(),
            },
            ClaimToHeader {
                claim: "mail".into(),
                header: "X-User-Email".into(),
            },
            ClaimToHeader {
                claim: String::new(),
                header: "bad header".into(),
            },
        ];
        let found = problems(&provider);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with(
                "spec.providers[0].claimsToHeaders[1].header: \"X-User-Email\" is already"
            ),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("spec.providers[0].claimsToHeaders[2].claim: must not be empty"),
            "{found:?}"
        );
        assert!(found[2].starts_with("spec.providers[0].claimsToHeaders[2].header: \"bad header\" is not an HTTP header name"), "{found:?}");
    }

    #[test]
    fn bounds_the_clock_skew_at_five_minutes() {
        let mut provider = minimal();
        provider.clock_skew = MAX_CLOCK_SKEW;
        assert!(problems(&provider).is_empty());
        provider.clock_skew = Duration::from_secs(301);
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .starts_with("spec.providers[0].clockSkew: 5m 1s is longer than the maximum, 5m"),
            "{found:?}"
        );
    }

    #[test]
    fn refuses_having_nowhere_to_read_a_token_and_bad_locations() {
        let mut provider = minimal();
        provider.from_headers.clear();
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.providers[0].fromHeaders: is empty"),
            "{found:?}"
        );

        provider.from_headers = vec![FromHeader {
            name: "x token".into(),
            prefix: "Bearer\n".into(),
        }];
        provider.from_cookies = vec!["a=b".into()];
        let found = problems(&provider);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with("spec.providers[0].fromHeaders[0].name"),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("spec.providers[0].fromHeaders[0].prefix"),
            "{found:?}"
        );
        assert!(
            found[2].starts_with("spec.providers[0].fromCookies[0]: \"a=b\""),
            "{found:?}"
        );
    }

    #[test]
    fn bounds_the_refresh_interval_and_timeout() {
        let mut provider = minimal();
        provider.jwks.refresh_interval = Duration::from_millis(10);
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.providers[0].jwks.refreshInterval: 10ms is outside"),
            "{found:?}"
        );

        let mut provider = minimal();
        provider.jwks.file = None;
        provider.jwks.uri = Some("https://a.example/jwks".into());
        provider.jwks.ca_bundle = Some("/ca.pem".into());
        provider.jwks.timeout = Duration::from_secs(120);
        let found = problems(&provider);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("spec.providers[0].jwks.timeout: 2m is outside"),
            "{found:?}"
        );
    }

    #[test]
    fn errors_without_a_base_path_start_at_the_field() {
        let mut provider = minimal();
        provider.issuer.clear();
        let errors = provider
            .validate("")
            .expect_err("an empty issuer is refused");
        assert_eq!(errors.0[0].path, "issuer");
    }

    #[test]
    fn round_trips_through_serde_with_defaults_written_out() {
        let provider = minimal();
        let json = serde_json::to_value(&provider).expect("serializes");
        assert_eq!(json["clockSkew"], "1m");
        assert_eq!(json["fromHeaders"][0]["prefix"], "Bearer ");
        let back: Provider = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, provider);
    }
}
