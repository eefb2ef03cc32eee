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

use crate::state::{EndpointState, ServiceState};

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
    let draw = || {
        (0..DRAWS)
            .map(|_| candidates.get(fastrand::usize(..m)))
            .find(|&i| ok(i))
    };
    let a = draw()?;
    if m == 1 {
        return Some(a);
    }
    let b = (0..DRAWS)
        .map(|_| candidates.get(fastrand::usize(..m)))
        .find(|&i| i != a && ok(i));
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

/// Picks an index into `stats` (non-empty) with `algorithm`. `cursor` is the service's
/// round-robin position.
pub fn pick<S: AsRef<Stats>>(algorithm: LoadBalancer, stats: &[S], cursor: &AtomicUsize) -> usize {
    let n = stats.len();
    if n <= 1 {
        return 0;
    }
    match algorithm {
        LoadBalancer::RoundRobin => cursor.fetch_add(1, Ordering::Relaxed) % n,
        LoadBalancer::LeastRequest
        | LoadBalancer::PeakEwma
        | LoadBalancer::RingHash
        | LoadBalancer::Maglev => {
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
            if b >= a {
                b += 1;
            }
            let (ca, cb) = if algorithm == LoadBalancer::LeastRequest {
                (
                    stats[a].as_ref().outstanding() as f64,
                    stats[b].as_ref().outstanding() as f64,
                )
            } else {
                (stats[a].as_ref().cost(), stats[b].as_ref().cost())
            };
            if cb < ca {
                b
            } else {
                a
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: usize) -> Vec<std::sync::Arc<Stats>> {
        (0..n).map(|_| std::sync::Arc::default()).collect()
    }

    #[test]
    fn round_robin_cycles_through_every_endpoint() {
        let s = endpoints(3);
        let cursor = AtomicUsize::new(0);
        let picks: Vec<usize> = (0..6)
            .map(|_| pick(LoadBalancer::RoundRobin, &s, &cursor))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let s = endpoints(2);
        let _busy: Vec<_> = (0..5).map(|_| s[0].start()).collect();
        let cursor = AtomicUsize::new(0);
        for _ in 0..50 {
            assert_eq!(pick(LoadBalancer::LeastRequest, &s, &cursor), 1);
        }
    }

    #[test]
    fn peak_ewma_shifts_load_away_from_a_slow_endpoint() {
        let s = endpoints(3);
        s[0].observe(Duration::from_millis(200));
        s[1].observe(Duration::from_micros(500));
        s[2].observe(Duration::from_micros(500));
        let cursor = AtomicUsize::new(0);
        let slow = (0..3000)
            .filter(|_| pick(LoadBalancer::PeakEwma, &s, &cursor) == 0)
            .count();
        // Two choices: the slow endpoint only wins when drawn twice, which cannot happen.
        assert_eq!(slow, 0, "slow endpoint picked {slow} times");
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
