//! The proxy's current configuration, compiled for the data path and swapped atomically.
//!
//! A [`Snapshot`] is built from a validated [`Config`]: services with their endpoints
//! and load-balancer state, compiled route tables, lookup maps for listeners and VIPs,
//! and the loaded credentials. Connections read the current snapshot with one atomic
//! load; a reload builds a new one and swaps it in, so in-flight requests finish on the
//! snapshot they started with and nothing is dropped. Endpoint statistics and upstream
//! connection pools carry over from the previous snapshot.
//!
//! Config comes from [`file`] (a local YAML file, re-read on change) or, with a control
//! plane, from the xDS client: [`compose`] lays what it receives over the bootstrap file
//! and the result goes into the same [`Store`].

pub mod compose;
pub mod file;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use arc_swap::ArcSwap;
use weft_api::proxy::{BackendPolicy, Config, LoadBalancer, Protocol, ServicePort, Settings};
use weft_tls::{Credentials, SpiffeId};

use crate::http::pool::{self, Pool};
use crate::outbound::balance::Stats;
use crate::outbound::{hash, health, limits, outlier, retry, route};
use crate::telemetry::Name;

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
    services: HashMap<String, Arc<ServiceState>>,
    outbound: HashMap<SocketAddr, Target>,
    vips: HashMap<SocketAddr, Target>,
    routes: HashMap<(Arc<str>, u16), Arc<RouteTable>>,
    dns: crate::dns::Table,
    /// What each service keeps across reloads, by service key.
    shared: HashMap<Arc<str>, Arc<Shared>>,
    /// Rate limits and faults of the inbound side.
    inbound: Arc<InboundTraffic>,
}

/// The inbound side's rate limits (with their buckets) and faults, compiled.
#[derive(Debug)]
pub struct InboundTraffic {
    /// The limits, in order, with what they cover.
    pub limits: Vec<Scope>,
    /// Buckets of `limits` (same order), carried across reloads.
    pub limiter: crate::inbound::ratelimit::Limiter,
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

/// A service port as a routing destination.
#[derive(Clone, Debug)]
pub struct Target {
    /// The service.
    pub service: Arc<ServiceState>,
    /// The port.
    pub port: ServicePort,
}

/// A service with its endpoints and the policy its callers apply.
#[derive(Debug)]
pub struct ServiceState {
    /// `name.namespace`.
    pub key: Arc<str>,
    /// The same, as a metric label.
    pub label: Name,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Load-balancing algorithm.
    pub load_balancer: LoadBalancer,
    /// Endpoints.
    pub endpoints: Vec<Arc<EndpointState>>,
    /// The `BackendPolicy` in force (affinity, locality, health checks, …).
    pub policy: BackendPolicy,
    /// What outlives this snapshot: retry budget, connection limits, round-robin
    /// position.
    pub shared: Arc<Shared>,
    /// Outlier detection over `endpoints`, if on.
    pub outlier: Option<outlier::Detector>,
    /// The consistent-hash table over `endpoints` for `ringHash` and `maglev`.
    pub table: Option<Arc<hash::Table>>,
    /// Indices of the endpoints in this proxy's zone, when zone preference applies
    /// (this workload has a zone and some endpoints share it); empty otherwise.
    pub local: Vec<usize>,
}

/// The part of a service's state that a reload keeps: the counters and savings that
/// describe traffic already sent, not configuration.
#[derive(Debug)]
pub struct Shared {
    /// Retries this proxy may still send to the service.
    pub budget: retry::Budget,
    /// Requests and connections in flight against `connectionLimits`.
    pub limiter: Arc<limits::Limiter>,
    /// Round-robin position.
    pub cursor: AtomicUsize,
    /// When this proxy first saw the service: endpoints present from the start are not
    /// "new" for slow start.
    pub created: Instant,
    /// The last hash table built, with the endpoint addresses it was built over, so an
    /// unchanged service does not rebuild it on every reload.
    table: Mutex<Option<CachedTable>>,
}

/// A hash table with the endpoint addresses and algorithm it was built for.
type CachedTable = (Vec<IpAddr>, LoadBalancer, Arc<hash::Table>);

/// How to reach an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dial {
    /// Through its proxy over HBONE; the proxy must present `identity`.
    Hbone {
        /// The peer proxy's HBONE address.
        proxy: SocketAddr,
        /// The SPIFFE ID it must present.
        identity: SpiffeId,
    },
    /// Directly, in plaintext (an endpoint outside the mesh).
    Direct,
}

/// One endpoint of one service: where it is, how to reach it, what we learned about
/// it. Kept across reloads while the service still has it.
#[derive(Debug)]
pub struct EndpointState {
    /// Workload address.
    pub address: IpAddr,
    /// How to reach it.
    pub dial: Dial,
    /// Load statistics.
    pub stats: Stats,
    /// Outlier detection state (ejected or not, consecutive failures).
    pub outlier: outlier::Endpoint,
    /// When this proxy first saw it (slow start).
    pub added: Instant,
    /// Active health: set once checks start, kept when the check changes.
    pub health: OnceLock<Arc<health::State>>,
    /// The running check and the config it runs, replaced when the config changes.
    pub health_task: Mutex<Option<(weft_api::proxy::HealthCheck, health::Handle)>>,
    pools: Mutex<HashMap<(u16, pool::Version), Arc<Pool>>>,
}

impl AsRef<outlier::Endpoint> for Arc<EndpointState> {
    fn as_ref(&self) -> &outlier::Endpoint {
        &self.outlier
    }
}

impl AsRef<Stats> for Arc<EndpointState> {
    fn as_ref(&self) -> &Stats {
        &self.stats
    }
}

impl EndpointState {
    /// The HTTP pool for `port` and `version`, created with `make` on first use.
    pub fn pool(
        &self,
        port: u16,
        version: pool::Version,
        make: impl FnOnce() -> Arc<Pool>,
    ) -> Arc<Pool> {
        let mut pools = self
            .pools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        pools.entry((port, version)).or_insert_with(make).clone()
    }
}

impl EndpointState {
    fn new(address: IpAddr, dial: Dial) -> Self {
        Self {
            address,
            dial,
            stats: Stats::default(),
            outlier: outlier::Endpoint::default(),
            added: Instant::now(),
            health: OnceLock::new(),
            health_task: Mutex::new(None),
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the last health checks passed; `false` before any check ran.
    pub fn is_healthy(&self) -> bool {
        self.health.get().is_some_and(|h| h.is_healthy())
    }
}

impl ServiceState {
    /// Picks an endpoint with the service's load balancer (no affinity key, nothing to
    /// avoid); see [`Self::pick_for`].
    pub fn pick(&self) -> Option<&Arc<EndpointState>> {
        self.pick_for(None, None).map(|(_, e)| e)
    }

    /// Picks an endpoint for a request whose affinity key hashes to `hash` (hashing
    /// load balancers), other than `avoid` where another is usable (a retry goes
    /// elsewhere). Returns its index in [`Self::endpoints`] too, for outlier detection.
    pub fn pick_for(
        &self,
        hash: Option<u64>,
        avoid: Option<&Arc<EndpointState>>,
    ) -> Option<(usize, &Arc<EndpointState>)> {
        let i = crate::outbound::balance::choose(self, hash, avoid, Instant::now())?;
        self.endpoints.get(i).map(|e| (i, e))
    }

    /// Picks an endpoint other than `avoid` where there is one (a retry goes elsewhere).
    pub fn pick_other(&self, avoid: Option<&Arc<EndpointState>>) -> Option<&Arc<EndpointState>> {
        self.pick_for(None, avoid).map(|(_, e)| e)
    }
}

/// Why a snapshot could not be built from a (valid) config.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Certificates could not be loaded.
    #[error("certificates: {0}")]
    Credentials(#[from] weft_tls::CredsError),
    /// An endpoint identity is not a SPIFFE ID.
    #[error("{path}: {source}")]
    Identity {
        /// Field path.
        path: String,
        /// Parse error.
        source: weft_tls::spiffe::Error,
    },
    /// A route did not compile.
    #[error("{path}: {source}")]
    Route {
        /// Field path.
        path: String,
        /// Compile error.
        source: route::Error,
    },
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
        // Endpoint state is per service: outlier detection judges an endpoint by the
        // service's traffic, and two services may share a workload.
        let mut reuse: HashMap<(Arc<str>, IpAddr, Dial), Arc<EndpointState>> = HashMap::new();
        if let Some(prev) = previous {
            for svc in prev.services.values() {
                for ep in &svc.endpoints {
                    reuse.insert((svc.key.clone(), ep.address, ep.dial.clone()), ep.clone());
                }
            }
        }
        let zone = config.workload.zone.as_deref();
        let mut services = HashMap::new();
        let mut shared_by_key = HashMap::new();
        for (i, s) in config.services.iter().enumerate() {
            let key: Arc<str> = Arc::from(s.key());
            let mut endpoints = Vec::with_capacity(s.endpoints.len());
            for (e, ep) in s.endpoints.iter().enumerate() {
                let dial = match (&ep.identity, ep.hbone_address()) {
                    (Some(id), Some(proxy)) => Dial::Hbone {
                        proxy,
                        identity: id.parse().map_err(|source| Error::Identity {
                            path: format!("services[{i}].endpoints[{e}].identity"),
                            source,
                        })?,
                    },
                    _ => Dial::Direct,
                };
                let state = reuse
                    .get(&(key.clone(), ep.address, dial.clone()))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(EndpointState::new(ep.address, dial)));
                endpoints.push(state);
            }
            let policy = &s.policy;
            let shared = previous
                .and_then(|p| p.shared.get(&key))
                .cloned()
                .map_or_else(
                    || {
                        Arc::new(Shared {
                            budget: retry::Budget::new(&policy.retry_budget),
                            limiter: limits::Limiter::new(&policy.limits),
                            cursor: AtomicUsize::new(0),
                            created: Instant::now(),
                            table: Mutex::new(None),
                        })
                    },
                    |shared| {
                        shared.budget.set(&policy.retry_budget);
                        shared.limiter.set(&policy.limits);
                        shared
                    },
                );
            let table = s
                .load_balancer
                .hashes()
                .then(|| shared.table(s.load_balancer, &endpoints));
            let local: Vec<usize> = match zone {
                Some(z) if policy.locality.prefer_zone => s
                    .endpoints
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.zone.as_deref() == Some(z))
                    .map(|(i, _)| i)
                    .collect(),
                _ => Vec::new(),
            };
            let outlier = policy
                .outlier_detection
                .as_ref()
                .map(|o| outlier::Detector::new(outlier_config(o), Instant::now()));
            shared_by_key.insert(key.clone(), shared.clone());
            services.insert(
                s.key(),
                Arc::new(ServiceState {
                    label: Name(key.clone()),
                    key,
                    ports: s.ports.clone(),
                    load_balancer: s.load_balancer,
                    endpoints,
                    policy: policy.clone(),
                    shared,
                    outlier,
                    table,
                    local,
                }),
            );
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
                        route::Rule::compile(rule, |b| target(&b.service, b.port.unwrap_or(port)))
                            .map_err(|source| Error::Route {
                                path: format!("routes[{i}].rules[{r}]"),
                                source,
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
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
                        Arc::new(route::Table::single(Target {
                            service: svc.clone(),
                            port: *port,
                        }))
                    });
            }
        }
        let inbound = Arc::new(inbound_traffic(&config, previous.map(|p| &*p.inbound))?);
        let workload_label = Name(Arc::from(format!(
            "{}.{}",
            config.workload.name, config.workload.namespace
        )));
        // Only a proxy that serves mesh DNS needs the name table.
        let dns = if config.listeners.dns.is_some() {
            crate::dns::Table::build(&config)
        } else {
            crate::dns::Table::default()
        };
        Ok(Self {
            config: Arc::new(config),
            version,
            creds,
            workload_label,
            services,
            outbound,
            vips,
            routes,
            dns,
            shared: shared_by_key,
            inbound,
        })
    }

    /// The inbound side's rate limits and faults.
    pub fn inbound_traffic(&self) -> &InboundTraffic {
        &self.inbound
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
    pub fn dns(&self) -> &crate::dns::Table {
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

impl Shared {
    /// The hash table over `endpoints`, reusing the last one while the addresses and
    /// the algorithm are unchanged (a Maglev table is 64 Ki entries to build).
    fn table(&self, lb: LoadBalancer, endpoints: &[Arc<EndpointState>]) -> Arc<hash::Table> {
        let addresses: Vec<IpAddr> = endpoints.iter().map(|e| e.address).collect();
        let mut cached = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((a, l, t)) = cached.as_ref() {
            if *a == addresses && *l == lb {
                return t.clone();
            }
        }
        let table = Arc::new(hash::Table::build(lb, &addresses));
        *cached = Some((addresses, lb, table.clone()));
        table
    }
}

/// The inbound limits and faults of `config`, keeping the buckets of unchanged limits
/// from `previous` (a reload must not hand out a fresh burst).
fn inbound_traffic(
    config: &Config,
    previous: Option<&InboundTraffic>,
) -> Result<InboundTraffic, Error> {
    use crate::inbound::ratelimit::{By, Limit, Limiter, Rate};
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

/// The outlier detector's settings from the proxy config.
fn outlier_config(o: &weft_api::proxy::OutlierDetection) -> outlier::Config {
    outlier::Config {
        consecutive_5xx: o.consecutive_5xx,
        consecutive_gateway_errors: o.consecutive_gateway_errors,
        interval: o.interval,
        base_ejection_time: o.base_ejection_time,
        max_ejection_time: o.max_ejection_time,
        max_ejection_percent: o.max_ejection_percent,
        success_rate: o.success_rate.map(|r| outlier::SuccessRate {
            minimum_hosts: r.minimum_hosts,
            request_volume: r.request_volume,
            stdev_factor: r.stdev_factor,
        }),
    }
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
