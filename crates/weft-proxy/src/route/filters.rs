//! Route filters that change where a request goes: the Gateway API `HTTPRoute` filters
//! `RequestRedirect` ([`Redirect`]) and `URLRewrite` ([`Rewrite`]), in compiled form.
//!
//! They run in the outbound route step, once a rule has matched. A [`Redirect`] answers
//! the client itself (a 3xx with the [`Location`](Redirect::response_location) built
//! here) and no backend is contacted; a [`Rewrite`] changes the request's path and host
//! before it is balanced and forwarded. Both are built once per config snapshot, with
//! every value validated there, so applying one to a request only formats the new URI.
//!
//! Not here: header edits (`route::Edits`), request mirroring, and the rules that tie a
//! filter to its rule (a redirect excludes a rewrite; `ReplacePrefixMatch` needs a
//! `PathPrefix` match). Config validation enforces those; this module still fails with
//! an [`Error`] rather than panicking when they are broken.

use std::borrow::Cow;

use http::header::HOST;
use http::request::Parts;
use http::uri::{Authority, InvalidUri, InvalidUriParts, PathAndQuery};
use http::{HeaderValue, Uri};

/// Redirect status used when the config names none: 302, the Gateway API default.
pub const DEFAULT_STATUS: u16 = 302;

/// Longest path a modifier may hold, in bytes (the Gateway API limit).
pub const MAX_PATH_LEN: usize = 1024;

/// How a redirect or rewrite replaces the request's path. The query is always kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathModifier {
    /// `ReplaceFullPath`: the whole path becomes this value.
    Full(String),
    /// `ReplacePrefixMatch`: the part of the path that the rule's `PathPrefix` matched
    /// becomes this value, segment-wise (see [`replace_prefix`]). Empty means `/`.
    Prefix(String),
}

/// A compiled `RequestRedirect`: fields left `None` keep the request's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    /// `http` or `https`. Default: the request's scheme.
    pub scheme: Option<String>,
    /// Host of the `Location`. Default: the request's host.
    pub hostname: Option<String>,
    /// New path. Default: the request's path.
    pub path: Option<PathModifier>,
    /// Port of the `Location`. Default: the well-known port of `scheme` when a scheme is
    /// configured, the request's port otherwise. Port 80 for http and 443 for https is
    /// never written out.
    pub port: Option<u16>,
    /// Response status: 301, 302, 303, 307 or 308. Default (when [`Redirect::build`] is
    /// given none): [`DEFAULT_STATUS`].
    pub status: u16,
}

/// A compiled `URLRewrite`: fields left `None` leave the request alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// New `Host` header (and URI authority, when the request has one). Default: kept.
    pub hostname: Option<HeaderValue>,
    /// New path. Default: kept.
    pub path: Option<PathModifier>,
}

/// Why a filter could not be built from config, or applied to a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The redirect status is not a redirect the Gateway API allows.
    #[error("redirect status {0} is not allowed; use 301, 302, 303, 307 or 308")]
    Status(u16),
    /// The redirect scheme is neither `http` nor `https`.
    #[error("redirect scheme {0:?} is not allowed; use \"http\" or \"https\"")]
    Scheme(String),
    /// A hostname is not a lower-case DNS name (RFC 1123 labels, no port, no wildcard).
    #[error(
        "hostname {0:?} is not a valid host name; use lower-case letters, digits, '-' and '.' \
         (no port, at most 253 characters)"
    )]
    Hostname(String),
    /// The redirect port is 0.
    #[error("redirect port {0} is out of range 1-65535")]
    Port(u16),
    /// A configured path cannot replace a request path.
    #[error("path {path:?} is not valid: {reason}")]
    Path {
        /// The configured path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `ReplacePrefixMatch` was applied to a request whose rule matched without a
    /// `PathPrefix`. A config fault the validator should have caught: answer 500.
    #[error(
        "ReplacePrefixMatch needs the rule to match by PathPrefix, but it matched without one"
    )]
    NoMatchedPrefix,
    /// The request path does not start with the prefix said to have matched it (a bug in
    /// the caller): answer 500.
    #[error("request path {path:?} does not start with the matched prefix {prefix:?}")]
    PrefixMismatch {
        /// The request path.
        path: String,
        /// The prefix passed as matched.
        prefix: String,
    },
    /// The request's authority is empty or not `host[:port]`, and the redirect needs it:
    /// the client is at fault (answer 400).
    #[error("request authority {0:?} is not host[:port]; a redirect needs the request's host")]
    Authority(String),
    /// The redirect target is not a valid header value: answer 500.
    #[error("redirect target {0:?} is not a valid Location header value")]
    Location(String),
    /// The rewritten path and query do not form a valid URI path: answer 500.
    #[error("rewritten path {path:?} is not a valid URI path: {source}")]
    RewrittenPath {
        /// The rewritten path and query.
        path: String,
        /// The parser's complaint.
        source: InvalidUri,
    },
    /// The rewritten URI could not be assembled: answer 500.
    #[error("rewritten URI is not valid: {source}")]
    RewrittenUri {
        /// The parser's complaint.
        source: InvalidUriParts,
    },
}

/// Replaces `prefix` at the start of `path` with `replacement`, segment-wise, as
/// `ReplacePrefixMatch` does. `path` has no query; `replacement` is empty or starts
/// with `/`.
///
/// Trailing slashes of `prefix` and `replacement` are ignored, so no `//` appears where
/// they join the rest of the path, and an empty result is `/`. With prefix `/foo`:
/// replacement `/bar` turns `/foo/baz` into `/bar/baz` and `/foo` into `/bar`;
/// replacement `/` turns `/foo/baz` into `/baz` and `/foo` into `/`.
///
/// A `path` that does not start with `prefix` on a segment boundary (`/foobar` for
/// `/foo`) is returned unchanged.
#[must_use]
pub fn replace_prefix(path: &str, prefix: &str, replacement: &str) -> String {
    match rest_after_prefix(path, prefix) {
        Some(rest) => join(replacement, rest),
        None => path.to_owned(),
    }
}

/// What follows `prefix` in `path`: empty or starting with `/`; `None` if `prefix` does
/// not match on a segment boundary.
fn rest_after_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix.trim_end_matches('/'))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn join(replacement: &str, rest: &str) -> String {
    let head = replacement.trim_end_matches('/');
    if head.is_empty() && rest.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(head.len() + rest.len());
    out.push_str(head);
    out.push_str(rest);
    out
}

/// Whether `host` is a Gateway API `PreciseHostname`: lower-case RFC 1123 labels.
fn is_precise_hostname(host: &str) -> bool {
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        (1..=63).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-')
    };
    (1..=253).contains(&host.len()) && host.split('.').all(label_ok)
}

fn validate_hostname(host: &str) -> Result<(), Error> {
    if is_precise_hostname(host) {
        Ok(())
    } else {
        Err(Error::Hostname(host.to_owned()))
    }
}

/// Whether `scheme` and `port` make a port that goes without saying.
fn is_default_port(scheme: &str, port: u16) -> bool {
    (port == 80 && scheme.eq_ignore_ascii_case("http"))
        || (port == 443 && scheme.eq_ignore_ascii_case("https"))
}

/// The request's path, or `/` when it has none (an authority-form or `*` target).
fn request_path(uri: &Uri) -> &str {
    let path = uri.path();
    if path.starts_with('/') {
        path
    } else {
        "/"
    }
}

// === impl PathModifier ===

impl PathModifier {
    fn validate(&self) -> Result<(), Error> {
        let (Self::Full(path) | Self::Prefix(path)) = self;
        let bad = |reason| {
            Err(Error::Path {
                path: path.clone(),
                reason,
            })
        };
        // The Gateway API lists an empty ReplacePrefixMatch as meaning `/`.
        if path.is_empty() && matches!(self, Self::Prefix(_)) {
            return Ok(());
        }
        if !path.starts_with('/') {
            return bad("it must start with '/'");
        }
        if path.len() > MAX_PATH_LEN {
            return bad("it is longer than 1024 bytes");
        }
        if path.contains(['?', '#']) {
            return bad("it must not contain '?' or '#' (the request's query is kept)");
        }
        if PathAndQuery::try_from(path.as_str()).is_err() {
            return bad("it contains characters not allowed in a URI path");
        }
        Ok(())
    }

    /// The new path for `path` (without query).
    fn apply(&self, path: &str, matched_prefix: Option<&str>) -> Result<String, Error> {
        match self {
            Self::Full(full) => Ok(full.clone()),
            Self::Prefix(replacement) => {
                let prefix = matched_prefix.ok_or(Error::NoMatchedPrefix)?;
                let rest =
                    rest_after_prefix(path, prefix).ok_or_else(|| Error::PrefixMismatch {
                        path: path.to_owned(),
                        prefix: prefix.to_owned(),
                    })?;
                Ok(join(replacement, rest))
            }
        }
    }
}

// === impl Redirect ===

impl Redirect {
    /// Builds a redirect from config, checking every value; `status: None` means
    /// [`DEFAULT_STATUS`].
    ///
    /// # Errors
    ///
    /// The first invalid value: [`Error::Scheme`], [`Error::Hostname`], [`Error::Path`],
    /// [`Error::Port`] or [`Error::Status`].
    pub fn build(
        scheme: Option<String>,
        hostname: Option<String>,
        path: Option<PathModifier>,
        port: Option<u16>,
        status: Option<u16>,
    ) -> Result<Self, Error> {
        if let Some(s) = &scheme {
            if s != "http" && s != "https" {
                return Err(Error::Scheme(s.clone()));
            }
        }
        if let Some(h) = &hostname {
            validate_hostname(h)?;
        }
        if let Some(p) = &path {
            p.validate()?;
        }
        if port == Some(0) {
            return Err(Error::Port(0));
        }
        let status = status.unwrap_or(DEFAULT_STATUS);
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Err(Error::Status(status));
        }
        Ok(Self {
            scheme,
            hostname,
            path,
            port,
            status,
        })
    }

    /// The `Location` to answer a request with: `request_scheme` (`http` or `https`),
    /// `authority` (`host[:port]` from `:authority` or `Host`) and `uri` (its path and
    /// query) describe the request; `matched_prefix` is the rule's `PathPrefix` that
    /// matched it, `None` if it matched otherwise. The query is kept.
    ///
    /// # Errors
    ///
    /// [`Error::Authority`] when the request's host is needed but `authority` is not
    /// `host[:port]` (a bad request); [`Error::NoMatchedPrefix`] or
    /// [`Error::PrefixMismatch`] for a `Prefix` path without a prefix that matched it, and
    /// [`Error::Location`] if the result is not a header value (internal errors).
    pub fn response_location(
        &self,
        request_scheme: &str,
        authority: &str,
        uri: &Uri,
        matched_prefix: Option<&str>,
    ) -> Result<HeaderValue, Error> {
        let request: Option<Authority> = if authority.is_empty() {
            None
        } else {
            Some(
                authority
                    .parse()
                    .map_err(|_| Error::Authority(authority.to_owned()))?,
            )
        };
        let host = match (&self.hostname, &request) {
            (Some(h), _) => h.as_str(),
            (None, Some(a)) => a.host(),
            (None, None) => return Err(Error::Authority(authority.to_owned())),
        };
        let scheme = self.scheme.as_deref().unwrap_or(request_scheme);
        let port = match (self.port, &self.scheme) {
            (Some(port), _) => Some(port),
            // A configured scheme brings its well-known port, which goes unwritten.
            (None, Some(_)) => None,
            (None, None) => request.as_ref().and_then(Authority::port_u16),
        }
        .filter(|p| !is_default_port(scheme, *p));

        let path = request_path(uri);
        let path = match &self.path {
            Some(m) => Cow::Owned(m.apply(path, matched_prefix)?),
            None => Cow::Borrowed(path),
        };
        let mut location = format!("{scheme}://{host}");
        if let Some(port) = port {
            location.push(':');
            location.push_str(&port.to_string());
        }
        location.push_str(&path);
        if let Some(query) = uri.query() {
            location.push('?');
            location.push_str(query);
        }
        HeaderValue::from_str(&location).map_err(|_| Error::Location(location.clone()))
    }
}

// === impl Rewrite ===

impl Rewrite {
    /// Builds a rewrite from config, checking every value.
    ///
    /// # Errors
    ///
    /// [`Error::Hostname`] or [`Error::Path`] for the first invalid value.
    pub fn build(hostname: Option<String>, path: Option<PathModifier>) -> Result<Self, Error> {
        let hostname = hostname
            .map(|h| {
                validate_hostname(&h)?;
                HeaderValue::try_from(h.as_str()).map_err(|_| Error::Hostname(h.clone()))
            })
            .transpose()?;
        if let Some(p) = &path {
            p.validate()?;
        }
        Ok(Self { hostname, path })
    }

    /// Rewrites the request's path (keeping its query) and, with a `hostname`, its `Host`
    /// header and URI authority (HTTP/2 `:authority`, when the URI has one). Nothing else
    /// is touched; on error the request is left as it was. `matched_prefix` is the rule's
    /// `PathPrefix` that matched, `None` if it matched otherwise.
    ///
    /// The caller must read the authority again afterwards if it kept a copy.
    ///
    /// # Errors
    ///
    /// [`Error::NoMatchedPrefix`] or [`Error::PrefixMismatch`] for a `Prefix` path
    /// without a prefix that matched it; [`Error::Hostname`] for a `hostname` that is not
    /// an authority (possible only if the `Rewrite` was not made by [`Rewrite::build`]);
    /// [`Error::RewrittenPath`] or [`Error::RewrittenUri`] if the result is not a valid
    /// URI. All are internal errors.
    pub fn apply(&self, parts: &mut Parts, matched_prefix: Option<&str>) -> Result<(), Error> {
        let path_and_query = match &self.path {
            Some(m) => {
                let mut new = m.apply(request_path(&parts.uri), matched_prefix)?;
                if let Some(query) = parts.uri.query() {
                    new.push('?');
                    new.push_str(query);
                }
                Some(
                    PathAndQuery::try_from(new.as_str())
                        .map_err(|source| Error::RewrittenPath { path: new, source })?,
                )
            }
            None => None,
        };
        let authority = match (&self.hostname, parts.uri.authority()) {
            (Some(h), Some(_)) => Some(
                Authority::try_from(h.as_bytes())
                    .map_err(|_| Error::Hostname(String::from_utf8_lossy(h.as_bytes()).into()))?,
            ),
            _ => None,
        };
        if path_and_query.is_some() || authority.is_some() {
            let mut uri = parts.uri.clone().into_parts();
            if path_and_query.is_some() {
                uri.path_and_query = path_and_query;
            }
            if authority.is_some() {
                uri.authority = authority;
            }
            parts.uri = Uri::from_parts(uri).map_err(|source| Error::RewrittenUri { source })?;
        }
        if let Some(h) = &self.hostname {
            parts.headers.insert(HOST, h.clone());
        }
        Ok(())
    }
}

// === impl Error ===

impl Error {
    /// Whether the request, not the config or the proxy, is at fault: answer 400 with
    /// the message. Any other error met while applying a filter is a 500 without detail.
    #[must_use]
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Self::Authority(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(p: &str) -> PathModifier {
        PathModifier::Full(p.to_owned())
    }

    fn prefix(p: &str) -> PathModifier {
        PathModifier::Prefix(p.to_owned())
    }

    /// A redirect from borrowed config values.
    fn redirect(
        scheme: Option<&str>,
        hostname: Option<&str>,
        path: Option<PathModifier>,
        port: Option<u16>,
        status: Option<u16>,
    ) -> Result<Redirect, Error> {
        Redirect::build(
            scheme.map(str::to_owned),
            hostname.map(str::to_owned),
            path,
            port,
            status,
        )
    }

    fn location(
        r: &Redirect,
        scheme: &str,
        authority: &str,
        uri: &str,
        matched: Option<&str>,
    ) -> Result<String, Error> {
        let uri: Uri = uri.parse().expect("uri");
        let value = r.response_location(scheme, authority, &uri, matched)?;
        Ok(value.to_str().expect("ascii").to_owned())
    }

    fn request(uri: &str, host: Option<&str>) -> Parts {
        let mut builder = http::Request::builder()
            .uri(uri)
            .header("x-keep", "kept")
            .header("authorization", "Bearer t");
        if let Some(host) = host {
            builder = builder.header(HOST, host);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn replace_prefix_follows_the_gateway_api_table() {
        // (path, matched prefix, replacement, expected): the table documented on
        // HTTPPathModifier.ReplacePrefixMatch, then the cases this proxy relies on.
        let cases = [
            ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
            ("/foo", "/foo", "/xyz", "/xyz"),
            ("/foo/", "/foo", "/xyz", "/xyz/"),
            ("/foo/bar", "/foo", "", "/bar"),
            ("/foo/", "/foo", "", "/"),
            ("/foo", "/foo", "", "/"),
            ("/foo/", "/foo", "/", "/"),
            ("/foo", "/foo", "/", "/"),
            ("/foo/baz", "/foo", "/bar", "/bar/baz"),
            ("/foo", "/foo", "/bar", "/bar"),
            ("/foo/baz", "/foo", "/", "/baz"),
            ("/foo/", "/foo/", "/bar", "/bar/"),
            ("/foo/a/b/", "/foo", "/bar", "/bar/a/b/"),
            ("/a/b/c", "/a/b", "/x/y", "/x/y/c"),
            // A `/` prefix matches every path; the whole path goes under the replacement.
            ("/x", "/", "/bar", "/bar/x"),
            ("/x", "/", "/", "/x"),
            ("/", "/", "/bar", "/bar/"),
            // Not a segment-boundary match: left unchanged.
            ("/foobar", "/foo", "/xyz", "/foobar"),
            ("/other", "/foo", "/xyz", "/other"),
        ];
        for (path, matched, replacement, want) in cases {
            assert_eq!(
                replace_prefix(path, matched, replacement),
                want,
                "replace_prefix({path:?}, {matched:?}, {replacement:?})"
            );
        }
    }

    #[test]
    fn redirect_location_follows_the_conformance_cases() {
        // (case, redirect, request scheme, authority, uri, matched prefix, Location)
        type Case = (
            &'static str,
            Redirect,
            &'static str,
            &'static str,
            &'static str,
            Option<&'static str>,
            &'static str,
        );
        let r = |scheme, host, path, port| redirect(scheme, host, path, port, None).expect("build");
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // HTTPRouteRequestRedirect
            ("hostname", r(None, Some("example.org"), None, None), "http", "gw:80", "/hostname", Some("/hostname"), "http://example.org/hostname"),
            ("hostname keeps listener port", r(None, Some("example.org"), None, None), "http", "gw:8080", "/hostname", Some("/hostname"), "http://example.org:8080/hostname"),
            // HTTPRouteRedirectScheme
            ("scheme drops :80", r(Some("https"), None, None, None), "http", "gw:80", "/scheme", Some("/scheme"), "https://gw/scheme"),
            ("scheme keeps path and query", r(Some("https"), None, None, None), "http", "gw:80", "/scheme/a?x=1&y=2", Some("/scheme"), "https://gw/scheme/a?x=1&y=2"),
            ("scheme without request port", r(Some("https"), None, None, None), "http", "gw", "/scheme", Some("/scheme"), "https://gw/scheme"),
            ("scheme and host", r(Some("https"), Some("example.org"), None, None), "http", "gw", "/scheme-and-host", None, "https://example.org/scheme-and-host"),
            // HTTPRouteRedirectPort
            ("port", r(None, None, None, Some(8083)), "http", "gw", "/port", None, "http://gw:8083/port"),
            ("port and host", r(None, Some("example.org"), None, Some(8083)), "http", "gw:80", "/port-and-host", None, "http://example.org:8083/port-and-host"),
            // HTTPRouteRedirectPortAndScheme, listener on 80
            ("80: scheme nil, port nil", r(None, Some("example.org"), None, None), "http", "gw:80", "/p", None, "http://example.org/p"),
            ("80: scheme nil, port 80", r(None, Some("example.org"), None, Some(80)), "http", "gw:80", "/p", None, "http://example.org/p"),
            ("80: scheme nil, port 8080", r(None, Some("example.org"), None, Some(8080)), "http", "gw:80", "/p", None, "http://example.org:8080/p"),
            ("80: scheme https, port nil", r(Some("https"), Some("example.org"), None, None), "http", "gw:80", "/p", None, "https://example.org/p"),
            ("80: scheme https, port 443", r(Some("https"), Some("example.org"), None, Some(443)), "http", "gw:80", "/p", None, "https://example.org/p"),
            ("80: scheme https, port 8443", r(Some("https"), Some("example.org"), None, Some(8443)), "http", "gw:80", "/p", None, "https://example.org:8443/p"),
            // listener on 8080
            ("8080: scheme nil, port nil", r(None, Some("example.org"), None, None), "http", "gw:8080", "/p", None, "http://example.org:8080/p"),
            ("8080: scheme nil, port 80", r(None, Some("example.org"), None, Some(80)), "http", "gw:8080", "/p", None, "http://example.org/p"),
            ("8080: scheme https, port nil", r(Some("https"), Some("example.org"), None, None), "http", "gw:8080", "/p", None, "https://example.org/p"),
            // listener on 443
            ("443: scheme nil, port nil", r(None, Some("example.org"), None, None), "https", "example.org:443", "/p", None, "https://example.org/p"),
            ("443: scheme nil, port 443", r(None, Some("example.org"), None, Some(443)), "https", "example.org", "/p", None, "https://example.org/p"),
            ("443: scheme nil, port 8443", r(None, Some("example.org"), None, Some(8443)), "https", "example.org", "/p", None, "https://example.org:8443/p"),
            ("443: scheme http, port nil", r(Some("http"), Some("example.org"), None, None), "https", "example.org:443", "/p", None, "http://example.org/p"),
            ("443: scheme http, port 80", r(Some("http"), Some("example.org"), None, Some(80)), "https", "example.org", "/p", None, "http://example.org/p"),
            ("443: scheme http, port 8080", r(Some("http"), Some("example.org"), None, Some(8080)), "https", "example.org", "/p", None, "http://example.org:8080/p"),
            // HTTPRouteRedirectPath
            ("prefix", r(None, None, Some(prefix("/replacement-prefix")), None), "http", "gw", "/original-prefix/lemon", Some("/original-prefix"), "http://gw/replacement-prefix/lemon"),
            ("prefix keeps query", r(None, None, Some(prefix("/replacement-prefix")), None), "http", "gw", "/original-prefix/lemon?a=1", Some("/original-prefix"), "http://gw/replacement-prefix/lemon?a=1"),
            ("prefix, whole path matched", r(None, None, Some(prefix("/bar")), None), "http", "gw", "/foo?a=1", Some("/foo"), "http://gw/bar?a=1"),
            ("prefix with trailing slash", r(None, None, Some(prefix("/bar/")), None), "http", "gw", "/foo/baz", Some("/foo/"), "http://gw/bar/baz"),
            ("prefix to root", r(None, None, Some(prefix("/")), None), "http", "gw", "/foo", Some("/foo"), "http://gw/"),
            ("full", r(None, None, Some(full("/full-path-replacement")), None), "http", "gw", "/full/path/original", Some("/full"), "http://gw/full-path-replacement"),
            ("full keeps query", r(None, None, Some(full("/full-path-replacement")), None), "http", "gw", "/full/path?q=a%20b", None, "http://gw/full-path-replacement?q=a%20b"),
            ("path and host", r(None, Some("example.org"), Some(prefix("/replacement-prefix")), None), "http", "gw", "/path-and-host", Some("/path-and-host"), "http://example.org/replacement-prefix"),
            ("full path and host", r(None, Some("example.org"), Some(full("/replacement-full")), None), "http", "gw", "/full-path-and-host", Some("/full-path-and-host"), "http://example.org/replacement-full"),
            // Request authorities this proxy sees.
            ("IPv6 authority keeps port", r(None, None, Some(full("/x")), None), "http", "[::1]:8080", "/a", None, "http://[::1]:8080/x"),
            ("authority from absolute URI", r(None, None, None, None), "http", "gw:9090", "http://gw:9090/a?b", None, "http://gw:9090/a?b"),
        ];
        for (case, r, scheme, authority, uri, matched, want) in cases {
            let got = location(&r, scheme, authority, uri, matched)
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn redirect_status_defaults_to_302_and_accepts_only_redirects() {
        let build = |status| redirect(None, None, None, None, status);
        assert_eq!(build(None).expect("default").status, 302);
        for status in [301, 302, 303, 307, 308] {
            assert_eq!(build(Some(status)).expect("allowed").status, status);
        }
        for status in [0, 200, 300, 304, 305, 306, 309, 404, 500] {
            assert!(
                matches!(build(Some(status)), Err(Error::Status(s)) if s == status),
                "{status} must be rejected"
            );
        }
    }

    #[test]
    fn build_rejects_invalid_config() {
        let long_host = ["a".repeat(63).as_str(); 4].join(".");
        let long_label = format!("{}.org", "a".repeat(64));
        let long_path = format!("/{}", "a".repeat(MAX_PATH_LEN));
        #[rustfmt::skip]
        let cases: Vec<(&str, Result<Redirect, Error>, &str)> = vec![
            ("scheme ftp", redirect(Some("ftp"), None, None, None, None), "\"ftp\""),
            ("scheme in capitals", redirect(Some("HTTPS"), None, None, None, None), "\"HTTPS\""),
            ("empty hostname", redirect(None, Some(""), None, None, None), "hostname \"\""),
            ("hostname with port", redirect(None, Some("example.org:80"), None, None, None), "\"example.org:80\""),
            ("hostname in capitals", redirect(None, Some("Example.org"), None, None, None), "\"Example.org\""),
            ("hostname with underscore", redirect(None, Some("a_b.org"), None, None, None), "\"a_b.org\""),
            ("hostname wildcard", redirect(None, Some("*.example.org"), None, None, None), "\"*.example.org\""),
            ("hostname label starts with '-'", redirect(None, Some("-a.org"), None, None, None), "\"-a.org\""),
            ("hostname empty label", redirect(None, Some("a..org"), None, None, None), "\"a..org\""),
            ("hostname too long", redirect(None, Some(&long_host), None, None, None), "not a valid host name"),
            ("hostname label too long", redirect(None, Some(&long_label), None, None, None), "not a valid host name"),
            ("port 0", redirect(None, None, None, Some(0), None), "port 0"),
            ("full path without '/'", redirect(None, None, Some(full("one")), None, None), "\"one\""),
            ("empty full path", redirect(None, None, Some(full("")), None, None), "must start with '/'"),
            ("prefix without '/'", redirect(None, None, Some(prefix("one")), None, None), "\"one\""),
            ("path with query", redirect(None, None, Some(full("/a?b=c")), None, None), "\"/a?b=c\""),
            ("path with fragment", redirect(None, None, Some(prefix("/a#b")), None, None), "\"/a#b\""),
            ("path with space", redirect(None, None, Some(full("/a b")), None, None), "not allowed in a URI path"),
            ("path too long", redirect(None, None, Some(full(&long_path)), None, None), "longer than 1024"),
        ];
        for (case, result, needle) in cases {
            let err = result.expect_err(case).to_string();
            assert!(
                err.contains(needle),
                "{case}: {err:?} should name {needle:?}"
            );
        }
        assert!(matches!(
            Rewrite::build(Some("Bad_Host".into()), None),
            Err(Error::Hostname(h)) if h == "Bad_Host"
        ));
        assert!(matches!(
            Rewrite::build(None, Some(prefix("no-slash"))),
            Err(Error::Path { path, .. }) if path == "no-slash"
        ));
    }

    #[test]
    fn build_accepts_valid_config() {
        redirect(
            Some("https"),
            Some("a-1.example.org"),
            Some(prefix("")),
            Some(8443),
            Some(308),
        )
        .expect("redirect");
        redirect(
            Some("http"),
            Some("localhost"),
            Some(full("/a/b%20c/")),
            Some(1),
            None,
        )
        .expect("redirect");
        Rewrite::build(Some("backend.ns.svc".into()), Some(prefix("/"))).expect("rewrite");
        Rewrite::build(None, None).expect("empty rewrite");
    }

    #[test]
    fn prefix_without_matched_prefix_is_an_internal_error() {
        let r = redirect(None, None, Some(prefix("/x")), None, None).expect("build");
        let err = location(&r, "http", "gw", "/a", None).expect_err("no prefix");
        assert!(matches!(err, Error::NoMatchedPrefix));
        assert!(!err.is_bad_request());

        let w = Rewrite::build(Some("new.example".into()), Some(prefix("/x"))).expect("build");
        let mut parts = request("/a?q", Some("old"));
        let err = w.apply(&mut parts, None).expect_err("no prefix");
        assert!(matches!(err, Error::NoMatchedPrefix));
        assert_eq!(
            parts.uri, "/a?q",
            "a failed rewrite leaves the request alone"
        );
        assert_eq!(parts.headers[HOST], "old");
    }

    #[test]
    fn prefix_that_does_not_match_the_path_is_an_internal_error() {
        let r = redirect(None, None, Some(prefix("/x")), None, None).expect("build");
        let err = location(&r, "http", "gw", "/foobar", Some("/foo")).expect_err("mismatch");
        assert!(
            matches!(&err, Error::PrefixMismatch { path, prefix } if path == "/foobar" && prefix == "/foo")
        );
        let w = Rewrite::build(None, Some(prefix("/x"))).expect("build");
        let mut parts = request("/other", None);
        assert!(matches!(
            w.apply(&mut parts, Some("/foo")),
            Err(Error::PrefixMismatch { .. })
        ));
    }

    #[test]
    fn redirect_needs_a_request_host_unless_configured() {
        let r = redirect(Some("https"), None, None, None, None).expect("build");
        for authority in ["", "bad host", "a:b:c"] {
            let err = location(&r, "http", authority, "/", None).expect_err(authority);
            assert!(err.is_bad_request(), "{authority:?}: {err}");
            assert!(err.to_string().contains(&format!("{authority:?}")));
        }
        let r = redirect(Some("https"), Some("example.org"), None, None, None).expect("build");
        assert_eq!(
            location(&r, "http", "", "/a", None).expect("host configured"),
            "https://example.org/a"
        );
    }

    #[test]
    fn rewrite_path_keeps_query_and_everything_else() {
        // (case, modifier, request URI, matched prefix, rewritten URI): the
        // HTTPRouteRewritePath conformance cases, then queries and absolute URIs.
        #[rustfmt::skip]
        let cases = [
            ("prefix", Some(prefix("/one")), "/prefix/one/two", Some("/prefix/one"), "/one/two"),
            ("strip prefix", Some(prefix("/")), "/strip-prefix/three", Some("/strip-prefix"), "/three"),
            ("strip whole path", Some(prefix("/")), "/strip-prefix", Some("/strip-prefix"), "/"),
            ("full", Some(full("/one")), "/full/one/two", Some("/full/one"), "/one"),
            ("full with headers", Some(full("/test")), "/full/rewrite-path-and-modify-headers/test", Some("/full/rewrite-path-and-modify-headers"), "/test"),
            ("prefix with headers", Some(prefix("/prefix")), "/prefix/rewrite-path-and-modify-headers/one", Some("/prefix/rewrite-path-and-modify-headers"), "/prefix/one"),
            ("prefix keeps query", Some(prefix("/")), "/strip-prefix/three?a=1&b", Some("/strip-prefix"), "/three?a=1&b"),
            ("full keeps query", Some(full("/one")), "/full/one/two?x=y", None, "/one?x=y"),
            ("trailing slash prefix", Some(prefix("/bar/")), "/foo/?q", Some("/foo/"), "/bar/?q"),
            ("absolute URI keeps authority", Some(prefix("/v2")), "http://svc:8080/v1/items?id=3", Some("/v1"), "http://svc:8080/v2/items?id=3"),
        ];
        for (case, path, uri, matched, want) in cases {
            let w = Rewrite::build(None, path).expect("build");
            let mut parts = request(uri, Some("svc"));
            w.apply(&mut parts, matched)
                .unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(parts.uri.to_string(), want, "{case}");
            assert_eq!(parts.headers[HOST], "svc", "{case}: Host untouched");
            assert_eq!(parts.headers["x-keep"], "kept", "{case}");
            assert_eq!(parts.headers.len(), 3, "{case}");
        }
    }

    #[test]
    fn rewrite_hostname_replaces_host_and_authority() {
        let w = Rewrite::build(Some("new.example".into()), None).expect("build");

        // HTTP/1: origin-form URI, Host header.
        let mut parts = request("/a/b?c=d", Some("old.example:8080"));
        w.apply(&mut parts, Some("/a")).expect("apply");
        assert_eq!(parts.uri, "/a/b?c=d");
        assert_eq!(parts.headers[HOST], "new.example");
        assert_eq!(parts.headers.get_all(HOST).iter().count(), 1);
        assert_eq!(parts.headers["x-keep"], "kept");
        assert_eq!(parts.headers["authorization"], "Bearer t");

        // HTTP/2: absolute URI carries `:authority`.
        let mut parts = request("https://old.example:8443/a?c=d", None);
        parts.version = http::Version::HTTP_2;
        w.apply(&mut parts, None).expect("apply");
        assert_eq!(parts.uri.to_string(), "https://new.example/a?c=d");
        assert_eq!(
            parts.uri.authority().map(Authority::as_str),
            Some("new.example")
        );
        assert_eq!(parts.headers[HOST], "new.example");
        assert_eq!(parts.version, http::Version::HTTP_2);
        assert_eq!(parts.method, http::Method::GET);
    }

    #[test]
    fn rewrite_hostname_and_prefix_together() {
        let w = Rewrite::build(Some("api.internal".into()), Some(prefix("/"))).expect("build");
        let mut parts = request("http://public.example/api/v1?x", Some("public.example"));
        w.apply(&mut parts, Some("/api")).expect("apply");
        assert_eq!(parts.uri.to_string(), "http://api.internal/v1?x");
        assert_eq!(parts.headers[HOST], "api.internal");
    }

    #[test]
    fn empty_rewrite_changes_nothing() {
        let w = Rewrite::build(None, None).expect("build");
        let mut parts = request("http://svc/a?b", Some("svc"));
        let before = (parts.uri.clone(), parts.headers.clone());
        w.apply(&mut parts, None).expect("apply");
        assert_eq!((parts.uri, parts.headers), before);
    }
}
