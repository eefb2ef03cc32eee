//! Config visibility (ADR 0026) through a real control plane: `weft_control::server::run`
//! in this process on 127.0.0.1 with a SQLite store in a temporary directory, resources
//! applied with the real `weft apply`, a workload token from `weft token workload`, and
//! raw delta xDS streams over the control plane's TLS, carrying that token and a
//! registration, as a proxy (or someone holding its token) would open them. No root.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "support/control_plane.rs"]
mod control_plane;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use weft_api::pb::v1 as pb;

use control_plane::{admin_token, free_port};

/// The three types a proxy's config is made of that are scoped by visibility.
const TYPES: [&str; 3] = [
    pb::SERVICE_TYPE_URL,
    pb::ROUTE_TABLE_TYPE_URL,
    pb::INBOUND_POLICY_TYPE_URL,
];

/// team-a's services, one per kind of export, each with a route carrying a header
/// match value, and a team-a workload (so it has an InboundPolicy).
const TEAM_A: &str = r#"
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: private, namespace: team-a }
spec:
  selector: { app: private }
  ports: [{ port: 80, protocol: http }]
  exportTo: ["."]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: shared, namespace: team-a }
spec:
  selector: { app: shared }
  ports: [{ port: 80, protocol: http }]
  exportTo: ["*"]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: partner, namespace: team-a }
spec:
  selector: { app: partner }
  ports: [{ port: 80, protocol: http }]
  exportTo: [team-b]
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata: { name: elsewhere, namespace: team-a }
spec:
  selector: { app: elsewhere }
  ports: [{ port: 80, protocol: http }]
  exportTo: [team-c]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: private, namespace: team-a }
spec:
  parentRefs: [{ name: private }]
  rules:
    - matches: [{ headers: [{ name: x-internal-key, value: s3cret }] }]
      backendRefs: [{ name: private, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: shared, namespace: team-a }
spec:
  parentRefs: [{ name: shared }]
  rules:
    - matches: [{ headers: [{ name: x-tenant, value: acme }] }]
      backendRefs: [{ name: shared, port: 80 }]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: { name: db, namespace: team-a, labels: { app: private } }
spec:
  serviceAccount: db
  address: 127.0.0.9
  ports: [{ port: 80, protocol: http }]
"#;

/// A control plane running in this process, stopped on drop.
struct Plane {
    shutdown: CancellationToken,
    api: SocketAddr,
    xds: SocketAddr,
    ca_file: PathBuf,
    admin: String,
    home: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Plane {
    async fn start() -> Plane {
        let data = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let (api, xds) = (free_port(), free_port());
        let options = weft_control::server::Options {
            store: weft_control::store::StoreSpec::data_dir(data.path()),
            api_listen: api,
            xds_listen: xds,
            instance: "visibility-test".to_owned(),
            grace_period: Duration::from_secs(30),
            debounce: Duration::from_millis(10),
            admin_token_file: None,
            ca_file: None,
            tls_hosts: Vec::new(),
            certificates: weft_control::identity::Options::default(),
            quotas: weft_control::controller::registry::Quotas::default(),
            xds_limits: weft_control::server::xds_limits(),
            secret_key_file: None,
        };
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(weft_control::server::run(options, shutdown.clone()));
        let ca_file = data.path().join(weft_control::server::CA_FILE);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let probe = {
                let ca_file = ca_file.clone();
                tokio::task::spawn_blocking(move || {
                    weft_testkit::process::https_ready(api, "/readyz", &ca_file)
                })
                .await
                .unwrap()
            };
            match probe {
                Ok(()) => break,
                Err(why) => {
                    assert!(!run.is_finished(), "the control plane stopped: {why}");
                    assert!(
                        Instant::now() < deadline,
                        "/readyz not 200 within 30s: {why}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let admin = admin_token(home.path(), data.path());
        Plane {
            shutdown,
            api,
            xds,
            ca_file,
            admin,
            home,
            _data: data,
        }
    }

    /// Runs `weft ARGS` as the operator; returns stdout, failing the test on an error.
    async fn weft(&self, args: &[&str]) -> String {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .env("WEFT_CONTROL_PLANE", format!("https://{}", self.api))
            .env("WEFT_CA_FILE", &self.ca_file)
            .env("WEFT_TOKEN", &self.admin)
            .env("HOME", self.home.path())
            .env_remove("XDG_CONFIG_HOME")
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "weft {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    async fn apply(&self, yaml: &str) {
        let file = self.home.path().join("apply.yaml");
        std::fs::write(&file, yaml).unwrap();
        self.weft(&["apply", "-f", file.to_str().unwrap()]).await;
    }

    /// A workload token for `namespace`/`service_account`.
    async fn token(&self, namespace: &str, service_account: &str) -> String {
        self.weft(&[
            "token",
            "workload",
            "--namespace",
            namespace,
            "--service-account",
            service_account,
        ])
        .await
        .trim()
        .to_owned()
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One delta xDS stream, ACKing every response and keeping what it holds, by type.
struct Stream {
    tx: mpsc::UnboundedSender<DeltaDiscoveryRequest>,
    responses: tonic::Streaming<DeltaDiscoveryResponse>,
    names: BTreeMap<String, BTreeSet<String>>,
    /// Every name ever received, by type (to prove something never arrived).
    ever: BTreeMap<String, BTreeSet<String>>,
    /// Every response, in order.
    log: Vec<DeltaDiscoveryResponse>,
}

impl Stream {
    /// Opens a stream for workload `namespace`/`name` (service account `sa`) with `token`.
    async fn open(plane: &Plane, token: &str, namespace: &str, name: &str, sa: &str) -> Stream {
        let url = format!("https://{}", plane.xds);
        let endpoint = tonic::transport::Endpoint::from_shared(url.clone()).unwrap();
        let trust = weft_proxy::control_plane::channel::Trust {
            ca_file: Some(plane.ca_file.clone()),
            issued_bundle: None,
        };
        let channel = weft_proxy::control_plane::channel::connect(&url, &endpoint, &trust)
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let requests =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let mut request = tonic::Request::new(requests);
        let registration = pb::Registration {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            service_account: sa.to_owned(),
            address: "127.0.0.5".to_owned(),
            ..pb::Registration::default()
        };
        request.metadata_mut().insert_bin(
            pb::REGISTRATION_METADATA_KEY,
            MetadataValue::from_bytes(&registration.encode_to_vec()),
        );
        request.metadata_mut().insert(
            pb::AUTHORIZATION_METADATA_KEY,
            format!("{}{token}", pb::BEARER_PREFIX).parse().unwrap(),
        );
        let node = Some(Node {
            id: format!("{namespace}/{name}"),
            ..Node::default()
        });
        // The first request goes out before the call returns (tonic waits for it).
        tx.send(DeltaDiscoveryRequest {
            node,
            type_url: pb::TRUST_BUNDLE_TYPE_URL.to_owned(),
            resource_names_subscribe: vec![pb::TRUST_BUNDLE_NAME.to_owned()],
            ..DeltaDiscoveryRequest::default()
        })
        .unwrap();
        let responses = AggregatedDiscoveryServiceClient::new(channel)
            .delta_aggregated_resources(request)
            .await
            .unwrap()
            .into_inner();
        Stream {
            tx,
            responses,
            names: BTreeMap::new(),
            ever: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    fn subscribe(&self, type_url: &str, names: &[&str]) {
        self.tx
            .send(DeltaDiscoveryRequest {
                type_url: type_url.to_owned(),
                resource_names_subscribe: names.iter().map(|n| (*n).to_owned()).collect(),
                ..DeltaDiscoveryRequest::default()
            })
            .unwrap();
    }

    /// Reads responses (ACKing each) until `done` holds for what is held, or fails
    /// after 10 s with what was held.
    async fn until(&mut self, what: &str, done: impl Fn(&Stream) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(self) {
            let next = tokio::time::timeout_at(deadline, self.responses.message()).await;
            let response = match next {
                Ok(Ok(Some(response))) => response,
                Ok(other) => panic!("stream ended waiting for {what}: {other:?}"),
                Err(elapsed) => panic!("{elapsed} waiting for {what}; held {:?}", self.names),
            };
            self.apply(response);
        }
    }

    /// Reads responses for `window`, to show that nothing more arrives.
    async fn settle(&mut self, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Ok(Some(response))) =
            tokio::time::timeout_at(deadline, self.responses.message()).await
        {
            self.apply(response);
        }
    }

    fn apply(&mut self, response: DeltaDiscoveryResponse) {
        let names = self.names.entry(response.type_url.clone()).or_default();
        let ever = self.ever.entry(response.type_url.clone()).or_default();
        for resource in &response.resources {
            names.insert(resource.name.clone());
            ever.insert(resource.name.clone());
        }
        for name in &response.removed_resources {
            names.remove(name);
        }
        self.tx
            .send(DeltaDiscoveryRequest {
                type_url: response.type_url.clone(),
                response_nonce: response.nonce.clone(),
                ..DeltaDiscoveryRequest::default()
            })
            .unwrap();
        self.log.push(response);
    }

    fn holds(&self, type_url: &str) -> BTreeSet<&str> {
        self.names
            .get(type_url)
            .map(|n| n.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether any resource received so far has `needle` in its name or its bytes.
    fn mentions(&self, needle: &str) -> bool {
        self.log.iter().flat_map(|r| &r.resources).any(|r| {
            r.name.contains(needle)
                || r.resource.as_ref().is_some_and(|body| {
                    body.value
                        .windows(needle.len())
                        .any(|w| w == needle.as_bytes())
                })
        })
    }

    fn ever(&self, type_url: &str) -> BTreeSet<&str> {
        self.ever
            .get(type_url)
            .map(|n| n.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

fn set<'a>(names: &[&'a str]) -> BTreeSet<&'a str> {
    names.iter().copied().collect()
}

/// Waits until the workload `namespace/name` is registered (its InboundPolicy exists)
/// and team-a's resources are compiled, as seen by a stream that may see them all.
async fn team_a_compiled(stream: &mut Stream) {
    stream
        .until("team-a compiled", |s| {
            s.holds(pb::SERVICE_TYPE_URL).contains("shared.team-a")
                && s.holds(pb::ROUTE_TABLE_TYPE_URL).contains("shared.team-a")
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscription_receives_nothing_of_another_namespace() {
    let plane = Plane::start().await;
    plane.apply(TEAM_A).await;
    let token = plane.token("team-b", "client").await;
    let mut stream = Stream::open(&plane, &token, "team-b", "client", "client").await;
    for type_url in TYPES {
        stream.subscribe(type_url, &["*"]);
    }
    team_a_compiled(&mut stream).await;
    // Its own InboundPolicy arrives once its registration is compiled.
    stream
        .until("its own inbound policy", |s| {
            s.holds(pb::INBOUND_POLICY_TYPE_URL)
                .contains("client.team-b")
        })
        .await;
    stream.settle(Duration::from_millis(500)).await;

    assert_eq!(
        stream.ever(pb::SERVICE_TYPE_URL),
        set(&["partner.team-a", "shared.team-a"]),
        "only the services exported to team-b or everyone"
    );
    assert_eq!(
        stream.ever(pb::ROUTE_TABLE_TYPE_URL),
        set(&["shared.team-a"]),
        "route tables follow their service's export"
    );
    assert_eq!(
        stream.ever(pb::INBOUND_POLICY_TYPE_URL),
        set(&["client.team-b"]),
        "no other workload's inbound policy"
    );
    // Nor does anything of the hidden service hide in what it did receive.
    assert!(
        stream.mentions("x-tenant"),
        "the check below can see header values"
    );
    assert!(!stream.mentions("s3cret"));
    assert!(!stream.mentions("x-internal-key"));
    assert!(!stream.mentions("private"));

    // A named subscription to a hidden resource is answered as a missing one.
    let before = stream.log.len();
    stream.subscribe(
        pb::SERVICE_TYPE_URL,
        &["private.team-a", "elsewhere.team-a", "absent.team-a"],
    );
    stream
        .until("the named subscription's answer", |s| s.log.len() > before)
        .await;
    let answer = &stream.log[before];
    assert!(answer.resources.is_empty(), "{answer:?}");
    assert_eq!(
        answer.removed_resources,
        ["absent.team-a", "elsewhere.team-a", "private.team-a"],
        "hidden and missing resources get the same answer"
    );
    stream.subscribe(pb::INBOUND_POLICY_TYPE_URL, &["db.team-a"]);
    stream
        .until("the inbound policy answer", |s| s.log.len() > before + 1)
        .await;
    let answer = &stream.log[before + 1];
    assert_eq!(answer.type_url, pb::INBOUND_POLICY_TYPE_URL);
    assert!(answer.resources.is_empty(), "{answer:?}");
    assert_eq!(answer.removed_resources, ["db.team-a"]);

    // team-a's own workloads still see everything of team-a.
    let token = plane.token("team-a", "db").await;
    let mut own = Stream::open(&plane, &token, "team-a", "db", "db").await;
    for type_url in TYPES {
        own.subscribe(type_url, &["*"]);
    }
    own.until("team-a's own view", |s| {
        s.holds(pb::SERVICE_TYPE_URL).len() == 4
            && s.holds(pb::ROUTE_TABLE_TYPE_URL).len() == 2
            && s.holds(pb::INBOUND_POLICY_TYPE_URL).contains("db.team-a")
    })
    .await;
    assert!(!own
        .holds(pb::INBOUND_POLICY_TYPE_URL)
        .contains("client.team-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_export_removes_and_sends_the_service_on_a_live_stream() {
    let plane = Plane::start().await;
    plane.apply(TEAM_A).await;
    let token = plane.token("team-b", "client").await;
    let mut wildcard = Stream::open(&plane, &token, "team-b", "client", "client").await;
    wildcard.subscribe(pb::SERVICE_TYPE_URL, &["*"]);
    wildcard.subscribe(pb::ROUTE_TABLE_TYPE_URL, &["*"]);
    let mut named = Stream::open(&plane, &token, "team-b", "named", "client").await;
    named.subscribe(pb::SERVICE_TYPE_URL, &["private.team-a", "shared.team-a"]);
    team_a_compiled(&mut wildcard).await;
    named
        .until("shared", |s| {
            s.holds(pb::SERVICE_TYPE_URL).contains("shared.team-a")
        })
        .await;
    assert!(!wildcard
        .holds(pb::SERVICE_TYPE_URL)
        .contains("private.team-a"));
    assert!(!named.holds(pb::SERVICE_TYPE_URL).contains("private.team-a"));

    let exported = TEAM_A.replacen("exportTo: [\".\"]", "exportTo: [\".\", team-b]", 1);
    plane.apply(&exported).await;
    for stream in [&mut wildcard, &mut named] {
        stream
            .until("private exported to team-b", |s| {
                s.holds(pb::SERVICE_TYPE_URL).contains("private.team-a")
            })
            .await;
    }
    wildcard
        .until("its route table too", |s| {
            s.holds(pb::ROUTE_TABLE_TYPE_URL).contains("private.team-a")
        })
        .await;

    plane.apply(TEAM_A).await;
    for stream in [&mut wildcard, &mut named] {
        stream
            .until("private hidden again", |s| {
                !s.holds(pb::SERVICE_TYPE_URL).contains("private.team-a")
            })
            .await;
    }
    wildcard
        .until("its route table removed too", |s| {
            !s.holds(pb::ROUTE_TABLE_TYPE_URL).contains("private.team-a")
        })
        .await;
    assert!(wildcard
        .holds(pb::SERVICE_TYPE_URL)
        .contains("shared.team-a"));
}
