//! Per-request routing and load balancing, measured at the apps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;
use weft_testkit::echo;

use crate::harness::{get, Mesh};

/// Sends `n` keep-alive GETs to the client's listener `listen` and counts answers by
/// the app that served them.
pub async fn tally(listen: SocketAddr, n: usize, path: &str) -> HashMap<String, usize> {
    let mut c = Http1Client::connect(listen).await.expect("connect");
    let mut counts = HashMap::new();
    for _ in 0..n {
        let req = http::Request::get(path)
            .header("host", "echo")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("req");
        let resp = c.send(req).await.expect("response");
        assert_eq!(resp.status(), 200, "{:?}", resp.body());
        let name = resp.headers()[echo::SERVER_HEADER]
            .to_str()
            .expect("name")
            .to_owned();
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_split_90_10_holds_over_1000_requests() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let _v1 = mesh.echo_workload(&v1, "v1").await;
    let _v2 = mesh.echo_workload(&v2, "v2").await;
    let services = format!(
        "{}{}{}",
        mesh.service("echo", 80, "http", &[]),
        mesh.service("echo-v1", 80, "http", &[mesh.endpoint(&v1, "echo")]),
        mesh.service("echo-v2", 80, "http", &[mesh.endpoint(&v2, "echo")]),
    );
    let cfg = mesh.client_config(
        &client,
        "client",
        &services,
        "routes:\n  - service: echo\n    rules:\n      - backends: [{ service: echo-v1, weight: 90 }, { service: echo-v2, weight: 10 }]\n",
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let counts = tally(mesh.listen(&client), 1000, "/split").await;
    let v2_share = counts.get("v2").copied().unwrap_or(0);
    // Binomial(1000, 0.1): mean 100, sd 9.5. ±4 sd keeps false failures below 1 in 10^4.
    assert!(
        (62..=138).contains(&v2_share),
        "v2 got {v2_share} of 1000: {counts:?}"
    );
    assert_eq!(counts.values().sum::<usize>(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_ewma_shifts_load_away_from_a_slow_endpoint() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let fast = mesh.host("fast");
    let slow = mesh.host("slow");
    let _af = echo::spawn_http(mesh.app(&fast), "fast")
        .await
        .expect("fast app");
    let _as = echo::spawn_http_slow(mesh.app(&slow), "slow", Duration::from_millis(40))
        .await
        .expect("slow app");
    let app_port = [(mesh.ports.app, "http")];
    let _pf = mesh
        .proxy(
            &fast,
            &mesh.write("fast", &mesh.identity_yaml(&fast, "echo", &app_port)),
        )
        .await;
    let _ps = mesh
        .proxy(
            &slow,
            &mesh.write("slow", &mesh.identity_yaml(&slow, "echo", &app_port)),
        )
        .await;
    let svc = mesh.service(
        "echo",
        80,
        "http",
        &[mesh.endpoint(&fast, "echo"), mesh.endpoint(&slow, "echo")],
    );
    let cfg = mesh.client_config(&client, "client", &svc, "");
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let counts = tally(mesh.listen(&client), 200, "/ewma").await;
    let slow_share = counts.get("slow").copied().unwrap_or(0);
    // Round robin would send 100 here; peak-EWMA learns after the first slow answer.
    assert!(
        slow_share <= 10,
        "slow endpoint got {slow_share} of 200: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_answers_504_without_waiting_for_the_app() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (_app, _sp) = mesh.echo_workload(&server, "echo").await;
    let svc = mesh.service("echo", 80, "http", &[mesh.endpoint(&server, "echo")]);
    let cfg = mesh.client_config(
        &client,
        "client",
        &svc,
        "routes:\n  - service: echo\n    rules:\n      - matches: [{ path: { prefix: /delay } }]\n        backends: [{ service: echo }]\n        timeout: 300ms\n      - backends: [{ service: echo }]\n",
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let started = Instant::now();
    let (status, _) = get(mesh.listen(&client), "/delay/3000").await;
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // The other rule has no timeout.
    assert_eq!(get(mesh.listen(&client), "/status/200").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_header_modifiers_edit_the_request_the_app_sees_and_the_response_the_client_gets() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let _server = mesh.echo_workload(&server, "echo").await;
    let svc = mesh.service("echo", 80, "http", &[mesh.endpoint(&server, "echo")]);
    let cfg = mesh.client_config(
        &client,
        "client",
        &svc,
        "routes:\n  - service: echo\n    rules:\n      - backends: [{ service: echo }]\n        \
         requestHeaders: { set: [[x-env, prod]], add: [[x-tag, mesh]], remove: [x-debug] }\n        \
         responseHeaders: { set: [[x-served-by, weft]], remove: [x-echo-server] }\n",
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let req = http::Request::get("/edited")
        .header("host", "echo")
        .header("x-env", "dev")
        .header("x-tag", "app")
        .header("x-debug", "1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("req");
    let resp = weft_testkit::client::http1_request(mesh.listen(&client), req)
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-served-by"], "weft");
    assert!(
        resp.headers().get(echo::SERVER_HEADER).is_none(),
        "removed from the response"
    );
    let reply = echo::EchoReply::from_body(resp.body()).expect("echo reply");
    assert_eq!(reply.header("x-env"), Some("prod"), "set replaces");
    assert!(reply.header("x-debug").is_none(), "removed: {reply:?}");
    let tags = reply.header("x-tag").expect("x-tag");
    assert!(
        tags.contains("app") && tags.contains("mesh"),
        "add keeps the app's: {tags}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_changes_under_load_lose_no_request() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let _a1 = echo::spawn_http(mesh.app(&v1), "v1").await.expect("v1");
    let _a2 = echo::spawn_http(mesh.app(&v2), "v2").await.expect("v2");
    let config = |w1: u32, w2: u32| {
        let services = format!(
            "{}{}{}",
            mesh.service("echo", 80, "http", &[Mesh::direct(&v1)]),
            mesh.service("echo-v1", 80, "http", &[Mesh::direct(&v1)]),
            mesh.service("echo-v2", 80, "http", &[Mesh::direct(&v2)]),
        );
        mesh.client_config(
            &client,
            "client",
            &services,
            &format!(
                "routes:\n  - service: echo\n    rules:\n      \
                 - {{ backends: [{{ service: echo-v1, weight: {w1} }}, {{ service: echo-v2, weight: {w2} }}] }}\n"
            ),
        )
    };
    let path = mesh.write("client", &config(100, 0));
    let _proxy = mesh.proxy(&client, &path).await;

    // Eight keep-alive clients send requests while the route flips between v1, a
    // split and v2 every 300 ms (the proxy polls its file every 200 ms).
    let listen = mesh.listen(&client);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Http1Client::connect(listen).await.expect("connect");
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut failures = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let req = http::Request::get("/")
                    .header("host", "echo")
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .expect("request");
                match c.send(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        let name = resp
                            .headers()
                            .get(echo::SERVER_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("?")
                            .to_owned();
                        *seen.entry(name).or_default() += 1;
                    }
                    Ok(resp) => failures.push(format!("status {}", resp.status())),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (seen, failures)
        }));
    }
    for (w1, w2) in [
        (50, 50),
        (0, 100),
        (100, 0),
        (50, 50),
        (0, 100),
        (100, 0),
        (0, 100),
    ] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        mesh.write("client", &config(w1, w2));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut failures = Vec::new();
    for t in tasks {
        let (s, f) = t.await.expect("client task");
        for (k, v) in s {
            *seen.entry(k).or_default() += v;
        }
        failures.extend(f);
    }
    let total: usize = seen.values().sum();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        total + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(total > 500, "only {total} requests went through");
    assert!(
        seen.get("v1").is_some_and(|n| *n > 0) && seen.get("v2").is_some_and(|n| *n > 0),
        "the route changes did not all take effect: {seen:?}"
    );
}

/// A rule whose only backend does not exist answers 503 (its route says
/// `BackendNotFound`) instead of falling through to a lower rule; the proxy takes the
/// table with that rule in it rather than refusing the whole table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_whose_only_backend_is_missing_answers_503_and_the_table_is_accepted() {
    let s = crate::telemetry::setup().await;
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: partly-gone }\n\
                 spec:\n  parentRefs: [{ kind: Service, name: echo, port: 80 }]\n  rules:\n\
                 \x20   - matches: [{ path: { type: PathPrefix, value: /gone } }]\n\
                 \x20     backendRefs: [{ name: missing, port: 80 }]\n\
                 \x20   - backendRefs: [{ name: echo, port: 80 }]\n";
    s.cp.apply(&s.mesh, "route", route).await;
    let served = crate::harness::eventually(std::time::Duration::from_secs(10), || async {
        crate::telemetry::get(s.listen, "/gone/1").await == 503
            && crate::telemetry::get(s.listen, "/here").await == 200
    })
    .await;
    let metrics = crate::telemetry::control_plane_metrics(&s.cp).await;
    assert!(served, "/gone answers 503, the rest is served\n{metrics}");
    assert!(
        !metrics.lines().any(|l| l.contains("type=\"RouteTable\"")
            && l.contains("result=\"nack\"")
            && !l.trim_end().ends_with(" 0")),
        "no proxy refused the table:\n{metrics}"
    );
}
