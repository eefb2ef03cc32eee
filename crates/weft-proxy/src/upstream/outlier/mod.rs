//! Outlier detection: passive health checking that ejects a service's failing endpoints
//! for a while, as Envoy's outlier detection does.
//!
//! The outbound path records the outcome of every attempt it sends ([`Detector::record`]):
//! a run of 5xx responses (or of gateway errors: 502, 503, 504 and local failures) ejects
//! the endpoint at once, and every [`Config::interval`] the endpoints whose success rate is
//! far below their peers' are ejected too. The load balancer skips an ejected endpoint
//! ([`Endpoint::is_ejected`]) unless fewer than its panic threshold of endpoints are
//! usable ([`ejected_count`]), in which case it ignores ejections altogether.
//!
//! An endpoint's n-th ejection lasts [`Config::base_ejection_time`] × n, up to
//! [`Config::max_ejection_time`]; n goes down by one for every interval the endpoint
//! spends back in service. When its time is up the endpoint is usable again at once:
//! there is no un-eject event, only a timestamp that has passed.
//!
//! This is not active health checking (nothing is probed), not a retry policy, and not
//! a load-shedding circuit breaker on outstanding requests: it only decides which
//! endpoints are out for now.
//!
//! The request path takes no lock: counters are atomics, and an ejection or the interval
//! sweep takes the detector's lock with `try_lock`, so a request never waits; one that
//! finds the lock busy leaves its counter standing and the next failure tries again.
//! Because every ejection happens under that lock, the max-ejection-percent cap is
//! exact and an endpoint is never ejected twice at once. The rest is approximate, like
//! Envoy's: an outcome racing an ejection may be counted on either side of it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// One request to add to an endpoint's per-interval counts (high half: requests).
const REQUEST: u64 = 1 << 32;
/// The low half of the per-interval counts: successes.
const SUCCESSES: u64 = REQUEST - 1;

/// Outlier detection settings for one service.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Eject an endpoint after this many 5xx responses (or local failures) in a row.
    /// `None` turns this check off. Default: `Some(5)`.
    pub consecutive_5xx: Option<u32>,
    /// Eject an endpoint after this many gateway errors in a row: 502, 503 or 504
    /// responses and local failures (connect failed, reset, timeout). `None` turns this
    /// check off. Default: `None`.
    pub consecutive_gateway_errors: Option<u32>,
    /// How often success rates are evaluated, the per-interval counts restart, and
    /// ejection multipliers decay. A zero interval sweeps on every request. Default: 10s.
    pub interval: Duration,
    /// How long a first ejection lasts; the n-th lasts n times this. Default: 30s.
    pub base_ejection_time: Duration,
    /// The longest an ejection lasts, however often the endpoint was ejected before.
    /// Default: 300s.
    pub max_ejection_time: Duration,
    /// The most endpoints ejected at once, in percent of the service's endpoints; one
    /// endpoint may always be ejected (unless this is 0, which turns ejection off), so a
    /// small service is protected too. Values above 100 mean 100. Default: 10.
    pub max_ejection_percent: u32,
    /// Ejection of endpoints whose success rate is an outlier. `None` turns this check
    /// off. Default: `None`.
    pub success_rate: Option<SuccessRate>,
}

/// Success-rate outlier detection: at each interval, among the endpoints that served
/// at least `request_volume` requests, if at least `minimum_hosts` did, eject those
/// whose success rate is below mean − `stdev_factor` × standard deviation.
#[derive(Clone, Debug, PartialEq)]
pub struct SuccessRate {
    /// Endpoints with enough requests needed for the evaluation to run. Default: 5.
    pub minimum_hosts: u32,
    /// Requests in one interval an endpoint needs to be evaluated. Default: 100.
    pub request_volume: u32,
    /// How many standard deviations below the mean a success rate must fall to eject.
    /// Default: 1.9.
    pub stdev_factor: f64,
}

/// How an attempt sent to an endpoint ended, as outlier detection sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A successful response (or a stream that ended well).
    Success,
    /// A response with this status. 5xx counts toward consecutive 5xx, and 502, 503 and
    /// 504 also toward gateway errors; any other status is a success.
    Status(u16),
    /// No response: the connect failed, the exchange was reset, or it timed out. Counts
    /// as a 5xx and as a gateway error.
    LocalFailure,
}

/// Why an endpoint was ejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// [`Config::consecutive_5xx`] failures in a row.
    Consecutive5xx,
    /// [`Config::consecutive_gateway_errors`] gateway errors in a row.
    ConsecutiveGatewayErrors,
    /// Its success rate was an outlier at an interval sweep.
    SuccessRate,
}

/// An endpoint just ejected, for the caller to log and count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// Its index in the endpoints passed to [`Detector::record`].
    pub index: usize,
    /// How long it is out for, from the `now` of the call that ejected it.
    pub duration: Duration,
    /// Why.
    pub reason: Reason,
}

/// One endpoint's outlier state, kept beside its load statistics and shared by every
/// config snapshot that has the endpoint, so a reload neither forgets nor lifts an
/// ejection.
#[derive(Debug)]
pub struct Endpoint {
    /// What the nanosecond timestamps below count from. It lives here rather than in
    /// the [`Detector`] because a reload builds a new detector for the same endpoint.
    epoch: Instant,
    consecutive_5xx: AtomicU32,
    consecutive_gateway_errors: AtomicU32,
    /// When the latest ejection ends (or ended), in nanoseconds since `epoch`; 0: never
    /// ejected. Only written under the detector's lock.
    ejected_until: AtomicU64,
    /// The ejection multiplier. Only written under the detector's lock.
    times_ejected: AtomicU32,
    /// This interval's requests (high 32 bits) and successes (low 32 bits), in one word
    /// so the sweep reads and resets both at once. Only kept with success-rate
    /// detection on; 2³² requests in one interval would carry into the wrong half.
    interval: AtomicU64,
}

/// One service's outlier detector: its settings, and the interval sweep's clock and lock.
#[derive(Debug)]
pub struct Detector {
    config: Config,
    /// What `last_sweep` counts from.
    epoch: Instant,
    /// When the last sweep ran, in nanoseconds since `epoch`.
    last_sweep: AtomicU64,
    /// Held by whoever sweeps or ejects; only ever taken with `try_lock`.
    lock: Mutex<()>,
}

// === impl Config ===

impl Default for Config {
    fn default() -> Self {
        Self {
            consecutive_5xx: Some(5),
            consecutive_gateway_errors: None,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            success_rate: None,
        }
    }
}

impl Config {
    /// The largest useful multiplier: the first whose ejection reaches the maximum.
    /// Stopping there (as Envoy does) lets an endpoint that hit the cap decay back in a
    /// bounded number of intervals.
    fn max_multiplier(&self) -> u32 {
        let base = self.base_ejection_time.as_nanos();
        if base == 0 {
            return 1;
        }
        let n = self.max_ejection_time.as_nanos().div_ceil(base);
        u32::try_from(n).unwrap_or(u32::MAX).max(1)
    }

    /// How long an ejection with multiplier `n` lasts.
    fn ejection_time(&self, n: u32) -> Duration {
        self.base_ejection_time
            .saturating_mul(n)
            .min(self.max_ejection_time)
    }
}

// === impl SuccessRate ===

impl Default for SuccessRate {
    fn default() -> Self {
        Self {
            minimum_hosts: 5,
            request_volume: 100,
            stdev_factor: 1.9,
        }
    }
}

// === impl Outcome ===

impl Outcome {
    /// Whether it counts toward consecutive 5xx, and toward gateway errors.
    fn failure(self) -> (bool, bool) {
        match self {
            Outcome::Success => (false, false),
            Outcome::Status(code) => ((500..600).contains(&code), matches!(code, 502..=504)),
            Outcome::LocalFailure => (true, true),
        }
    }
}

// === impl Reason ===

impl Reason {
    /// The name used in logs and metric labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Consecutive5xx => "consecutive_5xx",
            Reason::ConsecutiveGatewayErrors => "consecutive_gateway_errors",
            Reason::SuccessRate => "success_rate",
        }
    }
}

// === impl Endpoint ===

impl Default for Endpoint {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway_errors: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            times_ejected: AtomicU32::new(0),
            interval: AtomicU64::new(0),
        }
    }
}

impl AsRef<Endpoint> for Endpoint {
    fn as_ref(&self) -> &Endpoint {
        self
    }
}

impl Endpoint {
    /// Whether the endpoint is ejected at `now`: one atomic load and a compare.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.nanos(now) < self.ejected_until.load(Ordering::Relaxed)
    }

    /// The ejection multiplier: how many times the endpoint was ejected, less one for
    /// every interval it has since spent in service (and capped where the ejection time
    /// reaches its maximum).
    pub fn times_ejected(&self) -> u32 {
        self.times_ejected.load(Ordering::Relaxed)
    }

    /// Nanoseconds from `epoch` to `now` (0 if `now` is earlier).
    fn nanos(&self, now: Instant) -> u64 {
        nanos(now.saturating_duration_since(self.epoch))
    }

    /// Zeroes the consecutive counters, writing only those that are not zero already:
    /// in the healthy steady state the cache line stays shared between cores.
    fn reset_consecutive(&self) {
        for counter in [&self.consecutive_5xx, &self.consecutive_gateway_errors] {
            if counter.load(Ordering::Relaxed) != 0 {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }
}

// === impl Detector ===

impl Detector {
    /// A detector for one service; the first sweep is due one interval after `now`.
    #[must_use]
    pub fn new(config: Config, now: Instant) -> Self {
        Self {
            config,
            epoch: now,
            last_sweep: AtomicU64::new(0),
            lock: Mutex::new(()),
        }
    }

    /// The settings in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Records how an attempt to `endpoints[index]` ended at `now`, and returns the
    /// endpoints this ejected: this one, if it just crossed a consecutive-failure
    /// threshold and the cap allows, and any the interval sweep ejected, if this call
    /// was the first to find the sweep due. `endpoints` must be all of the service's
    /// endpoints: the cap and the success-rate statistics are taken over them. An
    /// `index` out of range is ignored.
    ///
    /// Outcomes reported while the endpoint is ejected (requests already in flight, or
    /// sent while the load balancer panics) do not count toward its consecutive
    /// failures, so after its return it needs a full run of failures to go out again.
    pub fn record<E: AsRef<Endpoint>>(
        &self,
        endpoints: &[E],
        index: usize,
        outcome: Outcome,
        now: Instant,
    ) -> Vec<Ejection> {
        let mut ejections = self.sweep_if_due(endpoints, now);
        let Some(endpoint) = endpoints.get(index).map(AsRef::as_ref) else {
            return ejections;
        };
        let (is_5xx, is_gateway) = outcome.failure();
        if self.config.success_rate.is_some() {
            endpoint
                .interval
                .fetch_add(REQUEST + u64::from(!is_5xx), Ordering::Relaxed);
        }
        if endpoint.is_ejected(now) || !is_5xx {
            endpoint.reset_consecutive();
            return ejections;
        }
        // Each counter is kept only while its check is on, so an idle check costs no
        // writes; an outcome that does not extend a run ends it.
        let gateway = match self.config.consecutive_gateway_errors {
            Some(threshold) if is_gateway => {
                let run = endpoint
                    .consecutive_gateway_errors
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                run >= threshold
            }
            _ => {
                if endpoint.consecutive_gateway_errors.load(Ordering::Relaxed) != 0 {
                    endpoint
                        .consecutive_gateway_errors
                        .store(0, Ordering::Relaxed);
                }
                false
            }
        };
        let five_xx = self.config.consecutive_5xx.is_some_and(|threshold| {
            let run = endpoint
                .consecutive_5xx
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            run >= threshold
        });
        // `>=`, not `==`: a counter left standing because the lock was busy (or carried
        // over from a detector with a higher threshold) must still trip. The more
        // specific reason wins when both trip at once, as in Envoy.
        let reason = if gateway {
            Reason::ConsecutiveGatewayErrors
        } else if five_xx {
            Reason::Consecutive5xx
        } else {
            return ejections;
        };
        let Some(_guard) = self.try_lock() else {
            return ejections;
        };
        match self.eject(endpoints, index, reason, now) {
            Some(ejection) => ejections.push(ejection),
            // Refused (the cap, or ejected meanwhile): one attempt per run of failures,
            // so a saturated cap does not cost a scan of every endpoint per request.
            None => endpoint.reset_consecutive(),
        }
        ejections
    }

    /// Runs the interval sweep if one is due and nobody else is running it.
    fn sweep_if_due<E: AsRef<Endpoint>>(&self, endpoints: &[E], now: Instant) -> Vec<Ejection> {
        let interval = nanos(self.config.interval);
        let now_nanos = nanos(now.saturating_duration_since(self.epoch));
        if now_nanos.saturating_sub(self.last_sweep.load(Ordering::Relaxed)) < interval {
            return Vec::new();
        }
        let Some(_guard) = self.try_lock() else {
            return Vec::new();
        };
        // Someone may have swept between the check and the lock.
        let previous = self.last_sweep.load(Ordering::Relaxed);
        if now_nanos.saturating_sub(previous) < interval {
            return Vec::new();
        }
        self.last_sweep.store(now_nanos, Ordering::Relaxed);
        let since = now
            .checked_sub(Duration::from_nanos(now_nanos - previous))
            .unwrap_or(now);
        self.sweep(endpoints, since, now)
    }

    /// Decays multipliers, restarts the per-interval counts and, with success-rate
    /// detection on, ejects the outliers of the interval from `since` to `now`. The
    /// caller holds the lock.
    fn sweep<E: AsRef<Endpoint>>(
        &self,
        endpoints: &[E],
        since: Instant,
        now: Instant,
    ) -> Vec<Ejection> {
        let interval = nanos(self.config.interval).max(1);
        let mut rates = Vec::new();
        for (index, endpoint) in endpoints.iter().enumerate() {
            let endpoint = endpoint.as_ref();
            let counts = if self.config.success_rate.is_some() {
                endpoint.interval.swap(0, Ordering::Relaxed)
            } else {
                0
            };
            let until = endpoint.ejected_until.load(Ordering::Relaxed);
            let now_nanos = endpoint.nanos(now);
            if now_nanos < until {
                // Out: neither decays nor competes on success rate (its requests are
                // stragglers and panic-mode traffic).
                continue;
            }
            let times = endpoint.times_ejected.load(Ordering::Relaxed);
            if times > 0 {
                // Whole intervals spent back in service, counted on a grid from the
                // return, so the decay does not depend on when sweeps happen to run.
                let served = |t: u64| t.saturating_sub(until) / interval;
                let steps = served(now_nanos).saturating_sub(served(endpoint.nanos(since)));
                let steps = u32::try_from(steps).unwrap_or(u32::MAX);
                if steps > 0 {
                    endpoint
                        .times_ejected
                        .store(times.saturating_sub(steps), Ordering::Relaxed);
                }
            }
            if let Some(config) = &self.config.success_rate {
                let requests = counts >> 32;
                if requests > 0 && requests >= u64::from(config.request_volume) {
                    let successes = (counts & SUCCESSES).min(requests);
                    #[allow(
                        clippy::cast_precision_loss,
                        reason = "both counts are below 2^32, exact in an f64"
                    )]
                    let rate = successes as f64 / requests as f64;
                    rates.push((index, rate));
                }
            }
        }
        let Some(config) = &self.config.success_rate else {
            return Vec::new();
        };
        if rates.is_empty()
            || rates.len() < usize::try_from(config.minimum_hosts).unwrap_or(usize::MAX)
        {
            return Vec::new();
        }
        #[allow(
            clippy::cast_precision_loss,
            reason = "an endpoint count, far below 2^52"
        )]
        let n = rates.len() as f64;
        let mean = rates.iter().map(|(_, r)| r).sum::<f64>() / n;
        // Population standard deviation, as Envoy computes it.
        let variance = rates.iter().map(|(_, r)| (r - mean).powi(2)).sum::<f64>() / n;
        let threshold = mean - config.stdev_factor * variance.sqrt();
        rates.retain(|&(_, rate)| rate < threshold);
        // Worst first, so the cap keeps the worst out.
        rates.sort_by(|a, b| a.1.total_cmp(&b.1));
        rates
            .into_iter()
            .filter_map(|(index, _)| self.eject(endpoints, index, Reason::SuccessRate, now))
            .collect()
    }

    /// Ejects `endpoints[index]` at `now` unless it is out already or the cap forbids.
    /// The caller holds the lock, so the count of ejected endpoints cannot change under
    /// us except by ejections ending.
    fn eject<E: AsRef<Endpoint>>(
        &self,
        endpoints: &[E],
        index: usize,
        reason: Reason,
        now: Instant,
    ) -> Option<Ejection> {
        let endpoint = endpoints.get(index)?.as_ref();
        let before = endpoint.ejected_until.load(Ordering::Relaxed);
        let now_nanos = endpoint.nanos(now);
        if now_nanos < before || !self.cap_allows(endpoints, now) {
            return None;
        }
        let times = endpoint
            .times_ejected
            .load(Ordering::Relaxed)
            .saturating_add(1)
            .min(self.config.max_multiplier());
        let duration = self.config.ejection_time(times);
        let until = now_nanos.saturating_add(nanos(duration));
        // A compare-exchange rather than a store: an endpoint shared with another
        // detector (the previous snapshot's, during a reload) is ejected once only.
        endpoint
            .ejected_until
            .compare_exchange(before, until, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        endpoint.times_ejected.store(times, Ordering::Relaxed);
        endpoint.consecutive_5xx.store(0, Ordering::Relaxed);
        endpoint
            .consecutive_gateway_errors
            .store(0, Ordering::Relaxed);
        Some(Ejection {
            index,
            duration,
            reason,
        })
    }

    /// Whether one more endpoint may be ejected: if the share ejected afterwards would
    /// not exceed the maximum, or none is ejected now (Envoy's `always_eject_one_host`:
    /// otherwise a service with fewer than 100 / `max_ejection_percent` endpoints could
    /// never eject any, and the load balancer's panic threshold guards the rest).
    fn cap_allows<E: AsRef<Endpoint>>(&self, endpoints: &[E], now: Instant) -> bool {
        let max = u64::from(self.config.max_ejection_percent.min(100));
        if max == 0 {
            return false;
        }
        let ejected = u64::try_from(ejected_count(endpoints, now)).unwrap_or(u64::MAX);
        let total = u64::try_from(endpoints.len()).unwrap_or(u64::MAX);
        ejected == 0 || ejected.saturating_add(1).saturating_mul(100) <= max.saturating_mul(total)
    }

    /// The lock, unless someone holds it. Nothing panics while holding it, but a
    /// poisoned lock guards no data, so it is taken all the same.
    fn try_lock(&self) -> Option<MutexGuard<'_, ()>> {
        match self.lock.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// How many of `endpoints` are ejected at `now` (for the ejection cap and the load
/// balancer's panic threshold).
pub fn ejected_count<E: AsRef<Endpoint>>(endpoints: &[E], now: Instant) -> usize {
    endpoints
        .iter()
        .filter(|e| e.as_ref().is_ejected(now))
        .count()
}

/// A duration in whole nanoseconds, saturating (u64 nanoseconds last 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
