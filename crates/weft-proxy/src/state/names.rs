//! The names the mesh DNS owns, built once per snapshot so a query is one map lookup.
//!
//! What the config says about names only; answering queries is [`crate::dns`]'s.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use weft_api::proxy::Config;

/// What the table says about a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A mesh service: its VIP.
    Service(IpAddr),
    /// Inside a zone the mesh owns (`svc.<domain>`), but no such service: NXDOMAIN,
    /// answered here rather than leaked to the host's resolver.
    Unknown,
    /// Not a mesh name: forward it.
    Elsewhere,
}

/// Service names (lowercase, no trailing dot) → VIP, and the zones they live in.
#[derive(Debug, Default)]
pub struct Table {
    names: HashMap<Box<str>, IpAddr>,
    /// `svc.<domain>` of every hostname, with a leading dot (`.svc.cluster.local`).
    zones: Vec<Box<str>>,
}

impl Table {
    /// Every service with a VIP answers to its `hostnames` and to the short forms
    /// `<name>.<namespace>.svc` and `<name>.<namespace>`; services of the workload's
    /// own namespace also to `<name>`. A fully qualified hostname wins over a short
    /// form that happens to spell the same name.
    pub fn build(config: &Config) -> Self {
        let own = config.workload.namespace.as_str();
        let mut names: HashMap<Box<str>, IpAddr> = HashMap::new();
        let mut zones = BTreeSet::new();
        let with_vip = || {
            config
                .services
                .iter()
                .filter_map(|s| s.vip.map(|vip| (s, vip)))
        };
        for (s, vip) in with_vip() {
            let (name, ns) = (
                s.name.to_ascii_lowercase(),
                s.namespace.to_ascii_lowercase(),
            );
            names.insert(format!("{name}.{ns}.svc").into(), vip);
            names.insert(format!("{name}.{ns}").into(), vip);
            if s.namespace == own {
                names.entry(name.into()).or_insert(vip);
            }
        }
        for (s, vip) in with_vip() {
            for h in &s.hostnames {
                let h = h.trim_end_matches('.').to_ascii_lowercase();
                // `<name>.<namespace>.svc.<domain>`: the zone is `svc.<domain>`.
                if let Some(zone) = h.splitn(3, '.').nth(2) {
                    if zone.starts_with("svc.") {
                        zones.insert(format!(".{zone}"));
                    }
                }
                names.insert(h.into(), vip);
            }
        }
        Self {
            names,
            zones: zones.into_iter().map(String::into_boxed_str).collect(),
        }
    }

    /// Looks up `name` (any case, with or without the trailing dot).
    pub fn lookup(&self, name: &str) -> Lookup {
        let name = name.strip_suffix('.').unwrap_or(name);
        let hit = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            self.names.get(name.to_ascii_lowercase().as_str())
        } else {
            self.names.get(name)
        };
        if let Some(vip) = hit {
            return Lookup::Service(*vip);
        }
        let lower = name.to_ascii_lowercase();
        if self
            .zones
            .iter()
            .any(|z| lower.ends_with(&**z) || lower == z[1..])
        {
            Lookup::Unknown
        } else {
            Lookup::Elsewhere
        }
    }

    /// How many names it answers.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether it answers no name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let config = Config::from_yaml(
            r"
workload: { name: web, namespace: shop, address: 10.0.0.1 }
listeners: { hbone: null }
services:
  - name: catalog
    namespace: shop
    vip: 240.240.0.7
    hostnames: [catalog.shop.svc.cluster.local]
    ports: [{ port: 8080 }]
  - name: ledger
    namespace: bank
    vip: fd00:10::9
    hostnames: [ledger.bank.svc.cluster.local]
    ports: [{ port: 80 }]
  - name: novip
    namespace: shop
    hostnames: [novip.shop.svc.cluster.local]
    ports: [{ port: 80 }]
",
        )
        .expect("config");
        Table::build(&config)
    }

    fn ip(s: &str) -> Lookup {
        Lookup::Service(s.parse().expect("ip"))
    }

    #[test]
    fn answers_the_full_name_and_the_short_forms_an_app_would_use() {
        let t = table();
        for name in [
            "catalog.shop.svc.cluster.local",
            "catalog.shop.svc.cluster.local.",
            "Catalog.Shop.SVC.cluster.local",
            "catalog.shop.svc",
            "catalog.shop",
            "catalog",
        ] {
            assert_eq!(t.lookup(name), ip("240.240.0.7"), "{name}");
        }
        assert_eq!(t.lookup("ledger.bank"), ip("fd00:10::9"));
    }

    #[test]
    fn a_bare_name_is_only_answered_in_the_workloads_own_namespace() {
        assert_eq!(table().lookup("ledger"), Lookup::Elsewhere);
    }

    #[test]
    fn unknown_names_in_the_mesh_zone_are_nxdomain_and_others_are_forwarded() {
        let t = table();
        assert_eq!(t.lookup("nope.shop.svc.cluster.local"), Lookup::Unknown);
        assert_eq!(t.lookup("svc.cluster.local"), Lookup::Unknown);
        assert_eq!(
            t.lookup("novip.shop.svc.cluster.local"),
            Lookup::Unknown,
            "a service without a VIP has no address to give"
        );
        assert_eq!(t.lookup("example.com"), Lookup::Elsewhere);
        assert_eq!(t.lookup("cluster.local"), Lookup::Elsewhere);
    }
}
