//! `weft explain`: every rule of a policy with whether it matched a request, and if
//! not, the first condition that failed, in words. Not on the request path.

use super::{
    Action, Check, Condition, Decision, HostRule, Miss, PathRule, Policy, Principal, Rule, Traffic,
};

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
                        let (name, text, _) = &op.headers[h];
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
