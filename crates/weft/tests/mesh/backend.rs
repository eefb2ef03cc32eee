//! `BackendPolicy`: outlier ejection and its end, active health checks, sticky sessions
//! (a `BackendPolicy` applied through the control plane), zone preference with
//! failover, and connection limits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;
use weft_testkit::echo::{self, Misbehaviour};

use crate::harness::{eventually, Host, Mesh};

/// A plaintext endpoint outside the mesh on `host`, optionally in `zone`.
fn direct(host: &Host, zone: Option<&str>) -> String {
    match zone {
        Some(z) => format!("{{ address: {}, zone: {z} }}", host.ip()),
        None => Mesh::direct(host),
    }
}

/// An echo app on `host` named `name`, misbehaving as `how`.
async fn app(mesh: &Mesh, host: &Host, name: &str, how: Misbehaviour) -> echo::Server {
    echo::spawn_http_misbehaving(mesh.app(host), name, how)
        .await
        .expect("app starts")
}

/// The client proxy's config: its listener → `echo:80` over `endpoints`, with the
/// service lines `extra` (indented as `services[0]` fields) and the workload `zone`.
fn client_config(
    mesh: &Mesh,
    client: &Host,
    zone: Option<&str>,
    endpoints: &[String],
    extra: &str,
) -> String {
    let config = mesh.client_config(
        client,
        "client",
        &format!("{}{extra}", mesh.service("echo", 80, "http", endpoints)),
        "",
    );
    match zone {
        Some(z) => config.replacen("workload:\n", &format!("workload:\n  zone: {z}\n"), 1),
        None => config,
    }
}

/// One answer: status, the echo server that answered, and any `Set-Cookie`.
struct Answer {
    status: u16,
    server: Option<String>,
    set_cookie: Option<String>,
}

/// One GET on `c`; `None` when the exchange failed (the proxy closed the connection).
async fn try_ask(c: &mut Http1Client, path: &str, cookie: Option<&str>) -> Option<Answer> {
    let mut req = http::Request::get(path).header("host", "echo");
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = c.send(req).await.ok()?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Some(Answer {
        status: resp.status().as_u16(),
        server: header(echo::SERVER_HEADER),
        set_cookie: header("set-cookie"),
    })
}

async fn ask(c: &mut Http1Client, path: &str, cookie: Option<&str>) -> Answer {
    try_ask(c, path, cookie)
        .await
        .expect("response through the proxy")
}

/// `n` requests on one connection to `listen`: how many each server answered
/// (`"<status>"` for the proxy's own answers, which name no server).
async fn tally(listen: SocketAddr, n: usize, path: &str) -> HashMap<String, usize> {
    let mut c = Http1Client::connect(listen).await.expect("connect");
    let mut counts = HashMap::new();
    for _ in 0..n {
        let a = ask(&mut c, path, None).await;
        let key = a.server.unwrap_or_else(|| a.status.to_string());
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// Requests the app saw that were not health checks.
fn traffic(app: &echo::Server) -> usize {
    app.recorder()
        .requests()
        .iter()
        .filter(|r| {
            r.headers.get("user-agent").and_then(|v| v.to_str().ok()) != Some("weft-health-check")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_endpoint_gets_no_traffic_until_its_ejection_ends() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let bad_host = mesh.host("bad");
    let good_host = mesh.host("good");
    let bad = app(
        &mesh,
        &bad_host,
        "bad",
        Misbehaviour {
            error_rate: 1.0,
            ..Misbehaviour::default()
        },
    )
    .await;
    let _good = app(&mesh, &good_host, "good", Misbehaviour::default()).await;
    let cfg = client_config(
        &mesh,
        &client,
        None,
        &[direct(&bad_host, None), direct(&good_host, None)],
        "    loadBalancer: roundRobin\n    policy:\n      outlierDetection: { consecutive5xx: 3, baseEjectionTime: 3s, maxEjectionPercent: 50 }\n",
    );
    let _proxy = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let listen = mesh.listen(&client);

    // Round robin alternates until the bad endpoint's third 503 in a row ejects it.
    let started = Instant::now();
    let first = tally(listen, 6, "/").await;
    assert_eq!(first.get("bad"), Some(&3), "{first:?}");
    assert_eq!(bad.recorder().count(), 3);
    // Ejected: every request goes to the good endpoint, the bad one sees none.
    let during = tally(listen, 40, "/").await;
    assert_eq!(during.get("good"), Some(&40), "{during:?}");
    assert_eq!(bad.recorder().count(), 3, "an ejected endpoint got traffic");
    // The admin API shows the ejection.
    let bad_ip = bad_host.ip().to_string();
    let resp = weft_testkit::client::http1_get(mesh.admin(&client), "localhost", "/endpoints")
        .await
        .expect("admin /endpoints");
    let doc: serde_json::Value = serde_json::from_slice(resp.body()).expect("JSON");
    let ejected = doc["services"][0]["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["address"] == bad_ip.as_str())
        .map(|e| (e["ejected"].clone(), e["timesEjected"].clone()));
    assert_eq!(
        ejected,
        Some((serde_json::json!(true), serde_json::json!(1))),
        "/endpoints shows the ejection"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the check ran past the ejection"
    );
    // After the ejection ends it is tried again.
    tokio::time::sleep(
        Duration::from_secs(3).saturating_sub(started.elapsed()) + Duration::from_millis(300),
    )
    .await;
    let after = tally(listen, 4, "/").await;
    assert!(after.get("bad").is_some_and(|n| *n >= 1), "{after:?}");
    assert!(bad.recorder().count() > 3, "the endpoint never came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_checked_failing_or_dead_endpoint_is_never_chosen() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let sick_host = mesh.host("sick");
    let dead_host = mesh.host("dead");
    let good_host = mesh.host("good");
    // Answers everything, its health check included, with 503.
    let sick = app(
        &mesh,
        &sick_host,
        "sick",
        Misbehaviour {
            error_rate: 1.0,
            ..Misbehaviour::default()
        },
    )
    .await;
    let good = app(&mesh, &good_host, "good", Misbehaviour::default()).await;
    // No retries, so a request that reached the dead endpoint would fail.
    let cfg = client_config(
        &mesh,
        &client,
        None,
        &[
            direct(&sick_host, None),
            direct(&dead_host, None),
            direct(&good_host, None),
        ],
        &format!(
            "    policy:\n      panicThresholdPercent: 20\n      healthCheck: {{ port: {}, interval: 500ms, timeout: 300ms, check: {{ http: {{ path: /healthz, host: echo }} }} }}\n\
             routes:\n  - service: echo\n    rules:\n      - {{ backends: [{{ service: echo }}], retry: {{ attempts: 0 }} }}\n",
            mesh.ports.app
        ),
    );
    let _proxy = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let listen = mesh.listen(&client);
    // The first checks run within a tenth of the interval. Until their results are
    // in, no endpoint is known healthy and the service is in panic (every endpoint
    // used), so wait for the good one's first pass to take effect.
    assert!(
        sick.recorder()
            .wait_for_async(1, Duration::from_secs(5))
            .await,
        "the sick endpoint was never checked"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            tally(listen, 10, "/").await.get("good") == Some(&10)
        })
        .await,
        "the good endpoint never passed its check"
    );
    let before = traffic(&sick);
    let got = tally(listen, 100, "/").await;
    assert_eq!(got.get("good"), Some(&100), "{got:?}");
    assert_eq!(traffic(&sick), before, "a failing endpoint got requests");
    // The checks ask for the configured path and host (a request sent while the
    // service was still in panic may have reached the app before the first check).
    let requests = good.recorder().requests();
    let check = requests
        .iter()
        .find(|r| r.uri.path() != "/")
        .expect("the good endpoint was checked");
    assert_eq!(check.uri.path(), "/healthz");
    assert_eq!(
        check.headers.get("host").and_then(|v| v.to_str().ok()),
        Some("echo")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sessions_keep_a_cookie_on_one_endpoint_across_1000_requests() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let hosts = [mesh.host("e1"), mesh.host("e2"), mesh.host("e3")];
    let cp = mesh.control_plane().await;
    let mut apps = Vec::new();
    for (h, name) in hosts.iter().zip(["e1", "e2", "e3"]) {
        apps.push(mesh.meshed_echo(&cp, h, name).await);
    }
    let files = mesh
        .meshed(
            &cp,
            &client,
            "client",
            &[("app", "client")],
            &[],
            &[(mesh.ports.listen, "echo", 80)],
        )
        .await;
    let _client = mesh.meshed_proxy(&cp, &client, &files).await;
    cp.apply(&mesh, "services", &mesh.echo_services()).await;
    let out = cp
        .apply(
            &mesh,
            "sticky",
            "apiVersion: weft.dev/v1alpha1\nkind: BackendPolicy\nmetadata: { name: echo-sticky }\nspec:\n  \
             targetRefs: [{ kind: Service, name: echo }]\n  \
             loadBalancer: { type: maglev, hashOn: { cookie: { name: session, ttl: 1h } } }\n",
        )
        .await;
    assert!(out.contains("backendpolicy/echo-sticky created"), "{out}");
    let listen = mesh.listen(&client);

    // Every new session gets a cookie; new sessions spread over all three endpoints.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let Ok(mut c) = Http1Client::connect(listen).await else {
                return false;
            };
            let mut seen = std::collections::HashSet::new();
            for _ in 0..30 {
                let Some(a) = try_ask(&mut c, "/", None).await else {
                    return false;
                };
                if a.status != 200 || a.set_cookie.is_none() {
                    return false;
                }
                seen.extend(a.server);
            }
            seen.len() == 3
        })
        .await,
        "the policy never reached the client, or sessions did not spread"
    );
    let mut c = Http1Client::connect(listen).await.expect("connect");
    let first = ask(&mut c, "/", None).await;
    let cookie = first
        .set_cookie
        .expect("a new session gets a cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_owned();
    let mut servers = vec![first.server.expect("answered by an app")];
    for _ in 0..999 {
        let a = ask(&mut c, "/", Some(&cookie)).await;
        assert_eq!(a.status, 200);
        assert!(
            a.set_cookie.is_none(),
            "a session with a cookie gets no new one"
        );
        servers.push(a.server.expect("answered by an app"));
    }
    assert!(cookie.starts_with("session="), "{cookie}");
    let first = servers[0].clone();
    assert!(
        servers.iter().all(|s| *s == first),
        "requests of one session went to {:?}",
        servers.iter().collect::<std::collections::HashSet<_>>()
    );

    let (ok, text) = cp.cli(&["describe", "service", "echo"]).await;
    assert!(ok, "{text}");
    assert!(text.contains("BackendPolicy echo-sticky"), "{text}");
    assert!(
        text.contains("load balancer: maglev on cookie session (set for 1h when absent)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_stays_in_the_callers_zone_and_fails_over_when_it_is_unhealthy() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let a1_host = mesh.host("a1");
    let b1_host = mesh.host("b1");
    let b2_host = mesh.host("b2");
    let a1 = app(&mesh, &a1_host, "a1", Misbehaviour::default()).await;
    let _b1 = app(&mesh, &b1_host, "b1", Misbehaviour::default()).await;
    let _b2 = app(&mesh, &b2_host, "b2", Misbehaviour::default()).await;
    let cfg = client_config(
        &mesh,
        &client,
        Some("zone-a"),
        &[
            direct(&a1_host, Some("zone-a")),
            direct(&b1_host, Some("zone-b")),
            direct(&b2_host, Some("zone-b")),
        ],
        &format!(
            "    policy:\n      healthCheck: {{ port: {}, interval: 200ms, timeout: 150ms, unhealthyThreshold: 1, healthyThreshold: 1, check: tcp }}\n",
            mesh.ports.app
        ),
    );
    let _proxy = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let listen = mesh.listen(&client);
    // Once the checks have passed, all of it stays in zone-a.
    assert!(
        eventually(Duration::from_secs(5), || async {
            tally(listen, 20, "/").await.get("a1") == Some(&20)
        })
        .await,
        "traffic never settled on the caller's zone"
    );
    let local_only = tally(listen, 100, "/").await;
    assert_eq!(local_only.get("a1"), Some(&100), "{local_only:?}");

    // The zone's only endpoint goes away: its check fails and traffic fails over to
    // the other zone, over both of its endpoints.
    drop(a1);
    assert!(
        eventually(Duration::from_secs(5), || async {
            let got = tally(listen, 40, "/").await;
            got.get("b1").copied().unwrap_or(0) + got.get("b2").copied().unwrap_or(0) == 40
                && got.len() == 2
        })
        .await,
        "traffic did not fail over to zone-b"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_connection_limit_get_503_at_once() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let slow_host = mesh.host("slow");
    let slow = app(
        &mesh,
        &slow_host,
        "slow",
        Misbehaviour {
            latency: Duration::from_millis(800),
            ..Misbehaviour::default()
        },
    )
    .await;
    let cfg = client_config(
        &mesh,
        &client,
        None,
        &[direct(&slow_host, None)],
        "    policy:\n      limits: { maxRequests: 2 }\n",
    );
    let _proxy = mesh.proxy(&client, &mesh.write("client", &cfg)).await;
    let listen = mesh.listen(&client);
    let mut tasks = Vec::new();
    for i in 0..5u64 {
        tasks.push(tokio::spawn(async move {
            // The first two get in; the rest arrive while they are in flight.
            tokio::time::sleep(Duration::from_millis(if i < 2 { 0 } else { 200 })).await;
            let mut c = Http1Client::connect(listen).await.expect("connect");
            let started = Instant::now();
            let req = http::Request::get("/")
                .header("host", "echo")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .expect("request");
            let resp = c.send(req).await.expect("response");
            let overflow = resp
                .headers()
                .get("x-weft-overflow")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (resp.status().as_u16(), overflow, started.elapsed())
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.expect("task"));
    }
    let ok = results.iter().filter(|(s, _, _)| *s == 200).count();
    let refused: Vec<_> = results.iter().filter(|(s, _, _)| *s == 503).collect();
    assert_eq!((ok, refused.len()), (2, 3), "{results:?}");
    for (_, overflow, took) in &refused {
        assert_eq!(overflow.as_deref(), Some("max_requests"));
        assert!(*took < Duration::from_millis(400), "refused after {took:?}");
    }
    assert_eq!(
        slow.recorder().count(),
        2,
        "refused requests reached the app"
    );
}
