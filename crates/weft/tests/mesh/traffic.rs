//! Traffic policies: inbound rate limits (per workload and per calling identity),
//! injected faults, request mirroring, redirects and URL rewrites.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;
use weft_testkit::echo::{self, Misbehaviour};

use crate::harness::{Host, Mesh, Proxy};

/// A meshed echo app `echo` on `host` (service account `echo`) whose proxy config ends
/// with `inbound` (an `inbound:` block, or empty).
async fn meshed_app(mesh: &Mesh, host: &Host, inbound: &str) -> (echo::Server, Proxy) {
    let app = echo::spawn_http(mesh.app(host), "echo")
        .await
        .expect("app starts");
    let config = format!(
        "{}{inbound}",
        mesh.identity_yaml(host, "echo", &[(mesh.ports.app, "http")])
    );
    let path = mesh.write(&format!("app-{}", host.name()), &config);
    (app, mesh.proxy(host, &path).await)
}

/// A client proxy on `client` (service account `sa`) with its listener → `echo:80`
/// on `server`, plus `extra` config.
async fn client_proxy(mesh: &Mesh, client: &Host, sa: &str, server: &Host, extra: &str) -> Proxy {
    let svc = mesh.service("echo", 80, "http", &[mesh.endpoint(server, "echo")]);
    let config = mesh.client_config(client, sa, &svc, extra);
    mesh.proxy(client, &mesh.write(sa, &config)).await
}

/// Sends GETs for `path` on one connection to `listen` until `until` has passed or
/// `max` were sent; returns each answer's status and `Retry-After`.
async fn hammer(
    listen: SocketAddr,
    path: &str,
    until: Duration,
    max: usize,
) -> Vec<(u16, Option<String>)> {
    hammer_timed(listen, path, None, until, max).await.0
}

/// [`hammer`] after one request for `warm_up` (so connections are open), and the time
/// from sending the first hammering request to sending the last: the span a rate limit
/// sees.
async fn hammer_timed(
    listen: SocketAddr,
    path: &str,
    warm_up: Option<&str>,
    until: Duration,
    max: usize,
) -> (Vec<(u16, Option<String>)>, Duration) {
    let mut c = Http1Client::connect(listen).await.expect("connect");
    if let Some(warm_up) = warm_up {
        // The first request also opens the HBONE connection; its setup time would
        // count in the span below without reaching the limiter.
        let req = http::Request::get(warm_up)
            .header("host", "echo")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = c.send(req).await.expect("warm-up response");
        assert_eq!(resp.status(), 200, "warm-up {warm_up}");
    }
    let started = Instant::now();
    let mut out = Vec::new();
    let mut first_sent = None;
    let mut last_sent = started;
    while started.elapsed() < until && out.len() < max {
        last_sent = Instant::now();
        first_sent.get_or_insert(last_sent);
        let req = http::Request::get(path)
            .header("host", "echo")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request");
        let resp = c.send(req).await.expect("response");
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        out.push((resp.status().as_u16(), retry_after));
    }
    let span = last_sent.duration_since(first_sent.unwrap_or(last_sent));
    (out, span)
}

fn count(answers: &[(u16, Option<String>)], status: u16) -> usize {
    answers.iter().filter(|(s, _)| *s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_at_the_configured_rate_per_calling_identity() {
    let mesh = Mesh::new();
    let server = mesh.host("server");
    let a = mesh.host("a");
    let b = mesh.host("b");
    // /api: 10 a second with a burst of 10 for each caller; the rest is unlimited.
    let (app, _sp) = meshed_app(
        &mesh,
        &server,
        "inbound:\n  rateLimits:\n    - { requests: 10, per: 1s, perIdentity: true, matches: [{ path: { prefix: /api } }] }\n",
    )
    .await;
    let _a = client_proxy(&mesh, &a, "client-a", &server, "").await;
    let _b = client_proxy(&mesh, &b, "client-b", &server, "").await;

    // Hammered for two seconds, a caller gets the burst plus the rate over the time
    // between its first and last request: 10 + 10 × span (about 30).
    let (answers, span) = hammer_timed(
        mesh.listen(&a),
        "/api/items",
        Some("/health"),
        Duration::from_secs(2),
        100_000,
    )
    .await;
    let allowed = count(&answers, 200);
    let expected = 10.0 + 10.0 * span.as_secs_f64();
    assert!(span >= Duration::from_secs(1), "hammered for only {span:?}");
    assert!(
        (allowed as f64 - expected).abs() <= 2.0,
        "{allowed} of {} allowed over {span:?}, expected {expected:.1} ± 2",
        answers.len()
    );
    assert_eq!(
        allowed + count(&answers, 429),
        answers.len(),
        "only 200 and 429"
    );
    assert!(
        answers
            .iter()
            .filter(|(s, _)| *s == 429)
            .all(|(_, r)| r.as_deref() == Some("1")),
        "every 429 says Retry-After: 1"
    );
    assert_eq!(
        app.recorder().count(),
        allowed + 1,
        "limited requests never reached the app (the 1 is the warm-up)"
    );
    // Another identity has its own bucket; paths outside the match are not limited.
    let other = hammer(mesh.listen(&b), "/api/items", Duration::from_secs(5), 10).await;
    assert_eq!(count(&other, 200), 10, "{other:?}");
    let unlimited = hammer(mesh.listen(&a), "/health", Duration::from_secs(5), 50).await;
    assert_eq!(count(&unlimited, 200), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_abort_and_delay_the_configured_share_of_requests() {
    let mesh = Mesh::new();
    let server = mesh.host("server");
    let client = mesh.host("client");
    let (app, _sp) = meshed_app(
        &mesh,
        &server,
        "inbound:\n  faults:\n    - { matches: [{ path: { prefix: /slow } }], delay: { percent: 100, duration: 300ms } }\n    - { abort: { percent: 50, httpStatus: 503 } }\n",
    )
    .await;
    let _cp = client_proxy(&mesh, &client, "client", &server, "").await;
    let listen = mesh.listen(&client);
    let answers = hammer(listen, "/flaky", Duration::from_secs(30), 200).await;
    let aborted = count(&answers, 503);
    // Binomial(200, 0.5): sd ≈ 7; ±5 sd.
    assert!((65..=135).contains(&aborted), "{aborted} of 200 aborted");
    assert_eq!(
        app.recorder().count(),
        200 - aborted,
        "aborts never reach the app"
    );
    let started = Instant::now();
    let slow = hammer(listen, "/slow", Duration::from_secs(30), 3).await;
    assert_eq!(
        count(&slow, 200),
        3,
        "the delay rule, first to match, does not abort"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_delivers_copies_without_slowing_the_original() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let main_host = mesh.host("main");
    let shadow_host = mesh.host("shadow");
    let _main = echo::spawn_http(mesh.app(&main_host), "main")
        .await
        .expect("main");
    // The shadow takes a second to answer; the original must not wait for it.
    let shadow = echo::spawn_http_misbehaving(
        mesh.app(&shadow_host),
        "shadow",
        Misbehaviour {
            latency: Duration::from_secs(1),
            ..Misbehaviour::default()
        },
    )
    .await
    .expect("shadow");
    let services = format!(
        "{}{}",
        mesh.service("echo", 80, "http", &[Mesh::direct(&main_host)]),
        mesh.service("shadow", 80, "http", &[Mesh::direct(&shadow_host)]),
    );
    let config = mesh.client_config(
        &client,
        "client",
        &services,
        "routes:\n  - service: echo\n    rules:\n      - { backends: [{ service: echo }], mirrors: [{ service: shadow }] }\n",
    );
    let _proxy = mesh.proxy(&client, &mesh.write("client", &config)).await;
    let mut c = Http1Client::connect(mesh.listen(&client))
        .await
        .expect("connect");
    let mut statuses = Vec::new();
    let started = Instant::now();
    for i in 0..20 {
        let req = http::Request::post(format!("/orders/{i}"))
            .header("host", "echo")
            .body(http_body_util::Full::new(bytes::Bytes::from(format!(
                "order {i}"
            ))))
            .expect("request");
        let resp = c.send(req).await.expect("response");
        statuses.push(resp.status().as_u16());
    }
    let took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        took < Duration::from_secs(2),
        "20 originals took {took:?}: they waited for the 1 s mirror"
    );
    assert!(
        shadow
            .recorder()
            .wait_for_async(20, Duration::from_secs(10))
            .await,
        "the mirror got {} of 20 copies",
        shadow.recorder().count()
    );
    let copies = shadow.recorder().requests();
    let mut bodies: Vec<String> = copies
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    bodies.sort();
    let mut want: Vec<String> = (0..20).map(|i| format!("order {i}")).collect();
    want.sort();
    assert_eq!(bodies, want, "each copy carries its original's body");
    assert!(copies.iter().all(|r| r.method == http::Method::POST));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_and_rewrite_filters_change_what_the_client_and_the_app_see() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (app, _sp) = meshed_app(&mesh, &server, "").await;
    let _cp = client_proxy(
        &mesh,
        &client,
        "client",
        &server,
        "routes:\n  - service: echo\n    rules:\n      \
         - { matches: [{ path: { prefix: /old } }], backends: [], redirect: { scheme: https, hostname: shop.example, path: { prefix: /new }, status: 301 } }\n      \
         - { matches: [{ path: { prefix: /api } }], backends: [{ service: echo }], rewrite: { hostname: catalog.internal, path: { prefix: /v2 } } }\n      \
         - { backends: [{ service: echo }] }\n",
    )
    .await;
    let mut c = Http1Client::connect(mesh.listen(&client))
        .await
        .expect("connect");
    let send = |path: &str| {
        http::Request::get(path)
            .header("host", "echo")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request")
    };
    let redirect = c.send(send("/old/cart?id=7")).await.expect("redirect");
    let rewritten = c.send(send("/api/items?page=2")).await.expect("rewritten");
    assert_eq!(redirect.status(), 301);
    assert_eq!(
        redirect
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("https://shop.example/new/cart?id=7")
    );
    assert_eq!(rewritten.status(), 200);
    assert_eq!(
        app.recorder().count(),
        1,
        "the redirect never reached the app"
    );
    let seen = app
        .recorder()
        .last_request()
        .expect("the rewritten request");
    assert_eq!(
        seen.uri
            .path_and_query()
            .map(http::uri::PathAndQuery::as_str),
        Some("/v2/items?page=2")
    );
    assert_eq!(
        seen.headers.get("host").and_then(|v| v.to_str().ok()),
        Some("catalog.internal")
    );
}
