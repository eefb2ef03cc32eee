//! The services this proxy sends to, as the balancer sees them: each service's
//! endpoints with what the proxy learns about them at run time — load statistics
//! ([`balance`]), outlier ejections ([`outlier`]), active health ([`health`]),
//! upstream connection pools — and what a service keeps across reloads: its retry
//! [`budget`], connection [`limits`], round-robin position and consistent-hash
//! table ([`hash`]).
//!
//! A config snapshot ([`crate::state`]) is what the config says; it compiles its route
//! tables over the [`ServiceState`]s built here, and each rebuild takes the state of
//! unchanged endpoints and services over from the snapshot in force ([`Carried`]), so
//! statistics, ejections, health and pools survive a reload. The outbound side
//! ([`crate::outbound`]) picks endpoints through [`ServiceState::pick_for`] and
//! reports what happened to them.

pub mod balance;
pub mod budget;
pub mod hash;
pub mod health;
pub mod limits;
pub mod outlier;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use weft_api::proxy::{BackendPolicy, LoadBalancer, Service, ServicePort};
use weft_tls::SpiffeId;

use crate::http::pool::{self, Pool};
use crate::telemetry::labels::{self, Own};
use crate::telemetry::Name;
use balance::Stats;

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
    /// The peer labels of a request that failed before an endpoint was chosen.
    pub unchosen: labels::Peer,
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
    pub budget: budget::Budget,
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
    /// The peer labels of the requests it serves.
    pub peer: labels::Peer,
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
    fn new(address: IpAddr, dial: Dial, peer: labels::Peer) -> Self {
        Self {
            address,
            dial,
            peer,
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
        let i = balance::choose(self, hash, avoid, Instant::now())?;
        self.endpoints.get(i).map(|e| (i, e))
    }

    /// Picks an endpoint other than `avoid` where there is one (a retry goes elsewhere).
    pub fn pick_other(&self, avoid: Option<&Arc<EndpointState>>) -> Option<&Arc<EndpointState>> {
        self.pick_for(None, avoid).map(|(_, e)| e)
    }
}

/// What a new snapshot takes over from the one in force: the state of each endpoint
/// it still has and what each service keeps across reloads ([`Shared`]).
#[derive(Debug, Default)]
pub struct Carried {
    /// Endpoint state is per service: outlier detection judges an endpoint by the
    /// service's traffic, and two services may share a workload.
    endpoints: HashMap<(Arc<str>, IpAddr, Dial), Arc<EndpointState>>,
    shared: HashMap<Arc<str>, Arc<Shared>>,
}

impl Carried {
    /// The state of `services` (those of the snapshot in force).
    pub fn from_services<'a>(services: impl Iterator<Item = &'a Arc<ServiceState>>) -> Self {
        let mut carried = Self::default();
        for svc in services {
            for ep in &svc.endpoints {
                carried
                    .endpoints
                    .insert((svc.key.clone(), ep.address, ep.dial.clone()), ep.clone());
            }
            carried.shared.insert(svc.key.clone(), svc.shared.clone());
        }
        carried
    }
}

/// Why a service's endpoints could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An endpoint identity is not a SPIFFE ID.
    #[error("{path}: {source}")]
    Identity {
        /// Field path.
        path: String,
        /// Parse error.
        source: weft_tls::spiffe::Error,
    },
}

impl ServiceState {
    /// Builds `s` (`services[index]` of the config, for error paths), taking over from
    /// `carried` the state of endpoints it still has and the service's [`Shared`].
    /// `zone` is this workload's zone, for zone preference.
    pub fn build(
        index: usize,
        s: &Service,
        zone: Option<&str>,
        carried: &Carried,
        own: &Own,
    ) -> Result<Self, Error> {
        let key: Arc<str> = Arc::from(s.key());
        let mut endpoints = Vec::with_capacity(s.endpoints.len());
        for (e, ep) in s.endpoints.iter().enumerate() {
            let dial = match (&ep.identity, ep.hbone_address()) {
                (Some(id), Some(proxy)) => Dial::Hbone {
                    proxy,
                    identity: id.parse().map_err(|source| Error::Identity {
                        path: format!("services[{index}].endpoints[{e}].identity"),
                        source,
                    })?,
                },
                _ => Dial::Direct,
            };
            let peer = own.outbound(&key, Some(ep));
            // Interned labels: the same endpoint seen the same way has the same set.
            let state = carried
                .endpoints
                .get(&(key.clone(), ep.address, dial.clone()))
                .filter(|e| e.peer == peer)
                .cloned()
                .unwrap_or_else(|| Arc::new(EndpointState::new(ep.address, dial, peer)));
            endpoints.push(state);
        }
        let policy = &s.policy;
        let shared = carried.shared.get(&key).cloned().map_or_else(
            || {
                Arc::new(Shared {
                    budget: budget::Budget::new(&policy.retry_budget),
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
        Ok(Self {
            label: Name(key.clone()),
            unchosen: own.outbound(&key, None),
            key,
            ports: s.ports.clone(),
            load_balancer: s.load_balancer,
            endpoints,
            policy: policy.clone(),
            shared,
            outlier,
            table,
            local,
        })
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
