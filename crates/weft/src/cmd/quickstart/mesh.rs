//! The demo mesh `weft quickstart` builds, as data: its workloads, where every piece
//! listens ([`Layout`]), each sidecar's bootstrap file and the resources it applies.
//! No I/O but [`check_ports`].
//!
//! Each workload gets its own loopback address (127.0.0.2 … 127.0.0.6, like a host of
//! its own) and the same ports on it; the control plane sits on 127.0.0.1. Every port
//! is `--port-base` plus a fixed offset whose last digits echo the default it stands
//! for (admin 15000 → base+0, HBONE 15008 → base+8, metrics 15020 → base+20, xDS 5678
//! → base+678, API 5681 → base+681), so quickstart runs next to a mesh on the default
//! ports, and a second quickstart runs with another base.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The trust domain of the quickstart mesh (the control plane's default).
pub(super) const TRUST_DOMAIN: &str = "cluster.local";

/// The namespace every quickstart workload lives in.
pub(super) const NAMESPACE: &str = "default";

/// The default `--port-base`: below Linux's ephemeral range (32768+), so no outgoing
/// connection of another program holds one of our ports.
pub(super) const DEFAULT_PORT_BASE: u16 = 17000;

/// Port offsets from the base.
const ADMIN: u16 = 0;
const HBONE: u16 = 8;
const METRICS: u16 = 20;
const HTTP_APP: u16 = 80;
const CATALOG_OUT: u16 = 81;
const TCP_APP: u16 = 90;
const INVENTORY_OUT: u16 = 91;
const XDS: u16 = 678;
const API: u16 = 681;

/// The port clients of `catalog` and `frontend` use (the Services' `port`).
const HTTP_SERVICE_PORT: u16 = 80;
/// The port clients of `inventory` use.
const INVENTORY_SERVICE_PORT: u16 = 9000;

/// What runs behind a sidecar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum App {
    /// No app: the sidecar of the demo's client (quickstart itself, or you with curl).
    Client,
    /// The HTTP frontend, which calls `catalog` and `inventory`.
    Frontend,
    /// One version of the HTTP catalog.
    Catalog(&'static str),
    /// The line-based TCP inventory.
    Inventory,
}

/// One workload of the demo and its sidecar.
#[derive(Debug)]
pub(super) struct Workload {
    /// Workload name (what `weft get workloads` lists).
    pub(super) name: &'static str,
    /// Service account: the identity is spiffe://cluster.local/ns/default/sa/<this>.
    pub(super) service_account: &'static str,
    /// Labels its sidecar's workload token grants (and its bootstrap repeats); the
    /// Services select on them.
    pub(super) labels: &'static [(&'static str, &'static str)],
    /// Last octet of its loopback address, 127.0.0.<host>.
    host: u8,
    /// What the sidecar fronts.
    pub(super) app: App,
}

/// The demo's workloads, in the order their sidecars start (callees first).
pub(super) const WORKLOADS: [Workload; 5] = [
    Workload {
        name: "catalog-v1",
        service_account: "catalog",
        labels: &[("app", "catalog"), ("version", "v1")],
        host: 4,
        app: App::Catalog("v1"),
    },
    Workload {
        name: "catalog-v2",
        service_account: "catalog",
        labels: &[("app", "catalog"), ("version", "v2")],
        host: 5,
        app: App::Catalog("v2"),
    },
    Workload {
        name: "inventory",
        service_account: "inventory",
        labels: &[("app", "inventory")],
        host: 6,
        app: App::Inventory,
    },
    Workload {
        name: "frontend",
        service_account: "frontend",
        labels: &[("app", "frontend")],
        host: 3,
        app: App::Frontend,
    },
    Workload {
        name: "client",
        service_account: "client",
        labels: &[("app", "client")],
        host: 2,
        app: App::Client,
    },
];

/// An explicit outbound listener of a sidecar: its app dials `listen` to reach
/// `service:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Outbound {
    pub(super) listen: SocketAddr,
    pub(super) service: &'static str,
    pub(super) port: u16,
}

/// Where everything listens, from `--port-base`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    base: u16,
}

/// A port quickstart binds, and what it is for (for the error when it is taken).
#[derive(Clone, Debug)]
pub(super) struct Binding {
    pub(super) addr: SocketAddr,
    pub(super) what: String,
}

// === impl Workload ===

impl Workload {
    /// Its loopback address.
    pub(super) fn ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, self.host))
    }

    /// Its SPIFFE ID.
    pub(super) fn identity(&self) -> String {
        identity(self.service_account)
    }
}

/// The SPIFFE ID of `service_account` in the quickstart namespace.
pub(super) fn identity(service_account: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{service_account}")
}

/// The workload named `name`.
pub(super) fn workload(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

// === impl Layout ===

impl Layout {
    /// The layout for `base`; every port must fit below 65536.
    pub(super) fn new(base: u16) -> anyhow::Result<Layout> {
        if base < 1024 || base.checked_add(API).is_none() {
            anyhow::bail!(
                "--port-base {base} is out of range: quickstart uses ports base to base+{API}; \
                 pick a base from 1024 to {} (default {DEFAULT_PORT_BASE})",
                u16::MAX - API
            );
        }
        Ok(Layout { base })
    }

    /// The base it was made from.
    pub(super) fn base(self) -> u16 {
        self.base
    }

    /// The control plane's HTTP API.
    pub(super) fn api(self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + API))
    }

    /// The control plane's xDS and CSR-signing listener.
    pub(super) fn xds(self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + XDS))
    }

    /// A sidecar's admin listener (`/ready`, `/config_dump`).
    pub(super) fn admin(self, w: &Workload) -> SocketAddr {
        SocketAddr::new(w.ip(), self.base + ADMIN)
    }

    /// A sidecar's metrics listener (`/metrics`).
    pub(super) fn metrics(self, w: &Workload) -> SocketAddr {
        SocketAddr::new(w.ip(), self.base + METRICS)
    }

    /// A sidecar's HBONE listener, which peers dial.
    pub(super) fn hbone(self, w: &Workload) -> SocketAddr {
        SocketAddr::new(w.ip(), self.base + HBONE)
    }

    /// Where the workload's app listens, and its protocol; `None` for the client.
    pub(super) fn app(self, w: &Workload) -> Option<(SocketAddr, &'static str)> {
        match w.app {
            App::Client => None,
            App::Frontend | App::Catalog(_) => {
                Some((SocketAddr::new(w.ip(), self.base + HTTP_APP), "http"))
            }
            App::Inventory => Some((SocketAddr::new(w.ip(), self.base + TCP_APP), "tcp")),
        }
    }

    /// The sidecar's explicit outbound listeners.
    pub(super) fn outbound(self, w: &Workload) -> Vec<Outbound> {
        let at = |offset: u16| SocketAddr::new(w.ip(), self.base + offset);
        match w.app {
            App::Client => vec![Outbound {
                listen: at(HTTP_APP),
                service: "frontend",
                port: HTTP_SERVICE_PORT,
            }],
            App::Frontend => vec![
                Outbound {
                    listen: at(CATALOG_OUT),
                    service: "catalog",
                    port: HTTP_SERVICE_PORT,
                },
                Outbound {
                    listen: at(INVENTORY_OUT),
                    service: "inventory",
                    port: INVENTORY_SERVICE_PORT,
                },
            ],
            App::Catalog(_) | App::Inventory => Vec::new(),
        }
    }

    /// The outbound listener of `w`'s sidecar for `service`.
    pub(super) fn outbound_to(self, w: &Workload, service: &str) -> Option<SocketAddr> {
        self.outbound(w)
            .into_iter()
            .find(|o| o.service == service)
            .map(|o| o.listen)
    }

    /// The frontend as a client reaches it: the client sidecar's outbound listener.
    pub(super) fn frontend_url(self) -> String {
        let listen = workload("client")
            .and_then(|client| self.outbound_to(client, "frontend"))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 2], self.base + HTTP_APP)));
        format!("http://{listen}/")
    }

    /// Every address quickstart binds, with what it is for.
    pub(super) fn bindings(self) -> Vec<Binding> {
        let mut all = vec![
            Binding {
                addr: self.api(),
                what: "the control plane's API".into(),
            },
            Binding {
                addr: self.xds(),
                what: "the control plane's xDS listener".into(),
            },
        ];
        for w in &WORKLOADS {
            let sidecar = |addr, what: &str| Binding {
                addr,
                what: format!("the {} sidecar's {what}", w.name),
            };
            all.push(sidecar(self.admin(w), "admin listener"));
            all.push(sidecar(self.metrics(w), "metrics listener"));
            all.push(sidecar(self.hbone(w), "HBONE listener"));
            for o in self.outbound(w) {
                all.push(sidecar(
                    o.listen,
                    &format!("outbound listener for {}", o.service),
                ));
            }
            if let Some((addr, _)) = self.app(w) {
                all.push(Binding {
                    addr,
                    what: format!("the {} app", w.name),
                });
            }
        }
        all
    }

    /// The bootstrap file of `w`'s sidecar (control-plane mode: no services, routes or
    /// certificate files; those come from the control plane).
    pub(super) fn bootstrap(self, w: &Workload) -> String {
        let ip = w.ip();
        let labels: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let mut yaml = format!(
            "# The {name} sidecar's bootstrap, written by `weft quickstart`: who the workload is\n\
             # and where the proxy listens. Its certificate (from the mesh CA), services and routes\n\
             # come from the control plane.\n\
             workload:\n  name: {name}\n  namespace: {NAMESPACE}\n  serviceAccount: {sa}\n  \
             address: {ip}\n  appAddress: {ip}\n  labels: {{ {labels} }}\n",
            name = w.name,
            sa = w.service_account,
            labels = labels.join(", "),
        );
        if let Some((addr, protocol)) = self.app(w) {
            let _ = writeln!(
                yaml,
                "  ports: [{{ port: {}, protocol: {protocol} }}]",
                addr.port()
            );
        }
        let _ = write!(
            yaml,
            "listeners:\n  admin: {}\n  metrics: {}\n  hbone: {}\n  outboundCapture: null\n  \
             inboundCapture: null\n",
            self.admin(w),
            self.metrics(w),
            self.hbone(w),
        );
        let outbound = self.outbound(w);
        if !outbound.is_empty() {
            yaml.push_str("outbound:\n");
            for o in outbound {
                let _ = writeln!(
                    yaml,
                    "  - {{ listen: \"{}\", service: {}, port: {} }}",
                    o.listen, o.service, o.port
                );
            }
        }
        // Ctrl-C should feel immediate: the demo has no long requests to wait for.
        yaml.push_str("settings:\n  drainTimeout: 2s\n");
        yaml
    }

    /// What quickstart applies: a Service per name clients use (`frontend`, `catalog`,
    /// `inventory`), one per catalog version for the canary to split between, and the
    /// canary route.
    pub(super) fn resources(self) -> String {
        let http = self.base + HTTP_APP;
        let tcp = self.base + TCP_APP;
        let service = |name: &str, selector: &str, port: u16, target: u16, protocol: &str| {
            format!(
                "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: {name} }}\n\
                 spec:\n  selector: {{ {selector} }}\n  \
                 ports: [{{ port: {port}, targetPort: {target}, protocol: {protocol} }}]\n---\n"
            )
        };
        let mut yaml = String::from(
            "# What `weft quickstart` applied, as `weft apply -f` does. The workloads themselves\n\
             # are registered by their sidecars; these Services select them by label.\n",
        );
        yaml.push_str(&service(
            "frontend",
            "app: frontend",
            HTTP_SERVICE_PORT,
            http,
            "http",
        ));
        yaml.push_str(&service(
            "catalog",
            "app: catalog",
            HTTP_SERVICE_PORT,
            http,
            "http",
        ));
        for version in ["v1", "v2"] {
            yaml.push_str(&service(
                &format!("catalog-{version}"),
                &format!("app: catalog, version: {version}"),
                HTTP_SERVICE_PORT,
                http,
                "http",
            ));
        }
        yaml.push_str(&service(
            "inventory",
            "app: inventory",
            INVENTORY_SERVICE_PORT,
            tcp,
            "tcp",
        ));
        yaml.push_str(&canary(90, 10));
        yaml
    }
}

/// The name of the canary HTTPRoute.
pub(super) const CANARY_ROUTE: &str = "catalog-canary";

/// The canary HTTPRoute: requests to `catalog` split `v1`:`v2` between the versions.
pub(super) fn canary(v1: u32, v2: u32) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\n\
         kind: HTTPRoute\n\
         metadata: {{ name: {CANARY_ROUTE} }}\n\
         spec:\n  \
         parentRefs: [{{ kind: Service, name: catalog, port: {HTTP_SERVICE_PORT} }}]\n  \
         rules:\n    \
         - backendRefs:\n        \
         - {{ name: catalog-v1, port: {HTTP_SERVICE_PORT}, weight: {v1} }}\n        \
         - {{ name: catalog-v2, port: {HTTP_SERVICE_PORT}, weight: {v2} }}\n"
    )
}

/// Fails, naming the port and the flag that moves it, if quickstart cannot bind one of
/// its addresses (something else listens there, or the address is not local).
pub(super) fn check_ports(layout: Layout) -> anyhow::Result<()> {
    for binding in layout.bindings() {
        let Err(e) = std::net::TcpListener::bind(binding.addr) else {
            continue;
        };
        let base = layout.base();
        let other = if base >= 30000 { 20000 } else { base + 1000 };
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::bail!(
                "port {} is already in use ({} would listen on {}): is another `weft quickstart` \
                 or another program using it?\nhint: quickstart uses ports {base} to {} (--port-base \
                 {base}); move them all with e.g. `weft quickstart --port-base {other}`",
                binding.addr.port(),
                binding.what,
                binding.addr,
                base + API,
            );
        }
        if e.kind() == std::io::ErrorKind::AddrNotAvailable {
            anyhow::bail!(
                "cannot listen on {} ({}): {e}\nhint: quickstart gives each workload its own \
                 loopback address in 127.0.0.0/8, which Linux routes to `lo` by default; on this \
                 system add the address to the loopback interface first",
                binding.addr,
                binding.what,
            );
        }
        anyhow::bail!(
            "cannot listen on {} ({}): {e}\nhint: pick other ports with --port-base",
            binding.addr,
            binding.what
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn every_binding_is_loopback_and_distinct() {
        let bindings = Layout::new(DEFAULT_PORT_BASE).unwrap().bindings();
        let mut seen = std::collections::HashSet::new();
        for b in &bindings {
            assert!(b.addr.ip().is_loopback(), "{} is not loopback", b.addr);
            assert!(seen.insert(b.addr), "{} bound twice", b.addr);
        }
    }

    #[test]
    fn ports_follow_the_base_and_a_base_too_high_is_refused() {
        let layout = Layout::new(27000).unwrap();
        assert_eq!(layout.api().port(), 27681);
        assert_eq!(layout.xds().port(), 27678);
        assert_eq!(layout.frontend_url(), "http://127.0.0.2:27080/");
        assert!(Layout::new(65000).is_err());
        assert!(Layout::new(80).is_err());
    }

    #[test]
    fn bootstraps_are_valid_proxy_configs() {
        let layout = Layout::new(DEFAULT_PORT_BASE).unwrap();
        for w in &WORKLOADS {
            let yaml = layout.bootstrap(w);
            let config: weft_api::proxy::Config =
                serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{}: {e}\n{yaml}", w.name));
            assert_eq!(config.workload.name, w.name);
            assert_eq!(config.listeners.admin, layout.admin(w));
            assert_eq!(config.outbound.len(), layout.outbound(w).len());
        }
    }

    #[test]
    fn resources_are_services_and_the_canary_route() {
        let yaml = Layout::new(DEFAULT_PORT_BASE).unwrap().resources();
        let objects = weft_policy::parse_documents(&yaml).unwrap();
        for object in &objects {
            weft_policy::validate(object).unwrap();
        }
        let names: Vec<String> = objects
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.metadata.name))
            .collect();
        assert_eq!(
            names,
            [
                "Service/frontend",
                "Service/catalog",
                "Service/catalog-v1",
                "Service/catalog-v2",
                "Service/inventory",
                "HTTPRoute/catalog-canary"
            ]
        );
    }
}
