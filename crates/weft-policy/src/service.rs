//! `Service`: validation, and compilation into proxy `Service` resources with their
//! endpoints (selected, healthy workloads).

use std::collections::{BTreeSet, HashSet};

use weft_api::pb::v1 as pb;
use weft_api::pb_convert::{load_balancer_to_pb, policy_to_pb, protocol_to_pb};
use weft_api::proxy;
use weft_api::resource::service::Spec;
use weft_api::resource::workload;
use weft_api::resource::Object;

use crate::field::{self, Errors};

/// Checks a parsed `Service` spec (its namespace, to spot `"."` and the namespace's
/// own name both in `exportTo`).
pub(crate) fn validate(object: &Object, spec: &Spec, errors: &mut Errors) {
    field::labels(errors, "spec.selector", &spec.selector);
    if spec.ports.is_empty() {
        errors.push(
            "spec.ports",
            "a service needs at least one port, e.g. [{port: 80, protocol: http}]",
        );
    }
    let mut numbers = HashSet::new();
    let mut names = HashSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        field::port(errors, &format!("{path}.port"), p.port);
        if let Some(t) = p.target_port {
            field::port(errors, &format!("{path}.targetPort"), t);
        }
        if !numbers.insert(p.port) {
            errors.push(
                format!("{path}.port"),
                format!("port {} is listed twice", p.port),
            );
        }
        if let Some(name) = &p.name {
            field::label(errors, &format!("{path}.name"), name);
            if !names.insert(name) {
                errors.push(
                    format!("{path}.name"),
                    format!("port name {name:?} is used twice"),
                );
            }
        }
    }
    let mut accounts = HashSet::new();
    for (i, sa) in spec.service_accounts.iter().enumerate() {
        let path = format!("spec.serviceAccounts[{i}]");
        field::label(errors, &path, sa);
        if !accounts.insert(sa) {
            errors.push(path, format!("service account {sa:?} is listed twice"));
        }
    }
    if let Some(export_to) = &spec.export_to {
        crate::export::validate(errors, "spec.exportTo", export_to, Some(object.namespace()));
    }
    if spec.load_balancer.is_some() {
        errors.push(
            "spec.loadBalancer",
            "moved to a BackendPolicy: spec.loadBalancer.type there (peakEwma, leastRequest, roundRobin, ringHash, maglev)",
        );
    }
    if let Some(vip) = spec.vip {
        if vip.is_unspecified() || vip.is_multicast() {
            errors.push(
                "spec.vip",
                format!("{vip} cannot be a service VIP; use a unicast address or leave it out"),
            );
        }
    }
}

/// A workload as compile sees it: parsed, with its phase.
pub(crate) struct Workload<'a> {
    pub(crate) object: &'a Object,
    pub(crate) spec: workload::Spec,
    pub(crate) phase: Option<workload::Phase>,
}

/// Builds the proxy resource for one service: endpoints are the workloads of the same
/// namespace whose labels contain the selector, whose phase makes them endpoints and
/// whose service account `spec.serviceAccounts` allows, sorted by address (then
/// workload name) so the output is byte-for-byte stable. Also returns the selected
/// workloads refused for their service account (`namespace/name (sa)`), for the status.
pub(crate) fn compile(
    object: &Object,
    spec: &Spec,
    workloads: &[Workload<'_>],
    trust_domain: &str,
    vip: Option<std::net::IpAddr>,
    domain: &str,
    policy: &crate::backend::Attached,
) -> (pb::Service, Vec<String>) {
    let namespace = object.namespace();
    let allowed = |w: &Workload<'_>| {
        spec.service_accounts.is_empty() || spec.service_accounts.contains(&w.spec.service_account)
    };
    let selected = workloads.iter().filter(|w| {
        w.object.namespace() == namespace
            && selects(spec, &w.object.metadata.labels)
            && w.phase.is_some_and(workload::Phase::is_endpoint)
    });
    let refused: Vec<String> = selected
        .clone()
        .filter(|w| !allowed(w))
        .map(|w| {
            format!(
                "{namespace}/{} ({})",
                w.object.metadata.name, w.spec.service_account
            )
        })
        .collect();
    let mut endpoints: Vec<(std::net::IpAddr, String, pb::Endpoint)> = selected
        .filter(|w| allowed(w))
        .map(|w| {
            let ns = w.object.namespace();
            let endpoint = pb::Endpoint {
                address: w.spec.address.to_string(),
                identity: format!(
                    "spiffe://{trust_domain}/ns/{ns}/sa/{}",
                    w.spec.service_account
                ),
                hbone: w.spec.hbone.map(|h| h.to_string()).unwrap_or_default(),
                workload: format!("{ns}/{}", w.object.metadata.name),
                zone: w.spec.zone.clone().unwrap_or_default(),
            };
            (w.spec.address, w.object.metadata.name.clone(), endpoint)
        })
        .collect();
    endpoints.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let service = pb::Service {
        name: object.metadata.name.clone(),
        namespace: namespace.to_owned(),
        vip: vip.map(|v| v.to_string()).unwrap_or_default(),
        ports: spec
            .ports
            .iter()
            .map(|p| pb::ServicePort {
                port: u32::from(p.port),
                target_port: p.target_port.map_or(0, u32::from),
                protocol: protocol_to_pb(proxy::Protocol::from(p.protocol)) as i32,
            })
            .collect(),
        load_balancer: load_balancer_to_pb(policy.load_balancer) as i32,
        endpoints: endpoints.into_iter().map(|(_, _, e)| e).collect(),
        hostnames: vec![format!("{}.{namespace}.svc.{domain}", object.metadata.name)],
        policy: Some(policy_to_pb(&policy.policy)),
    };
    (service, refused)
}

/// `matchLabels`: every selector entry present with the same value. An empty selector
/// selects nothing (a Service without a selector has no endpoints, as in Kubernetes).
pub(crate) fn selects(spec: &Spec, labels: &std::collections::BTreeMap<String, String>) -> bool {
    !spec.selector.is_empty()
        && spec
            .selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
}

/// The ports of a service, for reference checks.
pub(crate) fn ports(spec: &Spec) -> BTreeSet<u16> {
    spec.ports.iter().map(|p| p.port).collect()
}
