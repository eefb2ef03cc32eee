//! Inbound policies: what each workload's inbound side accepts.
//!
//! A workload's mTLS mode is the mesh's (`Mesh.spec.mtls.mode`, default strict); a
//! `Service` port with its own `mtls` sets the mode of its target port on every
//! workload the service selects. When services disagree about one workload port,
//! strict wins: a conflict never opens a port to plaintext. It also carries what the
//! whole proxy of the workload records (`Telemetry` objects, [`crate::telemetry`]).

use std::collections::BTreeMap;

use weft_api::pb::v1 as pb;
use weft_api::pb_convert::mtls_mode_to_pb;
use weft_api::proxy::MtlsMode;
use weft_api::resource::mesh;

use crate::service;

/// One `InboundPolicy` per workload, keyed `<name>.<namespace>`.
pub(crate) fn compile(
    cx: &crate::permission::Context<'_>,
    traffic: &[crate::traffic::Policy<'_>],
    permissions: &[crate::permission::Permission<'_>],
    telemetries: &[crate::telemetry::Telemetry<'_>],
) -> BTreeMap<String, pb::InboundPolicy> {
    let (services, workloads) = (cx.services, cx.workloads);
    let default = mode(cx.mesh.mtls.mode);
    workloads
        .iter()
        .map(|w| {
            let namespace = w.object.namespace();
            let mut ports: BTreeMap<u16, MtlsMode> = BTreeMap::new();
            for (object, spec) in services {
                if object.namespace() != namespace
                    || !service::selects(spec, &w.object.metadata.labels)
                {
                    continue;
                }
                for p in &spec.ports {
                    let Some(port_mode) = p.mtls else { continue };
                    let target = p.target_port.unwrap_or(p.port);
                    let port_mode = mode(port_mode);
                    ports
                        .entry(target)
                        .and_modify(|m| {
                            if port_mode == MtlsMode::Strict {
                                *m = MtlsMode::Strict;
                            }
                        })
                        .or_insert(port_mode);
                }
            }
            let name = format!("{}.{namespace}", w.object.metadata.name);
            let mut policy = pb::InboundPolicy {
                workload: format!("{namespace}/{}", w.object.metadata.name),
                mtls: mtls_mode_to_pb(default) as i32,
                ports: ports
                    .into_iter()
                    .filter(|&(_, m)| m != default)
                    .map(|(port, m)| pb::PortMtls {
                        port: u32::from(port),
                        mtls: mtls_mode_to_pb(m) as i32,
                    })
                    .collect(),
                rate_limits: Vec::new(),
                faults: Vec::new(),
                telemetry: crate::telemetry::for_workload(
                    telemetries,
                    services,
                    namespace,
                    &w.object.metadata.labels,
                ),
                path_normalization: path_normalization(cx.mesh.path_normalization) as i32,
                authorization: crate::permission::for_workload(
                    cx,
                    permissions,
                    namespace,
                    &w.object.metadata.labels,
                ),
            };
            crate::traffic::for_workload(
                traffic,
                services,
                namespace,
                &w.object.metadata.labels,
                &mut policy,
            );
            (name, policy)
        })
        .collect()
}

fn path_normalization(n: mesh::PathNormalization) -> pb::PathNormalization {
    use weft_api::proxy::PathNormalization as P;
    weft_api::pb_convert::path_normalization_to_pb(match n {
        mesh::PathNormalization::None => P::None,
        mesh::PathNormalization::Base => P::Base,
        mesh::PathNormalization::MergeSlashes => P::MergeSlashes,
        mesh::PathNormalization::DecodeAndMergeSlashes => P::DecodeAndMergeSlashes,
    })
}

fn mode(m: mesh::MtlsMode) -> MtlsMode {
    match m {
        mesh::MtlsMode::Strict => MtlsMode::Strict,
        mesh::MtlsMode::Permissive => MtlsMode::Permissive,
    }
}
