//! A scriptable fake control plane for proxy-only tests: a delta-ADS server (plaintext
//! h2c, which the proxy's xDS client accepts for `http://` endpoints) that serves the
//! resources a test sets, pushes each change to the proxies subscribed to it, and
//! records every request, so a test sees the ACK or NACK of each push.
//!
//! It keeps the protocol's shape, not the real control plane's logic: no registry, no
//! tokens, no certificates (give the proxy certificate files in its bootstrap).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use futures::stream::BoxStream;
use prost::Message;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Streaming};
use weft_api::pb::v1 as pb;
use weft_api::proxy;

/// The fake control plane; stops serving when dropped.
pub struct FakeXds {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// How a proxy answered one push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Every resource of the response was accepted.
    Ack,
    /// Some were refused; the NACK's message (it names each refused resource).
    Nack(String),
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    /// Resources served, by (type URL, name).
    resources: BTreeMap<(String, String), Resource>,
    streams: Vec<Stream>,
    /// Every request received, in order.
    requests: Vec<DeltaDiscoveryRequest>,
    /// The registration each stream presented.
    registrations: Vec<pb::Registration>,
    next_nonce: u64,
    next_version: u64,
}

/// One proxy's stream: what it subscribed to and where its responses go.
struct Stream {
    subscribed: HashMap<String, BTreeSet<String>>,
    tx: mpsc::UnboundedSender<DeltaDiscoveryResponse>,
}

#[derive(Clone)]
struct Service {
    shared: Arc<Shared>,
}

// === impl FakeXds ===

impl FakeXds {
    /// Serves on a reserved port of 127.0.0.1.
    pub async fn start() -> FakeXds {
        let addr = SocketAddr::from(([127, 0, 0, 1], weft_testkit::ports::free_loopback_port()));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind the fake control plane");
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let service = AggregatedDiscoveryServiceServer::new(Service {
            shared: shared.clone(),
        });
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let signal = stop.clone().cancelled_owned();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, signal),
        );
        FakeXds { addr, shared, stop }
    }

    /// `http://127.0.0.1:PORT`, for the proxy's `--control-plane`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `service` (named by its key, `<name>.<namespace>`); the nonces of the
    /// responses that carried it to subscribed proxies.
    pub fn set_service(&self, service: &proxy::Service) -> Vec<String> {
        let body = pb::Service::from(service).encode_to_vec();
        self.set(pb::SERVICE_TYPE_URL, &service.key(), body)
    }

    /// Serves the route table of `service` (a key, `<name>.<namespace>`).
    pub fn set_routes(&self, service: &str, tables: &[proxy::RouteTable]) -> Vec<String> {
        let body = weft_api::pb_convert::route_table_to_pb(service, tables).encode_to_vec();
        self.set(pb::ROUTE_TABLE_TYPE_URL, service, body)
    }

    /// Serves `body` (an encoded message of `type_url`) as `name`, at a new version,
    /// and pushes it to every stream subscribed to it; the nonces of those pushes.
    pub fn set(&self, type_url: &str, name: &str, body: Vec<u8>) -> Vec<String> {
        let mut state = self.shared.lock();
        state.next_version += 1;
        let resource = Resource {
            name: name.to_owned(),
            version: state.next_version.to_string(),
            resource: Some(Any {
                type_url: type_url.to_owned(),
                value: body,
            }),
            ..Resource::default()
        };
        state
            .resources
            .insert((type_url.to_owned(), name.to_owned()), resource.clone());
        let mut nonces = Vec::new();
        let mut sends = Vec::new();
        for stream in &state.streams {
            if stream.wants(type_url, name) {
                sends.push(stream.tx.clone());
            }
        }
        for tx in sends {
            let nonce = state.nonce();
            let response = DeltaDiscoveryResponse {
                type_url: type_url.to_owned(),
                resources: vec![resource.clone()],
                nonce: nonce.clone(),
                system_version_info: resource.version.clone(),
                ..DeltaDiscoveryResponse::default()
            };
            if tx.send(response).is_ok() {
                nonces.push(nonce);
            }
        }
        nonces
    }

    /// Waits (up to `timeout`) for the proxy's answer to the response `nonce`.
    pub async fn answer(&self, nonce: &str, timeout: Duration) -> Option<Answer> {
        let found = || {
            self.shared
                .lock()
                .requests
                .iter()
                .find(|r| r.response_nonce == nonce)
                .map(|r| match &r.error_detail {
                    Some(status) => Answer::Nack(status.message.clone()),
                    None => Answer::Ack,
                })
        };
        tokio::time::timeout(timeout, async {
            loop {
                let notified = self.shared.changed.notified();
                if let Some(answer) = found() {
                    return answer;
                }
                notified.await;
            }
        })
        .await
        .ok()
    }

    /// Waits until some stream subscribed to `name` of `type_url`.
    pub async fn wait_subscribed(&self, type_url: &str, name: &str, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let notified = self.shared.changed.notified();
                if self
                    .shared
                    .lock()
                    .streams
                    .iter()
                    .any(|s| !s.tx.is_closed() && s.wants(type_url, name))
                {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }

    /// The registrations the proxies presented, one per stream.
    pub fn registrations(&self) -> Vec<pb::Registration> {
        self.shared.lock().registrations.clone()
    }
}

impl Drop for FakeXds {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

// === impl Shared ===

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `request`; answers a subscription with what is held for it (an empty
    /// answer too: the proxy waits for every type it wants to be answered).
    fn handle(&self, stream: usize, request: DeltaDiscoveryRequest) {
        let mut state = self.lock();
        let type_url = request.type_url.clone();
        let subscribing = !request.resource_names_subscribe.is_empty()
            || !request.resource_names_unsubscribe.is_empty()
            || request.response_nonce.is_empty();
        let Some(s) = state.streams.get_mut(stream) else {
            return;
        };
        let names = s.subscribed.entry(type_url.clone()).or_default();
        names.extend(request.resource_names_subscribe.iter().cloned());
        for name in &request.resource_names_unsubscribe {
            names.remove(name);
        }
        let tx = s.tx.clone();
        let answer = subscribing.then(|| {
            state
                .resources
                .iter()
                .filter(|((t, n), _)| {
                    *t == type_url
                        && request
                            .resource_names_subscribe
                            .iter()
                            .any(|name| name == n || name == WILDCARD)
                })
                .map(|(_, r)| r.clone())
                .collect::<Vec<_>>()
        });
        state.requests.push(request.clone());
        if let Some(resources) = answer {
            let nonce = state.nonce();
            let _ = tx.send(DeltaDiscoveryResponse {
                type_url: request.type_url,
                resources,
                nonce,
                ..DeltaDiscoveryResponse::default()
            });
        }
        drop(state);
        self.changed.notify_waiters();
    }
}

/// The name that subscribes to every resource of a type.
const WILDCARD: &str = "*";

// === impl State ===

impl State {
    fn nonce(&mut self) -> String {
        self.next_nonce += 1;
        self.next_nonce.to_string()
    }
}

// === impl Stream ===

impl Stream {
    fn wants(&self, type_url: &str, name: &str) -> bool {
        self.subscribed
            .get(type_url)
            .is_some_and(|names| names.contains(name) || names.contains(WILDCARD))
    }
}

// === impl Service ===

#[tonic::async_trait]
impl AggregatedDiscoveryService for Service {
    type StreamAggregatedResourcesStream =
        BoxStream<'static, Result<DiscoveryResponse, tonic::Status>>;
    type DeltaAggregatedResourcesStream =
        BoxStream<'static, Result<DeltaDiscoveryResponse, tonic::Status>>;

    async fn stream_aggregated_resources(
        &self,
        _request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("delta xDS only"))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        let registration = request
            .metadata()
            .get_bin(pb::REGISTRATION_METADATA_KEY)
            .and_then(|v| v.to_bytes().ok())
            .and_then(|b| pb::Registration::decode(b.as_ref()).ok())
            .unwrap_or_default();
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = {
            let mut state = self.shared.lock();
            state.registrations.push(registration);
            state.streams.push(Stream {
                subscribed: HashMap::new(),
                tx,
            });
            state.streams.len() - 1
        };
        self.shared.changed.notify_waiters();
        let mut requests = request.into_inner();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(request)) = requests.message().await {
                shared.handle(stream, request);
            }
        });
        let responses =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (Ok(r), rx)) },
            );
        Ok(Response::new(Box::pin(responses)))
    }
}
