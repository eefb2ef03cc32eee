//! Retries against misbehaving backends from `weft-testkit`: transient errors, resets,
//! dead and slow endpoints are recovered from, and the retry budget stops retries from
//! multiplying an outage.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;
use weft_testkit::echo::{self, Misbehaviour};
use weft_testkit::Host;

use crate::support::{addr, local, outbound, Mesh};

/// An app on `host`:8080 misbehaving as `how`, behind a proxy (service account
/// `echo`). Keep both alive for the test.
fn misbehaving_workload(
    mesh: &Mesh,
    host: &Host,
    name: &str,
    how: Misbehaviour,
) -> (
    weft_testkit::netns::Hosted<echo::Server>,
    weft_testkit::process::WeftProcess,
) {
    let app_name = name.to_owned();
    let app = host
        .spawn_server(move || async move {
            echo::spawn_http_misbehaving(local(8080), &app_name, how).await
        })
        .expect("app starts");
    let config = mesh.write(name, &mesh.identity_yaml(host, "echo", &[(8080, "http")]));
    (app, mesh.proxy(host, &config))
}

/// Sends `n` GETs through the client's listener on `port`; the statuses, in order.
async fn statuses_on(port: u16, n: usize, path: &str) -> Vec<u16> {
    let mut c = Http1Client::connect(local(port)).await.expect("connect");
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

/// [`statuses_on`] the listener on 18080.
async fn statuses(n: usize, path: &str) -> Vec<u16> {
    statuses_on(18080, n, path).await
}

/// The client proxy: listener 18080 → `echo:80`, with `endpoints` and the route rule
/// options `rule` (YAML flow entries after `backends`, each led by a comma).
fn client_config(mesh: &Mesh, client: &Host, endpoints: &[String], rule: &str) -> String {
    format!(
        "{id}outbound:\n{ob}services:\n{svc}\
         routes:\n  - service: echo\n    rules:\n      - {{ backends: [{{ service: echo }}]{rule} }}\n",
        id = mesh.identity_yaml(client, "client", &[]),
        ob = outbound(18080, "echo", 80),
        svc = crate::support::service("echo", 80, 8080, "http", endpoints),
    )
}

/// A plaintext endpoint outside the mesh (dialled directly on the target port).
fn direct(host: &Host) -> String {
    format!("{{ address: {} }}", host.ip())
}

#[test]
fn retries_recover_transient_errors_resets_and_dead_and_slow_endpoints() {
    let Some(mesh) =
        Mesh::new("retries_recover_transient_errors_resets_and_dead_and_slow_endpoints")
    else {
        return;
    };
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
    );
    let cfg = client_config(
        &mesh,
        &client,
        &[Mesh::endpoint(&flaky_host, "echo")],
        ", retry: { attempts: 2, codes: [503], backoff: 5ms }",
    );
    let proxy = mesh.proxy(&client, &mesh.write("client", &cfg));
    let got = client.run(|| statuses(100, "/flaky"));
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
    let healthy_addr = addr(&healthy_host, 8080);
    let _healthy = healthy_host
        .spawn_server(move || echo::spawn_http(healthy_addr, "healthy"))
        .expect("healthy");
    let reset_addr = addr(&reset_host, 8080);
    let reset = reset_host
        .spawn_server(move || echo::spawn_resetting(reset_addr, "reset"))
        .expect("reset");
    let slow_addr = addr(&slow_host, 8080);
    let slow = slow_host
        .spawn_server(move || echo::spawn_http_slow(slow_addr, "slow", Duration::from_secs(5)))
        .expect("slow");
    let healthy = direct(&healthy_host);
    let rule = "timeout: 10s, perTryTimeout: 300ms, retry: { attempts: 2, codes: [503, 504], backoff: 5ms }";
    let mut services = String::new();
    let mut routes = String::new();
    let mut listeners = String::new();
    for (i, (name, bad, rule)) in [
        ("reset", direct(&reset_host), rule),
        ("dead", direct(&dead_host), rule),
        ("slow", direct(&slow_host), rule),
        ("plain", direct(&dead_host), ""),
    ]
    .into_iter()
    .enumerate()
    {
        let port = 18081 + u16::try_from(i).expect("small");
        listeners.push_str(&outbound(port, name, 80));
        services.push_str(&crate::support::service(
            name,
            80,
            8080,
            "http",
            &[bad, healthy.clone()],
        ));
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
    let _proxy = mesh.proxy(&client, &mesh.write("client", &cfg));
    for (i, name) in ["reset", "dead", "slow", "plain"].into_iter().enumerate() {
        let port = 18081 + u16::try_from(i).expect("small");
        let started = Instant::now();
        let got = client.run(move || statuses_on(port, 10, "/mixed"));
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

#[test]
fn retries_stop_at_the_budget_when_every_attempt_fails() {
    let Some(mesh) = Mesh::new("retries_stop_at_the_budget_when_every_attempt_fails") else {
        return;
    };
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
    );
    let cfg = client_config(
        &mesh,
        &client,
        &[Mesh::endpoint(&broken_host, "echo")],
        ", retry: { attempts: 3, codes: [503], backoff: 1ms }",
    );
    let _proxy = mesh.proxy(&client, &mesh.write("client", &cfg));
    let started = Instant::now();
    let n = 300;
    let got = client.run(|| statuses(n, "/outage"));
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
    let metrics = client.run(|| async {
        weft_testkit::client::http1_get(local(15020), "metrics", "/metrics")
            .await
            .expect("metrics")
    });
    let body = String::from_utf8_lossy(metrics.body()).into_owned();
    assert!(
        body.lines()
            .any(|l| l.starts_with("weft_proxy_retries_total")
                && l.contains("result=\"budget_exhausted\"")),
        "{body}"
    );
}

#[test]
fn grpc_unavailable_answers_are_retried_when_the_rule_lists_the_code() {
    let Some(mesh) = Mesh::new("grpc_unavailable_answers_are_retried_when_the_rule_lists_the_code")
    else {
        return;
    };
    let client = mesh.host("client");
    let server_host = mesh.host("grpc");
    // Every other call is answered UNAVAILABLE (trailers-only, as gRPC servers do).
    let listen = addr(&server_host, 8080);
    let server = server_host
        .spawn_server(move || {
            echo::spawn_http_misbehaving(
                listen,
                "grpc",
                Misbehaviour {
                    error_rate: 0.5,
                    grpc_error: Some(14),
                    ..Misbehaviour::default()
                },
            )
        })
        .expect("server");
    // Half the calls fail, so the default budget (20% + 10/s) would refuse some
    // retries; this service's budget allows one retry per call.
    let services = format!(
        "{}    policy: {{ retryBudget: {{ percent: 100 }} }}\n",
        crate::support::service("echo", 80, 8080, "grpc", &[direct(&server_host)])
    );
    let config = |retry: &str| {
        format!(
            "{id}outbound:\n{ob}services:\n{services}routes:\n  - service: echo\n    rules:\n      - {{ backends: [{{ service: echo }}]{retry} }}\n",
            id = mesh.identity_yaml(&client, "client", &[]),
            ob = outbound(18080, "echo", 80),
        )
    };
    let calls = |n: usize| async move {
        let c = weft_testkit::client::Http2Client::connect(local(18080))
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
    let proxy = mesh.proxy(&client, &mesh.write("client", &config("")));
    let without = client.run(move || calls(20));
    assert_eq!(
        without.iter().filter(|s| *s == "14").count(),
        10,
        "{without:?}"
    );
    drop(proxy);
    server.recorder().clear();
    // With it, each UNAVAILABLE is retried (a POST, retried all the same).
    let _proxy = mesh.proxy(
        &client,
        &mesh.write(
            "client",
            &config(", retry: { attempts: 2, grpcCodes: [14], backoff: 5ms }"),
        ),
    );
    let with = client.run(move || calls(20));
    assert!(with.iter().all(|s| s == "0"), "{with:?}");
    assert_eq!(
        server.recorder().count(),
        40,
        "each of 20 calls failed once and was retried"
    );
}
