//! Load balancing across a service's endpoints.
//!
//! Peak-EWMA (the default) keeps, per endpoint, an exponentially weighted moving average
//! of response latency that jumps up at once on a slow response and decays slowly, and
//! picks the cheaper of two random endpoints where cost = latency × (outstanding + 1) —
//! the power of two choices, as in Finagle and Linkerd. Least-request uses outstanding
//! requests alone; round robin ignores load.
//!
//! The statistics live in [`Stats`], shared by every config snapshot that has the same
//! endpoint, so a reload does not forget what was learned. Updates are lock-free.
//!
//! [`choose`] is the whole decision for one request: which endpoints are usable (not
//! ejected by outlier detection, passing active health checks — unless so few are that
//! the service is in panic and all are used), whether the caller's zone has enough of
//! them to stay local, then the algorithm: a consistent-hash lookup for an affinity key,
//! or round robin / two choices, with new endpoints ramped up by slow start.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_api::proxy::LoadBalancer;

use super::{EndpointState, ServiceState};

/// Decay time of the latency average.
const DECAY: Duration = Duration::from_secs(10);
/// Latency assumed for an endpoint with no observations yet (optimistic, so new
/// endpoints get traffic).
const DEFAULT_RTT_NANOS: u64 = 1_000_000;

/// Per-endpoint load statistics.
#[derive(Debug)]
pub struct Stats {
    outstanding: AtomicUsize,
    /// EWMA of latency in nanoseconds, as f64 bits.
    ewma: AtomicU64,
    /// When `ewma` was last updated, in nanoseconds since `epoch`.
    stamp: AtomicU64,
    epoch: Instant,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            outstanding: AtomicUsize::new(0),
            ewma: AtomicU64::new((DEFAULT_RTT_NANOS as f64).to_bits()),
            stamp: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Stats {
    /// Marks a request as started; drop the guard when its response arrives.
    pub fn start(&self) -> InFlight<'_> {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: self,
            started: Instant::now(),
        }
    }

    /// Outstanding requests right now.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// The current latency estimate in nanoseconds, decayed to now.
    pub fn latency_nanos(&self) -> f64 {
        let now = self.now_nanos();
        let last = self.stamp.load(Ordering::Relaxed);
        let ewma = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        let elapsed = now.saturating_sub(last) as f64;
        // Decay toward the default while idle, so a once-slow endpoint is retried.
        let w = (-elapsed / DECAY.as_nanos() as f64).exp();
        ewma * w + DEFAULT_RTT_NANOS as f64 * (1.0 - w)
    }

    fn observe(&self, rtt: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let now = self.now_nanos();
        let prev = self.latency_nanos();
        // Peak-sensitive: a slower response replaces the average at once.
        let next = if rtt > prev {
            rtt
        } else {
            let last = self.stamp.load(Ordering::Relaxed);
            let elapsed = now.saturating_sub(last) as f64;
            let w = (-elapsed / DECAY.as_nanos() as f64).exp();
            prev * w + rtt * (1.0 - w)
        };
        self.ewma.store(next.to_bits(), Ordering::Relaxed);
        self.stamp.store(now, Ordering::Relaxed);
    }

    fn now_nanos(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn cost(&self) -> f64 {
        self.latency_nanos() * (self.outstanding() as f64 + 1.0)
    }
}

impl InFlight<'_> {
    /// Leaves `spent` (e.g. connection setup) out of the recorded latency.
    pub fn exclude(&mut self, spent: Duration) {
        self.started += spent;
    }
}

/// An outstanding request; records its latency when dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    stats: &'a Stats,
    started: Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.observe(self.started.elapsed());
        self.stats.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Draws of two choices before falling back to a scan for a usable endpoint.
const DRAWS: usize = 8;
/// Slow start's smallest share of a full weight, so a new endpoint gets some traffic.
const SLOW_START_FLOOR: f64 = 0.1;

/// Chooses the endpoint (an index into `svc.endpoints`) for one request; see the
/// module docs. `hash` is the request's affinity key for ringHash and maglev (`None`:
/// the request has none, and is balanced as by two choices); `avoid` is the endpoint a
/// retry just failed on, chosen again only when no other is usable.
pub fn choose(
    svc: &ServiceState,
    hash: Option<u64>,
    avoid: Option<&Arc<EndpointState>>,
    now: Instant,
) -> Option<usize> {
    let n = svc.endpoints.len();
    if n == 0 {
        return None;
    }
    let checks = svc.policy.health_check.is_some();
    let usable = |i: usize| {
        let e = &svc.endpoints[i];
        !e.outlier.is_ejected(now) && (!checks || e.is_healthy())
    };
    // Panic: with too few usable endpoints, concentrating the load on them would
    // finish them off; use every endpoint instead.
    let threshold = svc.policy.panic_threshold_percent as usize;
    let healthy = if svc.outlier.is_some() || checks {
        (0..n).filter(|&i| usable(i)).count()
    } else {
        n
    };
    let panic = healthy * 100 < threshold * n || healthy == 0;
    let not_avoided = |i: usize| avoid.is_none_or(|a| !Arc::ptr_eq(&svc.endpoints[i], a));
    let ok = |i: usize| (panic || usable(i)) && not_avoided(i);
    let fallback = |i: usize| panic || usable(i);

    if let (Some(table), Some(hash)) = (svc.table.as_deref(), hash) {
        return table
            .pick_usable(hash, ok)
            .or_else(|| table.pick_usable(hash, fallback));
    }
    // Zone preference: stay in this zone while enough of its endpoints are usable.
    let local = &svc.local;
    let candidates: Candidates<'_> = if local.is_empty() {
        Candidates::All(n)
    } else {
        let usable_local = local.iter().filter(|&&i| panic || usable(i)).count();
        if usable_local > 0
            && usable_local * 100 >= svc.policy.locality.min_healthy_percent as usize * local.len()
        {
            Candidates::Some(local)
        } else {
            Candidates::All(n)
        }
    };
    let factor = |i: usize| slow_start_factor(svc, i, now);
    let picked = match svc.load_balancer {
        LoadBalancer::RoundRobin => round_robin(svc, &candidates, &ok, &factor),
        LoadBalancer::LeastRequest | LoadBalancer::RingHash | LoadBalancer::Maglev => {
            two_choices(&candidates, &ok, |i| {
                (svc.endpoints[i].stats.outstanding() as f64 + 1.0) / factor(i)
            })
        }
        LoadBalancer::PeakEwma => two_choices(&candidates, &ok, |i| {
            svc.endpoints[i].stats.cost() / factor(i)
        }),
    };
    // Nothing usable in the zone (a retry avoiding its only endpoint, say): any zone
    // before an endpoint already tried.
    picked
        .or_else(|| candidates.iter().find(|&i| ok(i)))
        .or_else(|| (0..n).find(|&i| ok(i)))
        .or_else(|| candidates.iter().find(|&i| fallback(i)))
        .or_else(|| (0..n).find(|&i| fallback(i)))
}

/// The endpoints a choice is made among: all, or the caller's zone.
enum Candidates<'a> {
    All(usize),
    Some(&'a [usize]),
}

impl Candidates<'_> {
    fn len(&self) -> usize {
        match self {
            Self::All(n) => *n,
            Self::Some(s) => s.len(),
        }
    }

    fn get(&self, k: usize) -> usize {
        match self {
            Self::All(_) => k,
            Self::Some(s) => s[k],
        }
    }

    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).map(|k| self.get(k))
    }
}

fn round_robin(
    svc: &ServiceState,
    candidates: &Candidates<'_>,
    ok: &impl Fn(usize) -> bool,
    factor: &impl Fn(usize) -> f64,
) -> Option<usize> {
    let m = candidates.len();
    for _ in 0..m {
        let i = candidates.get(svc.shared.cursor.fetch_add(1, Ordering::Relaxed) % m);
        // A ramping endpoint takes its turn only with its share's probability.
        if ok(i) && (factor(i) >= 1.0 || fastrand::f64() < factor(i)) {
            return Some(i);
        }
    }
    None
}

/// The power of two choices among usable candidates: the cheaper of two random ones.
fn two_choices(
    candidates: &Candidates<'_>,
    ok: &impl Fn(usize) -> bool,
    cost: impl Fn(usize) -> f64,
) -> Option<usize> {
    let m = candidates.len();
    let (a_pos, a) = (0..DRAWS)
        .map(|_| {
            let k = fastrand::usize(..m);
            (k, candidates.get(k))
        })
        .find(|&(_, i)| ok(i))?;
    if m == 1 {
        return Some(a);
    }
    // The second is drawn among the others, so it is never the first again.
    let b = (0..DRAWS)
        .map(|_| {
            let k = fastrand::usize(..m - 1);
            candidates.get(if k >= a_pos { k + 1 } else { k })
        })
        .find(|&i| ok(i));
    match b {
        Some(b) if cost(b) < cost(a) => Some(b),
        _ => Some(a),
    }
}

/// A new endpoint's share of a full weight during slow start: from 10% to 100%
/// linearly over the window. Endpoints the proxy saw when it first saw the service
/// are not new.
fn slow_start_factor(svc: &ServiceState, i: usize, now: Instant) -> f64 {
    let Some(window) = svc.policy.slow_start else {
        return 1.0;
    };
    let added = svc.endpoints[i].added;
    if added.saturating_duration_since(svc.shared.created) < Duration::from_secs(1) {
        return 1.0;
    }
    let age = now.saturating_duration_since(added);
    if age >= window {
        return 1.0;
    }
    (age.as_secs_f64() / window.as_secs_f64()).max(SLOW_START_FLOOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Snapshot;
    use weft_api::proxy::Config;

    /// A snapshot with service `echo` over `n` endpoints 10.0.0.1…, with `lb` and the
    /// service lines `policy`; the workload is in zone `zone-a`.
    fn snapshot(n: usize, lb: &str, extra: &str) -> Snapshot {
        let endpoints: Vec<String> = (1..=n)
            .map(|i| {
                let zone = if i == 1 { "zone-a" } else { "zone-b" };
                format!("{{ address: 10.0.0.{i}, zone: {zone} }}")
            })
            .collect();
        let yaml = format!(
            "workload: {{ name: client, address: 10.9.0.1, zone: zone-a }}\n\
             listeners: {{ hbone: null }}\n\
             services:\n  - name: echo\n    ports: [{{ port: 80 }}]\n    loadBalancer: {lb}\n\
             {extra}    endpoints: [{}]\n",
            endpoints.join(", ")
        );
        let config = Config::from_yaml(&yaml).expect("valid config");
        Snapshot::build(config, None, "v".into(), None).expect("snapshot")
    }

    fn tally(snap: &Snapshot, n: usize, hash: Option<u64>) -> Vec<usize> {
        let svc = snap.service("echo.default").expect("service");
        let mut counts = vec![0; svc.endpoints.len()];
        for _ in 0..n {
            let i = choose(svc, hash, None, Instant::now()).expect("an endpoint");
            counts[i] += 1;
        }
        counts
    }

    fn eject(snap: &Snapshot, index: usize) {
        let svc = snap.service("echo.default").expect("service");
        let detector = svc.outlier.as_ref().expect("outlier detection on");
        for _ in 0..5 {
            let _ = detector.record(
                &svc.endpoints,
                index,
                crate::upstream::outlier::Outcome::Status(503),
                Instant::now(),
            );
        }
        assert!(svc.endpoints[index].outlier.is_ejected(Instant::now()));
    }

    #[test]
    fn round_robin_cycles_through_every_endpoint() {
        let snap = snapshot(
            3,
            "roundRobin",
            "    policy: { locality: { preferZone: false } }\n",
        );
        assert_eq!(tally(&snap, 300, None), vec![100, 100, 100]);
    }

    #[test]
    fn an_ejected_endpoint_is_skipped_until_too_few_are_left_then_all_are_used() {
        let snap = snapshot(
            4,
            "roundRobin",
            "    policy: { locality: { preferZone: false }, outlierDetection: { maxEjectionPercent: 100 } }\n",
        );
        eject(&snap, 0);
        assert_eq!(
            tally(&snap, 300, None)[0],
            0,
            "ejected endpoints get nothing"
        );
        eject(&snap, 1);
        eject(&snap, 2);
        // One of four usable is below the 50% panic threshold: every endpoint serves.
        let panicked = tally(&snap, 400, None);
        assert!(panicked.iter().all(|n| *n > 50), "{panicked:?}");
    }

    #[test]
    fn the_callers_zone_is_preferred_until_it_falls_below_its_share() {
        let snap = snapshot(3, "leastRequest", "");
        assert_eq!(tally(&snap, 100, None), vec![100, 0, 0], "zone-a only");
        eject(&snap, 0);
        let failed_over = tally(&snap, 100, None);
        assert_eq!(failed_over[0], 0, "{failed_over:?}");
        assert!(failed_over[1] > 0 && failed_over[2] > 0, "{failed_over:?}");
    }

    #[test]
    fn a_hash_key_sticks_to_one_endpoint_and_moves_only_while_it_is_ejected() {
        let snap = snapshot(
            5,
            "maglev",
            "    policy: { hashOn: { header: x-user }, outlierDetection: { maxEjectionPercent: 100 } }\n",
        );
        let key = crate::upstream::hash::key_hash(b"alice");
        let counts = tally(&snap, 100, Some(key));
        let owner = counts
            .iter()
            .position(|n| *n == 100)
            .expect("one endpoint took all");
        eject(&snap, owner);
        let moved = tally(&snap, 100, Some(key));
        assert_eq!(moved[owner], 0);
        assert_eq!(
            moved.iter().filter(|n| **n > 0).count(),
            1,
            "still one endpoint: {moved:?}"
        );
    }

    #[test]
    fn slow_start_gives_an_endpoint_added_later_a_smaller_share() {
        let policy = "    policy: { slowStart: 10s, locality: { preferZone: false } }\n";
        let first = snapshot(2, "leastRequest", policy);
        std::thread::sleep(Duration::from_millis(1100));
        // A reload that adds a third endpoint: it is new, the other two are not.
        let yaml = first.config.as_ref().clone();
        let mut config = yaml;
        config.services[0]
            .endpoints
            .push(weft_api::proxy::Endpoint {
                address: "10.0.0.3".parse().expect("ip"),
                identity: None,
                hbone: None,
                zone: None,
                workload: None,
            });
        let second = Snapshot::build(config, None, "v2".into(), Some(&first)).expect("snapshot");
        let svc = second.service("echo.default").expect("service");
        // Keep the old endpoints busier than the new one, so only its ramp holds it back.
        let _busy: Vec<_> = svc.endpoints[..2].iter().map(|e| e.stats.start()).collect();
        let counts = tally(&second, 1000, None);
        // Without slow start the idle new endpoint would win every comparison it is in
        // (about two thirds of all); at 10% of its weight it loses them.
        assert!(counts[2] < 200, "{counts:?}");
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let snap = snapshot(
            2,
            "leastRequest",
            "    policy: { locality: { preferZone: false } }\n",
        );
        let svc = snap.service("echo.default").expect("service");
        let _busy: Vec<_> = (0..5).map(|_| svc.endpoints[0].stats.start()).collect();
        assert_eq!(tally(&snap, 50, None), vec![0, 50]);
    }

    #[test]
    fn peak_ewma_shifts_load_away_from_a_slow_endpoint() {
        let snap = snapshot(
            3,
            "peakEwma",
            "    policy: { locality: { preferZone: false } }\n",
        );
        let svc = snap.service("echo.default").expect("service");
        svc.endpoints[0].stats.observe(Duration::from_millis(200));
        svc.endpoints[1].stats.observe(Duration::from_micros(500));
        svc.endpoints[2].stats.observe(Duration::from_micros(500));
        // Two choices: the slow endpoint only wins when drawn twice, which cannot happen.
        assert_eq!(tally(&snap, 3000, None)[0], 0);
    }

    #[test]
    fn peak_ewma_reacts_at_once_to_a_slow_response_and_decays_slowly() {
        let s = Stats::default();
        s.observe(Duration::from_millis(1));
        s.observe(Duration::from_millis(100));
        assert!(s.latency_nanos() > 90_000_000.0);
        s.observe(Duration::from_millis(1));
        assert!(
            s.latency_nanos() > 50_000_000.0,
            "one fast response must not erase a peak"
        );
    }

    #[test]
    fn in_flight_guard_counts_outstanding() {
        let s = Stats::default();
        let g = s.start();
        assert_eq!(s.outstanding(), 1);
        drop(g);
        assert_eq!(s.outstanding(), 0);
    }
}
