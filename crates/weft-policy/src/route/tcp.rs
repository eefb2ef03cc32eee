//! `TCPRoute`: validation and reduction. One rule, no matches: a connection to the
//! parent goes to one of the weighted backends.

use weft_api::resource::route::TcpSpec;
use weft_api::resource::{Kind, Object};

use super::{Route, Rule};
use crate::field::{self, Errors};

/// Checks a parsed `TCPRoute` spec.
pub(crate) fn validate(spec: &TcpSpec, errors: &mut Errors) {
    super::validate_parent_refs(errors, &spec.parent_refs);
    if spec.rules.len() != 1 {
        errors.push(
            "spec.rules",
            format!(
                "a TCPRoute has exactly one rule (got {}); weight backends within it instead",
                spec.rules.len()
            ),
        );
    }
    for (r, rule) in spec.rules.iter().enumerate() {
        let rpath = format!("spec.rules[{r}]");
        if let Some(name) = &rule.name {
            field::label(errors, &format!("{rpath}.name"), name);
        }
        super::validate_backend_refs(errors, &rpath, &rule.backend_refs);
    }
}

/// Reduces a valid spec.
pub(crate) fn reduce(object: &Object, spec: TcpSpec) -> Route<'_> {
    Route {
        object,
        kind: Kind::TcpRoute,
        parent_refs: spec.parent_refs,
        hostnames: Vec::new(),
        rules: spec
            .rules
            .into_iter()
            .map(|r| Rule {
                matches: Vec::new(),
                backend_refs: r.backend_refs,
                timeout: None,
                per_try_timeout: None,
                retry: None,
                request_headers: None,
                response_headers: None,
                redirect: None,
                rewrite: None,
                mirrors: Vec::new(),
            })
            .collect(),
    }
}
