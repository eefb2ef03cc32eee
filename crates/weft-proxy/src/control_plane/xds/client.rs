//! The delta ADS client: one stream to the control plane, reconnected with backoff.
//!
//! Per response: check each resource with the [`Sink`], keep the previously accepted
//! version of each refused one, apply the whole accepted set, persist it, then ACK (or
//! NACK naming each refused resource). The subscriptions the sink returns from `apply`
//! are sent as subscribe/unsubscribe requests, so config follows what the workload uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc;
use prost::Message;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;
use tracing::{debug, info, warn};
use weft_api::pb::v1 as pb;

use super::resources::{Resource, ResourceSet, Subscriptions};
use super::{state_file, Error};
use crate::backoff::Backoff;

/// HTTP/2 PING interval, so a dead control plane is noticed on an idle stream.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a PING may go unanswered.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on apply → drop unwanted → apply rounds after one response.
const MAX_APPLY_ROUNDS: usize = 4;

/// What the proxy does with resources: validate each, then apply them all.
pub trait Sink: Send + Sync + 'static {
    /// Validates one resource (decode and convert); the error says why it is refused
    /// and is sent to the control plane in the NACK.
    fn check(&self, type_url: &str, name: &str, body: &prost_types::Any) -> Result<(), String>;

    /// Applies the whole accepted set atomically and returns what the proxy now wants.
    /// Called once at start (with the last known good set, possibly empty) to get the
    /// initial subscriptions, then after every change. Resources the returned
    /// subscriptions no longer cover are dropped and `apply` is called again. With
    /// nothing subscribed the stream is opened but no request is sent, so the control
    /// plane does not see the node until something is wanted.
    fn apply(&self, resources: &ResourceSet) -> Subscriptions;
}

impl<T: Sink + ?Sized> Sink for Arc<T> {
    fn check(&self, type_url: &str, name: &str, body: &prost_types::Any) -> Result<(), String> {
        (**self).check(type_url, name, body)
    }

    fn apply(&self, resources: &ResourceSet) -> Subscriptions {
        (**self).apply(resources)
    }
}

/// How to reach the control plane and who to say we are.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Control-plane xDS address, `https://host:port`. (`http://` is plaintext h2c,
    /// which only in-process tests' fake control planes serve: `weft control-plane`
    /// serves TLS only.)
    pub endpoint: String,
    /// The roots that vouch for the control plane (for `https://`). Default: none.
    pub trust: crate::control_plane::channel::Trust,
    /// `Node.id` sent on the stream: `<namespace>/<name>`.
    pub node_id: String,
    /// Sent in `weft-registration-bin` metadata.
    pub registration: pb::Registration,
    /// Where the last known good config is persisted; `None` (default) keeps it in
    /// memory only.
    pub state_dir: Option<PathBuf>,
    /// First reconnect delay cap; doubles per failure. Default 200 ms.
    pub initial_backoff: Duration,
    /// Largest reconnect delay cap. Default 10 s.
    pub max_backoff: Duration,
    /// TCP connect timeout. Default 5 s.
    pub connect_timeout: Duration,
    /// A stream that lived this long resets the backoff. Default 30 s.
    pub healthy_after: Duration,
    /// File holding the workload token sent as `authorization: Bearer …` (re-read on
    /// every connect). `None` sends no token.
    pub token_file: Option<PathBuf>,
}

/// Connection state for `/config_dump` and readiness.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Control-plane endpoint.
    pub endpoint: String,
    /// Whether a stream is established.
    pub connected: bool,
    /// When the current stream was established (RFC 3339), if connected.
    pub connected_since: Option<String>,
    /// Why the last stream or connection attempt failed.
    pub last_error: Option<String>,
    /// Summary of the last NACK sent, if any.
    pub last_nack: Option<String>,
    /// Number of accepted resources held.
    pub resources: usize,
    /// Whether the held config came from the state file (nothing received yet).
    pub from_disk: bool,
    /// Streams established so far.
    pub streams: u64,
    /// Type URLs the control plane has answered on the current stream: once every
    /// subscribed type is here, the proxy holds the control plane's view.
    pub answered: Vec<String>,
}

/// The xDS client. Build with [`Client::new`], read [`Client::status`], then
/// [`Client::run`] it.
#[derive(Debug)]
pub struct Client {
    options: ClientOptions,
    endpoint: Endpoint,
    status: watch::Sender<Status>,
}

/// State kept across streams.
struct State<S> {
    sink: S,
    held: ResourceSet,
    wanted: Subscriptions,
}

// === impl ClientOptions ===

impl ClientOptions {
    /// Options with defaults for everything but the identity and the endpoint.
    pub fn new(
        endpoint: impl Into<String>,
        node_id: impl Into<String>,
        registration: pb::Registration,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            trust: crate::control_plane::channel::Trust::default(),
            node_id: node_id.into(),
            registration,
            state_dir: None,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            healthy_after: Duration::from_secs(30),
            token_file: None,
        }
    }
}

// === impl Client ===

impl Client {
    /// A client for `options`; fails if the endpoint is not a valid URI.
    pub fn new(options: ClientOptions) -> Result<Self, Error> {
        let endpoint = Endpoint::from_shared(options.endpoint.clone())
            .map_err(|source| Error::Endpoint {
                endpoint: options.endpoint.clone(),
                source,
            })?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let (status, _) = watch::channel(Status {
            endpoint: options.endpoint.clone(),
            ..Status::default()
        });
        Ok(Self {
            options,
            endpoint,
            status,
        })
    }

    /// The last known good config persisted in `state_dir`, if any. A corrupt or
    /// unreadable file is logged with its path and ignored.
    pub fn load_persisted(state_dir: &std::path::Path) -> Option<ResourceSet> {
        state_file::load(state_dir).map(|(_, set)| set)
    }

    /// A handle on the connection status; cheap to clone and read.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` is cancelled: applies the last known good config (when
    /// `state_dir` holds one) before connecting, then keeps a stream open, reconnecting
    /// with jittered exponential backoff and presenting what it holds as
    /// `initial_resource_versions`.
    pub async fn run<S: Sink>(self, sink: S, shutdown: CancellationToken) {
        let mut held = self.boot_set(&sink);
        let from_disk = !held.is_empty();
        let wanted = reconcile(&sink, &mut held);
        self.status.send_modify(|s| {
            s.resources = held.len();
            s.from_disk = from_disk;
        });
        let mut state = State { sink, held, wanted };
        let mut backoff = Backoff::new(self.options.initial_backoff, self.options.max_backoff);
        while !shutdown.is_cancelled() {
            let started = Instant::now();
            let result = self.stream(&mut state, &shutdown).await;
            self.status.send_modify(|s| {
                s.connected = false;
                s.connected_since = None;
                s.answered.clear();
            });
            match result {
                Ok(()) => break,
                Err(error) => {
                    warn!(endpoint = self.options.endpoint, %error, "xDS stream ended; reconnecting");
                    self.status
                        .send_modify(|s| s.last_error = Some(error.to_string()));
                }
            }
            if started.elapsed() >= self.options.healthy_after {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            debug!(delay = ?delay, "waiting before reconnecting to the control plane");
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        info!(endpoint = self.options.endpoint, "xDS client stopped");
    }

    /// The persisted set, with resources this binary no longer accepts dropped.
    fn boot_set<S: Sink>(&self, sink: &S) -> ResourceSet {
        let Some(dir) = &self.options.state_dir else {
            return ResourceSet::new();
        };
        let Some(mut set) = Self::load_persisted(dir) else {
            return ResourceSet::new();
        };
        let refused: Vec<(String, String)> = set
            .iter()
            .filter_map(|(type_url, r)| {
                sink.check(type_url, &r.name, &r.body).err().map(|why| {
                    warn!(
                        type_url,
                        name = r.name,
                        why,
                        "dropping a persisted resource this proxy refuses"
                    );
                    (type_url.to_owned(), r.name.clone())
                })
            })
            .collect();
        for (type_url, name) in refused {
            set.remove(&type_url, &name);
        }
        info!(path = %state_file::path(dir).display(), resources = set.len(), "loaded last known good xDS config");
        set
    }

    /// A failed call, explained where the error chain says why.
    fn call_failed(&self, status: tonic::Status) -> Error {
        Error::from_status(
            status,
            &self.options.endpoint,
            &self.options.trust,
            self.options.token_file.as_deref(),
        )
    }

    /// One stream: connect, subscribe, then handle responses until it ends. `Ok` only
    /// on shutdown.
    async fn stream<S: Sink>(
        &self,
        state: &mut State<S>,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let channel = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            channel = crate::control_plane::channel::connect(&self.options.endpoint, &self.endpoint, &self.options.trust) => channel.map_err(Error::Connect)?,
        };
        let mut client = AggregatedDiscoveryServiceClient::new(channel)
            .max_decoding_message_size(16 * 1024 * 1024);
        let (tx, rx) = mpsc::unbounded_channel::<DeltaDiscoveryRequest>();
        let mut node = Some(Node {
            id: self.options.node_id.clone(),
            ..Node::default()
        });
        for type_url in state.wanted.type_urls() {
            let names: Vec<String> = state.wanted.names(type_url).map(str::to_owned).collect();
            let initial_resource_versions = state
                .held
                .versions(type_url)
                .into_iter()
                .filter(|(name, _)| state.wanted.contains(type_url, name))
                .collect();
            let _ = tx.send(DeltaDiscoveryRequest {
                node: node.take(),
                type_url: type_url.to_owned(),
                resource_names_subscribe: names,
                initial_resource_versions,
                ..DeltaDiscoveryRequest::default()
            });
        }
        let requests =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let mut request = tonic::Request::new(requests);
        request.metadata_mut().insert_bin(
            pb::REGISTRATION_METADATA_KEY,
            MetadataValue::from_bytes(&self.options.registration.encode_to_vec()),
        );
        if let Some(path) = &self.options.token_file {
            // Re-read on every connect, so a rotated token file is picked up.
            let value = crate::control_plane::token::authorization(path).map_err(|message| {
                Error::Token {
                    path: path.clone(),
                    message,
                }
            })?;
            request
                .metadata_mut()
                .insert(pb::AUTHORIZATION_METADATA_KEY, value);
        }
        let mut responses = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            response = client.delta_aggregated_resources(request) => response.map_err(|s| self.call_failed(s))?.into_inner(),
        };
        info!(
            endpoint = self.options.endpoint,
            node_id = self.options.node_id,
            "connected to the control plane"
        );
        self.status.send_modify(|s| {
            s.connected = true;
            s.connected_since =
                Some(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
            s.streams += 1;
        });
        loop {
            let response = tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                message = responses.message() => match message {
                    Ok(Some(response)) => response,
                    Ok(None) => return Err(Error::Closed),
                    Err(status) => return Err(self.call_failed(status)),
                },
            };
            for request in self.handle(state, response).await {
                if tx.send(request).is_err() {
                    return Err(Error::Closed);
                }
            }
        }
    }

    /// Processes one response; returns the ACK or NACK followed by any subscription
    /// changes.
    async fn handle<S: Sink>(
        &self,
        state: &mut State<S>,
        response: DeltaDiscoveryResponse,
    ) -> Vec<DeltaDiscoveryRequest> {
        let DeltaDiscoveryResponse {
            type_url,
            resources,
            removed_resources,
            nonce,
            ..
        } = response;
        let mut errors = Vec::new();
        let mut changed = false;
        for resource in resources {
            let refuse = |message: String| pb::ResourceError {
                type_url: type_url.clone(),
                name: resource.name.clone(),
                message,
            };
            let Some(body) = resource.resource else {
                errors.push(refuse("the resource has no body".to_owned()));
                continue;
            };
            if body.type_url != type_url {
                errors.push(refuse(format!(
                    "body has type {}, expected {type_url}",
                    body.type_url
                )));
                continue;
            }
            let body = prost_types::Any {
                type_url: body.type_url,
                value: body.value,
            };
            match state.sink.check(&type_url, &resource.name, &body) {
                Ok(()) => {
                    let accepted = Resource {
                        name: resource.name,
                        version: resource.version,
                        body,
                    };
                    state.held.insert(type_url.clone(), accepted);
                    changed = true;
                }
                Err(message) => errors.push(refuse(message)),
            }
        }
        for name in &removed_resources {
            changed |= state.held.remove(&type_url, name).is_some();
        }

        let mut requests = Vec::new();
        let mut next_wanted = None;
        if changed {
            next_wanted = Some(reconcile(&state.sink, &mut state.held));
            if let Some(dir) = &self.options.state_dir {
                self.persist(dir.clone(), &state.held).await;
            }
        }
        let nack = nack(&errors);
        debug!(
            type_url,
            nonce,
            refused = errors.len(),
            removed = removed_resources.len(),
            "applied xDS response"
        );
        self.status.send_modify(|s| {
            s.resources = state.held.len();
            s.from_disk = false;
            if !s.answered.contains(&type_url) {
                s.answered.push(type_url.clone());
            }
            if let Some(status) = &nack {
                s.last_nack = Some(status.message.clone());
            }
        });
        if let Some(status) = &nack {
            warn!(
                type_url,
                nonce,
                message = status.message,
                "refusing resources (NACK)"
            );
        }
        requests.push(DeltaDiscoveryRequest {
            type_url,
            response_nonce: nonce,
            error_detail: nack,
            ..DeltaDiscoveryRequest::default()
        });
        if let Some(next) = next_wanted {
            for (type_url, subscribe, unsubscribe) in state.wanted.changes(&next) {
                debug!(type_url, ?subscribe, ?unsubscribe, "changing subscriptions");
                requests.push(DeltaDiscoveryRequest {
                    type_url,
                    resource_names_subscribe: subscribe,
                    resource_names_unsubscribe: unsubscribe,
                    ..DeltaDiscoveryRequest::default()
                });
            }
            state.wanted = next;
        }
        requests
    }

    /// Writes the held set to the state file (off the async runtime). A failure is
    /// logged and reported in the status; the config stays applied.
    async fn persist(&self, dir: PathBuf, held: &ResourceSet) {
        let held = held.clone();
        let endpoint = self.options.endpoint.clone();
        let path = state_file::path(&dir);
        let result =
            tokio::task::spawn_blocking(move || state_file::store(&dir, &endpoint, &held)).await;
        let error = match result {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(join) => join.to_string(),
        };
        warn!(path = %path.display(), error, "cannot persist the xDS config");
        self.status.send_modify(|s| {
            s.last_error = Some(format!(
                "cannot persist the xDS config to {}: {error}",
                path.display()
            ));
        });
    }
}

/// Applies `held` and drops what the sink no longer wants, until stable.
fn reconcile<S: Sink>(sink: &S, held: &mut ResourceSet) -> Subscriptions {
    let mut wanted = sink.apply(held);
    for _ in 0..MAX_APPLY_ROUNDS {
        if held.retain_subscribed(&wanted) == 0 {
            break;
        }
        wanted = sink.apply(held);
    }
    wanted
}

/// The NACK `error_detail` for refused resources, if any.
fn nack(errors: &[pb::ResourceError]) -> Option<rpc::Status> {
    if errors.is_empty() {
        return None;
    }
    let summary: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.name, e.message))
        .collect();
    let message = format!(
        "refused {} resource(s): {}",
        errors.len(),
        summary.join("; ")
    );
    let details = pb::ResourceErrors {
        errors: errors.to_vec(),
    };
    Some(rpc::Status {
        code: tonic::Code::InvalidArgument as i32,
        message,
        details: vec![Any {
            type_url: pb::RESOURCE_ERRORS_TYPE_URL.to_owned(),
            value: details.encode_to_vec(),
        }],
    })
}

// === impl Backoff ===

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nack_names_each_refused_resource_and_carries_resource_errors() {
        let errors = vec![pb::ResourceError {
            type_url: pb::SERVICE_TYPE_URL.to_owned(),
            name: "default/web".to_owned(),
            message: "port 0 is invalid".to_owned(),
        }];
        let status = nack(&errors).expect("nack");
        assert_eq!(status.code, tonic::Code::InvalidArgument as i32);
        assert!(
            status.message.contains("default/web: port 0 is invalid"),
            "{}",
            status.message
        );
        let decoded =
            pb::ResourceErrors::decode(status.details[0].value.as_slice()).expect("decode");
        assert_eq!(decoded.errors, errors);
        assert!(nack(&[]).is_none());
    }

    #[test]
    fn invalid_endpoint_is_refused_up_front() {
        let options = ClientOptions::new("not a uri", "ns/a", pb::Registration::default());
        assert!(matches!(Client::new(options), Err(Error::Endpoint { .. })));
    }
}
