//! The Gateway API status of a `Gateway`: `Accepted` and `Programmed` on the Gateway,
//! and per listener `supportedKinds`, `attachedRoutes` and the conditions `Accepted`,
//! `Programmed`, `ResolvedRefs` and `Conflicted`, with the reasons the Gateway API
//! lists. No timestamps, as for every status Weft writes.
//!
//! Nothing serves a Gateway's listeners yet (the gateway process comes later), so
//! `Programmed` is always `False`: `Pending` for a listener that would be served,
//! `Invalid` for one that could not be.

use serde_json::{json, Value};
use weft_api::resource::gateway::GROUP;

use super::listener::{self, Conflict, Kinds, RefProblem};
use super::Gateway;
use crate::status::condition;

/// What one listener comes to.
struct State {
    kinds: Kinds,
    conflict: Option<Conflict>,
    refs: Vec<RefProblem>,
}

impl State {
    /// Whether a gateway could serve it: no conflict, its certificates resolve, and
    /// some route kind may attach.
    fn usable(&self) -> bool {
        self.conflict.is_none() && self.refs.is_empty() && !self.kinds.supported.is_empty()
    }

    /// The one `ResolvedRefs: False` reason for its problems, the gravest first: a
    /// reference not permitted, then a certificate that cannot be read, then route
    /// kinds.
    fn unresolved_reason(&self) -> &'static str {
        let not_permitted = RefProblem::NotPermitted(String::new()).reason();
        self.refs
            .iter()
            .map(RefProblem::reason)
            .min_by_key(|reason| *reason != not_permitted)
            .unwrap_or("InvalidRouteKinds")
    }
}

/// `Gateway.status`, with `attached[i]` routes attached to listener `i`.
pub(super) fn gateway(
    gw: &Gateway<'_>,
    attached: &[usize],
    certificates: &crate::secret::Certificates,
) -> Value {
    let object = gw.object;
    let generation = object.metadata.generation;
    let (namespace, name) = (object.namespace(), object.metadata.name.as_str());
    let not_connected = format!(
        "no gateway named {namespace}/{name} is connected, so nothing serves its listeners \
         yet (the gateway process, `weft gateway`, is not available in this release)"
    );
    let conflicts = listener::conflicts(&gw.spec.listeners);
    let states: Vec<State> = gw
        .spec
        .listeners
        .iter()
        .zip(conflicts)
        .map(|(l, conflict)| State {
            kinds: listener::kinds(l),
            conflict,
            refs: listener::certificate_problems(namespace, l, certificates),
        })
        .collect();

    let listeners: Vec<Value> = gw
        .spec
        .listeners
        .iter()
        .zip(&states)
        .enumerate()
        .map(|(i, (l, state))| {
            let accepted = match &state.conflict {
                Some(c) => condition(
                    "Accepted",
                    false,
                    "PortUnavailable",
                    &format!("not accepted: {}", c.message()),
                    generation,
                ),
                None => condition(
                    "Accepted",
                    true,
                    "Accepted",
                    "the listener is valid",
                    generation,
                ),
            };
            let programmed = if state.usable() {
                condition("Programmed", false, "Pending", &not_connected, generation)
            } else {
                condition(
                    "Programmed",
                    false,
                    "Invalid",
                    "a gateway could not serve this listener: see its other conditions",
                    generation,
                )
            };
            let mut problems: Vec<&str> = state.refs.iter().map(RefProblem::message).collect();
            problems.extend(state.kinds.invalid.iter().map(String::as_str));
            let resolved = if problems.is_empty() {
                condition(
                    "ResolvedRefs",
                    true,
                    "ResolvedRefs",
                    "every reference resolved",
                    generation,
                )
            } else {
                // One reason per condition: the gravest; every problem in the message.
                condition(
                    "ResolvedRefs",
                    false,
                    state.unresolved_reason(),
                    &problems.join("; "),
                    generation,
                )
            };
            let conflicted = match &state.conflict {
                Some(c) => condition("Conflicted", true, c.reason(), c.message(), generation),
                None => condition(
                    "Conflicted",
                    false,
                    "NoConflicts",
                    "no other listener shares its port and hostname",
                    generation,
                ),
            };
            let supported: Vec<Value> = state
                .kinds
                .supported
                .iter()
                .map(|k| json!({"group": GROUP, "kind": k.as_str()}))
                .collect();
            json!({
                "name": l.name,
                "supportedKinds": supported,
                "attachedRoutes": attached.get(i).copied().unwrap_or(0),
                "conditions": [accepted, programmed, resolved, conflicted],
            })
        })
        .collect();

    let not_usable: Vec<String> = gw
        .spec
        .listeners
        .iter()
        .zip(&states)
        .filter(|(_, s)| !s.usable())
        .map(|(l, s)| format!("{} ({})", l.name, why_not(s)))
        .collect();
    let accepted = if not_usable.is_empty() {
        condition(
            "Accepted",
            true,
            "Accepted",
            "every listener is valid",
            generation,
        )
    } else {
        // Accepted while some listener could be served; the message names the others.
        let all = not_usable.len() == states.len();
        condition(
            "Accepted",
            !all,
            "ListenersNotValid",
            &format!(
                "{}: {}; see status.listeners",
                if all {
                    "no listener is valid"
                } else {
                    "some listeners are not valid"
                },
                not_usable.join(", ")
            ),
            generation,
        )
    };
    json!({
        "conditions": [
            accepted,
            condition("Programmed", false, "Pending", &not_connected, generation),
        ],
        "listeners": listeners,
    })
}

/// The reason a listener is not usable, for the Gateway's own condition.
fn why_not(state: &State) -> &'static str {
    match &state.conflict {
        Some(c) => c.reason(),
        None => state.unresolved_reason(),
    }
}

/// The status of a Gateway that does not validate: no listener, and why.
pub(crate) fn invalid(
    errors: &weft_api::proxy::ValidationErrors,
    generation: Option<i64>,
) -> Value {
    json!({
        "conditions": [condition("Accepted", false, "Invalid", &errors.to_string(), generation)],
        "listeners": [],
    })
}
