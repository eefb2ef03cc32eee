//! Validation of a `Gateway` on its own: what the Gateway API refuses, and what Weft
//! would otherwise accept and not enforce (a hostname on a TCP listener, certificates
//! on a passthrough one, a namespace selector on a label namespaces do not have).
//! What depends on other objects or on the listeners together (conflicts, Secrets,
//! route kinds) is the status's business.

use std::collections::btree_map::{BTreeMap, Entry};

use weft_api::resource::gateway::{
    AllowedRoutes, FromNamespaces, LabelSelector, Listener, Protocol, SelectorOperator, Spec, Tls,
    TlsMode, CLASS_NAME, NAMESPACE_NAME_LABEL,
};

use super::hostname;
use super::listener::a;
use crate::field::{self, Errors};

/// Most listeners a Gateway may have (as in the Gateway API).
const MAX_LISTENERS: usize = 64;
/// Most certificates a listener may name (as in the Gateway API).
const MAX_CERTIFICATES: usize = 64;
/// Most route kinds a listener may list (as in the Gateway API).
const MAX_KINDS: usize = 8;

/// Checks a parsed `Gateway` spec.
pub(crate) fn validate(spec: &Spec, errors: &mut Errors) {
    if spec.gateway_class_name != CLASS_NAME {
        errors.push(
            "spec.gatewayClassName",
            format!(
                "{:?} is not a class Weft serves: use gatewayClassName: {CLASS_NAME}",
                spec.gateway_class_name
            ),
        );
    }
    if !spec.addresses.is_empty() {
        errors.push(
            "spec.addresses",
            "not supported: a gateway listens on the addresses of the host it runs on; \
             remove spec.addresses",
        );
    }
    if spec.listeners.is_empty() {
        errors.push(
            "spec.listeners",
            "a Gateway needs at least one listener, e.g. [{name: http, port: 80, protocol: HTTP}]",
        );
    } else if spec.listeners.len() > MAX_LISTENERS {
        errors.push(
            "spec.listeners",
            format!(
                "{} listeners is more than {MAX_LISTENERS}; split them over several Gateways",
                spec.listeners.len()
            ),
        );
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, l) in spec.listeners.iter().enumerate() {
        let path = format!("spec.listeners[{i}]");
        field::label(errors, &format!("{path}.name"), &l.name);
        match names.entry(&l.name) {
            Entry::Occupied(first) => errors.push(
                format!("{path}.name"),
                format!(
                    "{:?} is also the name of spec.listeners[{}]; listener names are unique \
                     in a Gateway",
                    l.name,
                    first.get()
                ),
            ),
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
        field::port(errors, &format!("{path}.port"), l.port);
        listener(errors, &path, l);
    }
}

fn listener(errors: &mut Errors, path: &str, l: &Listener) {
    if let Some(h) = &l.hostname {
        if !l.protocol.has_hostname() {
            errors.push(
                format!("{path}.hostname"),
                format!(
                    "{h:?}: a TCP listener has no hostname, as TCP carries none to match; \
                     remove it, or use protocol TLS to route by SNI"
                ),
            );
        } else if !hostname::is_valid(h) {
            errors.push(
                format!("{path}.hostname"),
                format!(
                    "{h:?} is not a valid hostname: a lowercase DNS name, optionally with one \
                     leading wildcard label (\"*.example.com\"); no IPs or ports"
                ),
            );
        }
    }
    match (&l.tls, l.protocol) {
        (None, Protocol::Https) => errors.push(
            format!("{path}.tls"),
            "required for an HTTPS listener: the certificate it terminates TLS with, e.g. \
             {certificateRefs: [{kind: Secret, name: shop-cert}]}",
        ),
        (None, Protocol::Tls) => errors.push(
            format!("{path}.tls"),
            "required for a TLS listener: {mode: Passthrough} (the backend ends TLS; to end \
             it at the gateway, use protocol HTTPS)",
        ),
        (None, Protocol::Http | Protocol::Tcp) => {}
        (Some(_), Protocol::Http | Protocol::Tcp) => errors.push(
            format!("{path}.tls"),
            format!(
                "{} listener is plaintext and takes no tls; remove it, or use protocol {}",
                a(l.protocol),
                if l.protocol == Protocol::Http {
                    "HTTPS"
                } else {
                    "TLS"
                }
            ),
        ),
        (Some(tls), Protocol::Https | Protocol::Tls) => {
            self::tls(errors, &format!("{path}.tls"), l.protocol, tls);
        }
    }
    if let Some(allowed) = &l.allowed_routes {
        allowed_routes(errors, &format!("{path}.allowedRoutes"), allowed);
    }
}

fn tls(errors: &mut Errors, path: &str, protocol: Protocol, tls: &Tls) {
    let mode = tls.mode();
    match (protocol, mode) {
        (Protocol::Https, TlsMode::Passthrough) => errors.push(
            format!("{path}.mode"),
            "Passthrough: an HTTPS listener terminates TLS (mode Terminate); to pass \
             connections through by SNI, use protocol TLS",
        ),
        (Protocol::Tls, TlsMode::Terminate) => errors.push(
            format!("{path}.mode"),
            format!(
                "{}: a TLS listener passes connections through by SNI, so set mode: \
                 Passthrough; to terminate TLS, use protocol HTTPS",
                if tls.mode.is_some() {
                    "Terminate"
                } else {
                    "Terminate (the default)"
                }
            ),
        ),
        _ => {}
    }
    match mode {
        TlsMode::Terminate if tls.certificate_refs.is_empty() => errors.push(
            format!("{path}.certificateRefs"),
            "mode Terminate needs at least one certificateRef, e.g. [{kind: Secret, name: \
             shop-cert}]",
        ),
        TlsMode::Passthrough if !tls.certificate_refs.is_empty() => errors.push(
            format!("{path}.certificateRefs"),
            "mode Passthrough uses no certificate (the backend ends TLS); remove \
             certificateRefs",
        ),
        _ => {}
    }
    if tls.certificate_refs.len() > MAX_CERTIFICATES {
        errors.push(
            format!("{path}.certificateRefs"),
            format!(
                "{} certificates is more than {MAX_CERTIFICATES}",
                tls.certificate_refs.len()
            ),
        );
    }
    for (i, r) in tls.certificate_refs.iter().enumerate() {
        let rpath = format!("{path}.certificateRefs[{i}]");
        if let Some(group) = r.group.as_deref().filter(|g| !g.is_empty()) {
            errors.push(
                format!("{rpath}.group"),
                format!("{group:?} is not supported: certificates are Secrets (group \"\")"),
            );
        }
        if r.kind() != "Secret" {
            errors.push(
                format!("{rpath}.kind"),
                format!(
                    "{:?} is not supported: certificates are in Secrets (kind: Secret)",
                    r.kind()
                ),
            );
        }
        field::label(errors, &format!("{rpath}.name"), &r.name);
        if let Some(ns) = &r.namespace {
            field::label(errors, &format!("{rpath}.namespace"), ns);
        }
    }
}

fn allowed_routes(errors: &mut Errors, path: &str, allowed: &AllowedRoutes) {
    if let Some(namespaces) = &allowed.namespaces {
        let npath = format!("{path}.namespaces");
        match (namespaces.from(), &namespaces.selector) {
            (FromNamespaces::Selector, None) => errors.push(
                format!("{npath}.selector"),
                format!(
                    "required with from: Selector, e.g. {{matchLabels: \
                     {{{NAMESPACE_NAME_LABEL}: shop}}}}"
                ),
            ),
            (FromNamespaces::Selector, Some(selector)) => {
                self::selector(errors, &format!("{npath}.selector"), selector);
            }
            (from, Some(_)) => errors.push(
                format!("{npath}.selector"),
                format!(
                    "used only with from: Selector (from is {from:?}); remove it, or set \
                     from: Selector"
                ),
            ),
            (_, None) => {}
        }
    }
    if allowed.kinds.len() > MAX_KINDS {
        errors.push(
            format!("{path}.kinds"),
            format!("{} kinds is more than {MAX_KINDS}", allowed.kinds.len()),
        );
    }
    for (i, k) in allowed.kinds.iter().enumerate() {
        if k.kind.is_empty() {
            errors.push(
                format!("{path}.kinds[{i}].kind"),
                "required: a route kind, e.g. HTTPRoute",
            );
        }
    }
}

/// A namespace selector. Weft has no `Namespace` objects, so a namespace has one
/// label, `kubernetes.io/metadata.name: <its name>`; a selector on any other key would
/// select nothing, silently, and is refused.
fn selector(errors: &mut Errors, path: &str, selector: &LabelSelector) {
    let other_key = |errors: &mut Errors, at: String, key: &str| {
        errors.push(
            at,
            format!(
                "{key:?}: namespaces have only the label {NAMESPACE_NAME_LABEL} (their name) \
                 in Weft, so select them by name, e.g. {{key: {NAMESPACE_NAME_LABEL}, \
                 operator: In, values: [shop, web]}}"
            ),
        );
    };
    for (key, value) in &selector.match_labels {
        if key == NAMESPACE_NAME_LABEL {
            field::label(errors, &format!("{path}.matchLabels.{key}"), value);
        } else {
            other_key(errors, format!("{path}.matchLabels.{key}"), key);
        }
    }
    for (i, r) in selector.match_expressions.iter().enumerate() {
        let rpath = format!("{path}.matchExpressions[{i}]");
        if r.key != NAMESPACE_NAME_LABEL {
            other_key(errors, format!("{rpath}.key"), &r.key);
        }
        match r.operator {
            SelectorOperator::In | SelectorOperator::NotIn if r.values.is_empty() => errors.push(
                format!("{rpath}.values"),
                format!(
                    "required with operator {:?}: at least one namespace name",
                    r.operator
                ),
            ),
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !r.values.is_empty() => {
                errors.push(
                    format!("{rpath}.values"),
                    format!("must be empty with operator {:?}", r.operator),
                );
            }
            _ => {}
        }
        for (j, v) in r.values.iter().enumerate() {
            field::label(errors, &format!("{rpath}.values[{j}]"), v);
        }
    }
}
