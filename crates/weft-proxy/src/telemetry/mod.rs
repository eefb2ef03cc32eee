//! Metrics: request and connection counters and latency histograms, in Prometheus text
//! format on the metrics listener (`/metrics`).
//!
//! Names follow `weft_proxy_<thing>_<unit>`. Label sets are typed; the golden request
//! metrics are labelled by peer (who called whom) and, on the outbound side, by route
//! rule, from label sets made when a snapshot is built ([`labels`], ADR 37), so
//! recording a request hashes pointers, not strings.

pub mod access_log;
mod budget;
pub mod exchange;
mod handles;
pub mod labels;
pub mod sinks;
pub mod tap;
pub mod trace;
pub mod window;

pub use budget::{LogBudget, AUTHZ_LOG_LINES_PER_SECOND};

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A request's authority: its URI's (HTTP/2, absolute form), else its `Host`
/// header, else empty.
pub fn authority_of<B>(req: &http::Request<B>) -> &str {
    req.uri()
        .authority()
        .map(http::uri::Authority::as_str)
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
}

/// Which side of the proxy saw the traffic.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Direction {
    /// From the local app to a service.
    Outbound,
    /// From a peer proxy to the local app.
    Inbound,
}

impl EncodeLabelValue for Direction {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            Self::Outbound => "outbound",
            Self::Inbound => "inbound",
        })
    }
}

/// How the hop between the two proxies was secured, as Istio's
/// `connection_security_policy` label says it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Security {
    /// HBONE: both sides presented verified mesh certificates.
    MutualTls,
    /// Plaintext: an unauthenticated caller on a permissive port, or an endpoint
    /// outside the mesh.
    None,
    /// Not known: the request failed before an endpoint was chosen.
    Unknown,
}

impl EncodeLabelValue for Security {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            Self::MutualTls => "mutual_tls",
            Self::None => "none",
            Self::Unknown => "unknown",
        })
    }
}

/// A service name as a cheap-to-clone label value.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(&self.0)
    }
}

/// Labels of connection metrics: who connected to whom, and what they spoke.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    /// Direction.
    pub direction: Direction,
    /// Who connected to whom: on the outbound side, the app to the service it dialled
    /// (`destination_service="passthrough"` for a captured connection outside the
    /// mesh) and, for bytes, the endpoint they went to; on the inbound side, the
    /// caller as its certificate proved it.
    #[prometheus(flatten)]
    pub peer: labels::Shared<labels::PeerLabels>,
    /// `http1`, `http2`, `tls` or `tcp`.
    pub protocol: &'static str,
}

/// Labels of HBONE handshakes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// `outbound` (this proxy dialled a peer) or `inbound` (a peer dialled it).
    pub direction: Direction,
    /// `ok`, `timeout`, or `failed` (refused, a TLS error, a wrong identity, no
    /// HTTP/2).
    pub result: &'static str,
}

/// Labels of outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// What became of it.
    pub result: &'static str,
}

/// Labels of failure counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: &'static str,
}

/// Labels of retry decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// Destination service.
    pub service: Name,
    /// `retried`, or `budget_exhausted` (a retry the budget refused).
    pub result: &'static str,
}

/// Labels of load-protection events of a destination service: ejections (by
/// reason), refusals by a connection limit (by limit), health changes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceEventLabels {
    /// Destination service.
    pub service: Name,
    /// `consecutive_5xx`, `consecutive_gateway_errors`, `success_rate` (ejections);
    /// `max_requests`, `max_pending_requests`, `max_connections` (overflows);
    /// `sent`, `failed`, `skipped` (mirrors).
    pub reason: &'static str,
}

/// Labels of mesh DNS answers.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DnsLabels {
    /// `service` (answered from the mesh's names), `nxdomain` (a mesh-zone name no
    /// service has), `forwarded` (an upstream answered), `servfail` (no upstream
    /// answered, or too many queries in flight), `malformed`.
    pub result: &'static str,
}

/// Labels of authorization decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthzLabels {
    /// What decided: `TrafficPermission/<namespace>/<name>` (or the local rule's
    /// path), or `default`.
    pub permission: Name,
    /// Its action: `allow`, `deny` or `audit`.
    pub action: &'static str,
    /// `allowed`, `denied`, or `audited` (served, but an `audit` flagged it).
    pub result: &'static str,
}

/// Every metric the proxy records.
#[derive(Debug)]
pub struct Metrics {
    /// Requests by direction, peer and status.
    pub requests: Family<labels::RequestLabels, Counter>,
    /// Request latency to response headers by direction and destination, seconds.
    pub request_duration: Family<labels::DurationLabels, HistogramWithExemplars<TraceExemplar>>,
    /// Request body sizes by direction and destination (the service outbound, the
    /// workload inbound), bytes.
    pub request_size: Family<labels::DurationLabels, Histogram>,
    /// Response body sizes by direction and destination (as for requests), bytes.
    pub response_size: Family<labels::DurationLabels, Histogram>,
    /// Outbound requests by route rule, backend service and status.
    pub route_requests: Family<labels::RouteRequestLabels, Counter>,
    /// Outbound request latency to response headers by route rule, backend service
    /// and class, seconds.
    pub route_request_duration: Family<labels::RouteDurationLabels, Histogram>,
    /// Connections accepted.
    pub connections: Family<ConnectionLabels, Counter>,
    /// Connections open now.
    pub connections_active: Family<ConnectionLabels, Gauge>,
    /// Connections closed.
    pub connections_closed: Family<ConnectionLabels, Counter>,
    /// HBONE connections set up (TCP, mutual TLS 1.3, HTTP/2), by result.
    pub hbone_handshakes: Family<HandshakeLabels, Counter>,
    /// Bytes copied on opaque TCP connections (both directions).
    pub tcp_bytes: Family<ConnectionLabels, Counter>,
    /// Failures that never became a request: TLS handshakes, refused connections.
    pub failures: Family<ReasonLabels, Counter>,
    /// Config reloads by outcome.
    pub reloads: Family<ReasonLabels, Counter>,
    /// Mesh DNS queries by how they were answered.
    pub dns_queries: Family<DnsLabels, Counter>,
    /// Retries sent, and retries the budget refused.
    pub retries: Family<RetryLabels, Counter>,
    /// Endpoints ejected by outlier detection.
    pub ejections: Family<ServiceEventLabels, Counter>,
    /// Requests and connections refused by a connection limit.
    pub overflows: Family<ServiceEventLabels, Counter>,
    /// Mirrored copies by outcome (`sent`, `failed`, `skipped`).
    pub mirrors: Family<ServiceEventLabels, Counter>,
    /// Authorization decisions by what decided and how.
    pub authz: Family<AuthzLabels, Counter>,
    /// Denial and audit log lines not written because too many came at once.
    pub authz_logs_suppressed: Counter,
    /// Rate limit of denial and audit log lines.
    pub authz_log_budget: LogBudget,
    /// Spans by what became of them.
    pub spans: trace::Exported,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: Counter,
    /// Handles to each peer's and route's request series.
    handles: handles::Handles,
    /// The window of request statistics the control plane gets next.
    pub windows: window::Windows,
    /// The taps in force.
    pub taps: tap::Taps,
    /// The `permission` label of default decisions, made once.
    pub default_permission: Name,
    /// Counters of default decisions, by default action (`allow`, `deny`, `audit`).
    pub default_authz: [LazyCounters<3>; 3],
    registry: Registry,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("weft_proxy");
        let requests = Family::default();
        registry.register(
            "requests",
            "HTTP requests handled, by peer and status",
            requests.clone(),
        );
        let request_duration = Family::<
            labels::DurationLabels,
            HistogramWithExemplars<TraceExemplar>,
        >::new_with_constructor(|| {
            HistogramWithExemplars::new(LATENCY_BUCKETS.into_iter())
        });
        registry.register_with_unit(
            "request_duration",
            "Time from request to response headers, by destination",
            prometheus_client::registry::Unit::Seconds,
            request_duration.clone(),
        );
        let request_size =
            Family::<labels::DurationLabels, Histogram>::new_with_constructor(size_histogram);
        registry.register_with_unit(
            "request_size",
            "Request body sizes, by destination",
            prometheus_client::registry::Unit::Bytes,
            request_size.clone(),
        );
        let response_size =
            Family::<labels::DurationLabels, Histogram>::new_with_constructor(size_histogram);
        registry.register_with_unit(
            "response_size",
            "Response body sizes, by destination",
            prometheus_client::registry::Unit::Bytes,
            response_size.clone(),
        );
        let route_requests = Family::default();
        registry.register(
            "route_requests",
            "Outbound HTTP requests by route rule, backend service and status",
            route_requests.clone(),
        );
        let route_request_duration =
            Family::<labels::RouteDurationLabels, Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "route_request_duration",
            "Time from outbound request to response headers, by route rule and backend service",
            prometheus_client::registry::Unit::Seconds,
            route_request_duration.clone(),
        );
        let connections = Family::default();
        registry.register("connections", "Connections accepted", connections.clone());
        let hbone_handshakes = Family::default();
        registry.register(
            "hbone_handshakes",
            "HBONE connection setups (TCP, mutual TLS 1.3, HTTP/2) by direction and result",
            hbone_handshakes.clone(),
        );
        let connections_closed = Family::default();
        registry.register(
            "connections_closed",
            "Connections closed",
            connections_closed.clone(),
        );
        let connections_active = Family::default();
        registry.register(
            "connections_active",
            "Connections open",
            connections_active.clone(),
        );
        let tcp_bytes = Family::default();
        registry.register_with_unit(
            "tcp",
            "Bytes copied on opaque connections",
            prometheus_client::registry::Unit::Bytes,
            tcp_bytes.clone(),
        );
        let failures = Family::default();
        registry.register(
            "failures",
            "Connections refused or failed before a request",
            failures.clone(),
        );
        let reloads = Family::default();
        registry.register(
            "config_reloads",
            "Config reloads by result",
            reloads.clone(),
        );
        let dns_queries = Family::default();
        registry.register(
            "dns_queries",
            "Mesh DNS queries by result",
            dns_queries.clone(),
        );
        let retries = Family::default();
        registry.register(
            "retries",
            "Retries sent (retried) and refused by the retry budget (budget_exhausted)",
            retries.clone(),
        );
        let ejections = Family::default();
        registry.register(
            "outlier_ejections",
            "Endpoints ejected by outlier detection, by reason",
            ejections.clone(),
        );
        let overflows = Family::default();
        registry.register(
            "overflows",
            "Requests and connections refused by a BackendPolicy connection limit",
            overflows.clone(),
        );
        let mirrors = Family::default();
        registry.register(
            "mirrored_requests",
            "Copies of requests sent to mirror backends, by result (sent, failed, skipped)",
            mirrors.clone(),
        );
        let authz = Family::default();
        registry.register(
            "authorization_decisions",
            "Authorization decisions by permission, action and result",
            authz.clone(),
        );
        let authz_logs_suppressed = Counter::default();
        registry.register(
            "authorization_logs_suppressed",
            "Denial and audit log lines dropped because more than the log budget came at once",
            authz_logs_suppressed.clone(),
        );
        let span_results = Family::<ResultLabels, Counter>::default();
        registry.register(
            "spans",
            "Spans by result: exported, dropped (the export queue was full), failed (the collector refused or was unreachable)",
            span_results.clone(),
        );
        let span = |result| span_results.get_or_create(&ResultLabels { result }).clone();
        let spans = trace::Exported {
            exported: span("exported"),
            dropped: span("dropped"),
            failed: span("failed"),
        };
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_lines_dropped",
            "Access-log lines dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        Arc::new(Self {
            spans,
            access_log_dropped,
            handles: handles::Handles::default(),
            windows: window::Windows::default(),
            taps: tap::Taps::default(),
            authz,
            authz_logs_suppressed,
            authz_log_budget: LogBudget::new(AUTHZ_LOG_LINES_PER_SECOND),
            default_permission: Name(Arc::from("default")),
            default_authz: Default::default(),
            requests,
            request_duration,
            request_size,
            response_size,
            route_requests,
            route_request_duration,
            connections,
            connections_active,
            connections_closed,
            hbone_handshakes,
            tcp_bytes,
            failures,
            reloads,
            dns_queries,
            retries,
            ejections,
            overflows,
            mirrors,
            registry,
        })
    }

    /// Records one answered request.
    pub fn request(&self, r: &Answered<'_>) {
        let class = labels::Class::of(r.status);
        let seconds = r.elapsed.as_secs_f64();
        // A sampled request leaves its trace id on the bucket it fell in: from a slow
        // bucket in a dashboard straight to a trace of it.
        let exemplar = r.trace_id.map(|id| {
            let mut hex = [0u8; 32];
            trace::context::write_hex(&mut hex, &id);
            TraceExemplar {
                trace_id: String::from_utf8_lossy(&hex).into_owned(),
            }
        });
        self.handles.peer(self, r.direction, r.peer, |peer| {
            peer.duration.observe(seconds, exemplar, None);
            peer.request_size.observe(r.request_bytes as f64);
            peer.response_size.observe(r.response_bytes as f64);
            peer.requests(&self.requests, r.direction, r.peer, r.status, r.grpc)
                .inc();
        });
        if let Some(route) = r.route {
            self.handles.route(route, |handles| {
                handles
                    .requests(&self.route_requests, route, r.status, r.grpc)
                    .inc();
                handles
                    .duration(&self.route_request_duration, route, class)
                    .observe(seconds);
            });
        }
    }

    /// Counts an authorization decision.
    pub fn authz(&self, permission: &Name, action: &'static str, result: &'static str) {
        self.authz_counter(permission, action, result).inc();
    }

    /// The counter of authorization decisions with these labels (a handle: counting
    /// on it later costs no lookup).
    pub fn authz_counter(
        &self,
        permission: &Name,
        action: &'static str,
        result: &'static str,
    ) -> Counter {
        self.authz
            .get_or_create(&AuthzLabels {
                permission: permission.clone(),
                action,
                result,
            })
            .clone()
    }

    /// Counts a retry decision for `service`.
    pub fn retry(&self, service: &Name, result: &'static str) {
        self.retries
            .get_or_create(&RetryLabels {
                service: service.clone(),
                result,
            })
            .inc();
    }

    /// Counts a load-protection event (`family` is one of the service event families).
    pub fn service_event(
        family: &Family<ServiceEventLabels, Counter>,
        service: &Name,
        reason: &'static str,
    ) {
        family
            .get_or_create(&ServiceEventLabels {
                service: service.clone(),
                reason,
            })
            .inc();
    }

    /// Counts an HBONE connection setup.
    pub fn handshake(&self, direction: Direction, result: &'static str) {
        self.hbone_handshakes
            .get_or_create(&HandshakeLabels { direction, result })
            .inc();
    }

    /// Counts a mesh DNS answer.
    pub fn dns(&self, result: &'static str) {
        self.dns_queries.get_or_create(&DnsLabels { result }).inc();
    }

    /// Counts a failure.
    pub fn failure(&self, reason: &'static str) {
        self.failures.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counters made the first time each is needed, by index: a handle cache, so counting
/// later costs one atomic add and no lookup.
#[derive(Debug)]
pub struct LazyCounters<const N: usize>([std::sync::OnceLock<Counter>; N]);

impl<const N: usize> Default for LazyCounters<N> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| std::sync::OnceLock::new()))
    }
}

impl<const N: usize> LazyCounters<N> {
    /// Counter `i`, made with `make` the first time.
    ///
    /// # Panics
    /// If `i` is not below `N` (a caller's index type out of step with `N`).
    pub fn get(&self, i: usize, make: impl FnOnce() -> Counter) -> &Counter {
        self.0[i].get_or_init(make)
    }
}

/// The buckets of request latency, seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The exemplar of a sampled request's latency: its trace.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceExemplar {
    /// 32 lowercase hex digits.
    pub trace_id: String,
}

/// The buckets of body sizes, bytes: powers of 4 from 64 B to 16 MiB (an empty
/// body counts in the first).
fn size_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        64.0, 4.0, 10,
    ))
}

/// One answered request, as the request metrics count it.
#[derive(Debug)]
pub struct Answered<'a> {
    /// Which side of the proxy.
    pub direction: Direction,
    /// Who called whom.
    pub peer: &'a labels::Peer,
    /// The route rule and backend (outbound, once routed).
    pub route: Option<&'a labels::Shared<labels::RouteLabels>>,
    /// HTTP status of the answer.
    pub status: u16,
    /// Its gRPC status, if its headers carry one.
    pub grpc: labels::GrpcStatus,
    /// From the request to the answer's headers.
    pub elapsed: Duration,
    /// Bytes of the request's body.
    pub request_bytes: u64,
    /// Bytes of the answer's body.
    pub response_bytes: u64,
    /// Its trace, when sampled (the latency histogram's exemplar).
    pub trace_id: Option<[u8; 16]>,
}

/// Marks a connection open until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    labels: ConnectionLabels,
}

impl ConnectionGuard {
    /// Counts a new connection.
    pub fn new(metrics: &Arc<Metrics>, labels: ConnectionLabels) -> Self {
        metrics.connections.get_or_create(&labels).inc();
        metrics.connections_active.get_or_create(&labels).inc();
        Self {
            metrics: metrics.clone(),
            labels,
        }
    }

    /// Adds copied bytes.
    pub fn bytes(&self, n: u64) {
        self.metrics.tcp_bytes.get_or_create(&self.labels).inc_by(n);
    }

    /// Adds bytes copied to (and from) one endpoint, counted under its peer labels.
    pub fn bytes_via(&self, peer: &labels::Peer, n: u64) {
        self.metrics
            .tcp_bytes
            .get_or_create(&ConnectionLabels {
                peer: peer.counted.clone(),
                ..self.labels.clone()
            })
            .inc_by(n);
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics
            .connections_active
            .get_or_create(&self.labels)
            .dec();
        self.metrics
            .connections_closed
            .get_or_create(&self.labels)
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::labels::{GrpcStatus, Own, RouteLabels};
    use super::*;

    /// The bound, by construction: a proxy whose outbound side sent every one of 20
    /// route rules to each of 100 endpoints, and whose inbound side served 100
    /// callers, each with a success and a failure status, stays under 1 MB of
    /// exposition.
    #[test]
    fn a_proxy_with_100_peers_and_20_routes_exposes_under_1_mb() {
        let metrics = Metrics::new();
        let own = Own::new(
            "frontend-7d9f8c6b5-x2k4p",
            "storefront",
            Some("spiffe://cluster.local/ns/storefront/sa/frontend"),
        );
        let record = |direction, peer: &labels::Peer, route, status| {
            metrics.request(&Answered {
                direction,
                peer,
                route,
                status,
                grpc: GrpcStatus(None),
                elapsed: Duration::from_millis(3),
                request_bytes: 0,
                response_bytes: 512,
                trace_id: None,
            });
        };
        let routes: Vec<_> = (0..20)
            .map(|r| {
                RouteLabels::of(
                    &format!("HTTPRoute/storefront/route-{r}"),
                    r % 4,
                    "catalog-api.storefront",
                )
            })
            .collect();
        for p in 0..100 {
            let endpoint = weft_api::proxy::Endpoint {
                address: std::net::IpAddr::from([10, 0, 0, p]),
                identity: Some(format!(
                    "spiffe://cluster.local/ns/storefront/sa/service-{}",
                    p % 5
                )),
                hbone: None,
                zone: None,
                workload: Some(format!("storefront/service-{}-7d9f8c6b5-{p:05}", p % 5)),
            };
            let out = own.outbound(&format!("service-{}.storefront", p % 5), Some(&endpoint));
            let caller = format!("spiffe://cluster.local/ns/team-{p}/sa/caller-{p}");
            let inbound = own.inbound(Some(&caller));
            // Every route to every peer: peers and routes are separate families, so
            // their product never becomes series.
            for route in &routes {
                for status in [200, 503] {
                    record(Direction::Outbound, &out, Some(route), status);
                    record(Direction::Inbound, &inbound, None, status);
                }
            }
        }
        let text = metrics.encode();
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        assert!(
            series > 4 * 100 * 2,
            "every peer and status was recorded: {series}"
        );
        assert!(
            text.len() < 1_000_000,
            "{} bytes for 100 peers and 20 routes each way",
            text.len()
        );
    }
}
