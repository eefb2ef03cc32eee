//! Retries against misbehaving backends from `weft-testkit`: transient errors, resets,
//! dead and slow endpoints are recovered from, and the retry budget stops retries from
//! multiplying an outage.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;
use weft_testkit::echo::{self, Misbehaviour};

use crate::harness::{Host, Mesh, Proxy};

/// An app on `host` misbehaving as `how`, behind a proxy (service account `echo`).
/// Keep both alive for the test.
async fn misbehaving_workload(
    mesh: &Mesh,
    host: &Host,
    name: &str,
    how: Misbehaviour,
) -> (echo::Server, Proxy) {
    let app = echo::spawn_http_misbehaving(mesh.app(host), name, how)
        .await
        .expect("app starts");
    let config = mesh.write(
        name,
        &mesh.identity_yaml(host, "echo", &[(mesh.ports.app, "http")]),
    );
    (app, mesh.proxy(host, &config).await)
}

/// Sends `n` GETs to the client's listener `listen`; the statuses, in order.
async fn statuses(listen: SocketAddr, n: usize, path: &str) -> Vec<u16> {
    let mut c = Http1Client::connect(listen).await.expect("connect");
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let req = http::Request::get(path)
            .header("host", "echo")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("req");
        out.push(c.send(req).await.expect("response").status().as_u16());
    }
    out
}

/// The client proxy: its listener → `echo:80`, with `endpoints` and the route rule
/// options `rule` (YAML flow entries after `backends`, each led by a comma).
fn client_config(mesh: &Mesh, client: &Host, endpoints: &[String], rule: &str) -> String {
    mesh.client_config(
        client,
        "client",
        &mesh.service("echo", 80, "http", endpoints),
        &format!(
            "routes:\n  - service: echo\n    rules:\n      - {{ backends: [{{ service: echo }}]{rule} }}\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_transient_errors_resets_and_dead_and_slow_endpoints() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let flaky_host = mesh.host("flaky");
    let reset_host = mesh.host("reset");
    let dead_host = mesh.host("dead");
    let slow_host = mesh.host("slow");
    let healthy_host = mesh.host("healthy");

    // One endpoint failing every tenth request with 503: each failure is retried.
    let (flaky, _fp) = misbehaving_workload(
        &mesh,
        &flaky_host,
        "flaky",
        Misbehaviour {
            error_rate: 0.1,
            ..Misbehaviour::default()
        },
    )
    .await;
    let cfg = client_config(
        &mesh,
        &client,
        &[mesh.endpoint(&flaky_host, "echo")],
        ", retry: { attempts: 2, codes: [503], backoff: 5ms }",
    );
    let proxy = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let got = statuses(mesh.listen(&client), 100, "/flaky").await;
    assert!(got.iter().all(|s| *s == 200), "{got:?}");
    // Every tenth attempt fails (retries included), and each failure was retried:
    // attempts = 100 + ceil(attempts / 10), which only 112 solves.
    let attempts = flaky.recorder().count();
    assert_eq!(attempts, 100 + attempts.div_ceil(10), "{attempts} attempts");
    drop(proxy);

    // A resetting, a dead and a slow endpoint, each beside a healthy one (a service
    // each, so each has its own budget): the reset is retried, so is the dead one's
    // failed connect, and the slow one's attempts are cut by the per-try timeout and
    // retried elsewhere. A service without a retry section still retries a failed
    // connect once.
    let _healthy = echo::spawn_http(mesh.app(&healthy_host), "healthy")
        .await
        .expect("healthy");
    let reset = echo::spawn_resetting(mesh.app(&reset_host), "reset")
        .await
        .expect("reset");
    let slow = echo::spawn_http_slow(mesh.app(&slow_host), "slow", Duration::from_secs(5))
        .await
        .expect("slow");
    let healthy = Mesh::direct(&healthy_host);
    let rule = "timeout: 10s, perTryTimeout: 300ms, retry: { attempts: 2, codes: [503, 504], backoff: 5ms }";
    let mut services = String::new();
    let mut routes = String::new();
    let mut listeners = String::new();
    let mut ports = Vec::new();
    for (name, bad, rule) in [
        ("reset", Mesh::direct(&reset_host), rule),
        ("dead", Mesh::direct(&dead_host), rule),
        ("slow", Mesh::direct(&slow_host), rule),
        ("plain", Mesh::direct(&dead_host), ""),
    ] {
        let port = mesh.port();
        ports.push((name, client.addr(port)));
        listeners.push_str(&Mesh::outbound(&client, port, name, 80));
        services.push_str(&mesh.service(name, 80, "http", &[bad, healthy.clone()]));
        // Round robin: every other first attempt goes to the bad endpoint.
        services.push_str("    loadBalancer: roundRobin\n");
        if !rule.is_empty() {
            let _ = writeln!(
                routes,
                "  - service: {name}\n    rules:\n      - {{ backends: [{{ service: {name} }}], {rule} }}"
            );
        }
    }
    let cfg = format!(
        "{id}outbound:\n{listeners}services:\n{services}routes:\n{routes}",
        id = mesh.identity_yaml(&client, "client", &[]),
    );
    let _proxy = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    for (name, listen) in ports {
        let started = Instant::now();
        let got = statuses(listen, 10, "/mixed").await;
        assert!(got.iter().all(|s| *s == 200), "{name}: {got:?}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{name}: {took:?}");
        if name == "slow" {
            // At least five first attempts went to the slow endpoint, each cut at 300 ms.
            assert!(took >= Duration::from_millis(1500), "{took:?}");
        }
    }
    // Round robin sends at least every other first attempt to the bad endpoint (every
    // one, when each retry takes the next turn).
    assert!(
        reset.recorder().count() >= 5,
        "the resetting endpoint was tried"
    );
    assert!(slow.recorder().count() >= 5, "the slow endpoint was tried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_budget_when_every_attempt_fails() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let broken_host = mesh.host("broken");
    let (broken, _bp) = misbehaving_workload(
        &mesh,
        &broken_host,
        "broken",
        Misbehaviour {
            error_rate: 1.0,
            ..Misbehaviour::default()
        },
    )
    .await;
    let cfg = client_config(
        &mesh,
        &client,
        &[mesh.endpoint(&broken_host, "echo")],
        ", retry: { attempts: 3, codes: [503], backoff: 1ms }",
    );
    let _proxy = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let started = Instant::now();
    let n = 300;
    let got = statuses(mesh.listen(&client), n, "/outage").await;
    let seconds = started.elapsed().as_secs() + 1;
    assert!(
        got.iter().all(|s| *s == 503),
        "every request fails: {got:?}"
    );
    let attempts = broken.recorder().count();
    // Without a budget: 4 × 300 = 1200. With it: 300, a fifth more, the floor of 10
    // a second, and at most 10 saved.
    let bound = n + n / 5 + 10 * usize::try_from(seconds).expect("small") + 10;
    assert!(
        (n + n / 10..=bound).contains(&attempts),
        "{attempts} attempts for {n} requests in {seconds} s (bound {bound})"
    );
    let metrics = weft_testkit::client::http1_get(mesh.metrics(&client), "metrics", "/metrics")
        .await
        .expect("metrics");
    let body = String::from_utf8_lossy(metrics.body()).into_owned();
    assert!(
        body.lines()
            .any(|l| l.starts_with("weft_proxy_retries_total")
                && l.contains("result=\"budget_exhausted\"")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unavailable_answers_are_retried_when_the_rule_lists_the_code() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server_host = mesh.host("grpc");
    // Every other call is answered UNAVAILABLE (trailers-only, as gRPC servers do).
    let server = echo::spawn_http_misbehaving(
        mesh.app(&server_host),
        "grpc",
        Misbehaviour {
            error_rate: 0.5,
            grpc_error: Some(14),
            ..Misbehaviour::default()
        },
    )
    .await
    .expect("server");
    // Half the calls fail, so the default budget (20% + 10/s) would refuse some
    // retries; this service's budget allows one retry per call.
    let services = format!(
        "{}    policy: {{ retryBudget: {{ percent: 100 }} }}\n",
        mesh.service("echo", 80, "grpc", &[Mesh::direct(&server_host)])
    );
    let config = |retry: &str| {
        mesh.client_config(
            &client,
            "client",
            &services,
            &format!(
                "routes:\n  - service: echo\n    rules:\n      - {{ backends: [{{ service: echo }}]{retry} }}\n"
            ),
        )
    };
    let listen = mesh.listen(&client);
    let calls = |n: usize| async move {
        let c = weft_testkit::client::Http2Client::connect(listen)
            .await
            .expect("connect");
        let mut statuses = Vec::new();
        for _ in 0..n {
            let req = http::Request::post("/shop.Catalog/List")
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                    b"\0\0\0\0\0",
                )))
                .expect("request");
            let resp = c.send(req).await.expect("response");
            let grpc = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_owned();
            statuses.push(grpc);
        }
        statuses
    };
    // Without the code listed, half the calls fail.
    let proxy = mesh
        .proxy(&client, &mesh.write("client", &config("")))
        .await;
    let without = calls(20).await;
    assert_eq!(
        without.iter().filter(|s| *s == "14").count(),
        10,
        "{without:?}"
    );
    drop(proxy);
    server.recorder().clear();
    // With it, each UNAVAILABLE is retried (a POST, retried all the same).
    let _proxy = mesh
        .proxy(
            &client,
            &mesh.write(
                "client",
                &config(", retry: { attempts: 2, grpcCodes: [14], backoff: 5ms }"),
            ),
        )
        .await;
    let with = calls(20).await;
    assert!(with.iter().all(|s| s == "0"), "{with:?}");
    assert_eq!(
        server.recorder().count(),
        40,
        "each of 20 calls failed once and was retried"
    );
}
