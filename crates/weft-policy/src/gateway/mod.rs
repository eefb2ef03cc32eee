//! `Gateway` (Gateway API, `gateway.networking.k8s.io/v1`): validation, which routes
//! attach to which of its listeners, and the Gateway API status of both sides — the
//! Gateway's (`Accepted`, `Programmed`, each listener's conditions and
//! `attachedRoutes`) and, for each route `parentRefs` entry naming a Gateway, whether
//! the route is accepted there.
//!
//! What it is not: the gateway process. Nothing is compiled for a proxy yet; a Gateway
//! says `Programmed: False` (`Pending`) until a gateway of its name can connect, and a
//! certificate reference does not resolve while there is no `Secret` kind.
//!
//! - [`hostname`]: listener and route hostnames, matching and intersection.
//! - [`listener`]: one listener among the others: route kinds, conflicts,
//!   certificates.
//! - [`attach`]: the listeners a route attaches to through one parentRef.
//! - `status`: the Gateway's status document.

pub(crate) mod attach;
pub(crate) mod hostname;
pub(crate) mod listener;
mod status;
mod validate;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use weft_api::resource::gateway::Spec;
use weft_api::resource::{Key, Object};

pub(crate) use self::attach::Refusal;
pub(crate) use self::status::invalid as invalid_status;
pub(crate) use self::validate::validate;

/// A validated `Gateway`.
pub(crate) struct Gateway<'a> {
    pub(crate) object: &'a Object,
    pub(crate) spec: Spec,
}

/// Where a route `parentRefs` entry naming a Gateway leads: the route's `Accepted`
/// message (naming the listeners it attached to), or why it did not attach.
pub(crate) type Parent = Result<String, Refusal>;

/// What compiling the Gateways gives.
#[derive(Default)]
pub(crate) struct Compiled {
    /// Each valid Gateway's status.
    pub(crate) statuses: Vec<(Key, Value)>,
    /// Per (route index, `parentRefs` index) of a parentRef naming a Gateway.
    pub(crate) parents: BTreeMap<(usize, usize), Parent>,
    /// `(namespace, name)` of every Gateway, valid or not.
    pub(crate) names: BTreeSet<(String, String)>,
}

/// What attaching a route to Gateways reads of it (the route compile makes one per
/// route; this module does not know routes otherwise).
pub(crate) struct Attaching<'a> {
    /// The route.
    pub(crate) object: &'a Object,
    /// `HTTPRoute`, `GRPCRoute` or `TCPRoute`.
    pub(crate) kind: weft_api::resource::Kind,
    /// Its `spec.parentRefs`.
    pub(crate) parent_refs: &'a [weft_api::resource::route::ParentRef],
    /// Its `spec.hostnames` (none for TCP).
    pub(crate) hostnames: &'a [String],
}

/// Attaches `routes` (in compile's order) to `gateways`, and gives every status that
/// follows. `invalid` names the Gateways that do not validate: a route naming one is
/// told so, not that it does not exist.
pub(crate) fn compile(
    gateways: &[Gateway<'_>],
    invalid: &BTreeSet<(String, String)>,
    routes: &[Attaching<'_>],
    certificates: &crate::secret::Certificates,
) -> Compiled {
    let index: BTreeMap<(&str, &str), usize> = gateways
        .iter()
        .enumerate()
        .map(|(i, g)| ((g.object.namespace(), g.object.metadata.name.as_str()), i))
        .collect();
    // Per gateway, per listener: the routes attached.
    let mut attached: Vec<Vec<BTreeSet<usize>>> = gateways
        .iter()
        .map(|g| vec![BTreeSet::new(); g.spec.listeners.len()])
        .collect();
    let mut parents = BTreeMap::new();
    for (ri, route) in routes.iter().enumerate() {
        let view = attach::RouteView {
            kind: route.kind,
            namespace: route.object.namespace(),
            hostnames: route.hostnames,
        };
        for (pi, pref) in route.parent_refs.iter().enumerate() {
            if !pref.is_gateway() {
                continue;
            }
            let ns = pref.namespace.as_deref().unwrap_or(view.namespace);
            let name = pref.name.as_str();
            let outcome = match index.get(&(ns, name)) {
                Some(&gi) => attach::listeners((ns, name), &gateways[gi].spec, &view, pref).map(
                    |listeners| {
                        for &li in &listeners {
                            attached[gi][li].insert(ri);
                        }
                        let names: Vec<&str> = listeners
                            .iter()
                            .map(|&li| gateways[gi].spec.listeners[li].name.as_str())
                            .collect();
                        format!(
                            "attached to {} {} of Gateway {ns}/{name}; not served until a \
                             gateway of that name connects (see the Gateway's Programmed \
                             condition)",
                            if names.len() == 1 {
                                "listener"
                            } else {
                                "listeners"
                            },
                            names.join(", ")
                        )
                    },
                ),
                None if invalid.contains(&(ns.to_owned(), name.to_owned())) => Err(Refusal {
                    reason: "NoMatchingParent",
                    message: format!(
                        "Gateway {ns}/{name} does not validate, so no route attaches to it; \
                         see its status"
                    ),
                }),
                None => Err(Refusal {
                    reason: "NoMatchingParent",
                    message: format!("Gateway {ns}/{name} not found"),
                }),
            };
            parents.insert((ri, pi), outcome);
        }
    }
    let statuses = gateways
        .iter()
        .zip(&attached)
        .filter_map(|(g, per_listener)| {
            let counts: Vec<usize> = per_listener.iter().map(BTreeSet::len).collect();
            Some((
                g.object.key().ok()?,
                status::gateway(g, &counts, certificates),
            ))
        })
        .collect();
    let mut names: BTreeSet<(String, String)> = invalid.clone();
    names.extend(gateways.iter().map(|g| {
        (
            g.object.namespace().to_owned(),
            g.object.metadata.name.clone(),
        )
    }));
    Compiled {
        statuses,
        parents,
        names,
    }
}
