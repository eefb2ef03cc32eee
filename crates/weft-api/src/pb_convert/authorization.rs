//! The `Authorization` of an `InboundPolicy`, on the wire ↔ in the proxy model.
//!
//! An action or principal this proxy does not know (a newer control plane) is an
//! error, so the resource is refused (NACKed) rather than enforced partly.

use std::collections::BTreeMap;

use super::route::{key_value, key_value_to_pb};
use super::{port, Error};
use crate::pb::v1 as pb;
use crate::proxy;

fn action(path: &str, value: i32) -> Result<proxy::Action, Error> {
    match pb::AuthzAction::try_from(value) {
        Ok(pb::AuthzAction::Allow) => Ok(proxy::Action::Allow),
        Ok(pb::AuthzAction::Deny) => Ok(proxy::Action::Deny),
        Ok(pb::AuthzAction::Audit) => Ok(proxy::Action::Audit),
        Ok(pb::AuthzAction::Custom) => Ok(proxy::Action::Custom),
        Err(_) => Err(Error::new(
            path,
            format!("unknown action {value} (a newer control plane? upgrade this proxy)"),
        )),
    }
}

fn default_action(path: &str, value: i32) -> Result<proxy::DefaultAction, Error> {
    match action(path, value)? {
        proxy::Action::Allow => Ok(proxy::DefaultAction::Allow),
        proxy::Action::Deny => Ok(proxy::DefaultAction::Deny),
        proxy::Action::Audit => Ok(proxy::DefaultAction::Audit),
        proxy::Action::Custom => Err(Error::new(
            path,
            "custom is not a default action (allow, deny or audit)",
        )),
    }
}

fn action_to_pb(a: proxy::Action) -> pb::AuthzAction {
    match a {
        proxy::Action::Allow => pb::AuthzAction::Allow,
        proxy::Action::Deny => pb::AuthzAction::Deny,
        proxy::Action::Audit => pb::AuthzAction::Audit,
        proxy::Action::Custom => pb::AuthzAction::Custom,
    }
}

/// The wire form of a default action.
pub fn default_action_to_pb(a: proxy::DefaultAction) -> pb::AuthzAction {
    match a {
        proxy::DefaultAction::Allow => pb::AuthzAction::Allow,
        proxy::DefaultAction::Deny => pb::AuthzAction::Deny,
        proxy::DefaultAction::Audit => pb::AuthzAction::Audit,
    }
}

fn ports(path: &str, list: &[u32]) -> Result<Vec<u16>, Error> {
    list.iter()
        .enumerate()
        .map(|(i, p)| port(&format!("{path}.ports[{i}]"), *p))
        .collect()
}

fn principal(path: &str, p: &pb::Principal) -> Result<proxy::Principal, Error> {
    match &p.kind {
        Some(pb::principal::Kind::Identity(id)) if !id.is_empty() => {
            Ok(proxy::Principal::identity(id.clone()))
        }
        Some(pb::principal::Kind::Unauthenticated(true)) => Ok(proxy::Principal::unauthenticated()),
        _ => Err(Error::new(
            path,
            "names nobody: give an identity or unauthenticated: true",
        )),
    }
}

fn principal_to_pb(p: &proxy::Principal) -> pb::Principal {
    pb::Principal {
        kind: Some(match &p.identity {
            Some(id) => pb::principal::Kind::Identity(id.clone()),
            None => pb::principal::Kind::Unauthenticated(p.unauthenticated),
        }),
    }
}

fn path_pattern(path: &str, p: &pb::PathPattern) -> Result<proxy::PathPattern, Error> {
    let (kind, value) = match &p.kind {
        Some(pb::path_pattern::Kind::Exact(v)) => (proxy::PathPatternType::Exact, v),
        Some(pb::path_pattern::Kind::Prefix(v)) => (proxy::PathPatternType::PathPrefix, v),
        Some(pb::path_pattern::Kind::Glob(v)) => (proxy::PathPatternType::Glob, v),
        None => return Err(Error::new(path, "empty: give exact, prefix or glob")),
    };
    if !value.starts_with('/') {
        return Err(Error::new(path, format!("{value:?} must start with '/'")));
    }
    Ok(proxy::PathPattern {
        kind,
        value: value.clone(),
        ignore_case: p.ignore_case,
    })
}

fn path_pattern_to_pb(p: &proxy::PathPattern) -> pb::PathPattern {
    let value = p.value.clone();
    pb::PathPattern {
        kind: Some(match p.kind {
            proxy::PathPatternType::Exact => pb::path_pattern::Kind::Exact(value),
            proxy::PathPatternType::PathPrefix => pb::path_pattern::Kind::Prefix(value),
            proxy::PathPatternType::Glob => pb::path_pattern::Kind::Glob(value),
        }),
        ignore_case: p.ignore_case,
    }
}

fn operation(path: &str, o: &pb::Operation) -> Result<proxy::Operation, Error> {
    Ok(proxy::Operation {
        ports: ports(path, &o.ports)?,
        paths: o
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| path_pattern(&format!("{path}.paths[{i}]"), p))
            .collect::<Result<_, _>>()?,
        methods: o.methods.clone(),
        hosts: o.hosts.clone(),
        headers: o
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| key_value(&format!("{path}.headers[{i}]"), h))
            .collect::<Result<_, _>>()?,
        grpc: o
            .grpc
            .iter()
            .map(|g| proxy::GrpcMethod {
                service: (!g.service.is_empty()).then(|| g.service.clone()),
                method: (!g.method.is_empty()).then(|| g.method.clone()),
            })
            .collect(),
    })
}

/// The wire form of a rule's request conditions.
pub fn operation_to_pb(o: &proxy::Operation) -> pb::Operation {
    pb::Operation {
        ports: o.ports.iter().map(|p| u32::from(*p)).collect(),
        paths: o.paths.iter().map(path_pattern_to_pb).collect(),
        methods: o.methods.clone(),
        hosts: o.hosts.clone(),
        headers: o.headers.iter().map(key_value_to_pb).collect(),
        grpc: o
            .grpc
            .iter()
            .map(|g| pb::GrpcMethod {
                service: g.service.clone().unwrap_or_default(),
                method: g.method.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

fn permission(path: &str, p: &pb::Permission) -> Result<proxy::Permission, Error> {
    let act = action(&format!("{path}.action"), p.action)?;
    if act == proxy::Action::Custom && p.provider.is_empty() {
        return Err(Error::new(
            format!("{path}.provider"),
            "a custom rule names the provider to ask",
        ));
    }
    Ok(proxy::Permission {
        action: act,
        provider: (!p.provider.is_empty()).then(|| p.provider.clone()),
        ports: ports(path, &p.ports)?,
        from: p
            .from
            .iter()
            .enumerate()
            .map(|(i, f)| principal(&format!("{path}.from[{i}]"), f))
            .collect::<Result<_, _>>()?,
        to: p
            .to
            .iter()
            .enumerate()
            .map(|(i, o)| operation(&format!("{path}.to[{i}]"), o))
            .collect::<Result<_, _>>()?,
        source: (!p.source.is_empty()).then(|| p.source.clone()),
        rule: p.rule,
    })
}

/// The wire form of one rule.
pub fn permission_to_pb(p: &proxy::Permission) -> pb::Permission {
    pb::Permission {
        action: action_to_pb(p.action) as i32,
        ports: p.ports.iter().map(|n| u32::from(*n)).collect(),
        from: p.from.iter().map(principal_to_pb).collect(),
        to: p.to.iter().map(operation_to_pb).collect(),
        source: p.source.clone().unwrap_or_default(),
        rule: p.rule,
        provider: p.provider.clone().unwrap_or_default(),
    }
}

fn provider(path: &str, p: &pb::ExtAuthzProvider) -> Result<proxy::ExtAuthz, Error> {
    let address = p.address.parse().map_err(|_| {
        Error::new(
            format!("{path}.address"),
            format!("{:?} is not ip:port", p.address),
        )
    })?;
    let timeout = match &p.timeout {
        Some(d) => super::duration_from_pb(&format!("{path}.timeout"), d)?,
        None => proxy::DEFAULT_EXT_AUTHZ_TIMEOUT,
    };
    Ok(proxy::ExtAuthz {
        name: p.name.clone(),
        address,
        timeout,
        fail_open: p.fail_open,
    })
}

pub(super) fn authorization(
    path: &str,
    a: Option<&pb::Authorization>,
) -> Result<proxy::Authorization, Error> {
    let Some(a) = a else {
        return Ok(proxy::Authorization::default());
    };
    let mut ports = BTreeMap::new();
    for (i, entry) in a.ports.iter().enumerate() {
        let epath = format!("{path}.ports[{i}]");
        let number = port(&format!("{epath}.port"), entry.port)?;
        let act = default_action(&format!("{epath}.action"), entry.action)?;
        if ports.insert(number, act).is_some() {
            return Err(Error::new(
                format!("{epath}.port"),
                format!("port {number} is listed twice"),
            ));
        }
    }
    Ok(proxy::Authorization {
        default_action: default_action(&format!("{path}.defaultAction"), a.default_action)?,
        ports,
        rules: a
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| permission(&format!("{path}.rules[{i}]"), r))
            .collect::<Result<_, _>>()?,
        providers: a
            .providers
            .iter()
            .enumerate()
            .map(|(i, p)| provider(&format!("{path}.providers[{i}]"), p))
            .collect::<Result<_, _>>()?,
    })
}

/// The wire form of an authorization, `None` when it is the default.
pub fn authorization_to_pb(a: &proxy::Authorization) -> Option<pb::Authorization> {
    if a.is_default() {
        return None;
    }
    Some(pb::Authorization {
        default_action: default_action_to_pb(a.default_action) as i32,
        ports: a
            .ports
            .iter()
            .map(|(&port, &act)| pb::PortAuthzAction {
                port: u32::from(port),
                action: default_action_to_pb(act) as i32,
            })
            .collect(),
        rules: a.rules.iter().map(permission_to_pb).collect(),
        providers: a
            .providers
            .iter()
            .map(|p| pb::ExtAuthzProvider {
                name: p.name.clone(),
                address: p.address.to_string(),
                timeout: Some(super::duration_to_pb(p.timeout)),
                fail_open: p.fail_open,
            })
            .collect(),
    })
}
