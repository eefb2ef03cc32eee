//! Service VIPs: every `Service` without `spec.vip` gets an address from
//! `Mesh.spec.dns.vipRange`, kept in its `status.vip` so it survives restarts and
//! recompiles.
//!
//! Allocation is a pure function of the objects (statuses included), so every
//! control-plane instance on a shared store computes the same addresses:
//! 1. explicit `spec.vip`s are taken first, oldest service first; a second service
//!    naming the same address gets none, with a condition;
//! 2. each remaining service keeps the `status.vip` it was given, while that is inside
//!    the range and nobody older holds it;
//! 3. the rest get a fresh address: the one their `<namespace>/<name>` hashes to, or
//!    the next free one after it. Hashing makes an allocation independent of which
//!    other services exist, so two instances that saw different sets still agree.

use std::collections::HashMap;
use std::net::IpAddr;

use weft_api::cidr::Cidr;
use weft_api::resource::service::Spec;
use weft_api::resource::Object;

/// What one service gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Allocation {
    /// Its VIP, if it has one.
    pub(crate) vip: Option<IpAddr>,
    /// Why it has none (or not the one it asked for).
    pub(crate) problem: Option<String>,
}

/// Allocates a VIP for each of `services` (results in the same order).
pub(crate) fn allocate(services: &[(&Object, Spec)], range: Cidr) -> Vec<Allocation> {
    let mut out = vec![Allocation::default(); services.len()];
    // Oldest first, so a newcomer never takes an address from an existing service.
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by(|&a, &b| crate::age_order(services[a].0).cmp(&crate::age_order(services[b].0)));
    let mut owner: HashMap<IpAddr, usize> = HashMap::new();

    for &i in &order {
        let Some(vip) = services[i].1.vip else {
            continue;
        };
        if let Some(&other) = owner.get(&vip) {
            out[i].problem = Some(format!(
                "spec.vip {vip} is already the VIP of service {}; this service has no VIP \
                 until one of them changes",
                name(services[other].0)
            ));
        } else {
            owner.insert(vip, i);
            out[i].vip = Some(vip);
        }
    }
    for &i in &order {
        if services[i].1.vip.is_some() {
            continue;
        }
        let Some(kept) = stored(services[i].0) else {
            continue;
        };
        if usable(range, kept) && !owner.contains_key(&kept) {
            owner.insert(kept, i);
            out[i].vip = Some(kept);
        }
    }
    for &i in &order {
        if services[i].1.vip.is_some() || out[i].vip.is_some() {
            continue;
        }
        match fresh(range, services[i].0, &owner) {
            Some(vip) => {
                owner.insert(vip, i);
                out[i].vip = Some(vip);
            }
            None => {
                out[i].problem = Some(format!(
                    "Mesh.spec.dns.vipRange {range} has no free address ({} in use); widen \
                     it, or give this service a spec.vip",
                    owner.len()
                ));
            }
        }
    }
    out
}

/// `status.vip` as the control plane last wrote it.
fn stored(object: &Object) -> Option<IpAddr> {
    object.status.as_ref()?.get("vip")?.as_str()?.parse().ok()
}

/// Whether `ip` is an address of `range` the allocator hands out: not the network
/// address, nor (IPv4) the broadcast address.
fn usable(range: Cidr, ip: IpAddr) -> bool {
    let Some(offset) = range.offset(ip) else {
        return false;
    };
    let bits = range.host_bits();
    let last = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    match ip {
        IpAddr::V4(_) if bits >= 2 => offset != 0 && offset != last,
        _ if bits >= 1 => offset != 0,
        _ => true,
    }
}

/// The first free usable address at or after the service's hashed slot.
fn fresh(range: Cidr, object: &Object, owner: &HashMap<IpAddr, usize>) -> Option<IpAddr> {
    let bits = range.host_bits();
    let size = if bits >= 128 {
        None
    } else {
        Some(1u128 << bits)
    };
    let hash = u128::from(fnv1a(
        format!("{}/{}", object.namespace(), object.metadata.name).as_bytes(),
    ));
    let start = size.map_or(hash, |s| hash % s);
    // At most `owner.len()` taken addresses and two unusable ones lie in the way.
    let tries = owner.len() as u128 + 3;
    let tries = size.map_or(tries, |s| tries.min(s));
    (0..tries).find_map(|step| {
        let offset = size.map_or(start.wrapping_add(step), |s| (start + step) % s);
        let ip = range.nth(offset)?;
        (usable(range, ip) && !owner.contains_key(&ip)).then_some(ip)
    })
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher is not promised
/// to be).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut digest = weft_api::digest::Fnv1a::default();
    digest.write(bytes);
    digest.finish()
}

fn name(object: &Object) -> String {
    format!("{}/{}", object.namespace(), object.metadata.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(
        name: &str,
        created: &str,
        vip: Option<&str>,
        stored: Option<&str>,
    ) -> (Object, Spec) {
        let mut spec = serde_json::json!({ "ports": [{ "port": 80 }] });
        if let Some(v) = vip {
            spec["vip"] = v.into();
        }
        let object: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "weft.dev/v1alpha1",
            "kind": "Service",
            "metadata": { "name": name, "namespace": "shop", "creationTimestamp": created },
            "spec": spec,
            "status": stored.map(|s| serde_json::json!({ "vip": s })),
        }))
        .expect("object");
        let spec = serde_json::from_value(object.spec.clone()).expect("spec");
        (object, spec)
    }

    fn run(services: &[(Object, Spec)], range: &str) -> Vec<Allocation> {
        let borrowed: Vec<(&Object, Spec)> = services.iter().map(|(o, s)| (o, s.clone())).collect();
        allocate(&borrowed, range.parse().expect("range"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn every_service_gets_a_distinct_address_inside_the_range() {
        let services: Vec<_> = (0..200)
            .map(|i| service(&format!("s{i}"), "2026-01-01T00:00:00Z", None, None))
            .collect();
        let got = run(&services, "240.240.0.0/24");
        let range: Cidr = "240.240.0.0/24".parse().expect("range");
        let mut seen = std::collections::HashSet::new();
        for a in &got {
            let vip = a.vip.expect("allocated");
            assert!(usable(range, vip), "{vip} is usable in {range}");
            assert!(seen.insert(vip), "{vip} handed out twice");
        }
    }

    #[test]
    fn an_allocation_does_not_depend_on_which_other_services_exist() {
        let a = service("catalog", "2026-01-01T00:00:00Z", None, None);
        let alone = run(std::slice::from_ref(&a), "240.240.0.0/16");
        let others: Vec<_> = (0..50)
            .map(|i| service(&format!("x{i}"), "2026-01-02T00:00:00Z", None, None))
            .chain([a])
            .collect();
        let crowded = run(&others, "240.240.0.0/16");
        assert_eq!(alone[0].vip, crowded[50].vip);
    }

    #[test]
    fn a_stored_vip_is_kept_while_it_is_inside_the_range() {
        let kept = service("a", "2026-01-01T00:00:00Z", None, Some("240.240.7.7"));
        let outside = service("b", "2026-01-01T00:00:00Z", None, Some("10.0.0.9"));
        let got = run(&[kept, outside], "240.240.0.0/16");
        assert_eq!(got[0].vip, Some(ip("240.240.7.7")));
        let moved = got[1].vip.expect("reallocated");
        assert_ne!(moved, "10.0.0.9".parse::<IpAddr>().expect("ip"));
        assert!("240.240.0.0/16".parse::<Cidr>().expect("r").contains(moved));
    }

    #[test]
    fn an_explicit_vip_wins_over_an_allocation_and_the_older_explicit_vip_wins_a_tie() {
        let allocated = service("a", "2026-01-01T00:00:00Z", None, Some("240.240.1.1"));
        let explicit = service("b", "2026-01-03T00:00:00Z", Some("240.240.1.1"), None);
        let older = service("c", "2026-01-02T00:00:00Z", Some("198.18.0.1"), None);
        let newer = service("d", "2026-01-04T00:00:00Z", Some("198.18.0.1"), None);
        let got = run(&[allocated, explicit, older, newer], "240.240.0.0/16");
        assert_eq!(got[1].vip, Some(ip("240.240.1.1")), "spec.vip is honoured");
        assert_ne!(got[0].vip, Some(ip("240.240.1.1")), "the allocation moved");
        assert!(got[0].vip.is_some());
        assert_eq!(got[2].vip, Some(ip("198.18.0.1")));
        assert_eq!(got[3].vip, None);
        let problem = got[3].problem.as_deref().expect("reported");
        assert!(problem.contains("shop/c"), "{problem}");
    }

    #[test]
    fn a_full_range_is_reported_not_overcommitted() {
        let services: Vec<_> = (0..3)
            .map(|i| service(&format!("s{i}"), "2026-01-01T00:00:00Z", None, None))
            .collect();
        // A /30 has two usable addresses.
        let got = run(&services, "240.240.0.0/30");
        assert_eq!(got.iter().filter(|a| a.vip.is_some()).count(), 2);
        let problem = got
            .iter()
            .find_map(|a| a.problem.clone())
            .expect("one reported");
        assert!(
            problem.contains("240.240.0.0/30 has no free address"),
            "{problem}"
        );
    }

    #[test]
    fn ipv6_ranges_allocate_too() {
        let got = run(
            &[service("a", "2026-01-01T00:00:00Z", None, None)],
            "fd00:10::/64",
        );
        let vip = got[0].vip.expect("allocated");
        assert!(vip.is_ipv6());
    }
}
