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
    /// Unique among the policies of this process (see [`Scope`]).
    id: u64,
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
    /// Its decisions' counters, made on first use (so a request counts with one
    /// atomic add, not a lookup).
    pub counters: Counters,
    /// The first path segments (lower case, without `;parameters`) a request must
    /// have for the rule to match it; `None`: any. Lets a connection's [`Scope`] try
    /// only the rules that can match a request's path.
    segments: Option<Vec<Box<str>>>,
    /// Header-name bits ([`HeaderNames`]) of which an HTTP request must have one for
    /// the rule to match it (every `to` entry names a header); 0: none needed. Lets a
    /// [`Scope`] pass over a header rule without looking at the rule.
    needs: u64,
}

/// What a decision is counted as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tally {
    /// Served.
    Allowed,
    /// Refused.
    Denied,
    /// Served, flagged by an `audit`.
    Audited,
}

impl Tally {
    /// The `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Audited => "audited",
        }
    }
}

/// One counter per [`Tally`] (indexed by it), each made the first time it is needed.
pub type Counters = crate::telemetry::LazyCounters<3>;

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
    /// Name, value condition, and the name's bit in [`HeaderNames`].
    headers: Vec<(HeaderName, Text, u64)>,
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
    /// Which header names it has ([`HeaderNames::of`] its headers).
    pub header_names: HeaderNames,
}

/// A 64-bit summary of the header names of a request (`_` read as `-`): a header
/// condition whose name's bit is not set fails without looking through the headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderNames(u64);

impl HeaderNames {
    /// The summary of `headers`' names.
    pub fn of(headers: &HeaderMap) -> Self {
        Self(headers.keys().fold(0, |acc, k| acc | name_bit(k.as_str())))
    }

    fn may_have(self, bit: u64) -> bool {
        self.0 & bit != 0
    }
}

/// The bit of a header name in [`HeaderNames`] (FNV-1a, `_` as `-`).
fn name_bit(name: &str) -> u64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        let b = if b == b'_' { b'-' } else { b };
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    1 << (hash >> 58)
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
            id: NEXT_POLICY_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
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
        self.decide_in(port, caller, traffic, None)
    }

    /// The rules of this policy that can apply to `caller` on `port` (their ports and
    /// callers match): what a connection works out once, so that each of its requests
    /// checks only their request conditions ([`Policy::decide_scoped`]).
    pub fn scope(&self, port: u16, caller: Option<&str>) -> Scope {
        let keep = |r: &Rule| r.covers(port, caller);
        Scope {
            policy: self.id,
            port,
            lists: [
                ScopedList::build(&self.deny, keep),
                ScopedList::build(&self.custom, keep),
                ScopedList::build(&self.audit, keep),
                ScopedList::build(&self.allow, keep),
            ],
        }
    }

    /// Whether `scope` was worked out by this policy for `port`.
    pub fn is_scope_of(&self, scope: &Scope, port: u16) -> bool {
        scope.policy == self.id && scope.port == port
    }

    /// [`Policy::decide`] over the rules of `scope` (made by [`Policy::scope`] of this
    /// policy, for the same port and caller).
    pub fn decide_scoped(
        &self,
        scope: &Scope,
        caller: Option<&str>,
        traffic: Traffic<'_>,
    ) -> Decision<'_> {
        self.decide_in(scope.port, caller, traffic, Some(scope))
    }

    fn decide_in(
        &self,
        port: u16,
        caller: Option<&str>,
        traffic: Traffic<'_>,
        scope: Option<&Scope>,
    ) -> Decision<'_> {
        if self.is_open() {
            return Decision::OPEN;
        }
        // The rules of one list to try: every one, or the scope's (whose ports and
        // callers are known to match, so only their request conditions are checked).
        let request = match traffic {
            Traffic::Http(req) => Some((first_segment(req.path), req.header_names)),
            _ => None,
        };
        let tried = |list: usize, rules| tried(rules, scope, list, request);
        let check = |rule: &Rule, refusing: bool| {
            if scope.is_some() {
                rule.check_to(port, traffic, refusing)
            } else {
                rule.matches(port, caller, traffic, refusing)
            }
        };
        for rule in tried(0, &self.deny) {
            if check(rule, true) == Some(true) {
                return Decision::denied(By::Rule(rule));
            }
        }
        // A custom rule asks its provider about HTTP requests; a TCP connection it
        // matches cannot be asked about, and is refused.
        let mut ask = None;
        for rule in tried(1, &self.custom) {
            match (check(rule, true), traffic) {
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
                || tried(3, &self.allow).any(|r| check(r, false) != Some(false));
            return if may_allow {
                Decision {
                    outcome: Outcome::Defer,
                    ..Decision::OPEN
                }
            } else {
                Decision::denied(By::Default(default))
            };
        }
        let mut audit = tried(2, &self.audit)
            .find(|r| check(r, true) == Some(true))
            .map(By::Rule);
        if let Some(rule) = tried(3, &self.allow).find(|r| check(r, false) == Some(true)) {
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

/// The rules of a policy that can apply to one caller on one port ([`Policy::scope`]).
#[derive(Debug)]
pub struct Scope {
    policy: u64,
    port: u16,
    /// The deny, custom, audit and allow lists.
    lists: [ScopedList; 4],
}

/// A rule of a scope: its index in its list, and its [`Rule::needs`].
type Entry = (u32, u64);

/// The rules of one list that can apply to a connection.
#[derive(Debug, Default)]
struct ScopedList {
    /// Every one of them, in order (connections and TCP).
    all: Vec<Entry>,
    /// Those that match any path: what a request whose first segment no rule names
    /// tries.
    any_path: Vec<Entry>,
    /// By first path segment (sorted): the rules a request with that segment tries,
    /// those that match any path included, in order.
    by_segment: Vec<(Box<str>, Vec<Entry>)>,
}

impl ScopedList {
    fn build(rules: &[Rule], keep: impl Fn(&Rule) -> bool) -> Self {
        let mut list = Self::default();
        let mut buckets: std::collections::BTreeMap<Box<str>, Vec<Entry>> =
            std::collections::BTreeMap::new();
        for (i, rule) in rules.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            if !keep(rule) {
                continue;
            }
            let entry = (i, rule.needs);
            list.all.push(entry);
            match &rule.segments {
                None => list.any_path.push(entry),
                Some(keys) => {
                    for key in keys {
                        buckets.entry(key.clone()).or_default().push(entry);
                    }
                }
            }
        }
        list.by_segment = buckets
            .into_iter()
            .map(|(key, mut rules)| {
                rules.extend_from_slice(&list.any_path);
                rules.sort_unstable();
                rules.dedup();
                (key, rules)
            })
            .collect();
        list
    }

    /// The rules that can match a request whose first segment is `segment` (already
    /// without parameters), in list order.
    fn for_segment(&self, segment: &str) -> &[Entry] {
        if self.by_segment.is_empty() {
            return &self.any_path;
        }
        self.by_segment
            .binary_search_by(|(key, _)| compare_folded(key, segment))
            .map_or(&self.any_path[..], |i| &self.by_segment[i].1[..])
    }
}

/// `key` (lower case) against `segment` in ASCII lower case, without allocating.
fn compare_folded(key: &str, segment: &str) -> std::cmp::Ordering {
    key.bytes()
        .cmp(segment.bytes().map(|b| b.to_ascii_lowercase()))
}

/// The first segment of `path`, without its `;parameters`.
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let end = rest.find(['/', ';']).unwrap_or(rest.len());
    &rest[..end]
}

/// The rules of one list a decision tries.
enum Tried<'r, 's> {
    All(std::slice::Iter<'r, Rule>),
    /// The rules, the scope's entries, and the request's header names (all bits set
    /// when there is no request).
    Scoped(&'r [Rule], std::slice::Iter<'s, Entry>, u64),
}

/// The rules of `list` (of the policy's lists) to try: every one, or the scope's
/// (for an HTTP request, only those its first path segment and header names allow).
fn tried<'r, 's>(
    rules: &'r [Rule],
    scope: Option<&'s Scope>,
    list: usize,
    request: Option<(&str, HeaderNames)>,
) -> Tried<'r, 's> {
    match (scope, request) {
        (None, _) => Tried::All(rules.iter()),
        (Some(s), None) => Tried::Scoped(rules, s.lists[list].all.iter(), u64::MAX),
        (Some(s), Some((seg, names))) => {
            Tried::Scoped(rules, s.lists[list].for_segment(seg).iter(), names.0)
        }
    }
}

impl<'r> Iterator for Tried<'r, '_> {
    type Item = &'r Rule;

    fn next(&mut self) -> Option<&'r Rule> {
        match self {
            Self::All(it) => it.next(),
            Self::Scoped(rules, it, have) => it
                .find(|(_, needs)| *needs == 0 || needs & *have != 0)
                .and_then(|(i, _)| rules.get(*i as usize)),
        }
    }
}

/// Identities of compiled policies, so a [`Scope`] is never used with another one.
static NEXT_POLICY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
            counters: Counters::default(),
            segments: None,
            needs: 0,
        }
        .indexed())
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

    /// Works out [`Rule::segments`] and [`Rule::needs`] from its `to`.
    fn indexed(mut self) -> Self {
        let every_op_names_a_header =
            !self.to.is_empty() && self.to.iter().all(|op| !op.headers.is_empty());
        if every_op_names_a_header {
            self.needs = self.to.iter().fold(0, |acc, op| acc | op.headers[0].2);
        }
        let mut keys: Vec<Box<str>> = Vec::new();
        let mut any = self.to.is_empty();
        for op in &self.to {
            match op.segments() {
                Some(k) => keys.extend(k),
                None => any = true,
            }
        }
        keys.sort();
        keys.dedup();
        self.segments = (!any).then_some(keys);
        self
    }

    /// Whether its ports and callers include `port` and `caller`.
    fn covers(&self, port: u16, caller: Option<&str>) -> bool {
        (self.ports.is_empty() || self.ports.contains(&port))
            && (self.from.is_empty() || self.from.iter().any(|p| p.matches(caller)))
    }

    /// [`Rule::matches`] for a rule that [covers](Rule::covers) the caller and port:
    /// its `to` alone.
    fn check_to(&self, port: u16, traffic: Traffic<'_>, refusing: bool) -> Option<bool> {
        if self.to.is_empty() {
            return Some(true);
        }
        let mut unknown = false;
        for op in &self.to {
            match op.check(port, traffic, refusing) {
                Ok(true) => return Some(true),
                Ok(false) => unknown = true,
                Err(_) => {}
            }
        }
        if unknown {
            None
        } else {
            Some(false)
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
    /// The first path segments (lower case) a request must have to match; `None`: any.
    fn segments(&self) -> Option<Vec<Box<str>>> {
        let key = |s: &str| -> Box<str> { s.to_ascii_lowercase().into() };
        if !self.paths.is_empty() {
            return self
                .paths
                .iter()
                .map(|p| match p {
                    PathRule::Exact { value, .. } => Some(key(first_segment(value))),
                    PathRule::Prefix { value, .. } if !value.is_empty() => {
                        Some(key(first_segment(value)))
                    }
                    PathRule::Glob { glob, .. } => {
                        let seg = first_segment(glob);
                        (!seg.contains('*') && glob.len() > seg.len() + 1)
                            .then(|| key(seg))
                            .or_else(|| (!glob.contains('*')).then(|| key(seg)))
                    }
                    PathRule::Prefix { .. } => None,
                })
                .collect();
        }
        if !self.grpc.is_empty() {
            return self
                .grpc
                .iter()
                .map(|(service, _)| service.as_deref().map(key))
                .collect();
        }
        None
    }

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
                    let bit = name_bit(name.as_str());
                    Ok((name, text, bit))
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
        for (i, (name, text, bit)) in self.headers.iter().enumerate() {
            if !req.header_names.may_have(*bit) {
                return Err(Condition::Header(i));
            }
            let value_matches = |v: &http::HeaderValue| v.to_str().is_ok_and(|v| text.matches(v));
            // A request has few headers: comparing names beats hashing one.
            let exact = if req.headers.len() <= 16 {
                req.headers
                    .iter()
                    .any(|(k, v)| k == name && value_matches(v))
            } else {
                req.headers.get_all(name).iter().any(value_matches)
            };
            let found = exact
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

mod explain;

pub use explain::Explained;

#[cfg(test)]
mod tests;
