//! The status of each `TrafficPermission`: its targets, the rules that can never match,
//! and whether it changes anything (an allow under a default of allow, rules a deny
//! covers).

use std::collections::BTreeSet;

use serde_json::Value;
use weft_api::resource::mesh::DefaultAction;
use weft_api::resource::permission::Action;

use super::{cover, default_actions, in_namespace, target_ports, Context, Permission};
use crate::status;

/// The status of each permission: per target, whether the service (and port)
/// exists; and the rules that can never match, with why.
pub(crate) fn statuses<'a>(cx: &Context<'_>, permissions: &'a [Permission<'a>]) -> Vec<Value> {
    permissions
        .iter()
        .map(|p| {
            let o = p.object;
            let ns = o.namespace();
            let generation = o.metadata.generation;
            let ancestors: Vec<Value> = p
                .spec
                .target_refs
                .iter()
                .map(|t| {
                    let (ok, reason, message) = match cx.service(ns, &t.name) {
                        None => (
                            false,
                            "TargetNotFound",
                            format!("Service {ns}/{} does not exist", t.name),
                        ),
                        Some(spec) => match t.port {
                            Some(port) if !spec.ports.iter().any(|sp| sp.port == port) => (
                                false,
                                "TargetNotFound",
                                format!("Service {ns}/{} has no port {port}", t.name),
                            ),
                            _ => (
                                true,
                                "Accepted",
                                format!("applies to the workloads of Service {ns}/{}", t.name),
                            ),
                        },
                    };
                    status::policy_ancestor(ns, &t.name, ok, reason, &message, generation)
                })
                .collect();
            let problems = never_matching(cx, p);
            let accepted = if problems.is_empty() {
                status::condition(
                    "RulesMatchable",
                    true,
                    "Matchable",
                    "every rule can match a request",
                    generation,
                )
            } else {
                status::condition(
                    "RulesMatchable",
                    false,
                    "NeverMatches",
                    &problems.join("; "),
                    generation,
                )
            };
            let mut conditions = vec![accepted];
            if p.spec.action == Action::Allow && allow_is_moot(cx, p) {
                conditions.push(status::condition(
                    "Effective",
                    false,
                    "DefaultAllows",
                    "every workload it applies to already allows what no rule refuses \
                     (default action allow): allow permissions matter once the default is \
                     deny, e.g. Mesh.spec.defaultActionOverrides: [{namespace: <ns>, \
                     defaultAction: deny}]",
                    generation,
                ));
            } else if p.spec.action != Action::Deny {
                conditions.extend(shadowed_condition(cx, permissions, p));
            }
            serde_json::json!({ "ancestors": ancestors, "conditions": conditions })
        })
        .collect()
}

/// Rules of `p` (an allow, audit or custom) that a deny rule covers, so they never
/// let a request through, never fire or are never asked about: `Effective: False` when that is every rule,
/// `Conflicted: True` when it is some.
fn shadowed_condition(
    cx: &Context<'_>,
    permissions: &[Permission<'_>],
    p: &Permission<'_>,
) -> Option<Value> {
    let shadowed = cover::shadowed_rules(cx, permissions, p);
    let lines: Vec<String> = shadowed
        .iter()
        .enumerate()
        .filter_map(|(i, by)| {
            let (d, j) = by.as_ref()?;
            Some(format!(
                "rules[{i}] never applies: TrafficPermission {}/{} rules[{j}] denies every \
                 request it matches, and deny wins",
                d.object.namespace(),
                d.object.metadata.name
            ))
        })
        .collect();
    let generation = p.object.metadata.generation;
    if lines.is_empty() {
        None
    } else if lines.len() == shadowed.len() {
        Some(status::condition(
            "Effective",
            false,
            "ShadowedByDeny",
            &lines.join("; "),
            generation,
        ))
    } else {
        Some(status::condition(
            "Conflicted",
            true,
            "ShadowedRules",
            &lines.join("; "),
            generation,
        ))
    }
}

/// Whether `p` (an `allow`) changes nothing: every workload it applies to has the
/// default action `allow` on every port (and there is at least one such workload).
fn allow_is_moot(cx: &Context<'_>, p: &Permission<'_>) -> bool {
    let ns = p.object.namespace();
    let mut any = false;
    for w in cx.workloads.iter().filter(|w| w.object.namespace() == ns) {
        let labels = &w.object.metadata.labels;
        if target_ports(cx, p, ns, labels).is_none() {
            continue;
        }
        any = true;
        let (default, ports) = default_actions(cx, ns, labels);
        if default != DefaultAction::Allow || !ports.is_empty() {
            return false;
        }
    }
    any
}

/// The parts of `p` that can never match, each with its field path and why.
fn never_matching(cx: &Context<'_>, p: &Permission<'_>) -> Vec<String> {
    let ns = p.object.namespace();
    let mut out = Vec::new();
    let service_ports: Option<BTreeSet<u16>> = (!p.spec.target_refs.is_empty()).then(|| {
        p.spec
            .target_refs
            .iter()
            .filter_map(|t| cx.service(ns, &t.name).map(|s| (t, s)))
            .flat_map(|(t, s)| {
                s.ports
                    .iter()
                    .map(|sp| sp.port)
                    .filter(move |port| t.port.is_none_or(|only| only == *port))
            })
            .collect()
    });
    if let (Action::Custom, Some(provider)) = (p.spec.action, &p.spec.provider) {
        if cx.provider(&provider.name).is_none() {
            out.push(format!(
                "spec.provider.name: {:?} is not one of Mesh.spec.authorizationProviders; the \
                 rules refuse every request they match until it is",
                provider.name
            ));
        }
    }
    for (r, rule) in p.spec.rules.iter().enumerate() {
        for (i, s) in rule.from.iter().enumerate() {
            let path = format!("spec.rules[{r}].from[{i}]");
            if let Some(svc) = &s.service {
                let (sns, name) = in_namespace(svc, ns);
                if cx.service(sns, name).is_none() {
                    out.push(format!(
                        "{path}.service: Service {sns}/{name} does not exist"
                    ));
                } else if cx.service_identities(sns, name).is_empty() {
                    out.push(format!(
                        "{path}.service: Service {sns}/{name} selects no workload, so no \
                         identity serves it yet"
                    ));
                }
            }
            if let Some(id) = &s.identity {
                let own = format!("spiffe://{}/", cx.mesh.trust_domain);
                let stem = id.trim_end_matches('*');
                if id != "*" && !own.starts_with(stem) && !stem.starts_with(&own) {
                    out.push(format!(
                        "{path}.identity: {id:?} is outside the mesh's trust domain {:?}",
                        cx.mesh.trust_domain
                    ));
                }
            }
        }
        if let Some(available) = &service_ports {
            for (i, to) in rule.to.iter().enumerate() {
                for (j, port) in to.ports.iter().enumerate() {
                    if !available.contains(port) {
                        out.push(format!(
                            "spec.rules[{r}].to[{i}].ports[{j}]: {port} is not a port of the \
                             targets (use the Service's port, not its targetPort)"
                        ));
                    }
                }
            }
        }
    }
    out
}
