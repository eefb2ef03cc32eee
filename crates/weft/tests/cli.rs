//! The operator CLI as users run it: the real `weft` binary against an API served in
//! this process over an in-memory store. No root needed.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../../weft-control/tests/support/memory_store.rs"]
mod memory_store;
#[path = "support/tls_api.rs"]
mod tls_api;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use weft_api::resource::{Key, Kind, Object};
use weft_control::api::{self, ApiState, ProxyDirectory};
use weft_control::store::{Precondition, Store};

use memory_store::MemoryStore;

const WEB: &str = "\
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: web
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 80
      protocol: http
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
spec:
  parentRefs:
    - kind: Service
      name: web
  rules:
    - backendRefs:
        - name: web
          port: 80
";

const BAD_WORKLOAD: &str = "\
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: web-1
spec:
  adress: 127.0.0.10
";

/// A control plane API on 127.0.0.1, and a home directory with no CLI config.
struct ControlPlane {
    addr: SocketAddr,
    store: Arc<MemoryStore>,
    home: tempfile::TempDir,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A proxy directory with one proxy whose last route update was refused.
struct NackedProxy;

impl ProxyDirectory for NackedProxy {
    fn list(&self) -> Vec<Value> {
        self.get("default", "web-1").into_iter().collect()
    }

    fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        (namespace == "default" && name == "web-1").then(|| {
            json!({
                "nodeId": "default/web-1",
                "connId": 1,
                "types": [{
                    "typeUrl": "type.googleapis.com/weft.proxy.v1.RouteTable",
                    "subscribed": ["web.default"],
                    "lastSent": {"nonce": "2", "versions": {"web.default": "v2"}, "at": "t2"},
                    "acked": {"nonce": "1", "versions": {"web.default": "v1"}, "at": "t1"},
                    "lastNack": {"nonce": "2", "message": "1 resource refused", "at": "t2",
                                 "errors": [{"typeUrl": "x", "name": "web.default", "message": "bad regex"}]}
                }],
                "config": {"routes": []}
            })
        })
    }
}

impl ControlPlane {
    async fn start() -> ControlPlane {
        let store = Arc::new(MemoryStore::default());
        let router = api::router(ApiState {
            store: store.clone(),
            proxies: Arc::new(NackedProxy),
            tokens: None,
            admin: None,
            metrics: None,
            stats: None,
            secrets: Some(std::sync::Arc::new(
                weft_control::seal::Keyring::ephemeral().expect("a random key"),
            )),
        });
        let home = tempfile::tempdir().unwrap();
        let api = tls_api::serve(router, home.path()).await;
        tls_api::configure_ca(home.path(), &api.ca_file);
        ControlPlane {
            addr: api.addr,
            store,
            home,
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Runs `weft ARGS --control-plane <this API>`.
    async fn weft(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        let url = self.url();
        if !matches!(args.first(), Some(&"check")) {
            all.extend(["--control-plane", &url]);
        }
        weft(self.home.path(), &all).await
    }

    async fn put(&self, object: Value) {
        let object: Object = serde_json::from_value(object).unwrap();
        self.store.put(object, Precondition::None).await.unwrap();
    }
}

/// Runs the binary with `home` as HOME and XDG_CONFIG_HOME unset.
async fn weft(home: &Path, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("WEFT_CONTROL_PLANE")
        .output()
        .await
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn failed(self) -> Run {
        assert_eq!(
            self.code, 1,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_delete_round_trip_through_the_binary() {
    let cp = ControlPlane::start().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.yaml", WEB);
    write(dir.path(), "notes.txt", "not a manifest");
    let dir_arg = dir.path().display().to_string();

    let first = cp.weft(&["apply", "-f", &dir_arg]).await.ok();
    assert_eq!(first.stdout, "service/web created\nhttproute/web created\n");
    let second = cp.weft(&["apply", "-f", &dir_arg]).await.ok();
    assert_eq!(
        second.stdout,
        "service/web unchanged\nhttproute/web unchanged\n"
    );

    let table = cp.weft(&["get", "svc"]).await.ok();
    let header: Vec<&str> = table
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "PORTS", "ENDPOINTS", "AGE"]);
    assert!(
        table.stdout.lines().nth(1).unwrap().starts_with("web "),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("80/http"), "{}", table.stdout);

    let all = cp
        .weft(&["get", "httproutes", "-A", "-o", "wide"])
        .await
        .ok();
    assert!(all.stdout.starts_with("NAMESPACE"), "{}", all.stdout);
    let selected = cp
        .weft(&["get", "services", "-l", "app=web", "-o", "name"])
        .await
        .ok();
    assert_eq!(selected.stdout, "service/web\n");
    let none = cp
        .weft(&["get", "services", "-l", "app!=web", "-o", "name"])
        .await
        .ok();
    assert_eq!(none.stdout, "");

    let json_out = cp.weft(&["get", "service", "web", "-o", "json"]).await.ok();
    let object: Value = serde_json::from_str(&json_out.stdout).unwrap();
    assert_eq!(object["spec"]["ports"][0]["port"], 80);

    let deleted = cp.weft(&["delete", "svc", "web"]).await.ok();
    assert_eq!(deleted.stdout, "service/web deleted\n");
    let gone = cp.weft(&["get", "svc", "web"]).await.failed();
    assert!(gone.stderr.contains("not found"), "{}", gone.stderr);

    let file = write(dir.path(), "web.yaml", WEB);
    cp.weft(&["apply", "-f", &file]).await.ok();
    let by_file = cp.weft(&["delete", "-f", &file]).await.ok();
    assert_eq!(
        by_file.stdout,
        "service/web deleted\nhttproute/web deleted\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_of_an_invalid_file_names_file_document_and_field_and_writes_nothing() {
    let cp = ControlPlane::start().await;
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "a-web.yaml", WEB);
    let bad = write(dir.path(), "b-workload.yaml", BAD_WORKLOAD);

    let run = cp.weft(&["apply", "-f", &good, "-f", &bad]).await.failed();
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("b-workload.yaml"))
        .unwrap_or_else(|| panic!("no line names the file:\n{}", run.stderr));
    assert!(line.contains("document 0"), "{line}");
    assert!(line.contains("Workload default/web-1"), "{line}");
    assert!(line.contains("spec"), "{line}");
    let (objects, _) = cp.store.list(None, None).await.unwrap();
    assert!(objects.is_empty(), "nothing may be applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_of_unparseable_yaml_names_the_file_and_exits_1() {
    let cp = ControlPlane::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "broken.yaml", "kind: [unclosed\n");
    let run = cp.weft(&["apply", "-f", &file]).await.failed();
    assert!(
        run.stderr.contains("broken.yaml: document 0"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_views_say_when_the_control_plane_keeps_no_statistics_and_what_they_show() {
    let cp = ControlPlane::start().await;
    for args in [
        &["stat", "services"][..],
        &["edges", "-A"],
        &["tap", "workload", "default/web-1", "--duration", "1s"],
        &["top", "web", "--duration", "1s"],
    ] {
        let run = cp.weft(args).await.failed();
        assert!(
            run.stderr.contains("no live statistics") && run.stderr.contains("404"),
            "weft {args:?}: {}",
            run.stderr
        );
    }
    let run = cp.weft(&["stat", "gizmos"]).await.failed();
    assert!(
        run.stderr
            .contains("weft stat shows services, workloads or routes, not \"gizmos\""),
        "{}",
        run.stderr
    );
    let run = cp.weft(&["stat", "edges"]).await.failed();
    assert!(run.stderr.contains("`weft edges`"), "{}", run.stderr);
    let run = cp.weft(&["stat", "services", "--window", "10m"]).await;
    assert_eq!(run.code, 2, "clap refuses the window: {}", run.stderr);
    assert!(run.stderr.contains("from 1s to 5m"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_control_plane_is_named_with_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let ca = weft_tls::ca::Authority::generate("cluster.local", std::time::Duration::from_secs(60))
        .unwrap();
    let ca_file = home.path().join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    tls_api::configure_ca(home.path(), &ca_file);
    // Port 1 on loopback: nothing listens there.
    let run = weft(
        home.path(),
        &["get", "svc", "--control-plane", "https://127.0.0.1:1"],
    )
    .await
    .failed();
    assert!(
        run.stderr
            .contains("cannot reach the control plane at https://127.0.0.1:1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_address_comes_from_the_config_file() {
    let cp = ControlPlane::start().await;
    let config = cp.home.path().join(".config/weft/config.yaml");
    let with_ca = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{with_ca}controlPlane: {}\n", cp.url())).unwrap();
    cp.put(
        json!({"apiVersion": "weft.dev/v1alpha1", "kind": "Mesh", "metadata": {"name": "default"},
                  "spec": {"trustDomain": "weft.local"}}),
    )
    .await;
    let run = weft(cp.home.path(), &["get", "meshes"]).await.ok();
    assert!(run.stdout.contains("weft.local"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_validates_offline_and_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "web.yaml", WEB);
    let bad = write(dir.path(), "workload.yaml", BAD_WORKLOAD);
    let ok = weft(dir.path(), &["check", "-f", &good]).await.ok();
    assert_eq!(ok.stdout, "ok: 2 objects\n");
    let failed = weft(dir.path(), &["check", "-f", &good, "-f", &bad])
        .await
        .failed();
    assert!(
        failed
            .stderr
            .contains("workload.yaml: document 0 (Workload default/web-1): spec"),
        "{}",
        failed.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_service_shows_its_endpoints_and_routes() {
    let cp = ControlPlane::start().await;
    cp.put(json!({"apiVersion": "weft.dev/v1alpha1", "kind": "Service",
                  "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}}))
        .await;
    cp.put(
        json!({"apiVersion": "weft.dev/v1alpha1", "kind": "Workload",
                  "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
                  "spec": {"address": "127.0.0.10", "serviceAccount": "web"}}),
    )
    .await;
    cp.put(
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                  "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"parentRefs": [{"name": "web"}], "rules": []}}),
    )
    .await;
    let key = |kind, name: &str| Key {
        kind,
        namespace: "default".into(),
        name: name.into(),
    };
    cp.store
        .put_status(
            &key(Kind::Workload, "web-1"),
            json!({"phase": "Healthy"}),
            Precondition::None,
        )
        .await
        .unwrap();
    cp.store
        .put_status(
            &key(Kind::HttpRoute, "web"),
            json!({"parents": [{"conditions": [{"type": "Accepted", "status": "True"}]}]}),
            Precondition::None,
        )
        .await
        .unwrap();

    let run = cp.weft(&["describe", "svc", "web"]).await.ok();
    assert!(
        run.stdout.contains("web-1   127.0.0.10   Healthy"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("HTTPRoute default/web"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Accepted=True"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_proxy_puts_the_nack_first_and_404s_unknown_proxies() {
    let cp = ControlPlane::start().await;
    let run = cp.weft(&["inspect", "proxy", "web-1"]).await.ok();
    assert!(
        run.stdout
            .starts_with("NACK: the proxy refused weft.proxy.v1.RouteTable"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("web.default: bad regex"),
        "{}",
        run.stdout
    );
    let raw = cp
        .weft(&["inspect", "proxy", "web-1", "-o", "json"])
        .await
        .ok();
    let document: Value = serde_json::from_str(&raw.stdout).unwrap();
    assert!(document["config"].is_object());
    let missing = cp.weft(&["inspect", "proxy", "nope"]).await.failed();
    assert!(
        missing
            .stderr
            .contains("no proxy for workload default/nope"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn proxy_check_accepts_a_bootstrap_without_a_control_plane_and_names_what_is_wrong_otherwise()
{
    let home = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/run-a-mesh/web.yaml");
    let run = weft(
        home.path(),
        &["proxy", "--check", "--config", example.to_str().unwrap()],
    )
    .await
    .ok();
    assert!(
        run.stdout.contains("valid as a bootstrap") && run.stdout.contains("--control-plane"),
        "{}",
        run.stdout
    );
    let broken = home.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "workload: { name: web, address: 127.0.0.1 }\nsettings: { idleTimeout: 100000000h }\n",
    )
    .unwrap();
    let run = weft(
        home.path(),
        &["proxy", "--check", "--config", broken.to_str().unwrap()],
    )
    .await
    .failed();
    assert!(
        run.stderr
            .contains("settings.idleTimeout: 100000000h is longer than the maximum, 24h"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_proxy_without_a_usable_control_plane_ca_stops_with_the_reason() {
    let home = tempfile::tempdir().unwrap();
    let bootstrap = home.path().join("bootstrap.yaml");
    std::fs::write(
        &bootstrap,
        "workload: { name: web, serviceAccount: web, address: 127.0.0.1 }\n\
         listeners: { admin: '127.0.0.1:0', metrics: null, hbone: null, outboundCapture: null }\n",
    )
    .unwrap();
    let missing = home.path().join("no-such-ca.crt");
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        weft(
            home.path(),
            &[
                "proxy",
                "--config",
                bootstrap.to_str().unwrap(),
                "--control-plane",
                "https://127.0.0.1:1",
                "--control-plane-ca",
                missing.to_str().unwrap(),
                "--state-dir",
                home.path().join("state").to_str().unwrap(),
            ],
        ),
    )
    .await
    .expect("the proxy stops instead of retrying")
    .failed();
    assert!(
        run.stderr.contains("cannot use the control plane")
            && run
                .stderr
                .contains(&format!("control-plane CA {}", missing.display())),
        "{}",
        run.stderr
    );
    let run = weft(
        home.path(),
        &[
            "proxy",
            "--config",
            bootstrap.to_str().unwrap(),
            "--control-plane",
            "http://127.0.0.1:1",
        ],
    )
    .await
    .failed();
    assert!(
        run.stderr
            .contains("the control plane serves TLS only; use https://"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_proxy_that_cannot_bind_lists_every_conflicting_listener_and_how_to_move_them() {
    let home = tempfile::tempdir().unwrap();
    // Two ports another process already holds: the admin port and an outbound listener.
    let taken_admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_outbound = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (admin, outbound) = (
        taken_admin.local_addr().unwrap(),
        taken_outbound.local_addr().unwrap(),
    );
    let config = home.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "workload: {{ name: web, address: 127.0.0.1 }}\n\
             listeners: {{ admin: '{admin}', metrics: null, hbone: null, outboundCapture: null }}\n\
             outbound: [{{ listen: '{outbound}', service: api, port: 80 }}]\n\
             services:\n  - name: api\n    ports: [{{ port: 80 }}]\n    endpoints: [{{ address: 127.0.0.2 }}]\n"
        ),
    )
    .unwrap();
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        weft(
            home.path(),
            &["proxy", "--config", config.to_str().unwrap()],
        ),
    )
    .await
    .expect("the proxy stops instead of hanging")
    .failed();
    for expected in [
        "cannot bind 2 listeners".to_owned(),
        format!("listeners.admin on {admin}"),
        format!("outbound[].listen on {outbound}"),
        "listeners.portOffset".to_owned(),
    ] {
        assert!(
            run.stderr.contains(&expected),
            "missing {expected:?} in:\n{}",
            run.stderr
        );
    }
}
