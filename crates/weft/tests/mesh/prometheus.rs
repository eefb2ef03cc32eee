//! The observability examples (`examples/observability/`) against a live mesh: a real
//! Prometheus, on the example scrape configuration, scrapes both proxies and the
//! control plane (over TLS, with a read-only operator token) and counts each request
//! the mesh carried by caller, service, endpoint and route rule, exactly as sent; every
//! dashboard and rule query evaluates on what it scraped; and the dashboards and rules
//! name only metrics and labels the proxies and the control plane expose.
//!
//! Prometheus is `$WEFT_PROMETHEUS`, else the first `prometheus` on `PATH` (Debian's
//! package; `.ci/run` installs it); without it the Prometheus test is skipped with a
//! message, unless `WEFT_E2E=required`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use weft_testkit::client;
use weft_testkit::process::Child;

use crate::harness::control_plane::ControlPlane;
use crate::harness::{eventually, Host, Mesh, Proxy};
use crate::observability;

/// How long Prometheus may take to start, and to scrape after the last request.
const PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the example configuration expects the files it names.
const INSTALLED: &str = "/etc/prometheus/weft/";

const ROUTE: &str = "HTTPRoute/default/echo-api";

struct Setup {
    mesh: Mesh,
    cp: ControlPlane,
    server_host: Host,
    client_host: Host,
    /// The frontend's listener to `echo:80`.
    listen: SocketAddr,
    /// The frontend's listener to `raw:90` (a TCP service only one test starts).
    tcp_listen: SocketAddr,
    _proxies: Vec<Proxy>,
    _app: weft_testkit::echo::Server,
}

/// `echo-v1` serving `echo` through the HTTPRoute `echo-api` (`/api` by rule 0, the
/// rest by rule 1), and `frontend` with listeners to `echo:80` and `raw:90`.
async fn setup() -> Setup {
    let mesh = Mesh::new();
    let server_host = mesh.host("server");
    let client_host = mesh.host("frontend");
    let cp = mesh.control_plane().await;
    let (app, server) = mesh.meshed_echo(&cp, &server_host, "v1").await;
    let tcp_port = mesh.port();
    let files = mesh
        .meshed(
            &cp,
            &client_host,
            "frontend",
            &[("app", "frontend")],
            &[],
            &[(mesh.ports.listen, "echo", 80), (tcp_port, "raw", 90)],
        )
        .await;
    let client = mesh.meshed_proxy(&cp, &client_host, &files).await;
    cp.apply(&mesh, "services", &mesh.echo_services()).await;
    cp.apply(&mesh, "route", ROUTE_YAML).await;
    Setup {
        listen: mesh.listen(&client_host),
        tcp_listen: client_host.addr(tcp_port),
        mesh,
        cp,
        server_host,
        client_host,
        _proxies: vec![server, client],
        _app: app,
    }
}

const ROUTE_YAML: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
     metadata: { name: echo-api }\n\
     spec:\n  parentRefs: [{ kind: Service, name: echo, port: 80 }]\n  rules:\n\
     \x20   - matches: [{ path: { type: PathPrefix, value: /api } }]\n\
     \x20     backendRefs: [{ name: echo, port: 80 }]\n\
     \x20   - backendRefs: [{ name: echo, port: 80 }]\n";

async fn get(listen: SocketAddr, path: &str) -> u16 {
    client::http1_get(listen, "echo", path)
        .await
        .map_or(0, |r| r.status().as_u16())
}

use crate::telemetry::{control_plane_metrics, metrics};

/// Sends requests until the frontend counts by the route.
async fn warm_up(s: &Setup) {
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(s.listen, "/api/warm").await == 200
                && metrics(&s.mesh, &s.client_host)
                    .await
                    .contains(&format!("route=\"{ROUTE}\""))
        })
        .await,
        "the route never reached the frontend's proxy"
    );
}

// === Prometheus ===

/// A `prometheus` process on a free loopback port, its data in a scratch directory;
/// killed when dropped (its log tail printed if the test failed).
struct Prometheus {
    addr: SocketAddr,
    _process: Child,
}

/// One sample of an instant vector.
#[derive(Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Prometheus {
    /// Starts `binary` on `<dir>/prometheus.yml`; waits for `/-/ready`.
    async fn start(binary: &Path, dir: &Path) -> Prometheus {
        let addr = SocketAddr::from(([127, 0, 0, 1], weft_testkit::ports::free_loopback_port()));
        let mut command = Command::new(binary);
        command
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            // Timestamps in UTC whatever the machine's zone.
            .env("TZ", "UTC");
        let mut process = Child::spawn(command, "prometheus").expect("prometheus starts");
        let deadline = tokio::time::Instant::now() + PROMETHEUS_TIMEOUT;
        loop {
            let ready = client::http1_get(addr, "prometheus", "/-/ready").await;
            if ready.is_ok_and(|r| r.status() == http::StatusCode::OK) {
                return Prometheus {
                    addr,
                    _process: process,
                };
            }
            if let Some(status) = process.try_wait().expect("wait for prometheus") {
                panic!("prometheus exited with {status}:\n{}", process.logs());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus not ready within {PROMETHEUS_TIMEOUT:?}:\n{}",
                process.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The instant vector `promql` evaluates to now, or Prometheus's error.
    async fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        self.query_at(promql, None).await
    }

    /// The instant vector `promql` evaluates to at `time` (Unix seconds; now if
    /// `None`), or Prometheus's error.
    async fn query_at(&self, promql: &str, time: Option<f64>) -> Result<Vec<Sample>, String> {
        let mut path = format!("/api/v1/query?query={}", percent_encoded(promql));
        if let Some(time) = time {
            let _ = write!(path, "&time={time:.3}");
        }
        let resp = client::http1_get(self.addr, "prometheus", &path)
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_slice(resp.body()).map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        let data = &body["data"];
        if data["resultType"] == "scalar" {
            return Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: number(&data["result"][1]),
            }]);
        }
        Ok(data["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|series| Sample {
                labels: serde_json::from_value(series["metric"].clone()).unwrap_or_default(),
                value: number(&series["value"][1]),
            })
            .collect())
    }

    /// [`Prometheus::query_at`] as `labels` values → value; fails the test on an error.
    async fn by_at(
        &self,
        promql: &str,
        labels: &[&str],
        time: Option<f64>,
    ) -> BTreeMap<Vec<String>, f64> {
        let samples = self
            .query_at(promql, time)
            .await
            .unwrap_or_else(|e| panic!("{promql}: {e}"));
        samples
            .into_iter()
            .map(|s| {
                let key = labels
                    .iter()
                    .map(|l| s.labels.get(*l).cloned().unwrap_or_default())
                    .collect();
                (key, s.value)
            })
            .collect()
    }

    /// [`Prometheus::by_at`] now.
    async fn by(&self, promql: &str, labels: &[&str]) -> BTreeMap<Vec<String>, f64> {
        self.by_at(promql, labels, None).await
    }

    /// How much each series of `promql` (by `labels`) grew since `time`: those that did
    /// not grow left out, those new since then counted from zero.
    async fn growth_since(
        &self,
        time: f64,
        promql: &str,
        labels: &[&str],
    ) -> BTreeMap<Vec<String>, f64> {
        let before = self.by_at(promql, labels, Some(time)).await;
        let mut now = self.by(promql, labels).await;
        for (key, value) in &mut now {
            *value -= before.get(key).copied().unwrap_or(0.0);
        }
        now.retain(|_, grown| *grown != 0.0);
        now
    }

    /// Waits until Prometheus has scraped all three targets since `time` (a sample's
    /// timestamp is when its scrape started).
    async fn scraped_since(&self, time: f64) {
        let scraped = eventually(PROMETHEUS_TIMEOUT, || async {
            self.query("timestamp(up)")
                .await
                .is_ok_and(|up| up.len() == 3 && up.iter().all(|s| s.value > time))
        })
        .await;
        assert!(
            scraped,
            "Prometheus did not scrape all three targets within {PROMETHEUS_TIMEOUT:?}: {:?}",
            self.query("timestamp(up)").await
        );
    }
}

/// A sample value as Prometheus's JSON gives it (a string).
fn number(value: &Value) -> f64 {
    value
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `text` for a URL's query string.
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Installs the example configuration in `dir` as its comments say to, for this mesh:
/// its rules, the two proxies as file_sd targets, the control plane's CA, and `token`;
/// the control plane job pointed at this one, and every interval 1 s.
fn install(dir: &Path, cp: &ControlPlane, proxies: &[SocketAddr], token: &str) {
    let example = std::fs::read_to_string(observability::dir().join("prometheus.yml")).unwrap();
    let text = example.replace(INSTALLED, &format!("{}/", dir.display()));
    let mut config: Value = serde_saphyr::from_str(&text).unwrap();
    for interval in ["scrape_interval", "scrape_timeout", "evaluation_interval"] {
        config["global"][interval] = json!("1s");
    }
    let jobs = config["scrape_configs"].as_array_mut().unwrap();
    let control_plane = jobs
        .iter_mut()
        .find(|job| job["job_name"] == "weft-control-plane")
        .expect("a weft-control-plane job in prometheus.yml");
    control_plane["static_configs"] = json!([{ "targets": [cp.api().to_string()] }]);
    std::fs::write(
        dir.join("prometheus.yml"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();

    std::fs::copy(
        observability::dir().join("rules.yml"),
        dir.join("rules.yml"),
    )
    .unwrap();
    std::fs::create_dir(dir.join("proxies")).unwrap();
    let targets: Vec<String> = proxies.iter().map(ToString::to_string).collect();
    std::fs::write(
        dir.join("proxies/mesh.yml"),
        json!([{ "targets": targets }]).to_string(),
    )
    .unwrap();
    std::fs::copy(cp.ca_file(), dir.join("ca.crt")).unwrap();
    std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
}

/// A read-only operator token, as the example's comments say to make one.
async fn read_only_token(cp: &ControlPlane) -> String {
    let (ok, out) = cp
        .cli(&[
            "token",
            "admin",
            "create",
            "prometheus",
            "--role",
            "read-only",
        ])
        .await;
    assert!(ok, "weft token admin create: {out}");
    out.lines()
        .find(|l| l.starts_with("weft-read-"))
        .unwrap_or_else(|| panic!("no read-only token in:\n{out}"))
        .to_owned()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn key(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_on_the_example_config_counts_each_request_by_caller_service_and_route() {
    let test = "prometheus_on_the_example_config_counts_each_request_by_caller_service_and_route";
    let binary = match observability::executable("WEFT_PROMETHEUS", "prometheus") {
        Ok(binary) => binary,
        Err(why) => {
            weft_testkit::wait::skip(test, &why);
            return;
        }
    };
    let s = setup().await;
    let dir = weft_testkit::tempdir().unwrap();
    let token = read_only_token(&s.cp).await;
    install(
        dir.path(),
        &s.cp,
        &[
            s.mesh.metrics(&s.client_host),
            s.mesh.metrics(&s.server_host),
        ],
        &token,
    );
    let prometheus = Prometheus::start(&binary, dir.path()).await;
    warm_up(&s).await;
    // What the warm-up left, scraped: the counts below are what grew since.
    prometheus.scraped_since(unix_now()).await;
    let before = unix_now();

    for _ in 0..5 {
        assert_eq!(get(s.listen, "/api/items").await, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(s.listen, "/other").await, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(s.listen, "/status/503").await, 503);
    }
    prometheus.scraped_since(unix_now()).await;

    assert_eq!(
        prometheus.by("sum by (job) (up)", &["job"]).await,
        BTreeMap::from([
            (key(&["weft-control-plane"]), 1.0),
            (key(&["weft-proxy"]), 2.0)
        ]),
        "every target answers, the control plane to the read-only token over TLS"
    );

    // Ten requests, counted by the caller's proxy…
    let outbound = prometheus
        .growth_since(
            before,
            r#"sum by (source_workload, destination_service, destination_workload, connection_security) (weft_proxy_requests_total{direction="outbound"})"#,
            &[
                "source_workload",
                "destination_service",
                "destination_workload",
                "connection_security",
            ],
        )
        .await;
    assert_eq!(
        outbound,
        BTreeMap::from([(
            key(&["frontend", "echo.default", "echo-v1", "mutual_tls"]),
            10.0
        )])
    );
    let success = prometheus
        .by(
            &format!(
                r#"(sum by (source_workload) (weft_proxy_requests_total{{direction="outbound", destination_service="echo.default", response_class!="5xx"}})
                    - sum by (source_workload) (weft_proxy_requests_total{{direction="outbound", destination_service="echo.default", response_class!="5xx"}} @ {before:.3}))
                 / (sum by (source_workload) (weft_proxy_requests_total{{direction="outbound", destination_service="echo.default"}})
                    - sum by (source_workload) (weft_proxy_requests_total{{direction="outbound", destination_service="echo.default"}} @ {before:.3}))"#
            ),
            &["source_workload"],
        )
        .await;
    assert_eq!(success, BTreeMap::from([(key(&["frontend"]), 0.8)]));
    // …and by the server's, under the caller's proven identity…
    let inbound = prometheus
        .growth_since(
            before,
            r#"sum by (source_identity, destination_workload, response_class) (weft_proxy_requests_total{direction="inbound"})"#,
            &["source_identity", "destination_workload", "response_class"],
        )
        .await;
    let frontend = "spiffe://cluster.local/ns/default/sa/frontend";
    assert_eq!(
        inbound,
        BTreeMap::from([
            (key(&[frontend, "echo-v1", "2xx"]), 8.0),
            (key(&[frontend, "echo-v1", "5xx"]), 2.0)
        ])
    );
    // …and by the route rule that sent each one, timed by it too.
    let routes = prometheus
        .growth_since(
            before,
            "sum by (route, route_rule, destination_service, status) (weft_proxy_route_requests_total)",
            &["route", "route_rule", "destination_service", "status"],
        )
        .await;
    assert_eq!(
        routes,
        BTreeMap::from([
            (key(&[ROUTE, "0", "echo.default", "200"]), 5.0),
            (key(&[ROUTE, "1", "echo.default", "200"]), 3.0),
            (key(&[ROUTE, "1", "echo.default", "503"]), 2.0),
        ])
    );
    let timed = prometheus
        .growth_since(
            before,
            "sum by (route_rule) (weft_proxy_route_request_duration_seconds_count)",
            &["route_rule"],
        )
        .await;
    assert_eq!(
        timed,
        BTreeMap::from([(key(&["0"]), 5.0), (key(&["1"]), 5.0)])
    );
    // The control plane's own metrics: both proxies on their xDS streams.
    assert_eq!(
        prometheus
            .by(
                r#"weft_control_proxies_connected{job="weft-control-plane"}"#,
                &[]
            )
            .await,
        BTreeMap::from([(key(&[]), 2.0)])
    );

    // Every dashboard and rule query evaluates on what Prometheus scraped: no
    // many-to-many matches, no errors that only evaluation finds.
    let variables = [
        ("service", "echo.default"),
        ("workload", "echo-v1"),
        ("instance", ".+"),
    ];
    let mut failed = Vec::new();
    let queries = observability::dashboard_queries(&variables);
    for query in queries.iter().chain(&observability::rule_queries()) {
        if let Err(e) = prometheus.query(&query.expr).await {
            failed.push(format!("{}: {e}\n  {}", query.origin, query.expr));
        }
    }
    assert!(
        failed.is_empty(),
        "queries Prometheus refused:\n{}",
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_dashboards_and_rules_name_only_metrics_and_labels_the_mesh_exposes() {
    let s = setup().await;
    // `raw`, a TCP echo behind its proxy, so that TCP connections have series too.
    let raw_host = s.mesh.host("raw");
    let raw_port = s.mesh.port();
    let _raw = weft_testkit::echo::spawn_tcp(raw_host.addr(raw_port), "raw")
        .await
        .expect("tcp echo");
    let files = s
        .mesh
        .meshed(
            &s.cp,
            &raw_host,
            "raw",
            &[("app", "raw")],
            &[(raw_port, "tcp")],
            &[],
        )
        .await;
    let _raw_proxy = s.mesh.meshed_proxy(&s.cp, &raw_host, &files).await;
    s.cp.apply(
        &s.mesh,
        "raw",
        &format!(
            "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: raw }}\n\
             spec:\n  selector: {{ app: raw }}\n  ports: [{{ port: 90, targetPort: {raw_port}, protocol: tcp }}]\n"
        ),
    )
    .await;
    warm_up(&s).await;
    let payload = vec![b'x'; 100];
    assert!(
        eventually(Duration::from_secs(10), || async {
            client::tcp_roundtrip(s.tcp_listen, &payload).await.ok() == Some(payload.clone())
                && metrics(&s.mesh, &s.client_host)
                    .await
                    .contains("weft_proxy_tcp_bytes_total{")
                && metrics(&s.mesh, &raw_host)
                    .await
                    .contains("weft_proxy_tcp_bytes_total{")
        })
        .await,
        "no TCP bytes counted on both sides"
    );

    let mut exposed = BTreeMap::new();
    for text in [
        metrics(&s.mesh, &s.client_host).await,
        metrics(&s.mesh, &s.server_host).await,
        metrics(&s.mesh, &raw_host).await,
        control_plane_metrics(&s.cp).await,
    ] {
        for (name, labels) in observability::exposed(&text) {
            exposed
                .entry(name)
                .or_insert_with(BTreeSet::new)
                .extend(labels);
        }
    }
    for family in [
        "weft_proxy_requests_total",
        "weft_proxy_tcp_bytes_total",
        "weft_control_xds_pushes_total",
    ] {
        assert!(
            exposed.get(family).is_some_and(|labels| !labels.is_empty()),
            "no series of {family}: {exposed:?}"
        );
    }
    let mut queries = observability::dashboard_queries(&[]);
    queries.extend(observability::rule_queries());
    let problems = observability::misnamed(&queries, &exposed, &observability::recorded());
    assert!(
        problems.is_empty(),
        "names the mesh does not expose:\n{}\n\nwhat it exposes: {exposed:#?}",
        problems.join("\n")
    );
}
