//! `Workload`: validation, and reading the phase the control plane wrote.

use std::collections::HashSet;

use weft_api::resource::workload::{Phase, Spec};
use weft_api::resource::Object;

use crate::field::{self, Errors};

/// Checks a parsed `Workload` spec.
pub(crate) fn validate(spec: &Spec, errors: &mut Errors) {
    field::label(errors, "spec.serviceAccount", &spec.service_account);
    if spec.address.is_unspecified() || spec.address.is_multicast() {
        errors.push(
            "spec.address",
            format!(
                "{} cannot be a workload address; give the unicast address peers reach it at",
                spec.address
            ),
        );
    }
    if let Some(hbone) = spec.hbone {
        field::port(errors, "spec.hbone", hbone.port());
    }
    let mut seen = HashSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}].port");
        field::port(errors, &path, p.port);
        if !seen.insert(p.port) {
            errors.push(path, format!("port {} is listed twice", p.port));
        }
    }
    if let Some(zone) = &spec.zone {
        if zone.is_empty()
            || zone.len() > 253
            || zone.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            errors.push(
                "spec.zone",
                format!("{zone:?} is not a valid zone (non-empty, no spaces), e.g. \"eu-west-1a\""),
            );
        }
    }
}

/// `status.phase`, if it is one the compiler knows.
pub(crate) fn phase(object: &Object) -> Option<Phase> {
    let phase = object.status.as_ref()?.get("phase")?.clone();
    serde_json::from_value(phase).ok()
}
