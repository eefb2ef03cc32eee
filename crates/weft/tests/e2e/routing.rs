//! Per-request routing and load balancing, measured at the apps.

use std::collections::HashMap;
use std::time::Duration;

use weft_testkit::client::Http1Client;
use weft_testkit::echo;

use crate::support::{local, outbound, Mesh};

/// Sends `n` keep-alive GETs through the client's listener on 18080 and counts answers
/// by the app that served them.
pub async fn tally(n: usize, path: &str) -> HashMap<String, usize> {
    let mut c = Http1Client::connect(local(18080)).await.expect("connect");
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

#[test]
fn weighted_split_90_10_holds_over_1000_requests() {
    let Some(mesh) = Mesh::new("weighted_split_90_10_holds_over_1000_requests") else {
        return;
    };
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let _v1 = crate::support::echo_workload(&mesh, &v1, "v1");
    let _v2 = crate::support::echo_workload(&mesh, &v2, "v2");
    let cfg = format!(
        "{id}outbound:\n{ob}services:\n\
         {echo}{ev1}{ev2}\
         routes:\n  - service: echo\n    rules:\n      - backends: [{{ service: echo-v1, weight: 90 }}, {{ service: echo-v2, weight: 10 }}]\n",
        id = mesh.identity_yaml(&client, "client", &[]),
        ob = outbound(18080, "echo", 80),
        echo = crate::support::service("echo", 80, 8080, "http", &[]),
        ev1 = crate::support::service("echo-v1", 80, 8080, "http", &[Mesh::endpoint(&v1, "echo")]),
        ev2 = crate::support::service("echo-v2", 80, 8080, "http", &[Mesh::endpoint(&v2, "echo")]),
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg));
    let counts = client.run(|| tally(1000, "/split"));
    let v2_share = counts.get("v2").copied().unwrap_or(0);
    // Binomial(1000, 0.1): mean 100, sd 9.5. ±4 sd keeps false failures below 1 in 10^4.
    assert!(
        (62..=138).contains(&v2_share),
        "v2 got {v2_share} of 1000: {counts:?}"
    );
    assert_eq!(counts.values().sum::<usize>(), 1000);
}

#[test]
fn peak_ewma_shifts_load_away_from_a_slow_endpoint() {
    let Some(mesh) = Mesh::new("peak_ewma_shifts_load_away_from_a_slow_endpoint") else {
        return;
    };
    let client = mesh.host("client");
    let fast = mesh.host("fast");
    let slow = mesh.host("slow");
    let _af = fast
        .spawn_server(|| echo::spawn_http(local(8080), "fast"))
        .expect("fast app");
    let _as = slow
        .spawn_server(|| echo::spawn_http_slow(local(8080), "slow", Duration::from_millis(40)))
        .expect("slow app");
    let _pf = mesh.proxy(
        &fast,
        &mesh.write(
            "fast",
            &mesh.identity_yaml(&fast, "echo", &[(8080, "http")]),
        ),
    );
    let _ps = mesh.proxy(
        &slow,
        &mesh.write(
            "slow",
            &mesh.identity_yaml(&slow, "echo", &[(8080, "http")]),
        ),
    );
    let cfg = format!(
        "{id}outbound:\n{ob}services:\n{svc}",
        id = mesh.identity_yaml(&client, "client", &[]),
        ob = outbound(18080, "echo", 80),
        svc = crate::support::service(
            "echo",
            80,
            8080,
            "http",
            &[Mesh::endpoint(&fast, "echo"), Mesh::endpoint(&slow, "echo")]
        ),
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg));
    let counts = client.run(|| tally(200, "/ewma"));
    let slow_share = counts.get("slow").copied().unwrap_or(0);
    // Round robin would send 100 here; peak-EWMA learns after the first slow answer.
    assert!(
        slow_share <= 10,
        "slow endpoint got {slow_share} of 200: {counts:?}"
    );
}

#[test]
fn a_route_timeout_answers_504_without_waiting_for_the_app() {
    let Some(mesh) = Mesh::new("a_route_timeout_answers_504_without_waiting_for_the_app") else {
        return;
    };
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (_app, _sp) = crate::support::echo_workload(&mesh, &server, "echo");
    let cfg = format!(
        "{id}outbound:\n{ob}services:\n{svc}\
         routes:\n  - service: echo\n    rules:\n      - matches: [{{ path: {{ prefix: /delay }} }}]\n        backends: [{{ service: echo }}]\n        timeout: 300ms\n      - backends: [{{ service: echo }}]\n",
        id = mesh.identity_yaml(&client, "client", &[]),
        ob = outbound(18080, "echo", 80),
        svc = crate::support::service("echo", 80, 8080, "http", &[Mesh::endpoint(&server, "echo")]),
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg));
    let started = std::time::Instant::now();
    let (status, _) = client.run(|| crate::support::get(18080, "/delay/3000"));
    assert_eq!(status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    // The other rule has no timeout.
    assert_eq!(
        client.run(|| crate::support::get(18080, "/status/200")).0,
        200
    );
}

#[test]
fn route_header_modifiers_edit_the_request_the_app_sees_and_the_response_the_client_gets() {
    let Some(mesh) = Mesh::new(
        "route_header_modifiers_edit_the_request_the_app_sees_and_the_response_the_client_gets",
    ) else {
        return;
    };
    let client = mesh.host("client");
    let server = mesh.host("server");
    let _server = crate::support::echo_workload(&mesh, &server, "echo");
    let cfg = format!(
        "{id}outbound:\n{ob}services:\n{echo}\
         routes:\n  - service: echo\n    rules:\n      - backends: [{{ service: echo }}]\n        \
         requestHeaders: {{ set: [[x-env, prod]], add: [[x-tag, mesh]], remove: [x-debug] }}\n        \
         responseHeaders: {{ set: [[x-served-by, weft]], remove: [x-echo-server] }}\n",
        id = mesh.identity_yaml(&client, "client", &[]),
        ob = outbound(18080, "echo", 80),
        echo = crate::support::service("echo", 80, 8080, "http", &[Mesh::endpoint(&server, "echo")]),
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg));
    let resp = client.run(|| async {
        let req = http::Request::get("/edited")
            .header("host", "echo")
            .header("x-env", "dev")
            .header("x-tag", "app")
            .header("x-debug", "1")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("req");
        weft_testkit::client::http1_request(local(18080), req)
            .await
            .expect("response")
    });
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

#[test]
fn route_changes_under_load_lose_no_request() {
    let Some(mesh) = Mesh::new("route_changes_under_load_lose_no_request") else {
        return;
    };
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let v1_addr = crate::support::addr(&v1, 8080);
    let v2_addr = crate::support::addr(&v2, 8080);
    let _a1 = v1
        .spawn_server(move || echo::spawn_http(v1_addr, "v1"))
        .expect("v1");
    let _a2 = v2
        .spawn_server(move || echo::spawn_http(v2_addr, "v2"))
        .expect("v2");
    let config = |w1: u32, w2: u32| {
        format!(
            "{}outbound:\n{}services:\n{}{}{}routes:\n  - service: echo\n    rules:\n      \
             - {{ backends: [{{ service: echo-v1, weight: {w1} }}, {{ service: echo-v2, weight: {w2} }}] }}\n",
            mesh.identity_yaml(&client, "client", &[]),
            outbound(18080, "echo", 80),
            crate::support::service("echo", 80, 8080, "http", &[format!("{{ address: {} }}", v1.ip())]),
            crate::support::service("echo-v1", 80, 8080, "http", &[format!("{{ address: {} }}", v1.ip())]),
            crate::support::service("echo-v2", 80, 8080, "http", &[format!("{{ address: {} }}", v2.ip())]),
        )
    };
    let path = mesh.write("client", &config(100, 0));
    let _proxy = mesh.proxy(&client, &path);

    // Eight keep-alive clients send requests while the route flips between v1, a
    // split and v2 every 300 ms (the proxy polls its file every 200 ms).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        client.spawn(move || async move {
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let stop = stop.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = Http1Client::connect(local(18080)).await.expect("connect");
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
            let mut seen: HashMap<String, usize> = HashMap::new();
            let mut failures = Vec::new();
            for t in tasks {
                let (s, f) = t.await.expect("client task");
                for (k, v) in s {
                    *seen.entry(k).or_default() += v;
                }
                failures.extend(f);
            }
            (seen, failures)
        })
    };
    for (w1, w2) in [
        (50, 50),
        (0, 100),
        (100, 0),
        (50, 50),
        (0, 100),
        (100, 0),
        (0, 100),
    ] {
        std::thread::sleep(Duration::from_millis(300));
        mesh.write("client", &config(w1, w2));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, failures) = load.join().expect("the load finished");
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
