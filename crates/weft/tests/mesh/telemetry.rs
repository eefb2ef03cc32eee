//! Golden metrics through `weft apply` and real proxies: each request counted on both
//! sides under who called whom (workload, namespace, identity), the route rule that
//! sent it, its status and class, and the real connection security; and request
//! paths never becoming series.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use weft_testkit::client::{self, Http1Client};

use crate::harness::control_plane::ControlPlane;
use crate::harness::{eventually, Host, Mesh, Proxy};

pub(crate) struct Setup {
    pub(crate) mesh: Mesh,
    pub(crate) cp: ControlPlane,
    pub(crate) server_host: Host,
    pub(crate) client_host: Host,
    pub(crate) listen: SocketAddr,
    _proxies: Vec<Proxy>,
    _app: weft_testkit::echo::Server,
}

/// `echo-v1` serving `echo`, and `frontend` with a listener to `echo:80`, both in
/// namespace `default` under a control plane.
pub(crate) async fn setup() -> Setup {
    let mesh = Mesh::new();
    let server_host = mesh.host("server");
    let client_host = mesh.host("frontend");
    let cp = mesh.control_plane().await;
    let (app, server) = mesh.meshed_echo(&cp, &server_host, "v1").await;
    let client = frontend(&mesh, &cp, &client_host, "echo", 80).await;
    cp.apply(&mesh, "services", &mesh.echo_services()).await;
    Setup {
        listen: mesh.listen(&client_host),
        mesh,
        cp,
        server_host,
        client_host,
        _proxies: vec![server, client],
        _app: app,
    }
}

/// The `frontend` workload's proxy on `host`, with a listener to `service:port`.
async fn frontend(mesh: &Mesh, cp: &ControlPlane, host: &Host, service: &str, port: u16) -> Proxy {
    let files = mesh
        .meshed(
            cp,
            host,
            "frontend",
            &[("app", "frontend")],
            &[],
            &[(mesh.ports.listen, service, port)],
        )
        .await;
    mesh.meshed_proxy(cp, host, &files).await
}

pub(crate) async fn metrics(mesh: &Mesh, host: &Host) -> String {
    let req = http::Request::get("/metrics")
        .header("host", "metrics")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = client::http1_request(mesh.metrics(host), req)
        .await
        .expect("metrics");
    String::from_utf8_lossy(resp.body()).into_owned()
}

/// The count of the one series of `metric` whose labels include every `labels` pair.
pub(crate) fn value(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<u64> {
    number(text, metric, labels).map(|n| n as u64)
}

/// The value of the one series of `metric` whose labels include every `labels` pair.
pub(crate) fn number(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((set, number)) = rest.rsplit_once("} ") else {
            continue;
        };
        if labels
            .iter()
            .all(|(k, v)| set.split(',').any(|pair| pair == format!("{k}=\"{v}\"")))
        {
            assert!(
                found.is_none(),
                "more than one series of {metric} match {labels:?}:\n{text}"
            );
            found = number.trim().parse().ok();
        }
    }
    found
}

fn route() -> String {
    "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: echo-api }\n\
     spec:\n  parentRefs: [{ kind: Service, name: echo, port: 80 }]\n  rules:\n\
     \x20   - matches: [{ path: { type: PathPrefix, value: /api } }]\n\
     \x20     backendRefs: [{ name: echo, port: 80 }]\n\
     \x20   - backendRefs: [{ name: echo, port: 80 }]\n"
        .to_owned()
}

/// The status of `GET path` to `echo` through the listener at `listen` (0: no answer).
pub(crate) async fn get(listen: SocketAddr, path: &str) -> u16 {
    client::http1_get(listen, "echo", path)
        .await
        .map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_proxies_count_each_request_by_peer_route_and_status_over_mutual_tls() {
    let s = setup().await;
    s.cp.apply(&s.mesh, "route", &route()).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(s.listen, "/api/warm").await == 200
                && value(
                    &metrics(&s.mesh, &s.client_host).await,
                    "weft_proxy_route_requests_total",
                    &[("route", "HTTPRoute/default/echo-api")],
                )
                .is_some()
        })
        .await,
        "the route never reached the client proxy"
    );
    let client_before = metrics(&s.mesh, &s.client_host).await;
    let server_before = metrics(&s.mesh, &s.server_host).await;
    for _ in 0..5 {
        assert_eq!(get(s.listen, "/api/items").await, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(s.listen, "/other").await, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(s.listen, "/status/503").await, 503);
    }
    let delta = |after: &str, before: &str, metric: &str, labels: &[(&str, &str)]| {
        value(after, metric, labels).unwrap_or(0) - value(before, metric, labels).unwrap_or(0)
    };
    // An exchange is recorded when its answer's body ends, which may be just after
    // the client read it: wait for all ten on both sides.
    let count = "weft_proxy_request_size_bytes_count";
    let settled = eventually(Duration::from_secs(5), || async {
        let client = metrics(&s.mesh, &s.client_host).await;
        let server = metrics(&s.mesh, &s.server_host).await;
        delta(&client, &client_before, count, &[("direction", "outbound")]) == 10
            && delta(&server, &server_before, count, &[("direction", "inbound")]) == 10
    })
    .await;
    let client = metrics(&s.mesh, &s.client_host).await;
    let server = metrics(&s.mesh, &s.server_host).await;
    assert!(
        settled,
        "not every exchange was recorded\n{client}\n{server}"
    );

    // The client side: this workload to the endpoint that answered, proven by mTLS.
    let outbound = [
        ("direction", "outbound"),
        ("source_workload", "frontend"),
        ("source_namespace", "default"),
        (
            "source_identity",
            "spiffe://cluster.local/ns/default/sa/frontend",
        ),
        ("destination_workload", "echo-v1"),
        ("destination_namespace", "default"),
        ("destination_service", "echo.default"),
        (
            "destination_identity",
            "spiffe://cluster.local/ns/default/sa/echo-v1",
        ),
        ("connection_security", "mutual_tls"),
    ];
    let with = |base: &[(&'static str, &'static str)], more: &[(&'static str, &'static str)]| {
        base.iter().chain(more).copied().collect::<Vec<_>>()
    };
    let ok = with(&outbound, &[("status", "200"), ("response_class", "2xx")]);
    let failed = with(&outbound, &[("status", "503"), ("response_class", "5xx")]);
    assert_eq!(
        delta(&client, &client_before, "weft_proxy_requests_total", &ok),
        8,
        "{client}"
    );
    assert_eq!(
        delta(
            &client,
            &client_before,
            "weft_proxy_requests_total",
            &failed
        ),
        2,
        "{client}"
    );
    // Latency per destination endpoint, every answer.
    let histogram = [
        ("direction", "outbound"),
        ("destination_service", "echo.default"),
        ("destination_workload", "echo-v1"),
    ];
    assert_eq!(
        delta(
            &client,
            &client_before,
            "weft_proxy_request_duration_seconds_count",
            &histogram
        ),
        10,
        "{client}"
    );

    // Body sizes by destination service (outbound) and workload (inbound): the echo's
    // answers are JSON reports of what it received, so never empty.
    let sized = [
        ("direction", "outbound"),
        ("destination_service", "echo.default"),
        ("destination_workload", ""),
    ];
    let sent = number(&client, "weft_proxy_response_size_bytes_sum", &sized).unwrap_or(0.0)
        - number(&client_before, "weft_proxy_response_size_bytes_sum", &sized).unwrap_or(0.0);
    let answered = number(
        &server,
        "weft_proxy_response_size_bytes_sum",
        &[("direction", "inbound")],
    )
    .unwrap_or(0.0)
        - number(
            &server_before,
            "weft_proxy_response_size_bytes_sum",
            &[("direction", "inbound")],
        )
        .unwrap_or(0.0);
    assert!(
        sent > 10.0 * 50.0,
        "ten echo reports: {sent} bytes\n{client}"
    );
    assert!(
        (sent - answered).abs() < f64::EPSILON,
        "both sides saw the same response bytes: {sent} and {answered}"
    );

    // By route rule: /api by rule 0, the rest by rule 1, each to the backend it chose.
    let rule = |i: &'static str, status: &'static str| {
        vec![
            ("route", "HTTPRoute/default/echo-api"),
            ("route_rule", i),
            ("destination_service", "echo.default"),
            ("status", status),
        ]
    };
    let route_delta = |labels: &[(&str, &str)]| {
        delta(
            &client,
            &client_before,
            "weft_proxy_route_requests_total",
            labels,
        )
    };
    assert_eq!(route_delta(&rule("0", "200")), 5, "{client}");
    assert_eq!(route_delta(&rule("1", "200")), 3, "{client}");
    assert_eq!(route_delta(&rule("1", "503")), 2, "{client}");

    // The server side: the caller as its certificate proved it, to this workload.
    let inbound = [
        ("direction", "inbound"),
        ("source_namespace", "default"),
        (
            "source_identity",
            "spiffe://cluster.local/ns/default/sa/frontend",
        ),
        ("destination_workload", "echo-v1"),
        ("destination_namespace", "default"),
        (
            "destination_identity",
            "spiffe://cluster.local/ns/default/sa/echo-v1",
        ),
        ("connection_security", "mutual_tls"),
    ];
    let ok = with(&inbound, &[("status", "200")]);
    let failed = with(&inbound, &[("status", "503")]);
    assert_eq!(
        delta(&server, &server_before, "weft_proxy_requests_total", &ok),
        8,
        "{server}"
    );
    assert_eq!(
        delta(
            &server,
            &server_before,
            "weft_proxy_requests_total",
            &failed
        ),
        2,
        "{server}"
    );
    assert!(
        !server.contains("weft_proxy_route_requests_total{"),
        "routes are the client's: the server side has none\n{server}"
    );

    // The HBONE connection both counted: dialled by the client, accepted by the server.
    let handshakes = "weft_proxy_hbone_handshakes_total";
    let dialled = [("direction", "outbound"), ("result", "ok")];
    let accepted = [("direction", "inbound"), ("result", "ok")];
    assert!(
        value(&client, handshakes, &dialled).unwrap_or(0) >= 1,
        "{client}"
    );
    assert!(
        value(&server, handshakes, &accepted).unwrap_or(0) >= 1,
        "{server}"
    );
}

/// The status of a GET of `path` on the keep-alive connection `conn`.
async fn send(conn: &mut Http1Client, path: String) -> u16 {
    let req = http::Request::get(path)
        .header("host", "echo")
        .body(Empty::<Bytes>::new())
        .expect("request");
    conn.send(req).await.map_or(0, |r| r.status().as_u16())
}

/// Series in a metrics text (lines that are not comments).
fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_distinct_paths_add_no_series_on_either_side() {
    let s = setup().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(s.listen, "/warm").await == 200
        })
        .await,
        "the mesh never served"
    );
    let mut conn = Http1Client::connect(s.listen).await.expect("connect");
    for i in 0..10 {
        assert_eq!(send(&mut conn, format!("/first/{i}")).await, 200);
    }
    let client_before = series(&metrics(&s.mesh, &s.client_host).await);
    let server_before = series(&metrics(&s.mesh, &s.server_host).await);
    for i in 0..10_000 {
        assert_eq!(
            send(&mut conn, format!("/p/{i}?q={i}")).await,
            200,
            "request {i}"
        );
    }
    let client = metrics(&s.mesh, &s.client_host).await;
    let server = metrics(&s.mesh, &s.server_host).await;
    assert_eq!(series(&client), client_before, "client side:\n{client}");
    assert_eq!(series(&server), server_before, "server side:\n{server}");
    assert!(
        !client.contains("/p/") && !server.contains("/p/"),
        "a path became a label"
    );
}

/// `GET /metrics` on the control plane's API with its admin token, over its TLS.
pub(crate) async fn control_plane_metrics(cp: &ControlPlane) -> String {
    let token = cp.admin_token().expect("an admin token");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--fail-with-body", "--cacert"])
        .arg(cp.ca_file())
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("https://{}/metrics", cp.api()))
        .output()
        .await
        .expect("curl runs");
    assert!(
        out.status.success(),
        "GET /metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_counts_proxies_pushes_acks_store_writes_and_certificates() {
    let s = setup().await;
    s.cp.apply(&s.mesh, "route", &route()).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(s.listen, "/api/warm").await == 200
        })
        .await,
        "the mesh never served"
    );
    let text = control_plane_metrics(&s.cp).await;
    let at_least = |metric: &str, labels: &[(&str, &str)], n: u64| {
        let got = value(&text, metric, labels).unwrap_or(0);
        assert!(
            got >= n,
            "{metric}{labels:?} is {got}, not at least {n}:\n{text}"
        );
    };
    // Two proxies: the echo app's and the frontend's.
    let connected = text
        .lines()
        .find_map(|l| l.strip_prefix("weft_control_proxies_connected "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert_eq!(connected, Some(2), "{text}");
    for t in ["Service", "RouteTable", "InboundPolicy"] {
        at_least("weft_control_xds_pushes_total", &[("type", t)], 1);
        at_least(
            "weft_control_xds_replies_total",
            &[("type", t), ("result", "ack")],
            1,
        );
        at_least(
            "weft_control_xds_push_reply_duration_seconds_count",
            &[("type", t)],
            1,
        );
    }
    at_least(
        "weft_control_store_writes_total",
        &[("op", "apply"), ("result", "ok")],
        2,
    );
    at_least(
        "weft_control_store_write_duration_seconds_count",
        &[("op", "apply")],
        2,
    );
    at_least(
        "weft_control_certificate_requests_total",
        &[("result", "issued")],
        2,
    );
    assert_eq!(
        value(
            &text,
            "weft_control_xds_replies_total",
            &[("result", "nack")]
        ),
        None,
        "no proxy refused anything:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_and_bytes_are_counted_by_the_peers_they_joined() {
    let mesh = Mesh::new();
    let server_host = mesh.host("server");
    let client_host = mesh.host("frontend");
    let cp = mesh.control_plane().await;
    let tcp_port = mesh.port();
    let _app = weft_testkit::echo::spawn_tcp(server_host.addr(tcp_port), "raw")
        .await
        .expect("tcp echo");
    let files = mesh
        .meshed(
            &cp,
            &server_host,
            "raw",
            &[("app", "raw")],
            &[(tcp_port, "tcp")],
            &[],
        )
        .await;
    let _server = mesh.meshed_proxy(&cp, &server_host, &files).await;
    let _client = frontend(&mesh, &cp, &client_host, "raw", 90).await;
    let listen = mesh.listen(&client_host);
    cp.apply(
        &mesh,
        "raw",
        &format!(
            "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: {{ name: raw }}\n\
             spec:\n  selector: {{ app: raw }}\n  ports: [{{ port: 90, targetPort: {tcp_port}, protocol: tcp }}]\n"
        ),
    )
    .await;
    let payload = vec![b'x'; 1000];
    assert!(
        eventually(Duration::from_secs(10), || async {
            client::tcp_roundtrip(listen, &payload)
                .await
                .ok()
                .as_deref()
                == Some(&payload[..])
        })
        .await,
        "the frontend never reached the tcp app"
    );
    // Closed connections are counted once both proxies have let go of them.
    let outbound = [
        ("direction", "outbound"),
        ("source_workload", "frontend"),
        ("destination_workload", "raw"),
        ("destination_service", "raw.default"),
        (
            "destination_identity",
            "spiffe://cluster.local/ns/default/sa/raw",
        ),
        ("connection_security", "mutual_tls"),
        ("protocol", "tcp"),
    ];
    let inbound = [
        ("direction", "inbound"),
        (
            "source_identity",
            "spiffe://cluster.local/ns/default/sa/frontend",
        ),
        ("destination_workload", "raw"),
        ("connection_security", "mutual_tls"),
        ("protocol", "tcp"),
    ];
    assert!(
        eventually(Duration::from_secs(5), || async {
            let client = metrics(&mesh, &client_host).await;
            let server = metrics(&mesh, &server_host).await;
            value(&client, "weft_proxy_tcp_bytes_total", &outbound).unwrap_or(0) >= 2000
                && value(&server, "weft_proxy_tcp_bytes_total", &inbound).unwrap_or(0) >= 2000
                && value(&server, "weft_proxy_connections_closed_total", &inbound).unwrap_or(0) >= 1
        })
        .await,
        "bytes and closed connections by peer:\n{}\n{}",
        metrics(&mesh, &client_host).await,
        metrics(&mesh, &server_host).await
    );
}
