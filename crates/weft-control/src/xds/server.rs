//! The gRPC side: accepts delta ADS streams, runs one task per stream, and keeps the
//! registry of connected proxies that `weft inspect proxy` reads.
//!
//! Each stream task owns nothing big: a [`Session`] (names and `Arc`s) behind a mutex
//! that the task and introspection share, a clone of the snapshot `watch` receiver and
//! a small channel to tonic's response stream. A snapshot change wakes every task; each
//! diffs only its own subscriptions.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use futures::stream::BoxStream;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Streaming};
use tracing::{debug, info, info_span, Instrument};
use weft_api::pb::v1 as pb;

use super::hooks::{Authorization, ConnectionInfo, Hooks};
use super::session::Session;
use super::snapshot::{Snapshot, XdsResource};
use super::status::{self, ProxyStatus, RegistrationSummary};
use super::Error;
use crate::metrics::ControlMetrics;

/// HTTP/2 PING interval on idle connections, so dead proxies are detected.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a PING may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses buffered per stream before the stream task waits for the proxy to read.
const RESPONSE_BUFFER: usize = 4;

/// The delta xDS server: serves the latest [`Snapshot`] to every connected proxy.
///
/// Cheap to clone; clones share the registry of connected proxies.
#[derive(Clone)]
pub struct XdsServer {
    inner: Arc<Inner>,
}

/// The tonic service behind [`XdsServer::service`].
#[derive(Clone)]
pub struct AdsService {
    inner: Arc<Inner>,
    shutdown: CancellationToken,
}

struct Inner {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    hooks: Arc<dyn Hooks>,
    next_conn_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Where streams, pushes and replies are counted, if anywhere.
    metrics: Option<Arc<ControlMetrics>>,
}

/// One accepted stream, shared between its task and introspection.
struct Conn {
    info: ConnectionInfo,
    session: Mutex<Session>,
    /// Cancelled to end the stream from outside ([`XdsServer::close`]), with the status
    /// left in `closed_with`.
    closer: CancellationToken,
    closed_with: Mutex<Option<tonic::Status>>,
}

/// Why a stream ended.
enum End {
    ClientClosed,
    ClientGone,
    Shutdown,
    Error(tonic::Status),
}

// === impl XdsServer ===

impl XdsServer {
    /// A server that serves what `snapshots` publishes and reports stream lifecycle to
    /// `hooks`.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, hooks: Arc<dyn Hooks>) -> Self {
        Self::counted(snapshots, hooks, None)
    }

    /// [`XdsServer::new`], counting connected proxies, pushes and replies in `metrics`.
    pub fn counted(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        hooks: Arc<dyn Hooks>,
        metrics: Option<Arc<ControlMetrics>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                snapshots,
                hooks,
                next_conn_id: AtomicU64::new(1),
                conns: Mutex::new(HashMap::new()),
                metrics,
            }),
        }
    }

    /// The gRPC service, for callers that build their own tonic server (e.g. to add TLS
    /// or the CSR service next to it). Streams end with `UNAVAILABLE` once `shutdown` is
    /// cancelled: xDS streams never end on their own, so a graceful server shutdown
    /// needs it. Configure HTTP/2 keepalive on that server ([`KEEPALIVE_INTERVAL`],
    /// [`KEEPALIVE_TIMEOUT`]) as [`serve`](Self::serve) does.
    pub fn service(
        &self,
        shutdown: CancellationToken,
    ) -> AggregatedDiscoveryServiceServer<AdsService> {
        AggregatedDiscoveryServiceServer::new(AdsService {
            inner: Arc::clone(&self.inner),
            shutdown,
        })
        .max_decoding_message_size(16 * 1024 * 1024)
    }

    /// Serves plaintext HTTP/2 (h2c) on `listener` until `shutdown` completes, then ends
    /// every stream with `UNAVAILABLE` and returns once connections are closed.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let streams = CancellationToken::new();
        let incoming = tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(KEEPALIVE_INTERVAL));
        let signal = {
            let streams = streams.clone();
            async move {
                shutdown.await;
                streams.cancel();
            }
        };
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .add_service(self.service(streams.clone()))
            .serve_with_incoming_shutdown(incoming, signal)
            .await
            .map_err(Error::Serve)?;
        streams.cancel();
        Ok(())
    }

    /// Every connected proxy, sorted by node id then stream id.
    pub fn proxies(&self) -> Vec<ProxyStatus> {
        let mut all: Vec<ProxyStatus> = self.inner.conns().values().map(|c| c.status()).collect();
        all.sort_by(|a, b| a.node_id.cmp(&b.node_id).then(a.conn_id.cmp(&b.conn_id)));
        all
    }

    /// The proxy with this node id (its newest stream if it has several, e.g. while an
    /// old one times out after a reconnect).
    pub fn proxy(&self, node_id: &str) -> Option<ProxyStatus> {
        self.newest(node_id).map(|conn| conn.status())
    }

    /// The resources the proxy holds as far as the server knows (what was last sent to
    /// it, or confirmed at connect through `initial_resource_versions`); decode each
    /// `body` by its type URL.
    pub fn resources_sent(&self, node_id: &str) -> Option<Vec<Arc<XdsResource>>> {
        let conn = self.newest(node_id)?;
        let mut resources = conn.session().known();
        resources.sort_by(|a, b| (a.type_url(), &a.name).cmp(&(b.type_url(), &b.name)));
        Some(resources)
    }

    /// Ends stream `conn_id` with `status` (e.g. its workload token was revoked); the
    /// proxy sees the status, and the hooks' `disconnected` runs as for any end.
    /// Returns whether such a stream was open.
    pub fn close(&self, conn_id: u64, status: tonic::Status) -> bool {
        let Some(conn) = self.inner.conns().get(&conn_id).cloned() else {
            return false;
        };
        *conn
            .closed_with
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(status);
        conn.closer.cancel();
        true
    }

    /// Number of open streams.
    pub fn connections(&self) -> usize {
        self.inner.conns().len()
    }

    fn newest(&self, node_id: &str) -> Option<Arc<Conn>> {
        self.inner
            .conns()
            .values()
            .filter(|c| c.info.node_id == node_id)
            .max_by_key(|c| c.info.conn_id)
            .cloned()
    }
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer")
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

// === impl AdsService ===

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream =
        BoxStream<'static, Result<DiscoveryResponse, tonic::Status>>;
    type DeltaAggregatedResourcesStream =
        BoxStream<'static, Result<DeltaDiscoveryResponse, tonic::Status>>;

    async fn stream_aggregated_resources(
        &self,
        _request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "Weft serves incremental xDS only: use DeltaAggregatedResources (state-of-the-world StreamAggregatedResources is not supported)",
        ))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        let peer = request.remote_addr();
        let registration = registration(request.metadata())?;
        let authorization = request
            .metadata()
            .get(pb::AUTHORIZATION_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .map(|v| Authorization(v.to_owned()));
        let requests = request.into_inner();
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        tokio::spawn(run_stream(
            Arc::clone(&self.inner),
            self.shutdown.clone(),
            requests,
            tx,
            peer,
            registration,
            authorization,
        ));
        let responses =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        Ok(Response::new(Box::pin(responses)))
    }
}

impl std::fmt::Debug for AdsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdsService").finish_non_exhaustive()
    }
}

/// Decodes the `weft-registration-bin` metadata, if present.
fn registration(
    metadata: &tonic::metadata::MetadataMap,
) -> Result<Option<pb::Registration>, tonic::Status> {
    let Some(value) = metadata.get_bin(pb::REGISTRATION_METADATA_KEY) else {
        return Ok(None);
    };
    let invalid = |why: String| {
        tonic::Status::invalid_argument(format!(
            "malformed `{}` metadata: {why}; expected a protobuf-encoded weft.proxy.v1.Registration",
            pb::REGISTRATION_METADATA_KEY
        ))
    };
    let bytes = value
        .to_bytes()
        .map_err(|e| invalid(format!("not base64: {e}")))?;
    pb::Registration::decode(bytes)
        .map(Some)
        .map_err(|e| invalid(e.to_string()))
}

// === impl Inner ===

impl Inner {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl Conn ===

impl Conn {
    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status(&self) -> ProxyStatus {
        ProxyStatus {
            node_id: self.info.node_id.clone(),
            conn_id: self.info.conn_id,
            peer: status::peer(self.info.peer),
            connected_at: status::timestamp(self.info.connected_at),
            registration: self
                .info
                .registration
                .as_ref()
                .map(RegistrationSummary::from),
            types: self.session().status(),
        }
    }
}

/// Runs one stream: takes the node id from the registration metadata (or waits for the
/// first request's), asks the hooks, then serves until the proxy leaves or the server
/// shuts down.
async fn run_stream(
    inner: Arc<Inner>,
    shutdown: CancellationToken,
    mut requests: Streaming<DeltaDiscoveryRequest>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, tonic::Status>>,
    peer: Option<SocketAddr>,
    registration: Option<pb::Registration>,
    authorization: Option<Authorization>,
) {
    let conn_id = inner.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let connected_at = SystemTime::now();
    // A proxy that registers is known from its metadata at once: it may subscribe to
    // nothing (a workload that calls no service) and still has to be registered.
    let (node_id, first) = if let Some(reg) = &registration {
        (format!("{}/{}", reg.namespace, reg.name), None)
    } else {
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            first = requests.message() => first,
        };
        let first = match first {
            Ok(Some(first)) => first,
            Ok(None) => return,
            Err(error) => {
                debug!(conn_id, %error, "xDS stream failed before its first request");
                return;
            }
        };
        let Some(node_id) = first
            .node
            .as_ref()
            .map(|n| n.id.clone())
            .filter(|id| !id.is_empty())
        else {
            let status = tonic::Status::invalid_argument(
                "the first DeltaDiscoveryRequest of a stream must carry node.id (`<namespace>/<name>`)",
            );
            let _ = tx.send(Err(status)).await;
            return;
        };
        (node_id, Some(first))
    };
    let info = ConnectionInfo {
        conn_id,
        node_id: node_id.clone(),
        registration,
        peer,
        connected_at,
        authorization,
    };
    let viewer = match inner.hooks.connected(&info).await {
        Ok(viewer) => viewer,
        Err(status) => {
            info!(conn_id, node_id, peer = ?peer, code = ?status.code(), message = status.message(), "proxy refused");
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    let conn = Arc::new(Conn {
        info,
        session: Mutex::new(Session::new(conn_id, viewer).counted(inner.metrics.clone())),
        closer: CancellationToken::new(),
        closed_with: Mutex::new(None),
    });
    inner.conns().insert(conn_id, Arc::clone(&conn));
    if let Some(metrics) = &inner.metrics {
        metrics.proxies_connected.inc();
    }
    info!(conn_id, node_id, peer = ?peer, "proxy connected");

    let end = serve_stream(&inner, &conn, &shutdown, first, &mut requests, &tx)
        .instrument(info_span!("xds_stream", conn_id, node_id = %node_id))
        .await;

    inner.conns().remove(&conn_id);
    if let Some(metrics) = &inner.metrics {
        metrics.proxies_connected.dec();
    }
    match &end {
        End::Shutdown => {
            let _ = tx
                .send(Err(tonic::Status::unavailable(
                    "control plane shutting down",
                )))
                .await;
        }
        End::Error(status) if status.code() != tonic::Code::Cancelled => {
            let _ = tx.send(Err(status.clone())).await;
        }
        _ => {}
    }
    inner.hooks.disconnected(conn_id, &node_id).await;
    let reason = match end {
        End::ClientClosed => "proxy closed the stream".to_owned(),
        End::ClientGone => "proxy went away".to_owned(),
        End::Shutdown => "server shutdown".to_owned(),
        End::Error(status) => format!("{}: {}", status.code(), status.message()),
    };
    info!(conn_id, node_id, reason, "proxy disconnected");
}

async fn serve_stream(
    inner: &Inner,
    conn: &Conn,
    shutdown: &CancellationToken,
    first: Option<DeltaDiscoveryRequest>,
    requests: &mut Streaming<DeltaDiscoveryRequest>,
    tx: &mpsc::Sender<Result<DeltaDiscoveryResponse, tonic::Status>>,
) -> End {
    let mut snapshots = inner.snapshots.clone();
    let mut snapshot = Arc::clone(&snapshots.borrow_and_update());
    let mut watching = true;
    let mut request = first;
    loop {
        let responses = if let Some(req) = request.take() {
            let ack = (req.type_url == pb::TRUST_BUNDLE_TYPE_URL
                && !req.response_nonce.is_empty()
                && req.error_detail.is_none())
            .then(|| req.type_url.clone());
            let response = match conn.session().on_request(req, &snapshot) {
                Ok(response) => response,
                Err(status) => return End::Error(status),
            };
            if let Some(type_url) = ack {
                let version = conn
                    .session()
                    .acked_version(&type_url, pb::TRUST_BUNDLE_NAME);
                if let Some(version) = version {
                    inner
                        .hooks
                        .acked(
                            conn.info.conn_id,
                            &conn.info.node_id,
                            &type_url,
                            pb::TRUST_BUNDLE_NAME,
                            &version,
                        )
                        .await;
                }
            }
            response.into_iter().collect()
        } else {
            Vec::new()
        };
        for response in responses {
            if tx.send(Ok(response)).await.is_err() {
                return End::ClientGone;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return End::Shutdown,
            () = conn.closer.cancelled() => {
                let status = conn
                    .closed_with
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
                    .unwrap_or_else(|| tonic::Status::unavailable("stream closed by the control plane"));
                return End::Error(status);
            }
            message = requests.message() => match message {
                Ok(Some(next)) => request = Some(next),
                Ok(None) => return End::ClientClosed,
                Err(status) => return End::Error(status),
            },
            changed = snapshots.changed(), if watching => {
                if changed.is_err() {
                    // The publisher is gone: keep serving the last snapshot.
                    watching = false;
                    continue;
                }
                snapshot = Arc::clone(&snapshots.borrow_and_update());
                let responses = conn.session().on_snapshot(&snapshot);
                for response in responses {
                    if tx.send(Ok(response)).await.is_err() {
                        return End::ClientGone;
                    }
                }
            }
        }
    }
}
