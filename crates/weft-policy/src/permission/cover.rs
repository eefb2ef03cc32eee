//! Whether one rule covers another: every request the second matches, the first
//! matches too. A deny rule covering an allow, audit or custom rule makes it dead: the
//! deny always wins (and is tried first), so the allow never lets anything through,
//! the audit never fires and the provider is never asked.
//!
//! Sound, not complete: `true` only when it follows from the rules' text (and the
//! callers they resolve to now); forms it cannot compare (two different globs, a
//! regular expression against a value) count as not covered. A false "shadowed"
//! would send an operator to delete a rule that matters; a missed one costs nothing.

use weft_api::pb::v1 as pb;
use weft_api::resource::permission::{GrpcRule, PathRule, PathRuleType, Rule, TargetRef, To};

use super::{Context, Permission};

/// Whether rule `d` of permission `dp` matches every request rule `r` of permission
/// `rp` matches, wherever `rp` applies.
pub(super) fn covers(
    cx: &Context<'_>,
    dp: &Permission<'_>,
    d: &Rule,
    rp: &Permission<'_>,
    r: &Rule,
) -> bool {
    let ns = rp.object.namespace();
    if dp.object.namespace() != ns {
        return false;
    }
    let (dt, rt) = (&dp.spec.target_refs, &rp.spec.target_refs);
    // Ports in `to` mean service ports under service targets and workload ports
    // under a namespace target: compare them only between the same targets.
    let same_targets = dt == rt;
    targets_cover(dt, rt)
        && sources_cover(cx, ns, d, r)
        && (d.to.is_empty()
            || (!r.to.is_empty()
                && r.to
                    .iter()
                    .all(|rto| d.to.iter().any(|dto| to_covers(dto, rto, same_targets)))))
}

/// `d` applies on every workload and port `r` does.
fn targets_cover(d: &[TargetRef], r: &[TargetRef]) -> bool {
    d.is_empty()
        || (!r.is_empty()
            && r.iter().all(|t| {
                d.iter()
                    .any(|dt| dt.name == t.name && dt.port.is_none_or(|p| t.port == Some(p)))
            }))
}

fn sources_cover(cx: &Context<'_>, ns: &str, d: &Rule, r: &Rule) -> bool {
    if d.from.is_empty() {
        return true;
    }
    let (dp, rp) = (cx.principals(ns, &d.from), cx.principals(ns, &r.from));
    // A rule whose callers resolve to nobody is reported as never matching already.
    !r.from.is_empty()
        && !rp.is_empty()
        && rp
            .iter()
            .all(|rq| dp.iter().any(|dq| principal_covers(dq, rq)))
}

fn principal_covers(d: &pb::Principal, r: &pb::Principal) -> bool {
    use pb::principal::Kind;
    match (&d.kind, &r.kind) {
        (Some(Kind::Unauthenticated(true)), Some(Kind::Unauthenticated(true))) => true,
        (Some(Kind::Identity(d)), Some(Kind::Identity(r))) => match d.strip_suffix('*') {
            // A prefix covers the identities, and prefixes, that start with it.
            Some(stem) => r.starts_with(stem),
            None => d == r && !r.ends_with('*'),
        },
        _ => false,
    }
}

fn to_covers(d: &To, r: &To, same_targets: bool) -> bool {
    list_covers(&d.ports, &r.ports, |d, r| d == r)
        && (d.ports.is_empty() || same_targets)
        && list_covers(&d.paths, &r.paths, path_covers)
        && list_covers(&d.methods, &r.methods, |d, r| d.eq_ignore_ascii_case(r))
        && list_covers(&d.hosts, &r.hosts, |d, r| host_covers(d, r))
        && d.headers.iter().all(|dh| {
            // Every header condition of `d` is one `r` requires as well.
            r.headers.iter().any(|rh| {
                rh.name.eq_ignore_ascii_case(&dh.name) && rh.kind == dh.kind && rh.value == dh.value
            })
        })
        && list_covers(&d.grpc, &r.grpc, grpc_covers)
}

/// An empty `d` list matches anything; otherwise `r` must be limited too, to values
/// each covered by one of `d`'s.
fn list_covers<T>(d: &[T], r: &[T], covers: impl Fn(&T, &T) -> bool) -> bool {
    d.is_empty() || (!r.is_empty() && r.iter().all(|rv| d.iter().any(|dv| covers(dv, rv))))
}

fn path_covers(d: &PathRule, r: &PathRule) -> bool {
    if r.ignore_case && !d.ignore_case {
        return false;
    }
    let fold = |v: &str| {
        if d.ignore_case {
            v.to_ascii_lowercase()
        } else {
            v.to_owned()
        }
    };
    let (dv, rv) = (fold(&d.value), fold(&r.value));
    match d.kind {
        PathRuleType::Exact => r.kind == PathRuleType::Exact && dv == rv,
        PathRuleType::Glob => r.kind == PathRuleType::Glob && dv == rv,
        PathRuleType::PathPrefix => {
            // The proxy matches a prefix without its trailing slashes, on segment
            // boundaries: "/api/" matches "/api" and "/api/x", "" matches every path.
            let stem = dv.trim_end_matches('/');
            let under = |v: &str| v == stem || v.starts_with(&format!("{stem}/"));
            match r.kind {
                PathRuleType::Exact => under(&rv),
                PathRuleType::PathPrefix => under(rv.trim_end_matches('/')),
                // Every path a glob matches starts with its text before the first `*`.
                PathRuleType::Glob => rv
                    .split('*')
                    .next()
                    .is_some_and(|literal| literal.starts_with(&format!("{stem}/"))),
            }
        }
    }
}

/// Hosts compare without case; `*.example.com` covers the names under it.
fn host_covers(d: &str, r: &str) -> bool {
    let (d, r) = (d.to_ascii_lowercase(), r.to_ascii_lowercase());
    match d.strip_prefix('*') {
        Some(suffix) => r.ends_with(suffix) && r.len() > suffix.len(),
        None => d == r,
    }
}

fn grpc_covers(d: &GrpcRule, r: &GrpcRule) -> bool {
    let part = |d: &Option<String>, r: &Option<String>| d.is_none() || d == r;
    part(&d.service, &r.service) && part(&d.method, &r.method)
}

/// For each rule of `p` (an allow, audit or custom), the deny permission and rule that
/// covers it, if one does.
pub(super) fn shadowed_rules<'a>(
    cx: &Context<'_>,
    permissions: &'a [Permission<'a>],
    p: &Permission<'_>,
) -> Vec<Option<(&'a Permission<'a>, usize)>> {
    p.spec
        .rules
        .iter()
        .map(|r| {
            permissions
                .iter()
                .filter(|d| d.spec.action == weft_api::resource::permission::Action::Deny)
                .find_map(|d| {
                    d.spec
                        .rules
                        .iter()
                        .position(|dr| covers(cx, d, dr, p, r))
                        .map(|i| (d, i))
                })
        })
        .collect()
}
