//! Status documents compile produces, in Gateway API shape. No timestamps: the same
//! inputs give the same status, so the control plane writes only real changes.

use serde_json::{json, Map, Value};
use weft_api::proxy::ValidationErrors;
use weft_api::resource::route::{ParentRef, DEFAULT_REF_KIND};

/// `controllerName` of every route parent status Weft writes.
pub const CONTROLLER_NAME: &str = "weft.dev/control-plane";

pub(crate) fn condition(
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Value {
    let mut c = Map::new();
    c.insert("type".into(), kind.into());
    c.insert("status".into(), if ok { "True" } else { "False" }.into());
    c.insert("reason".into(), reason.into());
    c.insert("message".into(), message.into());
    if let Some(g) = generation {
        c.insert("observedGeneration".into(), g.into());
    }
    Value::Object(c)
}

/// One `status.parents[]` entry: `Accepted` (the route attached to the parent, with a
/// message saying where, or the Gateway API reason it did not and why) and
/// `ResolvedRefs` (every backend resolves).
pub(crate) fn route_parent(
    pref: &ParentRef,
    namespace: &str,
    generation: Option<i64>,
    accepted: &Result<String, (&str, String)>,
    problems: &[String],
) -> Value {
    let mut parent_ref = Map::new();
    parent_ref.insert(
        "group".into(),
        pref.group.clone().unwrap_or_default().into(),
    );
    parent_ref.insert(
        "kind".into(),
        pref.kind
            .clone()
            .unwrap_or_else(|| DEFAULT_REF_KIND.to_owned())
            .into(),
    );
    parent_ref.insert("name".into(), pref.name.clone().into());
    parent_ref.insert("namespace".into(), namespace.into());
    if let Some(section) = &pref.section_name {
        parent_ref.insert("sectionName".into(), section.clone().into());
    }
    if let Some(p) = pref.port {
        parent_ref.insert("port".into(), p.into());
    }
    let accepted = match accepted {
        Ok(message) => condition("Accepted", true, "Accepted", message, generation),
        Err((reason, message)) => condition("Accepted", false, reason, message, generation),
    };
    let resolved = if problems.is_empty() {
        condition(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "every backend resolved",
            generation,
        )
    } else {
        condition(
            "ResolvedRefs",
            false,
            "BackendNotFound",
            &format!(
                "{}; requests for a rule with no resolved backend get 503",
                problems.join("; ")
            ),
            generation,
        )
    };
    json!({
        "parentRef": parent_ref,
        "controllerName": CONTROLLER_NAME,
        "conditions": [accepted, resolved],
    })
}

/// Status of a route whose stored spec no longer validates (e.g. written by an older
/// version): it compiles to nothing, and says why.
pub(crate) fn invalid_route(errors: &ValidationErrors, generation: Option<i64>) -> Value {
    json!({
        "parents": [],
        "conditions": [condition("Accepted", false, "Invalid", &errors.to_string(), generation)],
    })
}

/// `Service.status`: how many endpoints it has, and why it has none when its spec does
/// not validate.
pub(crate) fn service(
    endpoints: usize,
    vip: Option<std::net::IpAddr>,
    vip_problem: Option<&str>,
    refused: &[String],
    export: &crate::Export,
    generation: Option<i64>,
) -> Value {
    let mut status = Map::new();
    status.insert("endpoints".into(), endpoints.into());
    // The effective exportTo (the service's own or the mesh default), resolved.
    status.insert("exportTo".into(), export.to_list().into());
    if let Some(vip) = vip {
        status.insert("vip".into(), vip.to_string().into());
    }
    let mut conditions = Vec::new();
    if let Some(problem) = vip_problem {
        conditions.push(condition(
            "VipAllocated",
            false,
            "VipUnavailable",
            problem,
            generation,
        ));
    }
    if !refused.is_empty() {
        conditions.push(condition(
            "EndpointsAllowed",
            false,
            "ServiceAccountNotAllowed",
            &format!(
                "selected but not endpoints, their service accounts are not in \
                 spec.serviceAccounts: {}; add the service account there if the workload \
                 is meant to serve this service, or change its labels",
                refused.join(", ")
            ),
            generation,
        ));
    }
    if !conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    Value::Object(status)
}

/// The status of a `Service` that does not validate.
pub(crate) fn invalid_service(invalid: &ValidationErrors, generation: Option<i64>) -> Value {
    json!({
        "endpoints": 0,
        "conditions": [condition("Accepted", false, "Invalid", &invalid.to_string(), generation)],
    })
}

/// The status of a policy that does not validate: it applies nowhere, and says why.
pub(crate) fn invalid_policy(errors: &ValidationErrors, generation: Option<i64>) -> Value {
    json!({
        "ancestors": [],
        "conditions": [condition("Accepted", false, "Invalid", &errors.to_string(), generation)],
    })
}

/// One `status.ancestors[]` entry of a policy (Gateway API `PolicyAncestorStatus`)
/// for its target `Service` `namespace/name`.
pub(crate) fn policy_ancestor(
    namespace: &str,
    name: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Value {
    ancestor(
        &json!({"group": "", "kind": "Service", "name": name, "namespace": namespace}),
        ok,
        reason,
        message,
        generation,
    )
}

/// One `status.ancestors[]` entry of a policy for any target (`ancestor_ref`: a
/// Gateway API `ParentReference`, e.g. a `Namespace` or the `Mesh`).
pub(crate) fn ancestor(
    ancestor_ref: &Value,
    ok: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) -> Value {
    json!({
        "ancestorRef": ancestor_ref,
        "controllerName": CONTROLLER_NAME,
        "conditions": [condition("Accepted", ok, reason, message, generation)],
    })
}
