//! Consistent-hash tables for session affinity: the `ringHash` and `maglev` balancers.
//!
//! When a `BackendPolicy` asks for `ringHash` or `maglev`, the outbound balancer
//! ([`super::balance`]) hashes the request's session key (a header or cookie value, or the
//! source IP) with [`key_hash`] and asks a [`Ring`] or [`Maglev`] built from the service's
//! endpoints which endpoint owns that hash. Every proxy builds the same table from the
//! same endpoints, whatever order it learned them in, so a key reaches the same endpoint
//! from every caller; when the endpoint set changes, few keys move.
//!
//! This module is pure: no I/O, clocks, randomness or health state. It does not extract
//! keys from requests, watch endpoints or decide which are healthy. Callers rebuild a
//! table when endpoints or weights change, and pass a `usable` predicate to
//! `pick_usable` to step around ejected or unhealthy endpoints without a rebuild.
//!
//! Changing a hash or a placement rule here remaps sessions between proxies of different
//! versions during an upgrade; the golden tests at the bottom pin them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Marks a Maglev slot not yet taken during the build; never a caller index, because
/// [`members`] drops an index this large.
const EMPTY: u32 = u32::MAX;

/// Exponent range for ring points per unit of weight. At `2^-32` every endpoint
/// (weight < 2^32) gets one point; `2^30` is beyond what [`Ring::DEFAULT_MAX_SIZE`]
/// can use, and keeps `weight << exponent` inside a `u64`.
const MIN_EXPONENT: i32 = -32;
const MAX_EXPONENT: i32 = 30;

/// Hashes a session key (header value, cookie value, source IP bytes) to the `u64` that
/// [`Ring::pick`] and [`Maglev::pick`] take.
///
/// FNV-1a 64 over the bytes, then the `MurmurHash3` `fmix64` finalizer so that keys
/// differing only in their last bytes still land far apart. Seedless and fixed: every
/// process and every build agrees, which is what lets different proxies send a key to
/// the same endpoint. Not for untrusted-input hash maps (no seed, no resistance to flooding).
#[must_use]
pub fn key_hash(bytes: &[u8]) -> u64 {
    Fnv::new().write(bytes).finish()
}

/// A Ketama-style consistent-hash ring, as Envoy's `RING_HASH`.
///
/// Each endpoint gets points on a `u64` circle, in proportion to its weight; a key
/// belongs to the first point at or after its hash, wrapping around. Point `i` of an
/// endpoint sits at the hash of its identity followed by `i`, so the points do not
/// depend on the other endpoints.
///
/// Points per endpoint are `ceil(weight × 2^e)`, where `2^e` is the smallest power of two
/// that makes the ring at least `min_size` points, lowered until it is at most
/// `max_size`. Rounding to a power of two means most endpoint changes leave the other
/// endpoints' points untouched, so only the removed (or added) endpoint's keys move. When
/// the total weight crosses a power of two relative to `min_size`, `2^e` doubles or
/// halves and about half of all keys move (Envoy's unrounded formula moves about `1/n` of
/// them on every change instead).
#[derive(Debug, Clone)]
pub struct Ring {
    /// Point positions, ascending.
    points: Vec<u64>,
    /// `owners[i]` is the caller's index of the endpoint at `points[i]`.
    owners: Vec<u32>,
    /// Distinct endpoints on the ring.
    endpoints: usize,
}

/// A Maglev lookup table (Eisenbud et al., NSDI 2016), as Envoy's `MAGLEV`.
///
/// Each endpoint has a permutation of the table's slots, from an offset and a skip hashed
/// from its identity; endpoints take turns claiming their next free slot until the table
/// is full. A key's endpoint is `table[hash mod size]`: one lookup, no search. Weights
/// follow Envoy: in each round the heaviest endpoint claims a slot, and one of weight `w`
/// claims whenever its claims fall behind `w / max_weight` of the rounds, so its share
/// of slots is proportional to `w`.
///
/// Compared with [`Ring`], Maglev balances more evenly and looks up faster, but a change
/// of endpoints also moves a small share of the other endpoints' keys (about 0.25% when
/// one of 10 goes).
#[derive(Debug, Clone)]
pub struct Maglev {
    /// Caller's endpoint index per slot; the length is prime.
    table: Vec<u32>,
    /// Distinct endpoints holding at least one slot.
    endpoints: usize,
}

/// An endpoint as the builders see it.
#[derive(Debug)]
struct Member<'a> {
    /// Position in the caller's slice.
    index: u32,
    identity: &'a [u8],
    /// At least 1.
    weight: u32,
}

/// One endpoint's progress through its Maglev permutation.
#[derive(Debug)]
struct Filler {
    index: u32,
    /// Next slot of its permutation to try.
    slot: usize,
    skip: usize,
    weight: u64,
    /// Claims so far × the largest weight; it claims again in the first round `r` with
    /// `r × weight ≥ target`.
    target: u64,
}

/// Endpoints found unusable during one `pick_usable` walk. Allocates only on the first
/// rejection, so the usual pick (first endpoint usable) does not allocate.
#[derive(Debug, Default)]
struct Rejected {
    bits: Vec<u64>,
    count: usize,
}

/// Streaming FNV-1a 64; `Copy`, so a state after an endpoint's identity can be reused
/// for each of its points.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

// === impl Ring ===

impl Ring {
    /// Default for `min_size`: 1024 points (Envoy's default).
    pub const DEFAULT_MIN_SIZE: usize = 1024;

    /// Default for `max_size`: 8Mi points (Envoy's default). Also the hard cap: a larger
    /// `max_size` is lowered to it.
    pub const DEFAULT_MAX_SIZE: usize = 8 * 1024 * 1024;

    /// Builds a ring from `endpoints`: each an identity that is the same in every proxy
    /// (e.g. its address, `10.0.3.7:8080`) and a weight (0 counts as 1).
    ///
    /// The ring has at least `min_size` points (lowered to `max_size` if larger) and at
    /// most `max_size` (capped at [`Self::DEFAULT_MAX_SIZE`]), except that every endpoint
    /// gets one point even if that means more than `max_size`. The result does not depend
    /// on the order of `endpoints`; picks return indices into it. Two endpoints with the
    /// same identity share their points, so a key still maps to that identity.
    #[must_use]
    pub fn new(endpoints: &[(&[u8], u32)], min_size: usize, max_size: usize) -> Self {
        let members = members(endpoints);
        let max = to_u64(max_size.min(Self::DEFAULT_MAX_SIZE));
        let min = to_u64(min_size).min(max);
        let exponent = ring_exponent(&members, min, max);

        let total = members.iter().fold(0, |sum: u64, m| {
            sum.saturating_add(ring_points(m.weight, exponent))
        });
        let mut entries: Vec<(u64, u32)> = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        for (rank, member) in (0u32..).zip(&members) {
            let prefix = Fnv::new().write(member.identity);
            for point in 0..ring_points(member.weight, exponent) {
                entries.push((prefix.write(&point.to_le_bytes()).finish(), rank));
            }
        }
        // Ties (only from duplicate identities, or a 2^-64 accident) break on rank, which
        // comes from identity order, not input order.
        entries.sort_unstable();

        Self {
            points: entries.iter().map(|&(point, _)| point).collect(),
            owners: entries
                .iter()
                .map(|&(_, rank)| members[index(rank)].index)
                .collect(),
            endpoints: members.len(),
        }
    }

    /// The endpoint owning `hash` (from [`key_hash`]), as an index into the slice given
    /// to [`Ring::new`]; `None` if the ring is empty. `O(log points)`.
    #[must_use]
    pub fn pick(&self, hash: u64) -> Option<usize> {
        self.owners.get(self.start(hash)).map(|&owner| index(owner))
    }

    /// Like [`Ring::pick`], but walks clockwise past endpoints for which `usable` is
    /// false (ejected, unhealthy, draining) to the next usable one; `None` if there is
    /// none. While a key's endpoint is usable it is the one returned; while it is not,
    /// its keys spread over the endpoints owning the following points.
    ///
    /// `usable` is called at most once per distinct endpoint, and the walk stops after
    /// one lap or once every endpoint was rejected.
    #[must_use]
    pub fn pick_usable(&self, hash: u64, usable: impl FnMut(usize) -> bool) -> Option<usize> {
        walk(&self.owners, self.start(hash), self.endpoints, usable)
    }

    /// Points on the ring.
    #[must_use]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no endpoints (every pick is `None`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Position of the first point at or after `hash`, wrapping to 0.
    fn start(&self, hash: u64) -> usize {
        let at = self.points.partition_point(|&point| point < hash);
        if at == self.points.len() {
            0
        } else {
            at
        }
    }
}

/// Points for an endpoint of `weight` (≥ 1): `ceil(weight × 2^exponent)`, at least 1.
fn ring_points(weight: u32, exponent: i32) -> u64 {
    let weight = u64::from(weight);
    let shift = exponent.unsigned_abs();
    if exponent >= 0 {
        weight << shift
    } else {
        (weight + (1 << shift) - 1) >> shift
    }
}

/// The smallest exponent that puts at least `min` points on the ring, lowered until the
/// ring holds at most `max` (or every endpoint is down to one point).
fn ring_exponent(members: &[Member<'_>], min: u64, max: u64) -> i32 {
    let total = |exponent| {
        members.iter().fold(0, |sum: u64, m| {
            sum.saturating_add(ring_points(m.weight, exponent))
        })
    };
    let mut exponent = MIN_EXPONENT;
    while exponent < MAX_EXPONENT && total(exponent) < min {
        exponent += 1;
    }
    while exponent > MIN_EXPONENT && total(exponent) > max {
        exponent -= 1;
    }
    exponent
}

// === impl Maglev ===

impl Maglev {
    /// Default table size: 65537, a prime (Envoy's default). Enough for about 650
    /// endpoints at Maglev's rule of thumb of 100 slots per endpoint.
    pub const DEFAULT_TABLE_SIZE: usize = 65_537;

    /// Largest table size, a prime (Envoy's limit). 20 MB of table.
    pub const MAX_TABLE_SIZE: usize = 5_000_011;

    /// Builds a table from `endpoints`: each an identity that is the same in every proxy
    /// (e.g. its address, `10.0.3.7:8080`) and a weight (0 counts as 1).
    ///
    /// Maglev needs a prime table size, so `table_size` is adjusted rather than rejected:
    /// raised to the number of endpoints if smaller (so each gets a slot), then rounded up
    /// to the next prime, and capped at [`Self::MAX_TABLE_SIZE`]. Use
    /// [`Self::DEFAULT_TABLE_SIZE`] unless there are more than a few hundred endpoints.
    /// The result does not depend on the order of `endpoints`; picks return indices into
    /// it. Two endpoints with the same identity share a permutation, so a key still maps
    /// to that identity.
    #[must_use]
    pub fn new(endpoints: &[(&[u8], u32)], table_size: usize) -> Self {
        let members = members(endpoints);
        if members.is_empty() {
            return Self {
                table: Vec::new(),
                endpoints: 0,
            };
        }
        let size = maglev_size(table_size, members.len());
        let max_weight = members
            .iter()
            .map(|m| u64::from(m.weight))
            .max()
            .unwrap_or(1);
        let mut fillers: Vec<Filler> = members
            .iter()
            .map(|member| {
                // Offset and skip from the identity followed by different tag bytes.
                let prefix = Fnv::new().write(member.identity);
                Filler {
                    index: member.index,
                    slot: reduce(prefix.write(&[0]).finish(), size),
                    skip: reduce(prefix.write(&[1]).finish(), size - 1) + 1,
                    weight: u64::from(member.weight),
                    target: 0,
                }
            })
            .collect();

        // A turn is (round, rank): rounds in order, endpoints within a round in identity
        // order. The heap skips rounds in which a light endpoint would not claim, so a
        // skewed weight costs nothing extra.
        let mut turns: BinaryHeap<Reverse<(u64, usize)>> =
            (0..fillers.len()).map(|rank| Reverse((1, rank))).collect();
        let mut table = vec![EMPTY; size];
        let mut filled = 0;
        while filled < size {
            let Some(Reverse((round, rank))) = turns.pop() else {
                break;
            };
            let turn = &mut fillers[rank];
            // Terminates: some slot is free, and with a prime size every skip in
            // 1..size visits every slot.
            while table[turn.slot] != EMPTY {
                turn.slot = advance(turn.slot, turn.skip, size);
            }
            table[turn.slot] = turn.index;
            turn.slot = advance(turn.slot, turn.skip, size);
            filled += 1;
            turn.target += max_weight;
            let next = (round + 1).max(turn.target.div_ceil(turn.weight));
            turns.push(Reverse((next, rank)));
        }

        Self {
            table,
            // Every endpoint claims in round 1 until the table is full.
            endpoints: members.len().min(size),
        }
    }

    /// The endpoint owning `hash` (from [`key_hash`]), as an index into the slice given
    /// to [`Maglev::new`]; `None` if the table is empty. `O(1)`.
    #[must_use]
    pub fn pick(&self, hash: u64) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        self.table
            .get(reduce(hash, self.table.len()))
            .map(|&owner| index(owner))
    }

    /// Like [`Maglev::pick`], but probes the following slots past endpoints for which
    /// `usable` is false (ejected, unhealthy, draining) to the first usable one; `None` if
    /// there is none. While a key's endpoint is usable it is the one returned; while it is
    /// not, its keys spread over the endpoints owning the neighbouring slots, which are
    /// interleaved, so no single endpoint inherits them all.
    ///
    /// `usable` is called at most once per distinct endpoint, and probing stops after one
    /// pass over the table or once every endpoint was rejected.
    #[must_use]
    pub fn pick_usable(&self, hash: u64, usable: impl FnMut(usize) -> bool) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let start = reduce(hash, self.table.len());
        walk(&self.table, start, self.endpoints, usable)
    }

    /// Slots in the table: the adjusted, prime table size, or 0 without endpoints.
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the table has no endpoints (every pick is `None`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// The table size used for `requested` slots and `endpoints` endpoints: prime, at least
/// both (and 2), at most [`Maglev::MAX_TABLE_SIZE`].
fn maglev_size(requested: usize, endpoints: usize) -> usize {
    let wanted = requested.max(endpoints).max(2);
    if wanted >= Maglev::MAX_TABLE_SIZE {
        return Maglev::MAX_TABLE_SIZE;
    }
    // Prime gaps below 5M are under 200, so this is a short search.
    (wanted..Maglev::MAX_TABLE_SIZE)
        .find(|&n| is_prime(n))
        .unwrap_or(Maglev::MAX_TABLE_SIZE)
}

/// Trial division; `n` ≤ [`Maglev::MAX_TABLE_SIZE`], so at most ~2,200 divisions.
fn is_prime(n: usize) -> bool {
    n >= 2 && (2..=n.isqrt()).all(|d| !n.is_multiple_of(d))
}

/// `slot + skip` modulo `size`, with `slot, skip < size`.
fn advance(slot: usize, skip: usize, size: usize) -> usize {
    let next = slot + skip;
    if next >= size {
        next - size
    } else {
        next
    }
}

// === impl Rejected ===

impl Rejected {
    fn contains(&self, endpoint: usize) -> bool {
        self.bits
            .get(endpoint / 64)
            .is_some_and(|word| word & (1 << (endpoint % 64)) != 0)
    }

    fn insert(&mut self, endpoint: usize) {
        let word = endpoint / 64;
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << (endpoint % 64);
        self.count += 1;
    }
}

// === impl Fnv ===

impl Fnv {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    const fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    fn write(self, bytes: &[u8]) -> Self {
        Self(bytes.iter().fold(self.0, |state, &byte| {
            (state ^ u64::from(byte)).wrapping_mul(Self::PRIME)
        }))
    }

    /// The state through `MurmurHash3`'s `fmix64`.
    fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        h
    }
}

/// The caller's endpoints in identity order (then weight, then position, so duplicates
/// order deterministically too), with weight 0 raised to 1. Positions from `u32::MAX` on
/// are dropped: they cannot be stored in a `u32` table, and no proxy holds 4 billion
/// endpoints.
fn members<'a>(endpoints: &[(&'a [u8], u32)]) -> Vec<Member<'a>> {
    let mut members: Vec<Member<'a>> = endpoints
        .iter()
        .zip(0..EMPTY)
        .map(|(&(identity, weight), index)| Member {
            index,
            identity,
            weight: weight.max(1),
        })
        .collect();
    members.sort_unstable_by(|a, b| {
        (a.identity, a.weight, a.index).cmp(&(b.identity, b.weight, b.index))
    });
    members
}

/// Walks `owners` from `start`, wrapping once, to the first endpoint `usable` accepts.
/// Gives up early once all `endpoints` distinct endpoints were rejected.
fn walk(
    owners: &[u32],
    start: usize,
    endpoints: usize,
    mut usable: impl FnMut(usize) -> bool,
) -> Option<usize> {
    let (before, after) = owners.split_at(start.min(owners.len()));
    let mut rejected = Rejected::default();
    for &owner in after.iter().chain(before) {
        let owner = index(owner);
        if rejected.contains(owner) {
            continue;
        }
        if usable(owner) {
            return Some(owner);
        }
        rejected.insert(owner);
        if rejected.count >= endpoints {
            return None;
        }
    }
    None
}

/// `hash mod n` as a slot; `n` is non-zero.
fn reduce(hash: u64, n: usize) -> usize {
    // The remainder is below `n`, a `usize`, so it fits.
    #[allow(clippy::cast_possible_truncation)]
    let slot = (hash % to_u64(n)) as usize;
    slot
}

/// A stored endpoint index as a slice index; `usize` is at least 32 bits on every target
/// the proxy builds for.
fn index(stored: u32) -> usize {
    usize::try_from(stored).unwrap_or(usize::MAX)
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

// === impl Table ===

/// The table a hashing service balances with: a [`Ring`] or a [`Maglev`], built over
/// the endpoints' addresses (an address is the same in every proxy).
#[derive(Debug)]
pub enum Table {
    /// `ringHash`.
    Ring(Ring),
    /// `maglev`.
    Maglev(Maglev),
}

impl Table {
    /// Ring points per endpoint for `ringHash`, whatever the number of endpoints (as in
    /// libketama). Fixed, so adding or removing an endpoint never moves the other
    /// endpoints' keys: a ring sized by a total instead re-spreads every point when the
    /// endpoint count crosses a power of two. 1024 spreads ten endpoints within about
    /// ±5% (256 would give ±13%), for 12 KiB per endpoint.
    const RING_POINTS_PER_ENDPOINT: usize = 1024;
    /// Ring points at most: 256 endpoints at 1024 each (3 MiB). A larger service gets
    /// fewer points each, and crossing that size moves keys once.
    const RING_MAX_SIZE: usize = 1 << 18;

    /// The table for `lb` (`Maglev` unless it is `RingHash`) over `addresses`, each of
    /// weight 1.
    pub fn build(lb: weft_api::proxy::LoadBalancer, addresses: &[std::net::IpAddr]) -> Self {
        let identities: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        let endpoints: Vec<(&[u8], u32)> = identities.iter().map(|i| (i.as_bytes(), 1)).collect();
        if lb == weft_api::proxy::LoadBalancer::RingHash {
            // The ring's minimum is exactly 2^10 points for each endpoint of weight 1.
            Self::Ring(Ring::new(
                &endpoints,
                Self::RING_POINTS_PER_ENDPOINT * endpoints.len(),
                Self::RING_MAX_SIZE,
            ))
        } else {
            Self::Maglev(Maglev::new(&endpoints, Maglev::DEFAULT_TABLE_SIZE))
        }
    }

    /// The first usable endpoint for `hash`; see [`Ring::pick_usable`] and
    /// [`Maglev::pick_usable`].
    pub fn pick_usable(&self, hash: u64, usable: impl FnMut(usize) -> bool) -> Option<usize> {
        match self {
            Self::Ring(r) => r.pick_usable(hash, usable),
            Self::Maglev(m) => m.pick_usable(hash, usable),
        }
    }
}

#[cfg(test)]
mod tests;
