//! The label sets of the golden request metrics, made once per peer and per route
//! rule when a snapshot is built, never per request.
//!
//! A [`Shared`] label set is interned: equal contents are one allocation for the
//! life of the process, so a metric lookup hashes and compares a pointer instead of
//! a dozen strings, and two snapshots with the same config name the same series.
//! Every value comes from config or a verified identity (ADR 37), so the number of
//! sets is bounded by the mesh, not by what clients send.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};

use super::{Direction, Name, Security};

/// An interned label set: hashed and compared by address.
#[derive(Debug)]
pub struct Shared<T>(Arc<T>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for Shared<T> {}

impl<T> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

impl<T: EncodeLabelSet> EncodeLabelSet for Shared<T> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Sets seen so far, one table per kind.
fn intern<T: Hash + Eq>(table: &'static OnceLock<Mutex<HashSet<Arc<T>>>>, value: T) -> Shared<T> {
    let table = table.get_or_init(Mutex::default);
    // A poisoned table still holds valid sets: a panic elsewhere cannot corrupt it.
    let mut set = table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = set.get(&value) {
        return Shared(found.clone());
    }
    let made = Arc::new(value);
    set.insert(made.clone());
    Shared(made)
}

/// Who talked to whom over one connection or endpoint: the peer labels of the
/// request, connection and byte metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PeerLabels {
    /// Outbound: this workload; inbound: unknown (empty), since only the caller's
    /// identity is proven.
    pub source_workload: Name,
    /// The caller's namespace (outbound: this workload's; inbound: from its identity).
    pub source_namespace: Name,
    /// The caller's SPIFFE ID (inbound: as its certificate proved; empty for a
    /// plaintext caller).
    pub source_identity: Name,
    /// The workload that served (outbound: the endpoint's, from config; inbound: this
    /// one).
    pub destination_workload: Name,
    /// Its namespace.
    pub destination_namespace: Name,
    /// The service called (outbound: the backend; inbound: unknown, empty).
    pub destination_service: Name,
    /// The SPIFFE ID the destination proved (outbound: the endpoint's, verified by the
    /// HBONE handshake; inbound: this workload's).
    pub destination_identity: Name,
    /// `mutual_tls` (HBONE), `none` (plaintext, either way).
    pub connection_security: Security,
}

impl PeerLabels {
    /// Interns these labels.
    pub fn shared(self) -> Shared<Self> {
        static TABLE: OnceLock<Mutex<HashSet<Arc<PeerLabels>>>> = OnceLock::new();
        intern(&TABLE, self)
    }
}

/// The label sets of one peer: every peer label for the counters, and the few the
/// latency histograms keep (ADR 37: a histogram is 17 series, so it is kept per
/// destination, not per caller and identity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Every peer label.
    pub counted: Shared<PeerLabels>,
    /// The destination service and workload only.
    pub timed: Shared<LatencyLabels>,
    /// The destination as coarsely as it is known, for the size histograms: the
    /// service on the outbound side, this workload on the inbound side (a body's size
    /// is a property of the API, not of the endpoint that served it).
    pub sized: Shared<LatencyLabels>,
}

impl Peer {
    fn of(labels: PeerLabels) -> Self {
        let timed = LatencyLabels {
            destination_service: labels.destination_service.clone(),
            destination_workload: labels.destination_workload.clone(),
        }
        .shared();
        let sized = if labels.destination_service.0.is_empty() {
            LatencyLabels {
                destination_service: labels.destination_service.clone(),
                destination_workload: labels.destination_workload.clone(),
            }
        } else {
            LatencyLabels {
                destination_service: labels.destination_service.clone(),
                destination_workload: name(""),
            }
        }
        .shared();
        Self {
            counted: labels.shared(),
            timed,
            sized,
        }
    }
}

/// The peer labels of the latency histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct LatencyLabels {
    /// As in [`PeerLabels`].
    pub destination_service: Name,
    /// As in [`PeerLabels`].
    pub destination_workload: Name,
}

impl LatencyLabels {
    /// Interns these labels.
    pub fn shared(self) -> Shared<Self> {
        static TABLE: OnceLock<Mutex<HashSet<Arc<LatencyLabels>>>> = OnceLock::new();
        intern(&TABLE, self)
    }
}

/// The route rule that sent a request, and the backend service it picked: the
/// labels of the per-route request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RouteLabels {
    /// `HTTPRoute/<namespace>/<name>` (local configs: `routes[<i>]`), or `default`
    /// for a service without routes.
    pub route: Name,
    /// The rule's index in the route's `spec.rules`.
    pub route_rule: u32,
    /// The backend service the rule picked (the parent, for a redirect).
    pub destination_service: Name,
    /// Its namespace.
    pub destination_namespace: Name,
}

impl RouteLabels {
    /// The labels of requests that rule `rule` of `route` sends to `service` (its key,
    /// `name.namespace`).
    pub fn of(route: &str, rule: u32, service: &str) -> Shared<Self> {
        Self {
            route: name(route),
            route_rule: rule,
            destination_service: name(service),
            destination_namespace: name(service.split_once('.').map_or("", |(_, ns)| ns)),
        }
        .shared()
    }

    /// Interns these labels.
    pub fn shared(self) -> Shared<Self> {
        static TABLE: OnceLock<Mutex<HashSet<Arc<RouteLabels>>>> = OnceLock::new();
        intern(&TABLE, self)
    }
}

/// This workload's side of the peer labels, made once per snapshot.
#[derive(Clone, Debug)]
pub struct Own {
    workload: Name,
    namespace: Name,
    identity: Name,
    empty: Name,
}

impl Own {
    /// The workload `workload` of `namespace`, with `identity` (its SPIFFE ID, if it
    /// has credentials).
    pub fn new(workload: &str, namespace: &str, identity: Option<&str>) -> Self {
        Self {
            workload: name(workload),
            namespace: name(namespace),
            identity: name(identity.unwrap_or("")),
            empty: name(""),
        }
    }

    /// Requests from this workload to `service` (its key, `name.namespace`) served by
    /// `endpoint` (`None`: none chosen, the request failed before).
    pub fn outbound(&self, service: &str, endpoint: Option<&weft_api::proxy::Endpoint>) -> Peer {
        let service_ns = service.split_once('.').map_or("", |(_, ns)| ns);
        let (workload, namespace) = endpoint
            .and_then(|e| e.workload.as_deref())
            .and_then(|w| w.split_once('/'))
            .map_or(("", service_ns), |(ns, w)| (w, ns));
        let identity = endpoint.and_then(|e| e.identity.as_deref());
        Peer::of(PeerLabels {
            source_workload: self.workload.clone(),
            source_namespace: self.namespace.clone(),
            source_identity: self.identity.clone(),
            destination_workload: name(workload),
            destination_namespace: name(namespace),
            destination_service: name(service),
            destination_identity: name(identity.unwrap_or("")),
            connection_security: match (endpoint, identity) {
                (None, _) => Security::Unknown,
                (Some(_), Some(_)) => Security::MutualTls,
                (Some(_), None) => Security::None,
            },
        })
    }

    /// Requests to this workload from `caller` (its verified SPIFFE ID; `None`: a
    /// plaintext caller).
    pub fn inbound(&self, caller: Option<&str>) -> Peer {
        Peer::of(PeerLabels {
            source_workload: self.empty.clone(),
            source_namespace: name(caller.map_or("", namespace_of)),
            source_identity: name(caller.unwrap_or("")),
            destination_workload: self.workload.clone(),
            destination_namespace: self.namespace.clone(),
            destination_service: self.empty.clone(),
            destination_identity: self.identity.clone(),
            connection_security: if caller.is_some() {
                Security::MutualTls
            } else {
                Security::None
            },
        })
    }
}

/// A label value interned for the process (service names and the like), so equal
/// values share one allocation.
pub fn name(value: &str) -> Name {
    static TABLE: OnceLock<Mutex<HashSet<Arc<str>>>> = OnceLock::new();
    let table = TABLE.get_or_init(Mutex::default);
    let mut set = table
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(found) = set.get(value) {
        return Name(found.clone());
    }
    let made: Arc<str> = Arc::from(value);
    set.insert(made.clone());
    Name(made)
}

/// The namespace in a SPIFFE ID `spiffe://<trust domain>/ns/<namespace>/sa/<name>`,
/// or empty.
pub fn namespace_of(identity: &str) -> &str {
    identity
        .split_once("/ns/")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or("", |(ns, _)| ns)
}

/// The class of an HTTP status: `2xx`, `4xx`, … (`other` outside 100–599).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Class(u16);

impl Class {
    /// The class of `status`.
    pub fn of(status: u16) -> Self {
        Self(status / 100)
    }
}

impl EncodeLabelValue for Class {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self.0 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            5 => "5xx",
            _ => "other",
        })
    }
}

/// A gRPC status code, or none (not a gRPC response, or no status seen).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct GrpcStatus(pub Option<u8>);

impl GrpcStatus {
    /// The `grpc-status` of `headers` (a trailers-only answer, or trailers), if it is
    /// one of the 17 codes; anything else counts as none, so a peer cannot add series.
    pub fn of(headers: &http::HeaderMap) -> Self {
        let code = headers
            .get("grpc-status")
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|v| v.parse::<u8>().ok())
            .filter(|c| *c <= 16);
        Self(code)
    }
}

impl EncodeLabelValue for GrpcStatus {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        match self.0 {
            Some(code) => write!(encoder, "{code}"),
            None => Ok(()),
        }
    }
}

/// Labels of the per-peer request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RequestLabels {
    /// Direction.
    pub direction: Direction,
    /// Who called whom.
    #[prometheus(flatten)]
    pub peer: Shared<PeerLabels>,
    /// HTTP status of the answer (the proxy's own for a refusal). Bounded: a status
    /// outside 100–599 is not forwarded.
    pub status: u16,
    /// Its class.
    pub response_class: Class,
    /// gRPC status, when the answer carried one in its headers.
    pub grpc_status: GrpcStatus,
}

/// Labels of the per-peer duration histogram: the destination only, every answer
/// (ADR 37).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct DurationLabels {
    /// Direction.
    pub direction: Direction,
    /// The destination.
    #[prometheus(flatten)]
    pub peer: Shared<LatencyLabels>,
}

/// Labels of the per-route request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RouteRequestLabels {
    /// The rule and backend.
    #[prometheus(flatten)]
    pub route: Shared<RouteLabels>,
    /// HTTP status.
    pub status: u16,
    /// Its class.
    pub response_class: Class,
    /// gRPC status, when the answer carried one in its headers.
    pub grpc_status: GrpcStatus,
}

/// Labels of the per-route duration histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RouteDurationLabels {
    /// The rule and backend.
    #[prometheus(flatten)]
    pub route: Shared<RouteLabels>,
    /// Class of the answer.
    pub response_class: Class,
}

/// Labels of per-peer connection and byte metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct PeerConnectionLabels {
    /// Direction.
    pub direction: Direction,
    /// Who connected to whom.
    #[prometheus(flatten)]
    pub peer: Shared<PeerLabels>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(workload: &str) -> PeerLabels {
        PeerLabels {
            source_workload: name("web-1"),
            source_namespace: name("shop"),
            source_identity: name("spiffe://cluster.local/ns/shop/sa/web"),
            destination_workload: name(workload),
            destination_namespace: name("shop"),
            destination_service: name("catalog.shop"),
            destination_identity: name("spiffe://cluster.local/ns/shop/sa/catalog"),
            connection_security: Security::MutualTls,
        }
    }

    #[test]
    fn equal_label_sets_are_one_allocation_and_different_ones_are_not() {
        let a = Peer::of(peer("catalog-1"));
        let b = Peer::of(peer("catalog-1"));
        let c = Peer::of(peer("catalog-2"));
        assert!(a == b, "equal contents intern to one set");
        assert!(a != c, "different contents are different sets");
    }

    #[test]
    fn outbound_security_is_what_the_hop_was_and_inbound_names_only_what_is_proven() {
        let own = Own::new(
            "web-1",
            "shop",
            Some("spiffe://cluster.local/ns/shop/sa/web"),
        );
        let endpoint = |identity: Option<&str>, workload: Option<&str>| weft_api::proxy::Endpoint {
            address: std::net::IpAddr::from([10, 0, 0, 9]),
            identity: identity.map(str::to_owned),
            hbone: None,
            zone: None,
            workload: workload.map(str::to_owned),
        };
        let meshed = endpoint(
            Some("spiffe://cluster.local/ns/data/sa/db"),
            Some("data/db-0"),
        );
        let outside = endpoint(None, None);
        let cases = [
            (
                own.outbound("db.data", Some(&meshed)),
                Security::MutualTls,
                "db-0",
                "data",
            ),
            (
                own.outbound("legacy.shop", Some(&outside)),
                Security::None,
                "",
                "shop",
            ),
            (own.outbound("db.data", None), Security::Unknown, "", "data"),
        ];
        for (peer, security, workload, namespace) in cases {
            let p = &peer.counted;
            assert_eq!(p.connection_security, security, "{p:?}");
            assert_eq!(&*p.destination_workload.0, workload, "{p:?}");
            assert_eq!(&*p.destination_namespace.0, namespace, "{p:?}");
            assert_eq!(&*p.source_workload.0, "web-1", "{p:?}");
        }
        let caller = own.inbound(Some("spiffe://cluster.local/ns/batch/sa/job"));
        assert_eq!(&*caller.counted.source_namespace.0, "batch");
        assert_eq!(
            &*caller.counted.source_workload.0, "",
            "a caller's workload is a claim"
        );
        assert_eq!(
            &*caller.counted.destination_service.0, "",
            "the service dialled is a claim"
        );
        let plaintext = own.inbound(None);
        assert_eq!(plaintext.counted.connection_security, Security::None);
        assert_eq!(&*plaintext.counted.source_identity.0, "");
    }

    #[test]
    fn a_spiffe_id_gives_its_namespace_and_anything_else_none() {
        for (id, ns) in [
            ("spiffe://cluster.local/ns/shop/sa/web", "shop"),
            ("spiffe://td/ns/a-b/sa/x/y", "a-b"),
            ("spiffe://cluster.local/sa/web", ""),
            ("", ""),
        ] {
            assert_eq!(namespace_of(id), ns, "{id}");
        }
    }

    #[test]
    fn only_the_seventeen_grpc_codes_become_label_values() {
        for (value, code) in [
            ("0", Some(0)),
            ("16", Some(16)),
            ("17", None),
            ("-1", None),
            ("007", Some(7)),
            ("x", None),
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("grpc-status", value.parse().expect("value"));
            assert_eq!(GrpcStatus::of(&headers).0, code, "{value}");
        }
        assert_eq!(GrpcStatus::of(&http::HeaderMap::new()).0, None);
    }

    #[test]
    fn status_classes_are_five_plus_other() {
        let label = |s: u16| {
            let mut out = String::new();
            let mut registry = prometheus_client::registry::Registry::default();
            let family = prometheus_client::metrics::family::Family::<
                [(&'static str, Class); 1],
                prometheus_client::metrics::counter::Counter,
            >::default();
            registry.register("c", "c", family.clone());
            family.get_or_create(&[("class", Class::of(s))]).inc();
            prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
            out.split("class=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_owned)
        };
        for (status, class) in [
            (101, "1xx"),
            (200, "2xx"),
            (302, "3xx"),
            (404, "4xx"),
            (503, "5xx"),
            (600, "other"),
            (99, "other"),
        ] {
            assert_eq!(label(status).as_deref(), Some(class), "{status}");
        }
    }
}
