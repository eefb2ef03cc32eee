//! Handles to the request metrics of each peer and route, found in their families
//! once and kept: counting a request then costs one lookup keyed by an address per
//! label set, not one family lookup (a read lock and SipHash over the labels) per
//! metric.
//!
//! The label sets are interned for the process ([`labels::Shared`]), and interned
//! sets are never freed, so a set's address names it for good; the handles are this
//! proxy's (one [`Metrics`](super::Metrics) each), so the cache lives beside its
//! families. A handle shares its series' storage: what is counted on it is what the
//! family encodes. Series are never removed from the families, so a handle never
//! goes stale.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use super::labels::{
    self, Class, DurationLabels, GrpcStatus, Peer, RequestLabels, RouteDurationLabels, RouteLabels,
    RouteRequestLabels, Shared,
};
use super::window::FastKeys;
use super::{Direction, Metrics, TraceExemplar};

const SHARDS: usize = 8;

/// The handles found so far.
#[derive(Debug)]
pub(super) struct Handles {
    shards: [Mutex<Shard>; SHARDS],
}

#[derive(Debug, Default)]
struct Shard {
    /// By direction and the address of the peer's full label set.
    peers: HashMap<(Direction, usize), PeerHandles, FastKeys>,
    /// By the address of the route's label set.
    routes: HashMap<usize, RouteHandles, FastKeys>,
}

/// One peer's series on one side of the proxy.
#[derive(Debug)]
pub(super) struct PeerHandles {
    /// Keeps the key's address taken.
    _labels: Shared<labels::PeerLabels>,
    /// Latency.
    pub(super) duration: HistogramWithExemplars<TraceExemplar>,
    /// Request body sizes.
    pub(super) request_size: Histogram,
    /// Response body sizes.
    pub(super) response_size: Histogram,
    /// Request counters by status and gRPC status, those seen so far: few per peer.
    requests: Vec<(u16, GrpcStatus, Counter)>,
}

/// One route rule's series.
#[derive(Debug)]
pub(super) struct RouteHandles {
    /// Keeps the key's address taken.
    _labels: Shared<RouteLabels>,
    /// Latency by class, those seen so far.
    duration: Vec<(Class, Histogram)>,
    /// Request counters by status and gRPC status, those seen so far.
    requests: Vec<(u16, GrpcStatus, Counter)>,
}

impl Default for Handles {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

impl Handles {
    fn shard(&self, address: usize) -> MutexGuard<'_, Shard> {
        // Interned sets are heap allocations: the low bits say nothing.
        self.shards[(address >> 4) % SHARDS]
            .lock()
            // The maps hold handles only: a panic elsewhere cannot leave one torn.
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `count` with the handles of `peer` on the `direction` side.
    pub(super) fn peer<R>(
        &self,
        metrics: &Metrics,
        direction: Direction,
        peer: &Peer,
        count: impl FnOnce(&mut PeerHandles) -> R,
    ) -> R {
        let address = address_of(&peer.counted);
        let mut shard = self.shard(address);
        let handles = shard
            .peers
            .entry((direction, address))
            .or_insert_with(|| PeerHandles::find(metrics, direction, peer));
        count(handles)
    }

    /// Runs `count` with the handles of `route`.
    pub(super) fn route<R>(
        &self,
        route: &Shared<RouteLabels>,
        count: impl FnOnce(&mut RouteHandles) -> R,
    ) -> R {
        let address = address_of(route);
        let mut shard = self.shard(address);
        let handles = shard.routes.entry(address).or_insert_with(|| RouteHandles {
            _labels: route.clone(),
            duration: Vec::new(),
            requests: Vec::new(),
        });
        count(handles)
    }
}

fn address_of<T>(labels: &Shared<T>) -> usize {
    std::ptr::from_ref::<T>(labels) as usize
}

impl PeerHandles {
    fn find(metrics: &Metrics, direction: Direction, peer: &Peer) -> Self {
        let timed = DurationLabels {
            direction,
            peer: peer.timed.clone(),
        };
        let sized = DurationLabels {
            direction,
            peer: peer.sized.clone(),
        };
        Self {
            _labels: peer.counted.clone(),
            duration: metrics.request_duration.get_or_create(&timed).clone(),
            request_size: metrics.request_size.get_or_create(&sized).clone(),
            response_size: metrics.response_size.get_or_create(&sized).clone(),
            requests: Vec::new(),
        }
    }

    /// The request counter of `status` and `grpc`.
    pub(super) fn requests(
        &mut self,
        family: &Family<RequestLabels, Counter>,
        direction: Direction,
        peer: &Peer,
        status: u16,
        grpc: GrpcStatus,
    ) -> &Counter {
        counter(&mut self.requests, status, grpc, || {
            family
                .get_or_create(&RequestLabels {
                    direction,
                    peer: peer.counted.clone(),
                    status,
                    response_class: Class::of(status),
                    grpc_status: grpc,
                })
                .clone()
        })
    }
}

impl RouteHandles {
    /// The request counter of `status` and `grpc`.
    pub(super) fn requests(
        &mut self,
        family: &Family<RouteRequestLabels, Counter>,
        route: &Shared<RouteLabels>,
        status: u16,
        grpc: GrpcStatus,
    ) -> &Counter {
        counter(&mut self.requests, status, grpc, || {
            family
                .get_or_create(&RouteRequestLabels {
                    route: route.clone(),
                    status,
                    response_class: Class::of(status),
                    grpc_status: grpc,
                })
                .clone()
        })
    }

    /// The latency histogram of `class`.
    pub(super) fn duration(
        &mut self,
        family: &Family<RouteDurationLabels, Histogram>,
        route: &Shared<RouteLabels>,
        class: Class,
    ) -> &Histogram {
        let at = self.duration.iter().position(|(c, _)| *c == class);
        let at = at.unwrap_or_else(|| {
            let found = family
                .get_or_create(&RouteDurationLabels {
                    route: route.clone(),
                    response_class: class,
                })
                .clone();
            self.duration.push((class, found));
            self.duration.len() - 1
        });
        &self.duration[at].1
    }
}

/// The counter of `(status, grpc)` in `seen`, found with `find` the first time.
fn counter(
    seen: &mut Vec<(u16, GrpcStatus, Counter)>,
    status: u16,
    grpc: GrpcStatus,
    find: impl FnOnce() -> Counter,
) -> &Counter {
    let at = seen.iter().position(|(s, g, _)| *s == status && *g == grpc);
    let at = at.unwrap_or_else(|| {
        seen.push((status, grpc, find()));
        seen.len() - 1
    });
    &seen[at].2
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::time::Duration;

    use super::super::labels::Own;
    use super::super::Answered;
    use super::*;

    /// The value of the one series of `metric` whose line has every one of `parts`,
    /// a whole number in these tests.
    fn value(text: &str, metric: &str, parts: &[&str]) -> u64 {
        let lines: Vec<_> = text
            .lines()
            .filter(|l| {
                l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} "))
            })
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .collect();
        assert_eq!(lines.len(), 1, "{metric} {parts:?} in\n{text}");
        let value: f64 = lines[0].rsplit(' ').next().unwrap().parse().unwrap();
        value as u64
    }

    fn answer<'a>(
        peer: &'a Peer,
        route: Option<&'a Shared<RouteLabels>>,
        status: u16,
        grpc: Option<u8>,
    ) -> Answered<'a> {
        Answered {
            direction: Direction::Outbound,
            peer,
            route,
            status,
            grpc: GrpcStatus(grpc),
            elapsed: Duration::from_millis(3),
            request_bytes: 10,
            response_bytes: 100,
            trace_id: None,
        }
    }

    /// Counting through kept handles must give each status and proxy its own series,
    /// exactly as looking each one up in its family would.
    #[test]
    fn kept_handles_count_each_status_and_proxy_in_its_own_series() {
        let own = Own::new("web", "shop", Some("spiffe://cluster.local/ns/shop/sa/web"));
        let peer = own.outbound("api.shop", None);
        let route = RouteLabels::of("HTTPRoute/shop/api", 1, "api.shop");
        let (one, two) = (Metrics::new(), Metrics::new());
        for (status, grpc) in [
            (200, None),
            (200, None),
            (503, None),
            (200, Some(14)),
            (200, None),
        ] {
            one.request(&answer(&peer, Some(&route), status, grpc));
        }
        two.request(&answer(&peer, Some(&route), 404, None));

        let text = one.encode();
        let requests = "weft_proxy_requests_total";
        assert_eq!(
            value(&text, requests, &["status=\"200\"", "grpc_status=\"\""]),
            3
        );
        assert_eq!(value(&text, requests, &["status=\"503\""]), 1);
        assert_eq!(value(&text, requests, &["grpc_status=\"14\""]), 1);
        assert!(
            !text.contains("status=\"404\""),
            "the other proxy's series:\n{text}"
        );
        let routed = "weft_proxy_route_requests_total";
        assert_eq!(
            value(&text, routed, &["status=\"200\"", "grpc_status=\"\""]),
            3
        );
        let by_class = "weft_proxy_route_request_duration_seconds_count";
        assert_eq!(value(&text, by_class, &["response_class=\"2xx\""]), 4);
        assert_eq!(value(&text, by_class, &["response_class=\"5xx\""]), 1);
        let timed = "weft_proxy_request_duration_seconds_count";
        assert_eq!(
            value(&text, timed, &["destination_service=\"api.shop\""]),
            5
        );
        let sized = "weft_proxy_response_size_bytes_sum";
        assert_eq!(
            value(&text, sized, &["destination_service=\"api.shop\""]),
            500
        );

        let text = two.encode();
        assert_eq!(value(&text, requests, &["status=\"404\""]), 1);
        assert_eq!(
            value(&text, timed, &["destination_service=\"api.shop\""]),
            1
        );
    }
}
