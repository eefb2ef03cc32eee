//! `Mesh`: validation, and the one value compile reads from it (the trust domain).

use weft_api::resource::mesh::{Spec, DEFAULT_TRUST_DOMAIN, MESH_NAME};
use weft_api::resource::{Kind, Object};

use crate::field::{self, Errors};

/// Checks a parsed `Mesh` spec and its name.
pub(crate) fn validate(object: &Object, spec: &Spec, errors: &mut Errors) {
    if object.metadata.name != MESH_NAME {
        errors.push(
            "metadata.name",
            format!(
                "{:?}: there is one Mesh and it is named {MESH_NAME:?}; rename it",
                object.metadata.name
            ),
        );
    }
    if !field::is_subdomain(&spec.trust_domain) {
        errors.push(
            "spec.trustDomain",
            format!(
                "{:?} is not a valid trust domain: use lowercase DNS labels separated by '.', \
                 e.g. \"cluster.local\"",
                spec.trust_domain
            ),
        );
    }
}

/// The trust domain of the mesh: that of the `Mesh` named `default` if it parses,
/// else `cluster.local`.
pub(crate) fn trust_domain(objects: &[&Object]) -> String {
    objects
        .iter()
        .filter(|o| o.kind().is_ok_and(|k| k == Kind::Mesh) && o.metadata.name == MESH_NAME)
        .find_map(|o| {
            let value = if o.spec.is_null() {
                serde_json::json!({})
            } else {
                o.spec.clone()
            };
            field::parse::<Spec>("spec", value).ok()
        })
        .map_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned(), |s| s.trust_domain)
}
