//! Services and their endpoints, on the wire ↔ in the proxy model.

use std::net::SocketAddr;

use super::{ip, port, protocol, Error};
use crate::pb::v1 as pb;
use crate::proxy;

impl TryFrom<&pb::Service> for proxy::Service {
    type Error = Error;

    fn try_from(s: &pb::Service) -> Result<Self, Error> {
        if s.name.is_empty() {
            return Err(Error::new("name", "must not be empty"));
        }
        let vip = if s.vip.is_empty() {
            None
        } else {
            Some(ip("vip", &s.vip)?)
        };
        let ports = s
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = format!("ports[{i}]");
                Ok(proxy::ServicePort {
                    port: port(&format!("{path}.port"), p.port)?,
                    target_port: match p.target_port {
                        0 => None,
                        t => Some(port(&format!("{path}.targetPort"), t)?),
                    },
                    protocol: protocol(&format!("{path}.protocol"), p.protocol)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let load_balancer = match pb::LoadBalancer::try_from(s.load_balancer) {
            Ok(pb::LoadBalancer::PeakEwma) => proxy::LoadBalancer::PeakEwma,
            Ok(pb::LoadBalancer::LeastRequest) => proxy::LoadBalancer::LeastRequest,
            Ok(pb::LoadBalancer::RoundRobin) => proxy::LoadBalancer::RoundRobin,
            Ok(pb::LoadBalancer::RingHash) => proxy::LoadBalancer::RingHash,
            Ok(pb::LoadBalancer::Maglev) => proxy::LoadBalancer::Maglev,
            Err(_) => {
                return Err(Error::new(
                    "loadBalancer",
                    format!(
                        "unknown load balancer {} (a newer control plane?)",
                        s.load_balancer
                    ),
                ))
            }
        };
        let endpoints = s
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| endpoint(&format!("endpoints[{i}]"), e))
            .collect::<Result<Vec<_>, Error>>()?;
        let policy = match &s.policy {
            Some(p) => super::backend::policy("policy", p)?,
            None => proxy::BackendPolicy::default(),
        };
        if load_balancer.hashes() && policy.hash_on.is_none() {
            return Err(Error::new(
                "policy.hashOn",
                "required by the ringHash and maglev load balancers",
            ));
        }
        Ok(proxy::Service {
            name: s.name.clone(),
            namespace: if s.namespace.is_empty() {
                crate::resource::DEFAULT_NAMESPACE.to_owned()
            } else {
                s.namespace.clone()
            },
            vip,
            ports,
            load_balancer,
            endpoints,
            hostnames: s
                .hostnames
                .iter()
                .enumerate()
                .map(|(i, h)| hostname(&format!("hostnames[{i}]"), h))
                .collect::<Result<Vec<_>, Error>>()?,
            policy,
        })
    }
}

/// A DNS name as the control plane sends it: lowercase labels, no trailing dot.
pub(super) fn hostname(path: &str, h: &str) -> Result<String, Error> {
    let valid = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if valid {
        Ok(h.to_owned())
    } else {
        Err(Error::new(
            path,
            format!("{h:?} is not a DNS name (lowercase labels separated by '.')"),
        ))
    }
}

impl From<&proxy::Service> for pb::Service {
    fn from(s: &proxy::Service) -> Self {
        pb::Service {
            name: s.name.clone(),
            namespace: s.namespace.clone(),
            vip: s.vip.map(|v| v.to_string()).unwrap_or_default(),
            ports: s
                .ports
                .iter()
                .map(|p| pb::ServicePort {
                    port: u32::from(p.port),
                    target_port: p.target_port.map_or(0, u32::from),
                    protocol: protocol_to_pb(p.protocol) as i32,
                })
                .collect(),
            load_balancer: load_balancer_to_pb(s.load_balancer) as i32,
            endpoints: s
                .endpoints
                .iter()
                .map(|e| pb::Endpoint {
                    address: e.address.to_string(),
                    identity: e.identity.clone().unwrap_or_default(),
                    hbone: e.hbone.map(|h| h.to_string()).unwrap_or_default(),
                    workload: e.workload.clone().unwrap_or_default(),
                    zone: e.zone.clone().unwrap_or_default(),
                })
                .collect(),
            hostnames: s.hostnames.clone(),
            policy: Some(super::backend::policy_to_pb(&s.policy)),
        }
    }
}

/// Maps a proxy load balancer to its wire value.
pub fn load_balancer_to_pb(lb: proxy::LoadBalancer) -> pb::LoadBalancer {
    match lb {
        proxy::LoadBalancer::PeakEwma => pb::LoadBalancer::PeakEwma,
        proxy::LoadBalancer::LeastRequest => pb::LoadBalancer::LeastRequest,
        proxy::LoadBalancer::RoundRobin => pb::LoadBalancer::RoundRobin,
        proxy::LoadBalancer::RingHash => pb::LoadBalancer::RingHash,
        proxy::LoadBalancer::Maglev => pb::LoadBalancer::Maglev,
    }
}

/// Maps a proxy protocol to its wire value.
pub fn protocol_to_pb(p: proxy::Protocol) -> pb::Protocol {
    match p {
        proxy::Protocol::Auto => pb::Protocol::Auto,
        proxy::Protocol::Http => pb::Protocol::Http,
        proxy::Protocol::Http2 => pb::Protocol::Http2,
        proxy::Protocol::Grpc => pb::Protocol::Grpc,
        proxy::Protocol::Tcp => pb::Protocol::Tcp,
    }
}

pub(super) fn endpoint(path: &str, e: &pb::Endpoint) -> Result<proxy::Endpoint, Error> {
    let address = ip(&format!("{path}.address"), &e.address)?;
    let hbone = if e.hbone.is_empty() {
        None
    } else {
        Some(e.hbone.parse::<SocketAddr>().map_err(|_| {
            Error::new(
                format!("{path}.hbone"),
                format!("{:?} is not an ip:port address", e.hbone),
            )
        })?)
    };
    let identity = if e.identity.is_empty() {
        if hbone.is_some() {
            return Err(Error::new(
                format!("{path}.hbone"),
                "set without an identity: HBONE needs the SPIFFE ID the peer must present",
            ));
        }
        None
    } else if e.identity.starts_with("spiffe://") {
        Some(e.identity.clone())
    } else {
        return Err(Error::new(
            format!("{path}.identity"),
            format!("{:?} is not a SPIFFE ID", e.identity),
        ));
    };
    Ok(proxy::Endpoint {
        address,
        identity,
        hbone,
        zone: (!e.zone.is_empty()).then(|| e.zone.clone()),
        workload: (!e.workload.is_empty()).then(|| e.workload.clone()),
    })
}
