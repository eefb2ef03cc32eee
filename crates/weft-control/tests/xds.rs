//! The delta xDS server against the real proxy client, over 127.0.0.1.
//!
//! Each test runs an in-process [`XdsServer`] serving a snapshot the test controls and
//! one or more `weft_proxy::control_plane::xds::Client`s with a recording [`Sink`], then checks what the
//! proxy applied and what the server recorded (sent, ACK, NACK).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_api::pb::v1 as pb;
use weft_control::xds::{
    ConnectionInfo, Hooks, NoHooks, ProxyStatus, Snapshot, Viewer, XdsResource, XdsServer,
};
use weft_proxy::control_plane::xds::{
    Client, ClientOptions, ResourceSet, Sink, Status, Subscriptions,
};

const SERVICE: &str = pb::SERVICE_TYPE_URL;
const NODE: &str = "default/client";

// === harness ===

struct Server {
    xds: XdsServer,
    snapshots: watch::Sender<Arc<Snapshot>>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(snapshot: Snapshot, hooks: Arc<dyn Hooks>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::start_on(listener, snapshot, hooks)
    }

    fn start_on(listener: TcpListener, snapshot: Snapshot, hooks: Arc<dyn Hooks>) -> Self {
        let addr = listener.local_addr().expect("local addr");
        let (snapshots, rx) = watch::channel(Arc::new(snapshot));
        let xds = XdsServer::new(rx, hooks);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (xds, shutdown) = (xds.clone(), shutdown.clone());
            async move {
                xds.serve(listener, shutdown.cancelled_owned())
                    .await
                    .expect("serve");
            }
        });
        Self {
            xds,
            snapshots,
            addr,
            shutdown,
            task,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes a snapshot derived from the current one.
    fn update(&self, change: impl FnOnce(&mut Snapshot)) {
        self.snapshots.send_modify(|current| {
            let mut next = Snapshot::clone(current);
            next.set_revision(current.revision() + 1);
            change(&mut next);
            *current = Arc::new(next);
        });
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops")
            .expect("join");
    }

    fn proxy(&self) -> Option<ProxyStatus> {
        self.xds.proxy(NODE)
    }
}

fn service(name: &str, version: &str) -> XdsResource {
    let body = pb::Service {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        ..pb::Service::default()
    };
    XdsResource::new(
        name,
        version,
        prost_types::Any {
            type_url: SERVICE.to_owned(),
            value: body.encode_to_vec(),
        },
    )
}

fn snapshot(resources: &[(&str, &str)]) -> Snapshot {
    let mut snapshot = Snapshot::new(1);
    for (name, version) in resources {
        snapshot.insert(service(name, version));
    }
    snapshot
}

/// A proxy stand-in: decodes Services, refuses the names in `reject`, records every
/// applied set, and subscribes to `subscriptions` plus `follow[name]` for each held name.
#[derive(Default)]
struct TestSink {
    subscriptions: Mutex<Subscriptions>,
    follow: Mutex<HashMap<String, String>>,
    reject: Mutex<HashSet<String>>,
    applied: Mutex<Option<ResourceSet>>,
    applies: Mutex<usize>,
}

impl Sink for TestSink {
    fn check(&self, type_url: &str, name: &str, body: &prost_types::Any) -> Result<(), String> {
        if type_url != SERVICE {
            return Err(format!("unexpected type {type_url}"));
        }
        let service = pb::Service::decode(body.value.as_slice()).map_err(|e| e.to_string())?;
        if service.name != name {
            return Err(format!("body names {}, expected {name}", service.name));
        }
        if self.reject.lock().expect("lock").contains(name) {
            return Err(format!("service {name} is refused by the test"));
        }
        Ok(())
    }

    fn apply(&self, resources: &ResourceSet) -> Subscriptions {
        *self.applied.lock().expect("lock") = Some(resources.clone());
        *self.applies.lock().expect("lock") += 1;
        let mut wanted = self.subscriptions.lock().expect("lock").clone();
        for (from, to) in self.follow.lock().expect("lock").iter() {
            if resources.get(SERVICE, from).is_some() {
                wanted.subscribe(SERVICE, to.clone());
            }
        }
        wanted
    }
}

impl TestSink {
    fn subscribing(names: &[&str]) -> Arc<Self> {
        let sink = Self::default();
        *sink.subscriptions.lock().expect("lock") =
            Subscriptions::new().with(SERVICE, names.iter().copied());
        Arc::new(sink)
    }

    /// Applied services: version by name (`None` before the first apply).
    fn held(&self) -> Option<BTreeMap<String, String>> {
        let applied = self.applied.lock().expect("lock");
        applied.as_ref().map(|set| {
            set.of_type(SERVICE)
                .map(|r| (r.name.clone(), r.version.clone()))
                .collect()
        })
    }
}

struct Proxy {
    sink: Arc<TestSink>,
    status: watch::Receiver<Status>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Proxy {
    fn start(endpoint: &str, sink: Arc<TestSink>, state_dir: Option<&std::path::Path>) -> Self {
        Self::start_as(endpoint, NODE, sink, state_dir)
    }

    fn start_as(
        endpoint: &str,
        node_id: &str,
        sink: Arc<TestSink>,
        state_dir: Option<&std::path::Path>,
    ) -> Self {
        let registration = pb::Registration {
            name: "client".to_owned(),
            namespace: "default".to_owned(),
            service_account: "client-sa".to_owned(),
            proxy_version: "test".to_owned(),
            issued_certificate: false,
            ..pb::Registration::default()
        };
        let mut options = ClientOptions::new(endpoint, node_id, registration);
        options.state_dir = state_dir.map(std::path::Path::to_path_buf);
        options.initial_backoff = Duration::from_millis(50);
        options.max_backoff = Duration::from_millis(200);
        options.connect_timeout = Duration::from_secs(1);
        let client = Client::new(options).expect("client");
        let status = client.status();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(client.run(Arc::clone(&sink), shutdown.clone()));
        Self {
            sink,
            status,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("client stops")
            .expect("join");
    }
}

async fn eventually(what: &str, condition: impl FnMut() -> bool) {
    weft_testkit::eventually_async(what, Duration::from_secs(10), condition).await;
}

fn versions(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// The server's view of the proxy's Service subscription.
fn service_status(server: &Server) -> Option<weft_control::xds::TypeStatus> {
    server
        .proxy()?
        .types
        .into_iter()
        .find(|t| t.type_url == SERVICE)
}

/// Waits until the server saw the proxy ACK a response holding exactly `expected`.
async fn converged(server: &Server, proxy: &Proxy, expected: &[(&str, &str)]) {
    let expected = versions(expected);
    eventually("proxy applies the expected services", || {
        proxy.sink.held().as_ref() == Some(&expected)
    })
    .await;
    eventually(
        "server records the proxy up to date and acknowledged",
        || {
            service_status(server).is_some_and(|t| {
                t.resources == expected
                    && t.pending_nonce.is_none()
                    && (t.acked.is_some() || t.last_sent.is_none())
            })
        },
    )
    .await;
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_subscribe_receives_exactly_the_subscribed_resources() {
    let server = Server::start(
        snapshot(&[("a", "1"), ("b", "1"), ("c", "1")]),
        Arc::new(NoHooks),
    )
    .await;
    let proxy = Proxy::start(&server.endpoint(), TestSink::subscribing(&["a", "b"]), None);

    converged(&server, &proxy, &[("a", "1"), ("b", "1")]).await;

    let status = service_status(&server).expect("status");
    assert_eq!(status.subscribed, vec!["a".to_owned(), "b".to_owned()]);
    let acked = status.acked.expect("acked");
    assert_eq!(acked.versions, versions(&[("a", "1"), ("b", "1")]));
    assert_eq!(Some(acked.nonce), status.last_sent.map(|s| s.nonce));
    let sent = server.xds.resources_sent(NODE).expect("proxy known");
    let names: Vec<String> = sent
        .iter()
        .map(|r| {
            pb::Service::decode(r.body.value.as_slice())
                .expect("decode")
                .name
        })
        .collect();
    assert_eq!(names, vec!["a".to_owned(), "b".to_owned()]);
    assert!(proxy.status.borrow().connected);
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_to_one_resource_pushes_only_that_resource() {
    let server = Server::start(snapshot(&[("a", "1"), ("b", "1")]), Arc::new(NoHooks)).await;
    let proxy = Proxy::start(&server.endpoint(), TestSink::subscribing(&["a", "b"]), None);
    converged(&server, &proxy, &[("a", "1"), ("b", "1")]).await;

    server.update(|s| {
        s.insert(service("b", "2"));
        s.insert(service("unsubscribed", "1"));
    });
    converged(&server, &proxy, &[("a", "1"), ("b", "2")]).await;

    let status = service_status(&server).expect("status");
    assert_eq!(
        status.last_sent.expect("sent").versions,
        versions(&[("b", "2")])
    );
    assert_eq!(
        status.acked.expect("acked").versions,
        versions(&[("b", "2")])
    );
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_resource_sends_removed_resources() {
    let server = Server::start(snapshot(&[("a", "1"), ("b", "1")]), Arc::new(NoHooks)).await;
    let proxy = Proxy::start(&server.endpoint(), TestSink::subscribing(&["a", "b"]), None);
    converged(&server, &proxy, &[("a", "1"), ("b", "1")]).await;

    server.update(|s| {
        s.remove(SERVICE, "a");
    });
    converged(&server, &proxy, &[("b", "1")]).await;

    let sent = service_status(&server)
        .and_then(|t| t.last_sent)
        .expect("sent");
    assert_eq!(sent.removed, vec!["a".to_owned()]);
    assert!(sent.versions.is_empty());
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_resource_is_nacked_keeps_its_previous_version_and_the_rest_applies() {
    let server = Server::start(snapshot(&[("a", "1"), ("bad", "1")]), Arc::new(NoHooks)).await;
    let sink = TestSink::subscribing(&["a", "bad", "new-bad"]);
    let proxy = Proxy::start(&server.endpoint(), Arc::clone(&sink), None);
    converged(&server, &proxy, &[("a", "1"), ("bad", "1")]).await;

    sink.reject
        .lock()
        .expect("lock")
        .extend(["bad".to_owned(), "new-bad".to_owned()]);
    server.update(|s| {
        s.insert(service("a", "2"));
        s.insert(service("bad", "2"));
        s.insert(service("new-bad", "1"));
    });
    eventually("server records the NACK", || {
        service_status(&server).is_some_and(|t| t.last_nack.is_some())
    })
    .await;

    assert_eq!(sink.held(), Some(versions(&[("a", "2"), ("bad", "1")])));
    let nack = service_status(&server)
        .and_then(|t| t.last_nack)
        .expect("nack");
    let refused: Vec<(&str, &str)> = nack
        .errors
        .iter()
        .map(|e| (e.name.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(
        refused,
        vec![
            ("bad", "service bad is refused by the test"),
            ("new-bad", "service new-bad is refused by the test")
        ]
    );
    assert!(
        nack.message.contains("bad: service bad is refused"),
        "{}",
        nack.message
    );
    assert!(nack.errors.iter().all(|e| e.type_url == SERVICE));
    assert!(proxy
        .status
        .borrow()
        .last_nack
        .as_deref()
        .is_some_and(|m| m.contains("new-bad")));
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_initial_versions_resends_only_what_changed() {
    let state = tempfile::tempdir().expect("tempdir");
    let server = Server::start(snapshot(&[("a", "1"), ("b", "1")]), Arc::new(NoHooks)).await;
    let proxy = Proxy::start(
        &server.endpoint(),
        TestSink::subscribing(&["a", "b"]),
        Some(state.path()),
    );
    converged(&server, &proxy, &[("a", "1"), ("b", "1")]).await;
    proxy.stop().await;
    eventually("server drops the stream", || server.proxy().is_none()).await;

    server.update(|s| {
        s.insert(service("b", "2"));
    });
    let proxy = Proxy::start(
        &server.endpoint(),
        TestSink::subscribing(&["a", "b"]),
        Some(state.path()),
    );
    converged(&server, &proxy, &[("a", "1"), ("b", "2")]).await;

    let status = service_status(&server).expect("status");
    assert_eq!(
        status.last_sent.expect("sent").versions,
        versions(&[("b", "2")])
    );
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_boots_from_persisted_state_without_a_control_plane() {
    let state = tempfile::tempdir().expect("tempdir");
    let server = Server::start(snapshot(&[("a", "1"), ("b", "1")]), Arc::new(NoHooks)).await;
    let endpoint = server.endpoint();
    let proxy = Proxy::start(
        &endpoint,
        TestSink::subscribing(&["a", "b"]),
        Some(state.path()),
    );
    converged(&server, &proxy, &[("a", "1"), ("b", "1")]).await;
    proxy.stop().await;
    server.stop().await;

    let loaded = Client::load_persisted(state.path()).expect("persisted set");
    assert_eq!(loaded.len(), 2);
    let proxy = Proxy::start(
        &endpoint,
        TestSink::subscribing(&["a", "b"]),
        Some(state.path()),
    );
    eventually("persisted set applied", || {
        proxy.sink.held() == Some(versions(&[("a", "1"), ("b", "1")]))
    })
    .await;
    eventually("connection failure reported", || {
        proxy.status.borrow().last_error.is_some()
    })
    .await;
    let status = proxy.status.borrow().clone();
    assert!(!status.connected);
    assert!(status.from_disk);
    assert_eq!(status.resources, 2);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_state_file_is_ignored_and_config_comes_from_the_server() {
    let state = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        weft_proxy::control_plane::xds::state_file::path(state.path()),
        b"garbage",
    )
    .expect("write");
    assert!(Client::load_persisted(state.path()).is_none());

    let server = Server::start(snapshot(&[("a", "1")]), Arc::new(NoHooks)).await;
    let proxy = Proxy::start(
        &server.endpoint(),
        TestSink::subscribing(&["a"]),
        Some(state.path()),
    );
    converged(&server, &proxy, &[("a", "1")]).await;
    eventually("state file rewritten", || {
        Client::load_persisted(state.path()).is_some()
    })
    .await;
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reconnects_after_server_restart_and_reconverges() {
    let server = Server::start(snapshot(&[("a", "1"), ("b", "1")]), Arc::new(NoHooks)).await;
    let addr = server.addr;
    let proxy = Proxy::start(&server.endpoint(), TestSink::subscribing(&["a", "b"]), None);
    converged(&server, &proxy, &[("a", "1"), ("b", "1")]).await;
    server.stop().await;
    eventually("client notices", || !proxy.status.borrow().connected).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let listener = TcpListener::bind(addr).await.expect("rebind");
    let server = Server::start_on(
        listener,
        snapshot(&[("a", "1"), ("b", "2")]),
        Arc::new(NoHooks),
    );
    converged(&server, &proxy, &[("a", "1"), ("b", "2")]).await;

    let status = service_status(&server).expect("status");
    assert_eq!(
        status.last_sent.expect("sent").versions,
        versions(&[("b", "2")]),
        "unchanged a not resent"
    );
    assert!(proxy.status.borrow().streams >= 2);
    proxy.stop().await;
    server.stop().await;
}

#[derive(Default)]
struct RecordingHooks {
    connected: Mutex<Vec<ConnectionInfo>>,
    disconnected: Mutex<Vec<(u64, String)>>,
    refuse: Option<String>,
}

#[async_trait::async_trait]
impl Hooks for RecordingHooks {
    async fn connected(&self, info: &ConnectionInfo) -> Result<Viewer, tonic::Status> {
        self.connected.lock().expect("lock").push(info.clone());
        match &self.refuse {
            Some(why) => Err(tonic::Status::permission_denied(why.clone())),
            None => Ok(Viewer::Unrestricted),
        }
    }

    async fn disconnected(&self, conn_id: u64, node_id: &str) {
        self.disconnected
            .lock()
            .expect("lock")
            .push((conn_id, node_id.to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_arrives_in_connected_hook_and_disconnected_follows_client_stop() {
    let hooks = Arc::new(RecordingHooks::default());
    let server = Server::start(snapshot(&[("a", "1")]), hooks.clone()).await;
    let proxy = Proxy::start(&server.endpoint(), TestSink::subscribing(&["a"]), None);
    converged(&server, &proxy, &[("a", "1")]).await;

    let info = hooks.connected.lock().expect("lock")[0].clone();
    assert_eq!(info.node_id, NODE);
    let registration = info.registration.expect("registration");
    assert_eq!(
        (
            registration.name.as_str(),
            registration.service_account.as_str()
        ),
        ("client", "client-sa")
    );
    assert!(info.peer.is_some_and(|p| p.ip().is_loopback()));
    let summary = server
        .proxy()
        .and_then(|p| p.registration)
        .expect("summary");
    assert_eq!(summary.namespace, "default");

    proxy.stop().await;
    eventually("disconnected hook called", || {
        !hooks.disconnected.lock().expect("lock").is_empty()
    })
    .await;
    assert_eq!(
        hooks.disconnected.lock().expect("lock")[0],
        (info.conn_id, NODE.to_owned())
    );
    assert!(server.proxy().is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_refusal_ends_the_stream_with_its_status() {
    let hooks = Arc::new(RecordingHooks {
        refuse: Some("unknown workload default/client".to_owned()),
        ..Default::default()
    });
    let server = Server::start(snapshot(&[("a", "1")]), hooks.clone()).await;
    let proxy = Proxy::start(&server.endpoint(), TestSink::subscribing(&["a"]), None);

    eventually("client reports the refusal", || {
        proxy
            .status
            .borrow()
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("unknown workload default/client"))
    })
    .await;
    assert!(server.proxy().is_none());
    assert!(
        hooks.disconnected.lock().expect("lock").is_empty(),
        "a refused stream was never connected"
    );
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_registration_is_invalid_argument() {
    let server = Server::start(snapshot(&[]), Arc::new(NoHooks)).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(server.endpoint())
        .await
        .expect("connect");
    let mut request =
        tonic::Request::new(futures::stream::iter(
            vec![DeltaDiscoveryRequest::default()],
        ));
    request.metadata_mut().insert_bin(
        pb::REGISTRATION_METADATA_KEY,
        tonic::metadata::MetadataValue::from_bytes(b"\xff\xff\xff\xff not a registration"),
    );
    let error = client
        .delta_aggregated_resources(request)
        .await
        .expect_err("refused");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("weft-registration-bin"),
        "{}",
        error.message()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_the_world_ads_is_unimplemented_and_points_to_delta() {
    let server = Server::start(snapshot(&[]), Arc::new(NoHooks)).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(server.endpoint())
        .await
        .expect("connect");
    let request = tonic::Request::new(futures::stream::iter(vec![DiscoveryRequest::default()]));
    let error = client
        .stream_aggregated_resources(request)
        .await
        .expect_err("unimplemented");
    assert_eq!(error.code(), tonic::Code::Unimplemented);
    assert!(
        error.message().contains("DeltaAggregatedResources"),
        "{}",
        error.message()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscription_receives_every_resource_including_new_ones() {
    let server = Server::start(snapshot(&[("a", "1"), ("b", "1")]), Arc::new(NoHooks)).await;
    let sink = Arc::new(TestSink::default());
    *sink.subscriptions.lock().expect("lock") = Subscriptions::new().with_wildcard(SERVICE);
    let proxy = Proxy::start(&server.endpoint(), sink, None);
    converged(&server, &proxy, &[("a", "1"), ("b", "1")]).await;

    server.update(|s| {
        s.insert(service("c", "1"));
    });
    converged(&server, &proxy, &[("a", "1"), ("b", "1"), ("c", "1")]).await;
    assert_eq!(
        service_status(&server).expect("status").subscribed,
        vec!["*".to_owned()]
    );
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_what_the_sink_applies() {
    let server = Server::start(
        snapshot(&[("frontend", "1"), ("backend", "1"), ("other", "1")]),
        Arc::new(NoHooks),
    )
    .await;
    let sink = TestSink::subscribing(&["frontend"]);
    sink.follow
        .lock()
        .expect("lock")
        .insert("frontend".to_owned(), "backend".to_owned());
    let proxy = Proxy::start(&server.endpoint(), Arc::clone(&sink), None);
    converged(&server, &proxy, &[("backend", "1"), ("frontend", "1")]).await;

    // The frontend stops naming the backend: the proxy unsubscribes and drops it.
    sink.follow.lock().expect("lock").clear();
    server.update(|s| {
        s.insert(service("frontend", "2"));
    });
    converged(&server, &proxy, &[("frontend", "2")]).await;
    assert_eq!(
        service_status(&server).expect("status").subscribed,
        vec!["frontend".to_owned()]
    );
    proxy.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_proxies_connect_and_receive_a_push() {
    const PROXIES: usize = 1000;
    let started = Instant::now();
    let server = Server::start(
        snapshot(&[("shared", "1"), ("own", "1")]),
        Arc::new(NoHooks),
    )
    .await;
    let proxies: Vec<Proxy> = (0..PROXIES)
        .map(|i| {
            Proxy::start_as(
                &server.endpoint(),
                &format!("default/p{i}"),
                TestSink::subscribing(&["shared"]),
                None,
            )
        })
        .collect();
    let initial = versions(&[("shared", "1")]);
    eventually("every proxy applied the initial config", || {
        proxies
            .iter()
            .all(|p| p.sink.held().as_ref() == Some(&initial))
    })
    .await;
    assert_eq!(server.xds.connections(), PROXIES);

    let push = Instant::now();
    server.update(|s| {
        s.insert(service("shared", "2"));
        s.insert(service("own", "2"));
    });
    let pushed = versions(&[("shared", "2")]);
    eventually("every proxy applied the push", || {
        proxies
            .iter()
            .all(|p| p.sink.held().as_ref() == Some(&pushed))
    })
    .await;
    let push_time = push.elapsed();

    for proxy in proxies {
        proxy.shutdown.cancel();
        proxy.task.await.expect("join");
    }
    eventually("every stream closed", || server.xds.connections() == 0).await;
    server.stop().await;
    assert!(
        push_time < Duration::from_secs(5),
        "push to {PROXIES} proxies took {push_time:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "test took {:?}",
        started.elapsed()
    );
}
