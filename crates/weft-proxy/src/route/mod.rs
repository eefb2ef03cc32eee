//! Request routing: compiled match rules and weighted backend choice.
//!
//! Pure and I/O-free. A [`Table`] is compiled once per config snapshot (regexes built,
//! weights summed) so matching a request allocates nothing. The snapshot
//! ([`crate::state`]) compiles the tables; the outbound side matches requests against
//! them and applies their [`filters`]; the inbound side matches its rate limits and
//! faults with the same [`Matches`].

pub mod filters;

use std::time::Duration;

use http::{HeaderMap, Method, Uri};
use regex::Regex;
use weft_api::proxy::{self as api, PathMatch, StringMatch};

use crate::telemetry::labels::{RouteLabels, Shared};

/// The rules attached to one service port, in order.
#[derive(Debug)]
pub struct Table<T> {
    /// Rules; the first whose matches hold wins.
    pub rules: Vec<Rule<T>>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule<T> {
    matches: Vec<Match>,
    /// Weighted backends.
    pub backends: Vec<(T, u32)>,
    total_weight: u64,
    /// Request timeout, retries included.
    pub timeout: Option<Duration>,
    /// Timeout of one attempt.
    pub per_try_timeout: Option<Duration>,
    /// Retries (the default policy when the rule names none).
    pub retry: api::Retry,
    /// Edits of the request's headers.
    pub request_headers: Option<Edits>,
    /// Edits of the response's headers.
    pub response_headers: Option<Edits>,
    /// Answer with this redirect instead of forwarding.
    pub redirect: Option<filters::Redirect>,
    /// Rewrite the request before forwarding.
    pub rewrite: Option<filters::Rewrite>,
    /// Mirror targets, with the share of requests copied in millionths.
    pub mirrors: Vec<(T, u32)>,
    /// The metric labels of requests this rule sends, one per backend (same order);
    /// set by the snapshot once the rule is compiled.
    pub labels: Vec<Shared<RouteLabels>>,
    /// The labels of requests it answers without a backend (a redirect), or fails
    /// before picking one: the parent service.
    pub label: Option<Shared<RouteLabels>>,
}

/// A rule's request conditions alone (any one must hold; none: every request), for
/// policies that select requests as routes do (rate limits, faults).
#[derive(Debug, Default)]
pub struct Matches(Vec<Match>);

impl Matches {
    /// Compiles `matches`.
    pub fn compile(matches: &[api::RouteMatch]) -> Result<Self, Error> {
        matches
            .iter()
            .map(Match::compile)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `req` is selected.
    pub fn select(&self, req: &RequestView<'_>) -> bool {
        self.0.is_empty() || self.0.iter().any(|m| m.matches(req))
    }
}

/// Header edits with names and values parsed once, when the table is compiled.
#[derive(Debug, Default)]
pub struct Edits {
    set: Vec<(http::HeaderName, http::HeaderValue)>,
    add: Vec<(http::HeaderName, http::HeaderValue)>,
    remove: Vec<http::HeaderName>,
}

impl Edits {
    fn compile(edits: &api::HeaderEdits) -> Result<Self, Error> {
        let pair = |(name, value): &(String, String)| {
            Ok((
                http::HeaderName::try_from(name.as_str())
                    .map_err(|_| Error::Token(name.clone()))?,
                http::HeaderValue::try_from(value.as_str())
                    .map_err(|_| Error::Token(value.clone()))?,
            ))
        };
        Ok(Self {
            set: edits.set.iter().map(pair).collect::<Result<_, Error>>()?,
            add: edits.add.iter().map(pair).collect::<Result<_, Error>>()?,
            remove: edits
                .remove
                .iter()
                .map(|n| {
                    http::HeaderName::try_from(n.as_str()).map_err(|_| Error::Token(n.clone()))
                })
                .collect::<Result<_, Error>>()?,
        })
    }

    /// Applies the edits: set (replacing), add (beside), remove.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

#[derive(Debug)]
struct Match {
    authority: Option<Text>,
    path: Option<Path>,
    method: Option<Method>,
    headers: Vec<(http::HeaderName, Text)>,
    query: Vec<(String, Text)>,
}

/// A compiled string condition (exact, prefix or anchored regex).
#[derive(Debug)]
pub(crate) enum Text {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
enum Path {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

/// Why a rule could not be compiled (validation normally catches these first).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A regex did not compile.
    #[error("invalid regular expression {pattern:?}: {source}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The parser's complaint.
        source: regex::Error,
    },
    /// A header name or method is not valid HTTP.
    #[error("invalid HTTP token {0:?}")]
    Token(String),
    /// A redirect or rewrite is not valid.
    #[error(transparent)]
    Filter(#[from] filters::Error),
}

/// What a request looks like to the matcher.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// Method.
    pub method: &'a Method,
    /// URI (path and query).
    pub uri: &'a Uri,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Authority without port (`Host` for HTTP/1, `:authority` for HTTP/2).
    pub authority: &'a str,
}

impl<T> Table<T> {
    /// A table with one catch-all rule to `target`.
    pub fn single(target: T) -> Self {
        Self {
            rules: vec![Rule {
                matches: Vec::new(),
                backends: vec![(target, 1)],
                total_weight: 1,
                timeout: None,
                per_try_timeout: None,
                retry: api::Retry::connect_failure_only(),
                request_headers: None,
                response_headers: None,
                redirect: None,
                rewrite: None,
                mirrors: Vec::new(),
                labels: Vec::new(),
                label: None,
            }],
        }
    }

    /// The first rule that matches `req`.
    pub fn find(&self, req: &RequestView<'_>) -> Option<&Rule<T>> {
        self.rules
            .iter()
            .find(|r| r.matches.is_empty() || r.matches.iter().any(|m| m.matches(req)))
    }

    /// The first rule without conditions that could apply to a TCP connection.
    pub fn find_tcp(&self) -> Option<&Rule<T>> {
        self.rules.first()
    }
}

impl<T> Rule<T> {
    /// Compiles `rule`, resolving each backend with `resolve`.
    pub fn compile(
        rule: &api::RouteRule,
        mut resolve: impl FnMut(&api::Backend) -> Option<T>,
    ) -> Result<Self, Error> {
        let matches = rule
            .matches
            .iter()
            .map(Match::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let backends: Vec<(T, u32)> = rule
            .backends
            .iter()
            .filter_map(|b| resolve(b).map(|t| (t, b.weight)))
            .collect();
        let total_weight = backends.iter().map(|(_, w)| u64::from(*w)).sum();
        let path = |p: &api::PathRewrite| match p {
            api::PathRewrite::Full(f) => filters::PathModifier::Full(f.clone()),
            api::PathRewrite::Prefix(f) => filters::PathModifier::Prefix(f.clone()),
        };
        let redirect = rule
            .redirect
            .as_ref()
            .map(|d| {
                filters::Redirect::build(
                    d.scheme.clone(),
                    d.hostname.clone(),
                    d.path.as_ref().map(path),
                    d.port,
                    Some(d.status),
                )
            })
            .transpose()?;
        let rewrite = rule
            .rewrite
            .as_ref()
            .map(|w| filters::Rewrite::build(w.hostname.clone(), w.path.as_ref().map(path)))
            .transpose()?;
        let mirrors = rule
            .mirrors
            .iter()
            .filter_map(|m| {
                let backend = api::Backend {
                    service: m.service.clone(),
                    port: m.port,
                    weight: 1,
                };
                resolve(&backend).map(|t| (t, api::per_million(m.percent)))
            })
            .collect();
        Ok(Self {
            matches,
            backends,
            total_weight,
            timeout: rule.timeout,
            per_try_timeout: rule.per_try_timeout,
            retry: rule
                .retry
                .clone()
                .unwrap_or_else(api::Retry::connect_failure_only),
            request_headers: rule
                .request_headers
                .as_ref()
                .map(Edits::compile)
                .transpose()?,
            response_headers: rule
                .response_headers
                .as_ref()
                .map(Edits::compile)
                .transpose()?,
            redirect,
            rewrite,
            mirrors,
            labels: Vec::new(),
            label: None,
        })
    }

    /// The path prefix of the rule's match that selects `path` (for filters that
    /// replace the matched prefix), if the rule matched by prefix.
    pub fn matched_prefix(&self, path: &str) -> Option<&str> {
        if self.matches.is_empty() {
            return Some("/");
        }
        self.matches.iter().find_map(|m| match &m.path {
            Some(Path::Prefix(p)) if Path::prefix_matches(p, path) => {
                Some(if p.is_empty() { "/" } else { p.as_str() })
            }
            None => Some("/"),
            _ => None,
        })
    }

    /// Picks a backend by weight (`None` if every weight is 0).
    pub fn pick(&self) -> Option<&T> {
        self.pick_index().map(|i| &self.backends[i].0)
    }

    /// [`Self::pick`], as the backend's index.
    pub fn pick_index(&self) -> Option<usize> {
        if self.total_weight == 0 {
            return None;
        }
        if self.backends.len() == 1 {
            return Some(0);
        }
        let mut roll = fastrand::u64(..self.total_weight);
        for (i, (_, weight)) in self.backends.iter().enumerate() {
            let w = u64::from(*weight);
            if roll < w {
                return Some(i);
            }
            roll -= w;
        }
        None
    }

    /// The labels of requests sent to backend `i`, or of those answered without one.
    pub fn label(&self, backend: Option<usize>) -> Option<&Shared<RouteLabels>> {
        backend
            .and_then(|i| self.labels.get(i))
            .or(self.label.as_ref())
    }
}

impl Match {
    fn compile(m: &api::RouteMatch) -> Result<Self, Error> {
        Ok(Self {
            authority: m.authority.as_ref().map(Text::compile).transpose()?,
            path: m.path.as_ref().map(Path::compile).transpose()?,
            method: m
                .method
                .as_ref()
                .map(|s| Method::from_bytes(s.as_bytes()).map_err(|_| Error::Token(s.clone())))
                .transpose()?,
            headers: m
                .headers
                .iter()
                .map(|h| {
                    let name = http::HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes())
                        .map_err(|_| Error::Token(h.name.clone()))?;
                    Ok((name, Text::compile(&h.value)?))
                })
                .collect::<Result<_, Error>>()?,
            query: m
                .query
                .iter()
                .map(|q| Ok((q.name.clone(), Text::compile(&q.value)?)))
                .collect::<Result<_, Error>>()?,
        })
    }

    fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(m) = &self.method {
            if m != req.method {
                return false;
            }
        }
        if let Some(a) = &self.authority {
            if !a.matches(req.authority) {
                return false;
            }
        }
        if let Some(p) = &self.path {
            if !p.matches(req.uri.path()) {
                return false;
            }
        }
        for (name, text) in &self.headers {
            let ok = req
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| text.matches(v)));
            if !ok {
                return false;
            }
        }
        for (name, text) in &self.query {
            let query = req.uri.query().unwrap_or("");
            let ok = query
                .split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .any(|(k, v)| k == name && text.matches(v));
            if !ok {
                return false;
            }
        }
        true
    }
}

/// Upper bound on one compiled route regex (2 MiB), so a route cannot make every
/// request walk a huge automaton (Envoy's `max_program_size` plays the same role).
/// `\w{1,20}` needs about 1 MB (Unicode word characters); `(\w{1,20}-){4}\w+`
/// needs 4 MB and is refused when the route is applied.
pub const REGEX_SIZE_LIMIT: usize = 2 * 1024 * 1024;

pub(crate) fn anchored(pattern: &str) -> Result<Regex, Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|source| Error::Regex {
            pattern: pattern.to_owned(),
            source,
        })
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(s) => write!(f, "{s:?}"),
            Self::Prefix(s) => write!(f, "prefix {s:?}"),
            Self::Regex(r) => write!(f, "regex {:?}", r.as_str()),
        }
    }
}

impl Text {
    pub(crate) fn compile(m: &StringMatch) -> Result<Self, Error> {
        Ok(match m {
            StringMatch::Exact(s) => Self::Exact(s.clone()),
            StringMatch::Prefix(s) => Self::Prefix(s.clone()),
            StringMatch::Regex(r) => Self::Regex(anchored(r)?),
        })
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => value == s,
            Self::Prefix(s) => value.starts_with(s.as_str()),
            Self::Regex(r) => r.is_match(value),
        }
    }
}

impl Path {
    fn compile(m: &PathMatch) -> Result<Self, Error> {
        Ok(match m {
            PathMatch::Exact(s) => Self::Exact(s.clone()),
            PathMatch::Prefix(s) => Self::Prefix(s.trim_end_matches('/').to_owned()),
            PathMatch::Regex(r) => Self::Regex(anchored(r)?),
        })
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(s) => path == s,
            Self::Prefix(p) => Self::prefix_matches(p, path),
            Self::Regex(r) => r.is_match(path),
        }
    }

    /// Segment-aware: `/api` matches `/api` and `/api/x`, never `/apix`; `p` has no
    /// trailing `/` (empty: `/`, everything).
    fn prefix_matches(p: &str, path: &str) -> bool {
        p.is_empty()
            || (path.starts_with(p) && matches!(path.as_bytes().get(p.len()), None | Some(b'/')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule<String> {
        let rule: api::RouteRule = serde_saphyr::from_str(yaml).expect("yaml");
        Rule::compile(&rule, |b| Some(b.service.clone())).expect("compile")
    }

    fn view<'a>(
        method: &'a Method,
        uri: &'a Uri,
        headers: &'a HeaderMap,
        authority: &'a str,
    ) -> RequestView<'a> {
        RequestView {
            method,
            uri,
            headers,
            authority,
        }
    }

    fn hits(
        r: &Rule<String>,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        authority: &str,
    ) -> bool {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let uri: Uri = uri.parse().expect("uri");
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        r.matches
            .iter()
            .any(|m| m.matches(&view(&method, &uri, &map, authority)))
    }

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        let r = rule("matches: [{ path: { prefix: /api } }]\nbackends: [{ service: a }]");
        assert!(hits(&r, "GET", "/api", &[], "h"));
        assert!(hits(&r, "GET", "/api/v1?x=1", &[], "h"));
        assert!(!hits(&r, "GET", "/apix", &[], "h"));
    }

    #[test]
    fn exact_and_regex_paths() {
        let r = rule("matches: [{ path: { exact: /a } }, { path: { regex: '/u/[0-9]+' } }]\nbackends: [{ service: a }]");
        assert!(hits(&r, "GET", "/a", &[], "h"));
        assert!(!hits(&r, "GET", "/a/", &[], "h"));
        assert!(hits(&r, "GET", "/u/42", &[], "h"));
        assert!(!hits(&r, "GET", "/u/42/x", &[], "h"), "regex is anchored");
    }

    #[test]
    fn all_conditions_of_a_match_must_hold() {
        let r = rule(
            "matches:\n  - method: POST\n    authority: { exact: echo }\n    headers: [{ name: X-Canary, value: { exact: 'on' } }]\n    query: [{ name: v, value: { prefix: '2' } }]\nbackends: [{ service: a }]",
        );
        assert!(hits(&r, "POST", "/?v=2.1", &[("x-canary", "on")], "echo"));
        assert!(!hits(&r, "GET", "/?v=2.1", &[("x-canary", "on")], "echo"));
        assert!(!hits(&r, "POST", "/?v=1", &[("x-canary", "on")], "echo"));
        assert!(!hits(&r, "POST", "/?v=2", &[("x-canary", "off")], "echo"));
        assert!(!hits(&r, "POST", "/?v=2", &[("x-canary", "on")], "other"));
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let r = rule("backends: [{ service: a, weight: 90 }, { service: b, weight: 10 }, { service: c, weight: 0 }]");
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            *counts.entry(r.pick().expect("pick").clone()).or_insert(0) += 1;
        }
        let a = counts["a"];
        assert!((8_700..=9_300).contains(&a), "a got {a}");
        assert!(!counts.contains_key("c"), "weight 0 must never be picked");
    }

    #[test]
    fn first_matching_rule_wins() {
        let t = Table {
            rules: vec![
                rule("matches: [{ path: { prefix: /v2 } }]\nbackends: [{ service: v2 }]"),
                rule("backends: [{ service: v1 }]"),
            ],
        };
        let (m, h) = (Method::GET, HeaderMap::new());
        let uri: Uri = "/v2/x".parse().expect("uri");
        assert_eq!(
            t.find(&view(&m, &uri, &h, "a"))
                .and_then(Rule::pick)
                .map(String::as_str),
            Some("v2")
        );
        let uri: Uri = "/v1/x".parse().expect("uri");
        assert_eq!(
            t.find(&view(&m, &uri, &h, "a"))
                .and_then(Rule::pick)
                .map(String::as_str),
            Some("v1")
        );
    }
}
