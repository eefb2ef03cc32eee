//! Live traffic statistics and taps, from the proxies' report streams (ADR 39).
//!
//! Each proxy sends a window of request statistics every few seconds over its report
//! stream ([`service`]); the control plane keeps each proxy's last [`KEEP`] of them
//! in memory (bounded: a window holds at most [`MAX_SERIES`] series) and answers
//! `GET /v1/stats` by summing the windows of the period asked for. Nothing is stored:
//! these are live views (`weft stat`, `weft top`, `weft edges`, the GUI's graph), and
//! Prometheus keeps the history. A tap asks the proxies it names to send the requests
//! that match, and passes their events to the operator's stream.

pub mod service;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
use weft_api::pb::v1 as pb;

/// How long windows are kept: the longest period a query may ask for.
pub const KEEP: Duration = Duration::from_secs(300);

/// Series kept of one window, at most; more are dropped.
pub const MAX_SERIES: usize = 4096;

/// Events queued for one tap's operator, at most; more are dropped.
pub const TAP_QUEUE: usize = 256;

/// A proxy, by its workload: (namespace, name).
pub type ProxyKey = (String, String);

/// The live statistics and taps of every connected proxy.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    proxies: HashMap<ProxyKey, Proxy>,
    taps: HashMap<u64, Tap>,
    next_session: u64,
    next_tap: u64,
}

#[derive(Debug)]
struct Proxy {
    session: u64,
    windows: VecDeque<(Instant, pb::Window)>,
    control: mpsc::Sender<pb::ControlRequest>,
}

#[derive(Debug)]
struct Tap {
    start: pb::TapStart,
    proxies: Vec<ProxyKey>,
    events: mpsc::Sender<pb::TapEvent>,
}

/// What a query groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// Destination service, from the callers' side.
    Service,
    /// Destination workload, from its own side.
    Workload,
    /// Route rule, from the callers' side.
    Route,
    /// Caller → destination (workload and service), with the connection's security.
    Edge,
}

impl By {
    /// Parses `service`, `workload`, `route` or `edge`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "service" | "services" => Self::Service,
            "workload" | "workloads" => Self::Workload,
            "route" | "routes" => Self::Route,
            "edge" | "edges" => Self::Edge,
            _ => return None,
        })
    }
}

/// One side of an edge or row.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Party {
    /// Service (`name.namespace`); destinations only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// Workload name.
    pub workload: String,
    /// Namespace.
    pub namespace: String,
    /// SPIFFE ID, as proven.
    pub identity: String,
}

/// A route rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RouteRef {
    /// `HTTPRoute/ns/name`.
    pub name: String,
    /// The rule's index.
    pub rule: u32,
}

/// Latency percentiles, milliseconds, estimated from bucket counts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One row of a query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// The caller (edges).
    pub source: Option<Party>,
    /// What was called.
    pub destination: Party,
    /// The route rule (routes).
    pub route: Option<RouteRef>,
    /// `mutual_tls`, `none`, `unknown` (edges).
    pub security: Option<String>,
    /// Requests answered in the period.
    pub requests: u64,
    /// Of those, not 5xx.
    pub successes: u64,
    /// `successes / requests`; `None` without requests.
    pub success_rate: Option<f64>,
    /// Requests per second over the period.
    pub rps: f64,
    /// Latency to response headers.
    pub latency_ms: Option<Latency>,
}

/// A query's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    /// The period summed, seconds.
    pub window_seconds: u64,
    /// What rows are grouped by.
    pub by: &'static str,
    /// Proxies whose windows were summed.
    pub proxies: usize,
    /// The rows, busiest first.
    pub rows: Vec<Row>,
}

#[derive(Default)]
struct Sum {
    requests: u64,
    successes: u64,
    bounds: Vec<f64>,
    latency: Vec<u64>,
}

impl Sum {
    fn add(&mut self, s: &pb::Series) {
        self.requests += s.requests;
        self.successes += s.successes;
        if self.bounds.is_empty() && s.latency.len() == s.latency_bounds_ms.len() + 1 {
            self.bounds.clone_from(&s.latency_bounds_ms);
            self.latency = vec![0; s.latency.len()];
        }
        if self.bounds == s.latency_bounds_ms && self.latency.len() == s.latency.len() {
            for (total, n) in self.latency.iter_mut().zip(&s.latency) {
                *total += n;
            }
        }
    }

    /// The `q` quantile, interpolated inside its bucket as Prometheus's
    /// `histogram_quantile` does (the last, open bucket answers its lower bound).
    fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut seen = 0u64;
        for (i, &n) in self.latency.iter().enumerate() {
            if n > 0 && (seen + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                let Some(&upper) = self.bounds.get(i) else {
                    return Some(lower);
                };
                let within = (rank - seen as f64) / n as f64;
                return Some(lower + (upper - lower) * within.clamp(0.0, 1.0));
            }
            seen += n;
        }
        self.bounds.last().copied()
    }

    fn row(&self, seconds: u64, source: Option<Party>, destination: Party) -> Row {
        let latency_ms = match (self.quantile(0.5), self.quantile(0.95), self.quantile(0.99)) {
            (Some(p50), Some(p95), Some(p99)) => Some(Latency {
                p50: round3(p50),
                p95: round3(p95),
                p99: round3(p99),
            }),
            _ => None,
        };
        Row {
            source,
            destination,
            route: None,
            security: None,
            requests: self.requests,
            successes: self.successes,
            success_rate: (self.requests > 0).then(|| self.successes as f64 / self.requests as f64),
            rps: self.requests as f64 / seconds.max(1) as f64,
            latency_ms,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct GroupKey {
    source: Option<Party>,
    destination: Party,
    route: Option<RouteRef>,
    security: Option<String>,
}

impl Stats {
    /// A proxy's report stream opened: its session, and where its taps are sent.
    /// A newer stream for the same workload replaces an older one.
    pub fn connect(&self, key: ProxyKey) -> (u64, mpsc::Receiver<pb::ControlRequest>) {
        let (control, rx) = mpsc::channel(16);
        let mut inner = self.lock();
        inner.next_session += 1;
        let session = inner.next_session;
        // Taps already running that name this workload start on it too.
        for tap in inner.taps.values() {
            if tap.proxies.contains(&key) {
                let _ = control.try_send(start(&tap.start));
            }
        }
        inner.proxies.insert(
            key,
            Proxy {
                session,
                windows: VecDeque::new(),
                control,
            },
        );
        (session, rx)
    }

    /// The stream of `session` ended.
    pub fn disconnect(&self, key: &ProxyKey, session: u64) {
        let mut inner = self.lock();
        if inner.proxies.get(key).is_some_and(|p| p.session == session) {
            inner.proxies.remove(key);
        }
    }

    /// A window from `key`'s proxy (session `session`).
    pub fn window(&self, key: &ProxyKey, session: u64, mut window: pb::Window) {
        window.series.truncate(MAX_SERIES);
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(proxy) = inner.proxies.get_mut(key).filter(|p| p.session == session) else {
            return;
        };
        while proxy
            .windows
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > KEEP)
        {
            proxy.windows.pop_front();
        }
        proxy.windows.push_back((now, window));
    }

    /// A tap event from `key`'s proxy: passed to its tap's operator, if the tap names
    /// that proxy and still runs.
    pub fn tap_event(&self, key: &ProxyKey, event: pb::TapEvent) {
        let inner = self.lock();
        if let Some(tap) = inner.taps.get(&event.tap_id) {
            if tap.proxies.contains(key) {
                let _ = tap.events.try_send(event);
            }
        }
    }

    /// Starts a tap on `proxies` (those not connected start it when they connect);
    /// its events arrive on the receiver until [`Stats::stop_tap`].
    pub fn start_tap(
        &self,
        mut start: pb::TapStart,
        proxies: Vec<ProxyKey>,
    ) -> (u64, mpsc::Receiver<pb::TapEvent>) {
        let (events, rx) = mpsc::channel(TAP_QUEUE);
        let mut inner = self.lock();
        inner.next_tap += 1;
        start.id = inner.next_tap;
        for key in &proxies {
            if let Some(proxy) = inner.proxies.get(key) {
                let _ = proxy.control.try_send(self::start(&start));
            }
        }
        let id = start.id;
        inner.taps.insert(
            id,
            Tap {
                start,
                proxies,
                events,
            },
        );
        (id, rx)
    }

    /// Stops tap `id` on its proxies.
    pub fn stop_tap(&self, id: u64) {
        let mut inner = self.lock();
        let Some(tap) = inner.taps.remove(&id) else {
            return;
        };
        for key in &tap.proxies {
            if let Some(proxy) = inner.proxies.get(key) {
                let _ = proxy.control.try_send(pb::ControlRequest {
                    request: Some(pb::control_request::Request::TapStop(pb::TapStop { id })),
                });
            }
        }
    }

    /// The connected proxies' workloads.
    pub fn proxies(&self) -> Vec<ProxyKey> {
        self.lock().proxies.keys().cloned().collect()
    }

    /// Sums the windows of the last `period` by `by`, within `namespace` if given.
    pub fn query(&self, by: By, period: Duration, namespace: Option<&str>) -> Answer {
        let now = Instant::now();
        let period = period.clamp(Duration::from_secs(1), KEEP);
        let mut groups: BTreeMap<GroupKey, Sum> = BTreeMap::new();
        let inner = self.lock();
        let mut proxies = 0;
        for ((ns, name), proxy) in &inner.proxies {
            proxies += 1;
            for (_, window) in proxy
                .windows
                .iter()
                .filter(|(at, _)| now.duration_since(*at) <= period)
            {
                for s in &window.series {
                    let Some(key) = group(by, s, ns, name) else {
                        continue;
                    };
                    if namespace.is_some_and(|want| key.destination.namespace != want) {
                        continue;
                    }
                    groups.entry(key).or_default().add(s);
                }
            }
        }
        drop(inner);
        let seconds = period.as_secs();
        let mut rows: Vec<Row> = groups
            .into_iter()
            .map(|(key, sum)| {
                let mut row = sum.row(seconds, key.source, key.destination);
                row.route = key.route;
                row.security = key.security;
                row
            })
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.requests));
        Answer {
            window_seconds: seconds,
            by: match by {
                By::Service => "service",
                By::Workload => "workload",
                By::Route => "route",
                By::Edge => "edge",
            },
            proxies,
            rows,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `x` to three decimals (microseconds, for milliseconds): interpolation leaves
/// float noise (`23.500000000000007`) no reader wants.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn start(start: &pb::TapStart) -> pb::ControlRequest {
    pb::ControlRequest {
        request: Some(pb::control_request::Request::TapStart(start.clone())),
    }
}

/// The group a series of proxy `(ns, name)` counts in, if any. Each request is seen
/// by two proxies; each grouping reads one side only, so nothing counts twice:
/// services, routes and edges the callers' (outbound), workloads their own (inbound).
/// Callers without a proxy of their own appear as inbound edges with no workload.
fn group(by: By, s: &pb::Series, ns: &str, name: &str) -> Option<GroupKey> {
    let is_route = !s.route.is_empty();
    let destination = Party {
        service: s.destination_service.clone(),
        workload: s.destination_workload.clone(),
        namespace: s.destination_namespace.clone(),
        identity: s.destination_identity.clone(),
    };
    match by {
        By::Service if !s.inbound && !is_route => Some(GroupKey {
            source: None,
            destination: Party {
                workload: String::new(),
                identity: String::new(),
                ..destination
            },
            route: None,
            security: None,
        }),
        By::Workload if s.inbound => Some(GroupKey {
            source: None,
            destination: Party {
                service: String::new(),
                workload: name.to_owned(),
                namespace: ns.to_owned(),
                ..destination
            },
            route: None,
            security: None,
        }),
        By::Route if is_route => Some(GroupKey {
            source: None,
            destination: Party {
                workload: String::new(),
                identity: String::new(),
                ..destination
            },
            route: Some(RouteRef {
                name: s.route.clone(),
                rule: s.route_rule,
            }),
            security: None,
        }),
        By::Edge
            if !is_route
                && (!s.inbound || s.source_workload.is_empty() && s.security == "none") =>
        {
            let source = Party {
                service: String::new(),
                workload: s.source_workload.clone(),
                namespace: s.source_namespace.clone(),
                identity: s.source_identity.clone(),
            };
            let destination = if s.inbound {
                Party {
                    workload: name.to_owned(),
                    namespace: ns.to_owned(),
                    ..destination
                }
            } else {
                destination
            };
            Some(GroupKey {
                source: Some(source),
                destination,
                route: None,
                security: Some(s.security.clone()),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
