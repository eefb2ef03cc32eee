//! Authorization decisions: the workload's `inbound.authorization`, compiled once per
//! snapshot, and the decision for one connection or request.
//!
//! Pure and I/O-free, like [`crate::route`]. The inbound stage
//! (`inbound/stage/authorize.rs`) asks, logs and counts; the HBONE `CONNECT` and the
//! plaintext listener ask before anything reaches the app.
//!
//! The order of a decision: a matching `deny` rule refuses; matching `audit` rules are
//! noted; a matching `allow` rule lets the request through; with none, the port's
//! default action decides. What a rule can say about HTTP requests (paths, methods,
//! hosts, headers, gRPC methods) meets three kinds of traffic:
//!
//! - an HTTP request ([`Traffic::Http`]): every condition is checked;
//! - an opaque TCP connection ([`Traffic::Tcp`]): there is no request to check, so a
//!   `deny` or `audit` rule with HTTP conditions matches on its ports and callers alone
//!   (it errs on refusing) and an `allow` rule with them does not match (it never
//!   opens what it did not name);
//! - a connection whose protocol is not known yet ([`Traffic::Connect`], the HBONE
//!   `CONNECT`): refused only when that is certain (a `deny` without HTTP conditions,
//!   or a default `deny` no `allow` rule could lift); otherwise [`Outcome::Defer`].

use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use regex::Regex;
use weft_api::proxy::{self as api, Action, DefaultAction, PathPatternType};

use crate::route::{self, Text};

/// The compiled authorization of a workload.
#[derive(Debug, Default)]
pub struct Policy {
    default: DefaultAction,
    ports: Vec<(u16, DefaultAction)>,
    deny: Vec<Rule>,
    custom: Vec<Rule>,
    audit: Vec<Rule>,
    allow: Vec<Rule>,
    providers: Vec<api::ExtAuthz>,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Where it came from: `TrafficPermission/<namespace>/<name>`, or
    /// `inbound.authorization.rules[<i>]` in a local config.
    pub source: Arc<str>,
    /// Its index in the source's `spec.rules`.
    pub index: u32,
    /// What it does.
    pub action: Action,
    ports: Vec<u16>,
    from: Vec<Principal>,
    to: Vec<Operation>,
    /// A custom rule's provider: its index in the policy's providers.
    provider: Option<usize>,
}

#[derive(Debug)]
enum Principal {
    /// `*`: every verified identity.
    AnyIdentity,
    Exact(Box<str>),
    Prefix(Box<str>),
    Unauthenticated,
}

#[derive(Debug)]
struct Operation {
    ports: Vec<u16>,
    paths: Vec<PathRule>,
    methods: Vec<Box<str>>,
    hosts: Vec<HostRule>,
    headers: Vec<(HeaderName, Text)>,
    grpc: Vec<GrpcRule>,
    /// Whether any condition needs an HTTP request.
    http: bool,
}

/// A gRPC method condition: service and method, each optional.
type GrpcRule = (Option<Box<str>>, Option<Box<str>>);

#[derive(Debug)]
enum PathRule {
    Exact {
        value: Box<str>,
        ignore_case: bool,
    },
    /// Without a trailing `/` (empty: `/`, every path).
    Prefix {
        value: Box<str>,
        ignore_case: bool,
    },
    Glob {
        glob: Box<str>,
        regex: Regex,
    },
}

#[derive(Debug)]
enum HostRule {
    Exact(Box<str>),
    /// `*.example.com` as `.example.com`.
    Suffix(Box<str>),
}

/// Why a policy could not be compiled (validation normally catches these first).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Error {
    /// Field path.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A request as authorization sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Method, as sent.
    pub method: &'a str,
    /// The normalised path, without query.
    pub path: &'a str,
    /// The same path with every segment's `;parameters` removed, when it has any
    /// (`/a;x/b` → `/a/b`, as some servers read it).
    pub path_without_params: Option<&'a str>,
    /// Host without port or trailing dot, lower case.
    pub host: &'a str,
    /// Headers.
    pub headers: &'a HeaderMap,
}

/// What is being decided.
#[derive(Clone, Copy, Debug)]
pub enum Traffic<'a> {
    /// A connection whose protocol is not known yet.
    Connect,
    /// An opaque TCP connection.
    Tcp,
    /// One HTTP request.
    Http(&'a Request<'a>),
}

/// The result of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Served.
    Allow,
    /// Refused.
    Deny,
    /// Not known until the request is seen ([`Traffic::Connect`] only).
    Defer,
}

/// What decided.
#[derive(Clone, Copy, Debug)]
pub enum By<'p> {
    /// A rule.
    Rule(&'p Rule),
    /// The port's default action.
    Default(DefaultAction),
}

impl By<'_> {
    /// The metric label of what decided: the rule's source, or `default`.
    pub fn permission(&self) -> &str {
        match self {
            Self::Rule(r) => &r.source,
            Self::Default(_) => "default",
        }
    }
}

impl std::fmt::Display for By<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rule(r) => write!(f, "{} rule {} ({})", r.source, r.index, r.action.as_str()),
            Self::Default(a) => write!(f, "the default action ({})", a.as_str()),
        }
    }
}

/// A decision: the outcome, what decided it, and the `audit` that matched (a rule, or
/// a default `audit` that would have denied).
#[derive(Clone, Copy, Debug)]
pub struct Decision<'p> {
    /// Served, refused, or not known yet.
    pub outcome: Outcome,
    /// What decided (`None` for [`Outcome::Defer`], and when nothing is configured).
    pub by: Option<By<'p>>,
    /// What an `audit` flagged, if anything.
    pub audit: Option<By<'p>>,
    /// A `custom` rule that matched an allowed request: its provider must agree
    /// before the request is served.
    pub ask: Option<(&'p Rule, &'p api::ExtAuthz)>,
}

impl Decision<'_> {
    const OPEN: Self = Self {
        outcome: Outcome::Allow,
        by: None,
        audit: None,
        ask: None,
    };
}

impl Policy {
    /// Compiles `a`.
    pub fn compile(a: &api::Authorization) -> Result<Self, Error> {
        let mut policy = Self {
            default: a.default_action,
            ports: a
                .ports
                .iter()
                .filter(|(_, act)| **act != a.default_action)
                .map(|(p, act)| (*p, *act))
                .collect(),
            providers: a.providers.clone(),
            ..Self::default()
        };
        for (i, p) in a.rules.iter().enumerate() {
            let path = format!("inbound.authorization.rules[{i}]");
            let mut rule = Rule::compile(&path, p)?;
            if rule.action == Action::Custom {
                let name = p.provider.as_deref().unwrap_or_default();
                let index = a.providers.iter().position(|x| x.name == name);
                rule.provider = Some(index.ok_or_else(|| Error {
                    path: format!("{path}.provider"),
                    message: format!("{name:?} is not one of inbound.authorization.providers"),
                })?);
            }
            match rule.action {
                Action::Deny => policy.deny.push(rule),
                Action::Custom => policy.custom.push(rule),
                Action::Audit => policy.audit.push(rule),
                Action::Allow => policy.allow.push(rule),
            }
        }
        Ok(policy)
    }

    /// Whether it lets everything through without looking (no rules, every default
    /// `allow`): the request path skips authorization then.
    pub fn is_open(&self) -> bool {
        self.deny.is_empty()
            && self.custom.is_empty()
            && self.audit.is_empty()
            && self.allow.is_empty()
            && self.default == DefaultAction::Allow
            && self.ports.is_empty()
    }

    /// The default action of workload port `port`.
    pub fn default_for(&self, port: u16) -> DefaultAction {
        self.ports
            .iter()
            .find(|(p, _)| *p == port)
            .map_or(self.default, |(_, a)| *a)
    }

    /// Every rule in the order they are tried: deny, custom, audit, allow.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.deny
            .iter()
            .chain(&self.custom)
            .chain(&self.audit)
            .chain(&self.allow)
    }

    /// Decides `traffic` to workload port `port` from `caller` (its SPIFFE ID; `None`:
    /// plaintext).
    pub fn decide(&self, port: u16, caller: Option<&str>, traffic: Traffic<'_>) -> Decision<'_> {
        if self.is_open() {
            return Decision::OPEN;
        }
        for rule in &self.deny {
            if rule.matches(port, caller, traffic, true) == Some(true) {
                return Decision::denied(By::Rule(rule));
            }
        }
        // A custom rule asks its provider about HTTP requests; a TCP connection it
        // matches cannot be asked about, and is refused.
        let mut ask = None;
        for rule in &self.custom {
            match (rule.matches(port, caller, traffic, true), traffic) {
                (Some(true), Traffic::Tcp) => return Decision::denied(By::Rule(rule)),
                (Some(true), Traffic::Http(_)) => {
                    ask = rule
                        .provider
                        .and_then(|i| self.providers.get(i))
                        .map(|p| (rule, p));
                    break;
                }
                _ => {}
            }
        }
        let default = self.default_for(port);
        if let Traffic::Connect = traffic {
            let may_allow = default != DefaultAction::Deny
                || self
                    .allow
                    .iter()
                    .any(|r| r.matches(port, caller, traffic, false) != Some(false));
            return if may_allow {
                Decision {
                    outcome: Outcome::Defer,
                    ..Decision::OPEN
                }
            } else {
                Decision::denied(By::Default(default))
            };
        }
        let mut audit = self
            .audit
            .iter()
            .find(|r| r.matches(port, caller, traffic, true) == Some(true))
            .map(By::Rule);
        if let Some(rule) = self
            .allow
            .iter()
            .find(|r| r.matches(port, caller, traffic, false) == Some(true))
        {
            return Decision {
                outcome: Outcome::Allow,
                by: Some(By::Rule(rule)),
                audit,
                ask,
            };
        }
        let outcome = match default {
            DefaultAction::Deny => Outcome::Deny,
            DefaultAction::Allow => Outcome::Allow,
            DefaultAction::Audit => {
                audit = audit.or(Some(By::Default(default)));
                Outcome::Allow
            }
        };
        Decision {
            outcome,
            by: Some(By::Default(default)),
            audit,
            ask: ask.filter(|_| outcome == Outcome::Allow),
        }
    }
}

/// One rule as `weft explain` shows it: whether it matched, and if not, why.
#[derive(Debug)]
pub struct Explained<'p> {
    /// The rule.
    pub rule: &'p Rule,
    /// Whether it matched.
    pub matched: bool,
    /// `matches`, the first condition that failed, or why it cannot tell yet.
    pub why: String,
}

impl Policy {
    /// The decision for `traffic` to `port` from `caller`, and every rule in the order
    /// they are tried, each with why it did or did not match (`weft explain`).
    pub fn explain(
        &self,
        port: u16,
        caller: Option<&str>,
        traffic: Traffic<'_>,
    ) -> (Decision<'_>, Vec<Explained<'_>>) {
        let decision = self.decide(port, caller, traffic);
        let explained = self
            .rules()
            .map(|rule| {
                let refusing = rule.action != Action::Allow;
                let check = rule.check(port, caller, traffic, refusing);
                let (matched, why) = match check {
                    Check::Match => (true, "matches".to_owned()),
                    Check::Unknown => (
                        false,
                        "depends on the HTTP request, not known yet".to_owned(),
                    ),
                    Check::Miss(miss) => (false, rule.describe(miss, port, caller, traffic)),
                };
                Explained { rule, matched, why }
            })
            .collect();
        (decision, explained)
    }
}

impl Rule {
    /// Why `miss` failed, in words.
    fn describe(
        &self,
        miss: Miss,
        port: u16,
        caller: Option<&str>,
        traffic: Traffic<'_>,
    ) -> String {
        let list = |items: Vec<String>| items.join(", ");
        match miss {
            Miss::Port => format!("covers ports {:?}, not {port}", self.ports),
            Miss::Caller => format!(
                "its callers ({}) do not include {}",
                list(self.from.iter().map(ToString::to_string).collect()),
                caller.unwrap_or("an unauthenticated caller")
            ),
            Miss::To(i, condition) => {
                let op = &self.to[i];
                let req = match traffic {
                    Traffic::Http(req) => Some(req),
                    _ => None,
                };
                let what = match condition {
                    Condition::Port => format!("ports {:?}, not {port}", op.ports),
                    Condition::Method => format!(
                        "methods [{}], not {}",
                        list(op.methods.iter().map(ToString::to_string).collect()),
                        req.map_or("?", |r| r.method)
                    ),
                    Condition::Host => format!(
                        "hosts [{}] do not include {:?}",
                        list(op.hosts.iter().map(ToString::to_string).collect()),
                        req.map_or("?", |r| r.host)
                    ),
                    Condition::Header(h) => {
                        let (name, text) = &op.headers[h];
                        format!("header {name} has no value matching {text}")
                    }
                    Condition::Path => format!(
                        "path {:?} matches none of [{}]",
                        req.map_or("?", |r| r.path),
                        list(op.paths.iter().map(ToString::to_string).collect())
                    ),
                    Condition::Grpc => format!(
                        "path {:?} is not one of the gRPC methods [{}]",
                        req.map_or("?", |r| r.path),
                        list(
                            op.grpc
                                .iter()
                                .map(|(s, m)| format!(
                                    "/{}/{}",
                                    s.as_deref().unwrap_or("*"),
                                    m.as_deref().unwrap_or("*")
                                ))
                                .collect()
                        )
                    ),
                    Condition::NotHttp => {
                        "has HTTP conditions, which an allow rule never meets on a TCP connection"
                            .to_owned()
                    }
                };
                if self.to.len() > 1 {
                    format!("to[{i}]: {what} (and no other `to` entry matches)")
                } else {
                    format!("to: {what}")
                }
            }
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AnyIdentity => f.write_str("every mesh identity"),
            Self::Exact(id) => f.write_str(id),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Unauthenticated => f.write_str("unauthenticated"),
        }
    }
}

impl std::fmt::Display for PathRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let case = |ci: bool| if ci { " (any case)" } else { "" };
        match self {
            Self::Exact { value, ignore_case } => write!(f, "Exact {value}{}", case(*ignore_case)),
            Self::Prefix { value, ignore_case } => {
                let shown = if value.is_empty() { "/" } else { value };
                write!(f, "PathPrefix {shown}{}", case(*ignore_case))
            }
            Self::Glob { glob, .. } => write!(f, "Glob {glob}"),
        }
    }
}

impl std::fmt::Display for HostRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Suffix(s) => write!(f, "*{s}"),
        }
    }
}

impl<'p> Decision<'p> {
    fn denied(by: By<'p>) -> Self {
        Self {
            outcome: Outcome::Deny,
            by: Some(by),
            audit: None,
            ask: None,
        }
    }
}

impl Rule {
    fn compile(path: &str, p: &api::Permission) -> Result<Self, Error> {
        let err = |field: String, message: String| Error {
            path: field,
            message,
        };
        let from = p
            .from
            .iter()
            .enumerate()
            .map(|(i, f)| match (&f.identity, f.unauthenticated) {
                (Some(id), false) if id == "*" => Ok(Principal::AnyIdentity),
                (Some(id), false) => Ok(match id.strip_suffix('*') {
                    Some(prefix) => Principal::Prefix(prefix.into()),
                    None => Principal::Exact(id.as_str().into()),
                }),
                (None, true) => Ok(Principal::Unauthenticated),
                _ => Err(err(
                    format!("{path}.from[{i}]"),
                    "give exactly one of identity or unauthenticated: true".into(),
                )),
            })
            .collect::<Result<_, _>>()?;
        let to =
            p.to.iter()
                .enumerate()
                .map(|(i, o)| Operation::compile(&format!("{path}.to[{i}]"), o))
                .collect::<Result<_, _>>()?;
        Ok(Self {
            source: p
                .source
                .as_deref()
                .map_or_else(|| Arc::from(path), Arc::from),
            index: p.rule,
            action: p.action,
            ports: p.ports.clone(),
            from,
            to,
            provider: None,
        })
    }

    /// Whether the rule matches: `Some(true)`/`Some(false)`, or `None` when that
    /// depends on a request not seen yet. `refusing`: the rule refuses or audits (its
    /// HTTP conditions match any TCP connection).
    fn matches(
        &self,
        port: u16,
        caller: Option<&str>,
        traffic: Traffic<'_>,
        refusing: bool,
    ) -> Option<bool> {
        match self.check(port, caller, traffic, refusing) {
            Check::Match => Some(true),
            Check::Miss(_) => Some(false),
            Check::Unknown => None,
        }
    }

    /// [`Rule::matches`], with the first condition that failed.
    fn check(
        &self,
        port: u16,
        caller: Option<&str>,
        traffic: Traffic<'_>,
        refusing: bool,
    ) -> Check {
        if !self.ports.is_empty() && !self.ports.contains(&port) {
            return Check::Miss(Miss::Port);
        }
        if !self.from.is_empty() && !self.from.iter().any(|p| p.matches(caller)) {
            return Check::Miss(Miss::Caller);
        }
        if self.to.is_empty() {
            return Check::Match;
        }
        let mut unknown = false;
        let mut first_miss = None;
        for (i, op) in self.to.iter().enumerate() {
            match op.check(port, traffic, refusing) {
                Ok(true) => return Check::Match,
                Ok(false) => unknown = true,
                Err(condition) => {
                    first_miss.get_or_insert(Miss::To(i, condition));
                }
            }
        }
        match first_miss {
            Some(miss) if !unknown => Check::Miss(miss),
            _ => Check::Unknown,
        }
    }
}

/// The result of checking a rule.
#[derive(Clone, Copy, Debug)]
enum Check {
    Match,
    Miss(Miss),
    /// Depends on a request not seen yet.
    Unknown,
}

/// The first condition of a rule that failed.
#[derive(Clone, Copy, Debug)]
enum Miss {
    /// The rule's ports.
    Port,
    /// Its `from`.
    Caller,
    /// A condition of its `to[i]`.
    To(usize, Condition),
}

/// A condition of a `to` entry.
#[derive(Clone, Copy, Debug)]
enum Condition {
    Port,
    Method,
    Host,
    /// `headers[i]`.
    Header(usize),
    Path,
    Grpc,
    /// HTTP conditions against a TCP connection (an allowing rule never matches it).
    NotHttp,
}

impl Principal {
    fn matches(&self, caller: Option<&str>) -> bool {
        match (self, caller) {
            (Self::AnyIdentity, Some(_)) | (Self::Unauthenticated, None) => true,
            (Self::Exact(id), Some(c)) => **id == *c,
            (Self::Prefix(p), Some(c)) => c.starts_with(&**p),
            _ => false,
        }
    }
}

impl Operation {
    fn compile(path: &str, o: &api::Operation) -> Result<Self, Error> {
        let paths = o
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| PathRule::compile(&format!("{path}.paths[{i}]"), p))
            .collect::<Result<_, _>>()?;
        let headers =
            o.headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let hpath = format!("{path}.headers[{i}]");
                    let name = HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes())
                        .map_err(|_| Error {
                            path: format!("{hpath}.name"),
                            message: format!("{:?} is not a header name", h.name),
                        })?;
                    let text = Text::compile(&h.value).map_err(|e| Error {
                        path: format!("{hpath}.value"),
                        message: e.to_string(),
                    })?;
                    Ok((name, text))
                })
                .collect::<Result<_, Error>>()?;
        Ok(Self {
            ports: o.ports.clone(),
            paths,
            methods: o.methods.iter().map(|m| m.as_str().into()).collect(),
            hosts: o
                .hosts
                .iter()
                .map(|h| {
                    let h = h.to_ascii_lowercase();
                    match h.strip_prefix('*') {
                        Some(suffix) => HostRule::Suffix(suffix.into()),
                        None => HostRule::Exact(h.into()),
                    }
                })
                .collect(),
            headers,
            grpc: o
                .grpc
                .iter()
                .map(|g| {
                    (
                        g.service.as_deref().map(Into::into),
                        g.method.as_deref().map(Into::into),
                    )
                })
                .collect(),
            http: o.is_http(),
        })
    }

    /// `Ok(true)`: matches; `Ok(false)`: not known before the request is seen;
    /// `Err`: the first condition that failed.
    fn check(&self, port: u16, traffic: Traffic<'_>, refusing: bool) -> Result<bool, Condition> {
        if !self.ports.is_empty() && !self.ports.contains(&port) {
            return Err(Condition::Port);
        }
        if !self.http {
            return Ok(true);
        }
        match traffic {
            Traffic::Connect => Ok(false),
            Traffic::Tcp if refusing => Ok(true),
            Traffic::Tcp => Err(Condition::NotHttp),
            Traffic::Http(req) => self.check_request(req, refusing).map(|()| true),
        }
    }

    /// Every condition against `req`. Paths are checked on the path as sent and, when
    /// it has `;parameters`, on the path without them: a refusing rule matches if
    /// either does, an allowing one only if both do, so an app that strips parameters
    /// and one that does not both get what the rule says.
    fn check_request(&self, req: &Request<'_>, refusing: bool) -> Result<(), Condition> {
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(req.method))
        {
            return Err(Condition::Method);
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(req.host)) {
            return Err(Condition::Host);
        }
        for (i, (name, text)) in self.headers.iter().enumerate() {
            let value_matches = |v: &http::HeaderValue| v.to_str().is_ok_and(|v| text.matches(v));
            let found = req.headers.get_all(name).iter().any(value_matches)
                // A refusing rule also matches `x_debug` for `x-debug`: CGI-style
                // frameworks read both spellings as one variable.
                || (refusing
                    && req
                        .headers
                        .iter()
                        .any(|(k, v)| is_lookalike(k, name) && value_matches(v)));
            if !found {
                return Err(Condition::Header(i));
            }
        }
        let forms = || std::iter::once(req.path).chain(req.path_without_params);
        let path_ok = |p: &str| self.paths.is_empty() || self.paths.iter().any(|r| r.matches(p));
        let grpc_ok =
            |p: &str| self.grpc.is_empty() || self.grpc.iter().any(|g| grpc_matches(g, p));
        let (paths, grpc) = if refusing {
            (forms().any(path_ok), forms().any(grpc_ok))
        } else {
            (forms().all(path_ok), forms().all(grpc_ok))
        };
        match (paths, grpc) {
            (false, _) => Err(Condition::Path),
            (true, false) => Err(Condition::Grpc),
            (true, true) => Ok(()),
        }
    }
}

/// Whether `k` is `name` spelled with `_` for some `-`.
fn is_lookalike(k: &HeaderName, name: &HeaderName) -> bool {
    let (k, name) = (k.as_str().as_bytes(), name.as_str().as_bytes());
    k.len() == name.len()
        && k != name
        && k.iter()
            .zip(name)
            .all(|(a, b)| a == b || (*a == b'_' && *b == b'-'))
}

/// A gRPC method condition against a path `/<service>/<method>` (whatever the
/// content type: gRPC servers route by path alone).
fn grpc_matches(rule: &GrpcRule, path: &str) -> bool {
    let Some((service, method)) = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .filter(|(_, m)| !m.contains('/'))
    else {
        return false;
    };
    rule.0.as_deref().is_none_or(|s| s == service) && rule.1.as_deref().is_none_or(|m| m == method)
}

impl PathRule {
    fn compile(path: &str, p: &api::PathPattern) -> Result<Self, Error> {
        Ok(match p.kind {
            PathPatternType::Exact => Self::Exact {
                value: p.value.as_str().into(),
                ignore_case: p.ignore_case,
            },
            PathPatternType::PathPrefix => Self::Prefix {
                value: p.value.trim_end_matches('/').into(),
                ignore_case: p.ignore_case,
            },
            PathPatternType::Glob => {
                let mut re = String::with_capacity(p.value.len() + 16);
                if p.ignore_case {
                    re.push_str("(?i)");
                }
                let mut rest = p.value.as_str();
                while !rest.is_empty() {
                    if let Some(r) = rest.strip_prefix("**") {
                        re.push_str(".*");
                        rest = r;
                    } else if let Some(r) = rest.strip_prefix('*') {
                        re.push_str("[^/]*");
                        rest = r;
                    } else {
                        let end = rest.find('*').unwrap_or(rest.len());
                        re.push_str(&regex::escape(&rest[..end]));
                        rest = &rest[end..];
                    }
                }
                Self::Glob {
                    glob: p.value.as_str().into(),
                    regex: route::anchored(&re).map_err(|e| Error {
                        path: path.to_owned(),
                        message: e.to_string(),
                    })?,
                }
            }
        })
    }

    fn matches(&self, path: &str) -> bool {
        let eq = |a: &str, b: &str, ci: bool| {
            if ci {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self {
            Self::Exact { value, ignore_case } => eq(path, value, *ignore_case),
            Self::Prefix { value, ignore_case } => {
                value.is_empty()
                    || (path.len() >= value.len()
                        && path.is_char_boundary(value.len())
                        && eq(&path[..value.len()], value, *ignore_case)
                        && matches!(path.as_bytes().get(value.len()), None | Some(b'/')))
            }
            Self::Glob { regex, .. } => regex.is_match(path),
        }
    }
}

impl HostRule {
    fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(h) => **h == *host,
            Self::Suffix(s) => host.len() > s.len() && host.ends_with(&**s),
        }
    }
}

/// `host` (a `Host` header or `:authority`) as rules compare it: lower case, without
/// port, userinfo or trailing dot. Writes into `buf` only when it has to change.
pub fn normal_host<'a>(host: &'a str, buf: &'a mut String) -> &'a str {
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let name = if host.starts_with('[') {
        // An IPv6 literal: up to the closing bracket.
        host.find(']').map_or(host, |end| &host[..=end])
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        buf.clear();
        buf.push_str(name);
        buf.make_ascii_lowercase();
        buf
    } else {
        name
    }
}

#[cfg(test)]
mod tests;
