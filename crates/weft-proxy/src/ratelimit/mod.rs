//! The local rate limit of the `RateLimit` policy: a token bucket per workload, per
//! route or per calling identity, that the inbound proxy applies to the requests it
//! receives.
//!
//! The inbound HTTP path checks it once the caller's identity is known and the request
//! has matched a route, before forwarding to the app. This module only decides: a
//! refused request gets [`Decision::Limited`] with how long until it would pass, and
//! the caller answers 429 with `Retry-After` ([`retry_after_seconds`]) or, for gRPC,
//! `RESOURCE_EXHAUSTED`. Which limits cover a request (the route scoping) is the
//! caller's business too: it passes the index of the limit it matched.
//!
//! A bucket is GCRA (the generic cell rate algorithm) on one atomic: the theoretical
//! arrival time of the next request. A request that passes moves it one emission
//! interval on; a refused one changes nothing, so hammering a full bucket does not
//! push its callers further back. The per-identity buckets are kept in sharded maps of
//! bounded size ([`DEFAULT_MAX_KEYS`]); a config reload keeps the buckets of the limits
//! it did not change ([`Limiter::carry_over`]), so a reload does not let a burst
//! through.
//!
//! It is not a distributed or global limit: each workload instance limits on its own,
//! so N instances together allow N times the rate. It is not a connection limit either
//! (that is `connectionLimits`, on the outbound side, in `upstream::limits`): it counts
//! requests, whatever connections they arrive on.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How many calling identities a [`Keyed`] limit tracks at most, by default.
pub const DEFAULT_MAX_KEYS: usize = 10_000;
/// How many locks the identities of a [`Keyed`] limit are spread over.
const SHARDS: usize = 16;

/// A rate: `requests` every `per`, of which up to `burst` may come at once.
///
/// A valid rate has `requests ≥ 1`, `burst ≥ 1` and a non-zero `per`, and config
/// validation should reject anything else. Should one get here anyway, it is read
/// literally and never panics: `requests: 0` refuses every request (with a wait of
/// `per`, or a second if `per` is zero too); a zero `per` is an unlimited rate and
/// allows every request; `burst: 0` is a burst of 1, since a bucket that cannot hold
/// one request would refuse everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed every `per`, sustained.
    pub requests: u32,
    /// The period `requests` are counted over.
    pub per: Duration,
    /// Requests allowed at once after a quiet spell: the bucket's size.
    pub burst: u32,
}

/// One limit of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The rate allowed.
    pub rate: Rate,
    /// Whose requests share a bucket.
    pub by: By,
}

/// Whose requests share a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    /// One bucket for every caller of this workload (or of the routes the limit
    /// covers).
    Workload,
    /// One bucket per calling identity (SPIFFE ID). Callers without one (plaintext,
    /// on a permissive port) share a single bucket.
    Identity,
}

/// Whether a request may go on.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward it.
    Allowed,
    /// Refuse it: it would be allowed `retry_after` from now (rounded up to the
    /// nanosecond, never zero), if nothing else is allowed first.
    Limited {
        /// How long until the request would pass.
        retry_after: Duration,
    },
}

/// A token bucket shared by all its callers, lock-free.
#[derive(Debug)]
pub struct Bucket {
    params: Params,
    /// When the bucket was made: [`EPOCH_NANOS`] on the scale of `tat`.
    epoch: Instant,
    /// The theoretical arrival time, in nanoseconds on a scale that puts `epoch` at
    /// [`EPOCH_NANOS`]: when the next request is due if requests came exactly at the
    /// rate. Anything at or before `now` (0 to begin with) means a full bucket.
    tat: AtomicU64,
}

/// One bucket per key (the caller's SPIFFE ID), in bounded memory.
///
/// At most `max_keys` buckets are kept, spread over up to 16 shards by a hash of the
/// key, each shard holding its share. A new key that finds its shard full first makes
/// the shard forget its idle buckets (those whose arrival time has passed: they hold
/// a full burst, which is also what a forgotten key starts with, so forgetting them
/// changes nothing). If every bucket in the shard is in use, the shard forgets the
/// eighth of them that are closest to full (the lowest arrival times): a forgotten
/// key comes back with a full burst, and for those buckets that is the least extra
/// it can be. A new key is never refused because the map is full.
#[derive(Debug)]
pub struct Keyed {
    params: Params,
    epoch: Instant,
    shards: Box<[Mutex<Shard>]>,
    /// Picks the shard. Not the maps' own hasher: keys sharing a shard would share
    /// the low bits of that hash too, and crowd the same slots of the shard's map.
    hasher: RandomState,
    /// The one bucket of every caller without an identity.
    anonymous: Bucket,
}

/// The limits of one workload's inbound `RateLimit` policy and their buckets.
#[derive(Debug)]
pub struct Limiter {
    slots: Vec<Slot>,
    max_keys: usize,
}

#[derive(Debug)]
struct Slot {
    limit: Limit,
    /// Shared with the limiter a reload replaces, while it drains.
    state: Arc<State>,
}

#[derive(Debug)]
enum State {
    Workload(Bucket),
    Identity(Keyed),
}

#[derive(Debug)]
struct Shard {
    /// Each key's theoretical arrival time, as in [`Bucket`]; plain numbers, since
    /// the shard's lock guards them.
    tats: HashMap<Box<str>, u64>,
    /// The most keys this shard holds.
    cap: usize,
}

/// A [`Rate`] as the algorithm uses it.
#[derive(Clone, Copy, Debug)]
enum Params {
    /// `requests: 0`: nothing passes.
    Closed {
        retry_after: Duration,
    },
    /// `per: 0`: everything passes.
    Open,
    Gcra(Gcra),
}

#[derive(Clone, Copy, Debug)]
struct Gcra {
    /// The emission interval `T = per / requests`, in nanoseconds, rounded up so the
    /// rate allowed is never above the one configured.
    interval: u64,
    /// The burst tolerance `tau = T × (burst − 1)`, in nanoseconds: how far ahead of
    /// `now` the arrival time may be for a request to pass.
    tau: u64,
}

// === impl Decision ===

impl Decision {
    /// Whether the request may go on.
    #[must_use]
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed)
    }
}

/// The `Retry-After` value (delay-seconds) for a wait of `d`: whole seconds rounded
/// up, and at least 1, since `Retry-After: 0` invites an immediate retry that would
/// be refused again.
#[must_use]
pub fn retry_after_seconds(d: Duration) -> u64 {
    d.as_secs()
        .saturating_add(u64::from(d.subsec_nanos() > 0))
        .max(1)
}

// === impl Params ===

impl Params {
    fn new(rate: Rate) -> Self {
        if rate.requests == 0 {
            let retry_after = if rate.per.is_zero() {
                Duration::from_secs(1)
            } else {
                rate.per
            };
            return Self::Closed { retry_after };
        }
        if rate.per.is_zero() {
            return Self::Open;
        }
        let interval = rate.per.as_nanos().div_ceil(u128::from(rate.requests));
        let interval = u64::try_from(interval).unwrap_or(u64::MAX);
        let tau = interval.saturating_mul(u64::from(rate.burst.max(1) - 1));
        Self::Gcra(Gcra { interval, tau })
    }
}

// === impl Gcra ===

impl Gcra {
    /// A request at `now` against a bucket at `tat`: the bucket's next `tat` if it
    /// passes, else how long until it would.
    fn admit(self, tat: u64, now: u64) -> Result<u64, Duration> {
        let start = tat.max(now);
        let ahead = start - now;
        if ahead > self.tau {
            Err(Duration::from_nanos(ahead - self.tau))
        } else {
            Ok(start.saturating_add(self.interval))
        }
    }
}

/// Where `epoch` sits on the nanosecond scale of arrival times: in the middle, so a
/// `now` from before it (one taken just before a reload built the bucket) counts as
/// exactly as one after, for 292 years either way; 0 is the distant past.
const EPOCH_NANOS: u64 = 1 << 63;

/// `now` on the scale of arrival times of a bucket made at `epoch`.
fn scaled(epoch: Instant, now: Instant) -> u64 {
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    if now >= epoch {
        EPOCH_NANOS.saturating_add(nanos(now - epoch))
    } else {
        EPOCH_NANOS.saturating_sub(nanos(epoch - now))
    }
}

// === impl Bucket ===

impl Bucket {
    /// A full bucket for `rate`.
    #[must_use]
    pub fn new(rate: Rate) -> Self {
        Self {
            params: Params::new(rate),
            epoch: Instant::now(),
            tat: AtomicU64::new(0),
        }
    }

    /// Takes a token for a request at `now`, or says how long until there is one.
    /// `now` may be from before the bucket was made.
    pub fn check(&self, now: Instant) -> Decision {
        let gcra = match self.params {
            Params::Closed { retry_after } => return Decision::Limited { retry_after },
            Params::Open => return Decision::Allowed,
            Params::Gcra(gcra) => gcra,
        };
        let now = scaled(self.epoch, now);
        // One word, so every update is ordered against every other without any
        // other memory: relaxed is enough.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = match gcra.admit(tat, now) {
                Ok(next) => next,
                // A refusal writes nothing: the cache line stays shared.
                Err(retry_after) => return Decision::Limited { retry_after },
            };
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Decision::Allowed,
                Err(actual) => tat = actual,
            }
        }
    }
}

// === impl Keyed ===

impl Keyed {
    /// Full buckets for `rate`, one per key, for at most `max_keys` keys (0 counts as
    /// 1) plus the anonymous caller's.
    #[must_use]
    pub fn new(rate: Rate, max_keys: usize) -> Self {
        Self::with_shards(rate, max_keys, SHARDS)
    }

    fn with_shards(rate: Rate, max_keys: usize, shards: usize) -> Self {
        let max_keys = max_keys.max(1);
        // Every shard holds at least one key, and together exactly `max_keys`.
        let count = shards.clamp(1, max_keys);
        let shards = (0..count)
            .map(|i| {
                let cap = max_keys / count + usize::from(i < max_keys % count);
                Mutex::new(Shard {
                    tats: HashMap::new(),
                    cap,
                })
            })
            .collect();
        Self {
            params: Params::new(rate),
            epoch: Instant::now(),
            shards,
            hasher: RandomState::new(),
            anonymous: Bucket::new(rate),
        }
    }

    /// Takes a token from `key`'s bucket (the anonymous one for `None`) for a request
    /// at `now`, or says how long until there is one.
    pub fn check(&self, key: Option<&str>, now: Instant) -> Decision {
        let Some(key) = key else {
            return self.anonymous.check(now);
        };
        let gcra = match self.params {
            Params::Closed { retry_after } => return Decision::Limited { retry_after },
            Params::Open => return Decision::Allowed,
            Params::Gcra(gcra) => gcra,
        };
        let now = scaled(self.epoch, now);
        let mut shard = self.shard(key);
        if let Some(tat) = shard.tats.get_mut(key) {
            return match gcra.admit(*tat, now) {
                Ok(next) => {
                    *tat = next;
                    Decision::Allowed
                }
                Err(retry_after) => Decision::Limited { retry_after },
            };
        }
        // A key not seen (or forgotten) has a full bucket: its first request passes.
        let Ok(tat) = gcra.admit(0, now) else {
            return Decision::Allowed;
        };
        if shard.tats.len() >= shard.cap {
            shard.make_room(now);
        }
        shard.tats.insert(key.into(), tat);
        Decision::Allowed
    }

    /// How many keys have a bucket now (the anonymous caller's not counted).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).tats.len()).sum()
    }

    /// Whether no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let count = u64::try_from(self.shards.len()).unwrap_or(u64::MAX);
        let i = usize::try_from(self.hasher.hash_one(key) % count).unwrap_or(0);
        lock(&self.shards[i])
    }
}

/// The lock's data even if a thread panicked holding it: a map of numbers cannot be
/// left half-changed.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

// === impl Shard ===

impl Shard {
    /// Frees at least one place in a full shard (see [`Keyed`]).
    fn make_room(&mut self, now: u64) {
        self.tats.retain(|_, tat| *tat > now);
        if self.tats.len() < self.cap || self.tats.is_empty() {
            return;
        }
        // An eighth at once, so a stream of new keys pays for this scan once every
        // so many keys, not on each.
        let evict = (self.cap / 8).clamp(1, self.tats.len());
        let mut tats: Vec<u64> = self.tats.values().copied().collect();
        let (_, &mut threshold, _) = tats.select_nth_unstable(evict - 1);
        let below = tats.iter().filter(|&&t| t < threshold).count();
        // Ties at the threshold: forget only as many as make up the eighth.
        let mut at_threshold = evict - below;
        self.tats.retain(|_, tat| {
            if *tat < threshold {
                false
            } else if *tat == threshold && at_threshold > 0 {
                at_threshold -= 1;
                false
            } else {
                true
            }
        });
    }
}

// === impl State ===

impl State {
    fn new(limit: &Limit, max_keys: usize) -> Self {
        match limit.by {
            By::Workload => Self::Workload(Bucket::new(limit.rate)),
            By::Identity => Self::Identity(Keyed::new(limit.rate, max_keys)),
        }
    }
}

// === impl Limiter ===

impl Limiter {
    /// Full buckets for `limits`, tracking up to [`DEFAULT_MAX_KEYS`] identities per
    /// `by: Identity` limit.
    #[must_use]
    pub fn new(limits: &[Limit]) -> Self {
        Self::with_max_keys(limits, DEFAULT_MAX_KEYS)
    }

    /// Full buckets for `limits`, tracking up to `max_keys` identities per
    /// `by: Identity` limit (0 counts as 1).
    #[must_use]
    pub fn with_max_keys(limits: &[Limit], max_keys: usize) -> Self {
        Self {
            slots: limits
                .iter()
                .map(|limit| Slot {
                    limit: *limit,
                    state: Arc::new(State::new(limit, max_keys)),
                })
                .collect(),
            max_keys,
        }
    }

    /// The limiter for a new config: each limit of `next` that is also in this one
    /// keeps its buckets (shared with this limiter, so requests it still checks
    /// while draining count too); a new or changed limit starts full.
    ///
    /// Limits are matched by value, in order: the k-th occurrence of a `Limit` in
    /// `next` takes the buckets of its k-th occurrence here. So a limit that moved
    /// (a route added before it) keeps its buckets; of identical limits on different
    /// routes, removing one may hand its buckets to another — they have the same rate,
    /// and callers see at most one burst's difference.
    #[must_use]
    pub fn carry_over(&self, next: &[Limit]) -> Self {
        let mut taken = vec![false; self.slots.len()];
        let slots = next
            .iter()
            .map(|limit| {
                let kept = self
                    .slots
                    .iter()
                    .zip(taken.iter_mut())
                    .find(|(slot, taken)| !**taken && slot.limit == *limit);
                let state = match kept {
                    Some((slot, taken)) => {
                        *taken = true;
                        Arc::clone(&slot.state)
                    }
                    None => Arc::new(State::new(limit, self.max_keys)),
                };
                Slot {
                    limit: *limit,
                    state,
                }
            })
            .collect();
        Self {
            slots,
            max_keys: self.max_keys,
        }
    }

    /// Takes a token for a request at `now` from limit `index` (as given to
    /// [`Self::new`]), for `caller`'s SPIFFE ID or `None` for a caller without one.
    /// An index with no limit allows the request: nothing limits it.
    ///
    /// A request that several limits cover is checked against each; one that a later
    /// limit refuses has still used a token of the earlier ones.
    pub fn check(&self, index: usize, caller: Option<&str>, now: Instant) -> Decision {
        match self.slots.get(index).map(|slot| &*slot.state) {
            None => Decision::Allowed,
            Some(State::Workload(bucket)) => bucket.check(now),
            Some(State::Identity(keyed)) => keyed.check(caller, now),
        }
    }
}

#[cfg(test)]
mod tests;
