//! The proxy's current configuration, compiled for the data path and swapped atomically.
//!
//! A [`Snapshot`] is what the config says, compiled: route tables over the services it
//! names, lookup maps for listeners and VIPs, the mesh DNS [`names`], the inbound rate
//! limits and faults, and the loaded credentials. Connections read the current snapshot
//! with one atomic load; a reload builds a new one and swaps it in, so in-flight
//! requests finish on the snapshot they started with and nothing is dropped.
//!
//! Not here: what the proxy learns at run time. A snapshot's services are
//! [`crate::upstream::ServiceState`]s and its rate limits use [`crate::ratelimit`]
//! buckets; those modules own that state and carry it from the snapshot in force to
//! the next, so endpoint statistics, ejections, health, pools and token buckets
//! survive a reload.
//!
//! Config comes from [`file`] (a local YAML file, re-read on change) or, with a control
//! plane, from [`crate::control_plane`], which lays what it receives over the
//! bootstrap file; either way the result goes into the same [`Store`].

pub mod file;
pub mod names;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use weft_api::proxy::{Config, Protocol, Settings};
use weft_tls::Credentials;

use crate::route;
use crate::telemetry::Name;
use crate::upstream::{Carried, ServiceState, Target};

/// A route table over [`Target`]s.
pub type RouteTable = route::Table<Target>;

/// A compiled, immutable configuration.
#[derive(Debug)]
pub struct Snapshot {
    /// The config it was built from (for `/config_dump`).
    pub config: Arc<Config>,
    /// Content hash of the config and certificate files.
    pub version: String,
    /// This workload's credentials, if HBONE is configured.
    pub creds: Option<Arc<Credentials>>,
    /// This workload's name, as a metric label.
    pub workload_label: Name,
    /// This workload's side of the request metrics' peer labels.
    pub own: crate::telemetry::labels::Own,
    services: HashMap<String, Arc<ServiceState>>,
    outbound: HashMap<SocketAddr, Target>,
    vips: HashMap<SocketAddr, Target>,
    routes: HashMap<(Arc<str>, u16), Arc<RouteTable>>,
    dns: names::Table,
    /// Rate limits and faults of the inbound side.
    inbound: Arc<InboundTraffic>,
    /// Who may call this workload.
    authz: crate::authz::Policy,
    /// Spans and whether requests are counted (`telemetry`), once
    /// [`Snapshot::with_telemetry`] made them.
    telemetry: Arc<crate::telemetry::sinks::Sinks>,
}

/// The inbound side's rate limits (with their buckets) and faults, compiled.
#[derive(Debug)]
pub struct InboundTraffic {
    /// The limits, in order, with what they cover.
    pub limits: Vec<Scope>,
    /// Buckets of `limits` (same order), carried across reloads.
    pub limiter: crate::ratelimit::Limiter,
    /// Faults, in order: the first that covers a request applies.
    pub faults: Vec<(Scope, weft_api::proxy::Fault)>,
}

impl InboundTraffic {
    /// Whether any limit or fault is configured: without, the inbound stages that
    /// apply them cost nothing.
    pub fn is_active(&self) -> bool {
        !self.limits.is_empty() || !self.faults.is_empty()
    }
}

/// Which inbound requests a limit or fault covers.
#[derive(Debug)]
pub struct Scope {
    /// Workload ports (empty: all).
    pub ports: Vec<u16>,
    /// Request conditions.
    pub matches: route::Matches,
}

impl Scope {
    /// Whether a request to app port `port` looking like `req` is covered.
    pub fn covers(&self, port: u16, req: &route::RequestView<'_>) -> bool {
        (self.ports.is_empty() || self.ports.contains(&port)) && self.matches.select(req)
    }
}

/// Why a snapshot could not be built from a (valid) config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Certificates could not be loaded.
    #[error("certificates: {0}")]
    Credentials(#[from] weft_tls::CredsError),
    /// A service's endpoints could not be built (an identity is not a SPIFFE ID).
    #[error(transparent)]
    Upstream(#[from] crate::upstream::Error),
    /// An authorization rule did not compile.
    #[error(transparent)]
    Authorization(#[from] crate::authz::Error),
    /// A route did not compile.
    #[error("{path}: {source}")]
    Route {
        /// Field path.
        path: String,
        /// Compile error.
        source: route::Error,
    },
    /// `telemetry` could not be set up.
    #[error("telemetry: {0}")]
    Telemetry(String),
}

/// `rule` (rule `index` of route `source`, attached to the service `parent`) with the
/// metric labels of what it sends.
fn labelled(
    mut rule: route::Rule<Target>,
    source: &str,
    index: u32,
    parent: &str,
) -> route::Rule<Target> {
    use crate::telemetry::labels::RouteLabels;
    rule.labels = rule
        .backends
        .iter()
        .map(|(t, _)| RouteLabels::of(source, index, &t.service.key))
        .collect();
    rule.label = Some(RouteLabels::of(source, index, parent));
    rule
}

impl Snapshot {
    /// Compiles `config`, reusing endpoint state from `previous` where the endpoint is
    /// unchanged. `creds` are the already-loaded credentials, `version` the content hash.
    pub fn build(
        config: Config,
        creds: Option<Arc<Credentials>>,
        version: String,
        previous: Option<&Snapshot>,
    ) -> Result<Self, Error> {
        let carried = previous.map_or_else(Carried::default, |prev| {
            Carried::from_services(prev.services.values())
        });
        let zone = config.workload.zone.as_deref();
        let own = crate::telemetry::labels::Own::new(
            &config.workload.name,
            &config.workload.namespace,
            creds.as_ref().map(|c| c.identity().to_string()).as_deref(),
        );
        let mut services = HashMap::new();
        for (i, s) in config.services.iter().enumerate() {
            let service = ServiceState::build(i, s, zone, &carried, &own)?;
            services.insert(s.key(), Arc::new(service));
        }
        let target = |reference: &str, port: u16| -> Option<Target> {
            let svc = config.service(reference)?;
            let state = services.get(&svc.key())?.clone();
            let port = *svc.ports.iter().find(|p| p.port == port)?;
            Some(Target {
                service: state,
                port,
            })
        };
        let outbound = config
            .outbound
            .iter()
            .filter_map(|o| Some((o.listen, target(&o.service, o.port)?)))
            .collect();
        let mut vips = HashMap::new();
        for s in &config.services {
            if let Some(vip) = s.vip {
                for p in &s.ports {
                    if let Some(t) = target(&s.key(), p.port) {
                        vips.insert(SocketAddr::new(vip, p.port), t);
                    }
                }
            }
        }
        let mut routes = HashMap::new();
        for (i, table) in config.routes.iter().enumerate() {
            let Some(parent) = config.service(&table.service) else {
                continue;
            };
            let ports: Vec<u16> = match table.port {
                Some(p) => vec![p],
                None => parent.ports.iter().map(|p| p.port).collect(),
            };
            for port in ports {
                let rules = table
                    .rules
                    .iter()
                    .enumerate()
                    .map(|(r, rule)| {
                        let compiled = route::Rule::compile(rule, |b| {
                            target(&b.service, b.port.unwrap_or(port))
                        })
                        .map_err(|source| Error::Route {
                            path: format!("routes[{i}].rules[{r}]"),
                            source,
                        })?;
                        let source = rule
                            .source
                            .clone()
                            .unwrap_or_else(|| format!("routes[{i}]"));
                        let index = rule.rule.unwrap_or(u32::try_from(r).unwrap_or(u32::MAX));
                        Ok(labelled(compiled, &source, index, &parent.key()))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                routes.insert(
                    (Arc::<str>::from(parent.key()), port),
                    Arc::new(route::Table { rules }),
                );
            }
        }
        // Every service port gets a table, so routing a request never builds one.
        for svc in services.values() {
            for port in &svc.ports {
                routes
                    .entry((svc.key.clone(), port.port))
                    .or_insert_with(|| {
                        let mut table = route::Table::single(Target {
                            service: svc.clone(),
                            port: *port,
                        });
                        table.rules = std::mem::take(&mut table.rules)
                            .into_iter()
                            .map(|r| labelled(r, "default", 0, &svc.key))
                            .collect();
                        Arc::new(table)
                    });
            }
        }
        let inbound = Arc::new(inbound_traffic(&config, previous.map(|p| &*p.inbound))?);
        let authz = crate::authz::Policy::compile(&config.inbound.authorization)?;
        let workload_label = Name(Arc::from(format!(
            "{}.{}",
            config.workload.name, config.workload.namespace
        )));
        // Only a proxy that serves mesh DNS needs the name table.
        let dns = if config.listeners.dns.is_some() {
            names::Table::build(&config)
        } else {
            names::Table::default()
        };
        Ok(Self {
            config: Arc::new(config),
            version,
            creds,
            workload_label,
            own,
            services,
            outbound,
            vips,
            routes,
            dns,
            inbound,
            authz,
            telemetry: Arc::default(),
        })
    }

    /// Makes the config's `telemetry` real: its tracer (the previous snapshot's, if
    /// its settings did not change), counted in `metrics`. Every snapshot a proxy
    /// serves goes through here; an error (a collector address the exporter refuses)
    /// refuses the config.
    pub fn with_telemetry(
        mut self,
        metrics: &crate::telemetry::Metrics,
        previous: Option<&Snapshot>,
    ) -> Result<Self, Error> {
        let identity = self.creds.as_ref().map(|c| c.identity().to_string());
        let sinks = crate::telemetry::sinks::Sinks::build(
            &self.config.telemetry,
            previous.map(|p| &*p.telemetry),
            metrics,
            (&self.config.workload.name, &self.config.workload.namespace),
            identity.as_deref(),
        )
        .map_err(Error::Telemetry)?;
        self.telemetry = Arc::new(sinks);
        Ok(self)
    }

    /// Spans and whether requests are counted.
    pub fn telemetry(&self) -> &crate::telemetry::sinks::Sinks {
        &self.telemetry
    }

    /// The inbound side's rate limits and faults.
    pub fn inbound_traffic(&self) -> &InboundTraffic {
        &self.inbound
    }

    /// Who may call this workload, compiled.
    pub fn authorization(&self) -> &crate::authz::Policy {
        &self.authz
    }

    /// Every service, for the health-check supervisor and debugging output.
    pub fn services(&self) -> impl Iterator<Item = &Arc<ServiceState>> {
        self.services.values()
    }

    /// The service port an explicit outbound listener points at.
    pub fn outbound_target(&self, listen: SocketAddr) -> Option<&Target> {
        self.outbound.get(&listen)
    }

    /// The names the mesh DNS answers.
    pub fn dns(&self) -> &names::Table {
        &self.dns
    }

    /// The service port behind a VIP (transparent mode).
    pub fn vip_target(&self, dst: SocketAddr) -> Option<&Target> {
        self.vips.get(&dst)
    }

    /// The route table for a service port; a catch-all to the port itself if none.
    pub fn routes(&self, target: &Target) -> Arc<RouteTable> {
        self.routes
            .get(&(target.service.key.clone(), target.port.port))
            .cloned()
            .unwrap_or_else(|| Arc::new(route::Table::single(target.clone())))
    }

    /// A service port by service key, in this snapshot.
    pub fn target(&self, key: &str, port: u16) -> Option<Target> {
        let service = self.services.get(key)?;
        let port = *service.ports.iter().find(|p| p.port == port)?;
        Some(Target {
            service: service.clone(),
            port,
        })
    }

    /// A service by `name.namespace`.
    pub fn service(&self, key: &str) -> Option<&Arc<ServiceState>> {
        self.services.get(key)
    }

    /// The declared protocol of an inbound port, or `None` if the port is not served.
    pub fn inbound_port(&self, port: u16) -> Option<Protocol> {
        self.config
            .workload
            .ports
            .iter()
            .find(|p| p.port == port)
            .map(|p| p.protocol)
    }

    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.config.settings
    }
}

/// The inbound limits and faults of `config`, keeping the buckets of unchanged limits
/// from `previous` (a reload must not hand out a fresh burst).
fn inbound_traffic(
    config: &Config,
    previous: Option<&InboundTraffic>,
) -> Result<InboundTraffic, Error> {
    use crate::ratelimit::{By, Limit, Limiter, Rate};
    let scope = |path: String, ports: &[u16], matches: &[weft_api::proxy::RouteMatch]| {
        Ok::<_, Error>(Scope {
            ports: ports.to_vec(),
            matches: route::Matches::compile(matches)
                .map_err(|source| Error::Route { path, source })?,
        })
    };
    let inbound = &config.inbound;
    let mut limits = Vec::with_capacity(inbound.rate_limits.len());
    let mut rates = Vec::with_capacity(inbound.rate_limits.len());
    for (i, l) in inbound.rate_limits.iter().enumerate() {
        limits.push(scope(
            format!("inbound.rateLimits[{i}]"),
            &l.ports,
            &l.matches,
        )?);
        rates.push(Limit {
            rate: Rate {
                requests: l.requests,
                per: l.per,
                burst: l.burst.unwrap_or(l.requests),
            },
            by: if l.per_identity {
                By::Identity
            } else {
                By::Workload
            },
        });
    }
    let faults = inbound
        .faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Ok((
                scope(format!("inbound.faults[{i}]"), &f.ports, &f.matches)?,
                f.clone(),
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let limiter = match previous {
        Some(p) => p.limiter.carry_over(&rates),
        None => Limiter::new(&rates),
    };
    Ok(InboundTraffic {
        limits,
        limiter,
        faults,
    })
}

/// The current snapshot, swapped atomically, with a signal for whoever acts on
/// changes (the health-check supervisor).
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Store {
    /// A store holding `initial`.
    pub fn new(initial: Snapshot) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(initial),
            changed: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot.
    pub fn swap(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
        self.changed.send_modify(|n| *n += 1);
    }

    /// Notified after every swap.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Dial;

    const CONFIG: &str = r"
workload: { name: client, address: 10.0.0.1 }
listeners: { hbone: null }
outbound:
  - { listen: 127.0.0.1:18080, service: echo, port: 80 }
services:
  - name: echo
    vip: 10.96.0.10
    ports: [{ port: 80, targetPort: 8080 }]
    endpoints:
      - { address: 10.0.0.2, identity: spiffe://cluster.local/ns/default/sa/echo }
      - { address: 10.0.0.3 }
  - name: echo-v2
    ports: [{ port: 80 }]
    endpoints: [{ address: 10.0.0.4 }]
";

    fn build(yaml: &str, previous: Option<&Snapshot>) -> Snapshot {
        let config = Config::from_yaml(yaml).expect("valid config");
        Snapshot::build(config, None, "v".into(), previous).expect("snapshot")
    }

    #[test]
    fn reload_keeps_state_of_unchanged_endpoints_and_renews_changed_ones() {
        let first = build(CONFIG, None);
        let old = first
            .service("echo.default")
            .expect("service")
            .endpoints
            .clone();
        let changed = CONFIG.replace("sa/echo }", "sa/echo-new }");
        let second = build(&changed, Some(&first));
        let new = &second.service("echo.default").expect("service").endpoints;
        assert!(
            !Arc::ptr_eq(&old[0], &new[0]),
            "a new identity is a new endpoint"
        );
        assert!(
            Arc::ptr_eq(&old[1], &new[1]),
            "load statistics and pools must survive a reload"
        );
    }

    #[test]
    fn every_service_port_has_a_route_table() {
        let snap = build(CONFIG, None);
        let target = snap.target("echo-v2.default", 80).expect("target");
        let table = snap.routes(&target);
        let rule = table.rules.first().expect("catch-all rule");
        assert_eq!(
            rule.pick().map(|t| t.service.key.to_string()),
            Some("echo-v2.default".into())
        );
        assert!(snap.target("echo.default", 81).is_none());
    }

    #[test]
    fn explicit_routes_replace_the_catch_all() {
        let yaml = format!(
            "{CONFIG}routes:\n  - service: echo\n    rules:\n      - backends: [{{ service: echo-v2 }}]\n"
        );
        let snap = build(&yaml, None);
        let table = snap.routes(&snap.target("echo.default", 80).expect("target"));
        let picked = table.rules[0].pick().expect("backend");
        assert_eq!(&*picked.service.key, "echo-v2.default");
    }

    #[test]
    fn listeners_and_vips_resolve_to_their_service_port() {
        let snap = build(CONFIG, None);
        let listen: SocketAddr = "127.0.0.1:18080".parse().expect("addr");
        let by_listener = snap.outbound_target(listen).expect("listener target");
        assert_eq!(
            (&*by_listener.service.key, by_listener.port.target()),
            ("echo.default", 8080)
        );
        let vip: SocketAddr = "10.96.0.10:80".parse().expect("addr");
        assert_eq!(
            &*snap.vip_target(vip).expect("vip target").service.key,
            "echo.default"
        );
        assert!(snap
            .vip_target("10.96.0.10:81".parse().expect("addr"))
            .is_none());
    }

    #[test]
    fn endpoints_without_identity_are_dialled_directly() {
        let snap = build(CONFIG, None);
        let eps = &snap.service("echo.default").expect("service").endpoints;
        assert!(matches!(&eps[0].dial, Dial::Hbone { proxy, .. } if proxy.port() == 15008));
        assert_eq!(eps[1].dial, Dial::Direct);
    }
}
