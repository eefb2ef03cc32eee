//! The control plane: proxies register, `weft apply` reaches every proxy within a
//! second, proxies keep serving through a control-plane outage (and restart from their
//! persisted config during one), and a bad resource is NACKed alone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;
use weft_testkit::echo;

use crate::harness::control_plane::echo_split;
use crate::harness::{eventually, get, Mesh};

/// One GET over a kept-alive connection; the name of the app that answered, or why
/// it failed.
async fn ask(c: &mut Http1Client) -> Result<String, String> {
    let req = http::Request::get("/")
        .header("host", "echo")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = c.send(req).await.map_err(|e| e.to_string())?;
    if resp.status() != 200 {
        return Err(format!("status {}: {:?}", resp.status(), resp.body()));
    }
    resp.headers()
        .get(echo::SERVER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| "no server header".to_owned())
}

/// Counts answers by app over `n` requests to `listen`.
async fn tally(listen: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut c = Http1Client::connect(listen).await.expect("connect");
    let mut counts = HashMap::new();
    for _ in 0..n {
        let name = ask(&mut c).await.expect("request through the mesh");
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

/// Sends requests until 20 in a row come from `want`; returns how long after `since`
/// the first of those 20 was sent.
async fn converge_on(
    listen: SocketAddr,
    want: &str,
    since: Instant,
    timeout: Duration,
) -> Option<Duration> {
    let mut c = Http1Client::connect(listen).await.expect("connect");
    let mut streak_start = None;
    let mut streak = 0;
    while since.elapsed() < timeout {
        let sent = Instant::now();
        match ask(&mut c).await {
            Ok(name) if name == want => {
                streak_start.get_or_insert(sent);
                streak += 1;
                if streak == 20 {
                    return streak_start.map(|s| s.duration_since(since));
                }
            }
            Ok(_) => {
                streak = 0;
                streak_start = None;
            }
            Err(e) => panic!("request failed while converging: {e}"),
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_route_shift_reaches_the_client_proxy_within_a_second() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let cp = mesh.control_plane().await;
    let _v1 = mesh.meshed_echo(&cp, &v1, "v1").await;
    let _v2 = mesh.meshed_echo(&cp, &v2, "v2").await;
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
    let listen = mesh.listen(&client);

    let out = cp.apply(&mesh, "services", &mesh.echo_services()).await;
    assert!(out.contains("service/echo created"), "{out}");
    cp.apply(&mesh, "split", &echo_split(50, 50)).await;

    // Both versions answer once the client proxy has the services and the route.
    assert!(
        eventually(Duration::from_secs(10), || async {
            let counts = async {
                let mut c = Http1Client::connect(listen).await.ok()?;
                let mut counts: HashMap<String, usize> = HashMap::new();
                for _ in 0..40 {
                    *counts.entry(ask(&mut c).await.ok()?).or_default() += 1;
                }
                Some(counts)
            }
            .await;
            // Both answering is not enough: before the route arrives, the service's
            // own endpoints (v1 and v2) answer too, but not evenly.
            counts.is_some_and(|c| c.len() == 2 && c.values().all(|n| *n >= 8))
        })
        .await,
        "the 50/50 split never reached the client"
    );
    let counts = tally(listen, 400).await;
    let v1_share = counts.get("v1").copied().unwrap_or(0);
    // Binomial(400, 0.5): sd 10; ±5 sd.
    assert!((150..=250).contains(&v1_share), "50/50 gave {counts:?}");

    let (ok, out) = cp.cli(&["get", "workloads"]).await;
    assert!(ok, "{out}");
    assert_eq!(
        out.matches("Healthy").count(),
        3,
        "three registered workloads:\n{out}"
    );

    let applied = Instant::now();
    cp.apply(&mesh, "shift", &echo_split(100, 0)).await;
    let took = converge_on(listen, "v1", applied, Duration::from_secs(5))
        .await
        .expect("traffic never moved to v1 only");
    assert!(
        took < Duration::from_secs(1),
        "100/0 took {took:?} to reach the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_serve_through_a_control_plane_outage_and_restart_from_persisted_config() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let control = mesh.control_plane().await;
    let _v1 = mesh.meshed_echo(&control, &v1, "v1").await;
    let _v2 = mesh.meshed_echo(&control, &v2, "v2").await;
    let files = mesh
        .meshed(
            &control,
            &client,
            "client",
            &[],
            &[],
            &[(mesh.ports.listen, "echo", 80)],
        )
        .await;
    let proxy = mesh.meshed_proxy(&control, &client, &files).await;
    let listen = mesh.listen(&client);
    control
        .apply(&mesh, "services", &mesh.echo_services())
        .await;
    control.apply(&mesh, "split", &echo_split(50, 50)).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(listen, "/").await.0 == 200
        })
        .await,
        "the mesh never served"
    );

    // Continuous traffic while the control plane goes away.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let mut c = Http1Client::connect(listen).await.expect("connect");
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match ask(&mut c).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        errors.push(e);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let proxy_cp = mesh.proxy_control_plane(&control, &client, &files);
    control.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let errors = load.await.expect("load task");
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little traffic to judge"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failures during the outage: {errors:?}"
    );

    // A proxy restarted while the control plane is down serves from its persisted config.
    proxy.shutdown().await.expect("the proxy drains and stops");
    let _proxy = crate::harness::Proxy::start(
        client.name(),
        files.bootstrap.clone(),
        Some(proxy_cp),
        mesh.admin(&client),
    )
    .await;
    let counts = tally(listen, 100).await;
    assert_eq!(counts.values().sum::<usize>(), 100);
    assert_eq!(
        counts.len(),
        2,
        "both versions serve from the persisted route: {counts:?}"
    );

    // The control plane comes back on the same data; a new change reaches everyone.
    let control = mesh.control_plane().await;
    let applied = Instant::now();
    control.apply(&mesh, "shift", &echo_split(0, 100)).await;
    let took = converge_on(listen, "v2", applied, Duration::from_secs(15)).await;
    assert!(
        took.is_some(),
        "the client never reconverged after the control plane returned"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            let (_, out) = control.cli(&["get", "workloads"]).await;
            out.matches("Healthy").count() == 3
        })
        .await,
        "every workload re-registered: {}",
        control.cli(&["get", "workloads"]).await.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_the_proxy_cannot_apply_is_nacked_alone_and_shown_by_inspect() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let cp = mesh.control_plane().await;
    let _v1 = mesh.meshed_echo(&cp, &v1, "v1").await;
    let _v2 = mesh.meshed_echo(&cp, &v2, "v2").await;
    let files = mesh
        .meshed(
            &cp,
            &client,
            "client",
            &[],
            &[],
            &[(mesh.ports.listen, "echo", 80)],
        )
        .await;
    let _client = mesh.meshed_proxy(&cp, &client, &files).await;
    let listen = mesh.listen(&client);
    cp.apply(&mesh, "services", &mesh.echo_services()).await;
    cp.apply(&mesh, "split", &echo_split(100, 0)).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(listen, "/").await == (200, Some("v1".into()))
        })
        .await,
        "the route never reached the client"
    );

    // Valid for the control plane (the pattern parses), too big for the proxy's
    // per-regex program limit: the client proxy refuses this route table only.
    let huge = r"(\w{1,20}-){4}\w+";
    let route = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: echo-split }}
spec:
  parentRefs: [{{ kind: Service, name: echo, port: 80 }}]
  rules:
    - matches: [{{ headers: [{{ type: RegularExpression, name: x-user, value: '{huge}' }}] }}]
      backendRefs: [{{ name: echo-v2, port: 80 }}]
    - backendRefs: [{{ name: echo-v2, port: 80 }}]
"
    );
    cp.apply(&mesh, "bad-route", &route).await;
    let inspected = eventually(Duration::from_secs(10), || async {
        let (ok, out) = cp.cli(&["inspect", "proxy", "client"]).await;
        ok && out.contains("size limit")
    })
    .await;
    let (_, out) = cp.cli(&["inspect", "proxy", "client"]).await;
    assert!(inspected, "inspect never showed the NACK:\n{out}");
    assert!(
        out.contains("NACK") && out.contains("echo.default"),
        "the NACK names the refused route table:\n{out}"
    );
    // The old route table stays in force: everything still goes to v1.
    let counts = tally(listen, 50).await;
    assert_eq!(counts.get("v1"), Some(&50), "{counts:?}");
}
