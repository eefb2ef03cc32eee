//! `Mesh`: validation, and the values compile reads from it (the trust domain and the
//! mTLS mode).

use weft_api::resource::mesh::{CaType, Spec, MESH_NAME};
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
    validate_default_actions(spec, errors);
    validate_providers(spec, errors);
    validate_ca(spec, errors);
    validate_dns(spec, errors);
    crate::export::validate(
        errors,
        "spec.defaultExportTo",
        &spec.default_export_to,
        None,
    );
}

/// Each override names a namespace (and maybe a service) once.
fn validate_default_actions(spec: &Spec, errors: &mut Errors) {
    let mut seen = std::collections::HashSet::new();
    for (i, o) in spec.default_action_overrides.iter().enumerate() {
        let path = format!("spec.defaultActionOverrides[{i}]");
        field::label(errors, &format!("{path}.namespace"), &o.namespace);
        if let Some(service) = &o.service {
            field::label(errors, &format!("{path}.service"), service);
        }
        if !seen.insert((o.namespace.as_str(), o.service.as_deref())) {
            let what = match &o.service {
                Some(svc) => format!("service {}/{svc}", o.namespace),
                None => format!("namespace {}", o.namespace),
            };
            errors.push(path, format!("{what} has another override above; keep one"));
        }
    }
}

/// Each provider has a unique name, a loopback address and a positive timeout.
fn validate_providers(spec: &Spec, errors: &mut Errors) {
    let mut seen = std::collections::HashSet::new();
    for (i, p) in spec.authorization_providers.iter().enumerate() {
        let path = format!("spec.authorizationProviders[{i}]");
        field::label(errors, &format!("{path}.name"), &p.name);
        if !seen.insert(p.name.as_str()) {
            errors.push(
                format!("{path}.name"),
                format!("{:?} is used by another provider above", p.name),
            );
        }
        if !p.address.ip().is_loopback() {
            errors.push(
                format!("{path}.address"),
                format!(
                    "{} is not a loopback address: each proxy sends the request's headers and \
                     caller to it in plaintext, so run the server beside every proxy \
                     (127.0.0.1:<port>)",
                    p.address
                ),
            );
        }
        if let Some(t) = &p.timeout {
            field::positive_duration(
                errors,
                &format!("{path}.timeout"),
                t,
                weft_api::duration::MAX,
            );
        }
    }
}

/// The DNS domain is a DNS name, and the VIP range has room and cannot shadow
/// loopback, multicast or the unspecified address.
fn validate_dns(spec: &Spec, errors: &mut Errors) {
    let dns = &spec.dns;
    if !field::is_subdomain(&dns.domain) {
        errors.push(
            "spec.dns.domain",
            format!(
                "{:?} is not a valid DNS domain: use lowercase DNS labels separated by '.', \
                 e.g. \"cluster.local\"",
                dns.domain
            ),
        );
    }
    let range = dns.vip_range;
    let network = range.network();
    if range.host_bits() < 2 {
        errors.push(
            "spec.dns.vipRange",
            format!(
                "{range} is too small to allocate from: use at least a /30 (IPv4) or /126 (IPv6)"
            ),
        );
    } else if network.is_loopback() || network.is_multicast() || network.is_unspecified() {
        errors.push(
            "spec.dns.vipRange",
            format!(
                "{range} overlaps loopback, multicast or the unspecified address; use a range \
                 no host uses, e.g. the default 240.240.0.0/16"
            ),
        );
    }
}

/// A provided CA names its files, by absolute path (the control plane's working
/// directory is not the operator's).
fn validate_ca(spec: &Spec, errors: &mut Errors) {
    if spec.ca.kind != CaType::Provided {
        return;
    }
    let Some(provided) = &spec.ca.provided else {
        errors.push(
            "spec.ca.provided",
            "required when spec.ca.type is provided: give certFile and keyFile (and chainFile \
             when certFile is an intermediate), absolute paths on the control-plane host",
        );
        return;
    };
    let files = [
        ("spec.ca.provided.certFile", Some(&provided.cert_file)),
        ("spec.ca.provided.keyFile", Some(&provided.key_file)),
        ("spec.ca.provided.chainFile", provided.chain_file.as_ref()),
    ];
    for (path, file) in files {
        let Some(file) = file else { continue };
        if file.is_empty() {
            errors.push(
                path,
                "must not be empty: give an absolute path on the control-plane host",
            );
        } else if !std::path::Path::new(file).is_absolute() {
            errors.push(
                path,
                format!("{file:?} is relative: give an absolute path on the control-plane host"),
            );
        }
    }
}

/// `status.ca` of the `Mesh` named `default`, if the control plane has written one.
pub(crate) fn ca_status(objects: &[&Object]) -> Option<weft_api::resource::mesh::CaStatus> {
    objects
        .iter()
        .find(|o| o.kind().is_ok_and(|k| k == Kind::Mesh) && o.metadata.name == MESH_NAME)
        .and_then(|o| weft_api::resource::mesh::CaStatus::of(o.status.as_ref()))
}

/// The spec of the `Mesh` named `default` if it parses, else the defaults.
pub(crate) fn spec(objects: &[&Object]) -> Spec {
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
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::{parse_documents, validate};

    fn errors(yaml: &str) -> Vec<String> {
        let objects = parse_documents(yaml).expect("test YAML parses");
        match validate(&objects[0]) {
            Ok(()) => Vec::new(),
            Err(e) => {
                e.0.into_iter()
                    .map(|e| format!("{}: {}", e.path, e.message))
                    .collect()
            }
        }
    }

    const HEAD: &str = "apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata: { name: default }\n";

    #[test]
    fn every_default_action_is_accepted_now_that_it_is_enforced() {
        for action in ["allow", "deny", "audit"] {
            let yaml = format!(
                "{HEAD}spec:\n  defaultAction: {action}\n  defaultActionOverrides:\n    - {{ namespace: shop, defaultAction: {action} }}\n"
            );
            assert_eq!(errors(&yaml), Vec::<String>::new(), "{action}");
        }
    }

    #[test]
    fn default_action_overrides_name_each_namespace_or_service_once() {
        let yaml = format!(
            "{HEAD}spec:\n  defaultActionOverrides:\n    - {{ namespace: shop, defaultAction: deny }}\n    - {{ namespace: shop, service: cart, defaultAction: audit }}\n    - {{ namespace: shop, defaultAction: allow }}\n    - {{ namespace: Shop, defaultAction: deny }}\n"
        );
        let errors = errors(&yaml);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with(
                "spec.defaultActionOverrides[2]: namespace shop has another override above"
            ),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("spec.defaultActionOverrides[3].namespace"),
            "{errors:?}"
        );
    }

    #[test]
    fn default_action_allow_is_accepted() {
        let yaml = format!("{HEAD}spec:\n  defaultAction: allow\n");
        assert_eq!(errors(&yaml), Vec::<String>::new());
    }

    #[test]
    fn provided_ca_with_absolute_paths_is_valid() {
        let yaml = format!(
            "{HEAD}spec:\n  ca:\n    type: provided\n    provided:\n      certFile: /etc/weft/ca.crt\n      keyFile: /etc/weft/ca.key\n      chainFile: /etc/weft/chain.crt\n"
        );
        assert_eq!(errors(&yaml), Vec::<String>::new());
    }

    #[test]
    fn provided_ca_requires_its_files() {
        let yaml = format!("{HEAD}spec:\n  ca:\n    type: provided\n");
        let errors = errors(&yaml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec.ca.provided: required"),
            "{errors:?}"
        );
    }

    #[test]
    fn provided_ca_rejects_relative_and_empty_paths() {
        let yaml = format!(
            "{HEAD}spec:\n  ca:\n    type: provided\n    provided:\n      certFile: ca.crt\n      keyFile: \"\"\n      chainFile: ./chain.crt\n"
        );
        let paths: Vec<String> = errors(&yaml)
            .into_iter()
            .map(|e| e.split(':').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "spec.ca.provided.certFile",
                "spec.ca.provided.keyFile",
                "spec.ca.provided.chainFile"
            ]
        );
    }

    #[test]
    fn provided_ca_rejects_unknown_fields() {
        let yaml = format!(
            "{HEAD}spec:\n  ca:\n    type: provided\n    provided:\n      certFile: /a\n      keyFile: /b\n      certPem: x\n"
        );
        assert!(
            errors(&yaml).iter().any(|e| e.contains("certPem")),
            "{:?}",
            errors(&yaml)
        );
    }

    #[test]
    fn builtin_ca_needs_no_files() {
        let yaml = format!("{HEAD}spec:\n  ca:\n    type: builtin\n");
        assert_eq!(errors(&yaml), Vec::<String>::new());
    }
}
