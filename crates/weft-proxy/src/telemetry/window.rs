//! Short windows of request statistics, for the control plane (`weft stat`, `weft
//! top`, `weft edges`, the GUI's graph): per peer and per route rule, requests,
//! successes and a latency histogram since the last report (ADR 39).
//!
//! Recorded beside the Prometheus metrics, keyed by the interned label sets (a pointer
//! hash), in a few shards each behind its own short lock; the reporter takes the
//! window and starts a new one. A window holds at most [`MAX_SERIES`] series; more are
//! counted and dropped, though labels come only from config and proofs (ADR 37).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::labels::{PeerLabels, RouteLabels, Shared};
use super::{Direction, Security};

/// Bounds of the latency buckets, milliseconds (the request histograms' bounds).
pub const LATENCY_BOUNDS_MS: [f64; 14] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

/// Series one window holds, at most.
pub const MAX_SERIES: usize = 4096;

const SHARDS: usize = 8;

/// Counts of one series over a window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered.
    pub requests: u64,
    /// Of those, answers that were not 5xx.
    pub successes: u64,
    /// Requests per latency bucket: one per bound, then one for slower.
    pub latency: [u64; LATENCY_BOUNDS_MS.len() + 1],
}

impl Counts {
    fn add(&mut self, status: u16, elapsed: Duration) {
        self.requests += 1;
        if status < 500 {
            self.successes += 1;
        }
        let ms = elapsed.as_secs_f64() * 1000.0;
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency[bucket] += 1;
    }
}

#[derive(Debug, Default)]
struct Shard {
    /// Peers by direction: inbound, outbound.
    peers: [HashMap<Shared<PeerLabels>, Counts, FastKeys>; 2],
    routes: HashMap<Shared<RouteLabels>, Counts, FastKeys>,
}

/// The keys are interned label sets, hashed by address (and a direction): made by
/// the proxy from config, never by a client, so a multiply-rotate hash (FxHash's)
/// does where SipHash would spend a hundred instructions per request guarding against
/// chosen keys.
pub(super) type FastKeys = std::hash::BuildHasherDefault<AddressHasher>;

/// FxHash over the words written.
#[derive(Debug, Default)]
pub(super) struct AddressHasher(u64);

impl std::hash::Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn write_isize(&mut self, word: isize) {
        self.write_u64(word as u64);
    }
}

/// The index of `direction` in [`Shard::peers`].
fn side(direction: Direction) -> usize {
    match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

/// Counts a request in `series`; the key is cloned (an atomic increment) only for a
/// new series.
fn count<T>(
    series: &mut HashMap<Shared<T>, Counts, FastKeys>,
    key: &Shared<T>,
    status: u16,
    elapsed: Duration,
) {
    match series.get_mut(key) {
        Some(counts) => counts.add(status, elapsed),
        None => series.entry(key.clone()).or_default().add(status, elapsed),
    }
}

/// The window being recorded.
#[derive(Debug)]
pub struct Windows {
    shards: [Mutex<Shard>; SHARDS],
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

/// One series of a taken window.
#[derive(Debug, PartialEq, Eq)]
pub struct Series {
    /// Which side.
    pub direction: Direction,
    /// Who called whom (the peer series; for a route series, the route's backend).
    pub peer: Option<Shared<PeerLabels>>,
    /// The route rule (route series).
    pub route: Option<Shared<RouteLabels>>,
    /// What happened.
    pub counts: Counts,
}

impl Windows {
    fn shard<T>(&self, key: &Shared<T>) -> std::sync::MutexGuard<'_, Shard> {
        let index = (std::ptr::from_ref::<T>(key) as usize >> 4) % SHARDS;
        self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one answered request.
    pub fn record(
        &self,
        direction: Direction,
        peer: &Shared<PeerLabels>,
        route: Option<&Shared<RouteLabels>>,
        status: u16,
        elapsed: Duration,
    ) {
        let mut shard = self.shard(peer);
        count(&mut shard.peers[side(direction)], peer, status, elapsed);
        drop(shard);
        if let Some(route) = route {
            count(&mut self.shard(route).routes, route, status, elapsed);
        }
    }

    /// The window so far, and a new one begun: (series, series dropped over the
    /// limit).
    pub fn take(&self) -> (Vec<Series>, u64) {
        let mut series = Vec::new();
        let mut dropped = 0;
        for shard in &self.shards {
            let taken = std::mem::take(
                &mut *shard
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let [inbound, outbound] = taken.peers;
            let peers = inbound
                .into_iter()
                .map(|series| (Direction::Inbound, series))
                .chain(
                    outbound
                        .into_iter()
                        .map(|series| (Direction::Outbound, series)),
                );
            for (direction, (peer, counts)) in peers {
                push(
                    &mut series,
                    &mut dropped,
                    Series {
                        direction,
                        peer: Some(peer),
                        route: None,
                        counts,
                    },
                );
            }
            for (route, counts) in taken.routes {
                push(
                    &mut series,
                    &mut dropped,
                    Series {
                        direction: Direction::Outbound,
                        peer: None,
                        route: Some(route),
                        counts,
                    },
                );
            }
        }
        (series, dropped)
    }
}

fn push(series: &mut Vec<Series>, dropped: &mut u64, one: Series) {
    if series.len() < MAX_SERIES {
        series.push(one);
    } else {
        *dropped += 1;
    }
}

/// The wire form of a taken series.
pub fn to_pb(s: &Series) -> weft_api::pb::v1::Series {
    let mut out = weft_api::pb::v1::Series {
        inbound: s.direction == Direction::Inbound,
        requests: s.counts.requests,
        successes: s.counts.successes,
        latency: s.counts.latency.to_vec(),
        latency_bounds_ms: LATENCY_BOUNDS_MS.to_vec(),
        ..Default::default()
    };
    if let Some(peer) = &s.peer {
        out.source_workload = peer.source_workload.0.to_string();
        out.source_namespace = peer.source_namespace.0.to_string();
        out.source_identity = peer.source_identity.0.to_string();
        out.destination_service = peer.destination_service.0.to_string();
        out.destination_workload = peer.destination_workload.0.to_string();
        out.destination_namespace = peer.destination_namespace.0.to_string();
        out.destination_identity = peer.destination_identity.0.to_string();
        match peer.connection_security {
            Security::MutualTls => "mutual_tls",
            Security::None => "none",
            Security::Unknown => "unknown",
        }
        .clone_into(&mut out.security);
    }
    if let Some(route) = &s.route {
        out.route = route.route.0.to_string();
        out.route_rule = route.route_rule;
        out.destination_service = route.destination_service.0.to_string();
        out.destination_namespace = route.destination_namespace.0.to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::labels::Own;

    /// A window counts per peer and per route, by class and latency bucket, and
    /// starts over once taken.
    #[test]
    fn a_window_counts_per_peer_and_route_and_starts_over_when_taken() {
        let windows = Windows::default();
        let own = Own::new("web", "shop", None);
        let peer = own.inbound(Some("spiffe://cluster.local/ns/shop/sa/api"));
        let route = crate::telemetry::labels::RouteLabels::of("HTTPRoute/shop/r", 1, "api.shop");
        for (status, ms) in [(200, 1), (200, 3), (503, 40), (404, 7000)] {
            windows.record(
                Direction::Inbound,
                &peer.counted,
                Some(&route),
                status,
                Duration::from_millis(ms),
            );
        }
        let (series, dropped) = windows.take();
        assert_eq!((series.len(), dropped), (2, 0));
        for s in &series {
            assert_eq!((s.counts.requests, s.counts.successes), (4, 3));
            let mut expected = [0; 15];
            expected[1] = 1; // 1 ms
            expected[3] = 1; // 3 ms: up to 5
            expected[6] = 1; // 40 ms: up to 50
            expected[13] = 1; // 7 s: up to 10 s
            assert_eq!(s.counts.latency, expected);
        }
        let wire: Vec<_> = series.iter().map(to_pb).collect();
        assert!(wire
            .iter()
            .any(|s| s.route == "HTTPRoute/shop/r" && s.route_rule == 1));
        assert!(wire
            .iter()
            .any(|s| s.inbound && s.source_identity == "spiffe://cluster.local/ns/shop/sa/api"));
        assert_eq!(windows.take().0, Vec::new(), "a new window begins empty");
    }
}
