//! The control plane end to end: proxies register, `weft apply` reaches every proxy
//! within a second, proxies keep serving through a control-plane outage (and restart
//! from their persisted config during one), and a bad resource is NACKed alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;
use weft_testkit::echo;

use crate::support::{echo_split, eventually, get, local, meshed_echo, Mesh, ECHO_SERVICES};

/// One GET through the client's listener on 18080 over a kept-alive connection;
/// returns the name of the app that answered, or why it failed.
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

/// Counts answers by app over `n` requests.
async fn tally(n: usize) -> HashMap<String, usize> {
    let mut c = Http1Client::connect(local(18080)).await.expect("connect");
    let mut counts = HashMap::new();
    for _ in 0..n {
        let name = ask(&mut c).await.expect("request through the mesh");
        *counts.entry(name).or_insert(0) += 1;
    }
    counts
}

/// Sends requests until 20 in a row come from `want`; returns how long after `since`
/// the first of those 20 was sent.
async fn converge_on(want: &str, since: Instant, timeout: Duration) -> Option<Duration> {
    let mut c = Http1Client::connect(local(18080)).await.expect("connect");
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

#[test]
fn an_applied_route_shift_reaches_the_client_proxy_within_a_second() {
    let Some(mesh) = Mesh::new("an_applied_route_shift_reaches_the_client_proxy_within_a_second")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let _cp = mesh.control_plane(&cp, &[]);
    let _v1 = meshed_echo(&mesh, &v1, &cp, "v1");
    let _v2 = meshed_echo(&mesh, &v2, &cp, "v2");
    let boot = mesh.bootstrap(
        &client,
        "client",
        &[("app", "client")],
        &[],
        &[(18080, "echo", 80)],
    );
    let _client = mesh.meshed_proxy(&client, &boot, &cp);

    let out = mesh.apply(&cp, "services", ECHO_SERVICES);
    assert!(out.contains("service/echo created"), "{out}");
    mesh.apply(&cp, "split", &echo_split(50, 50));

    // Both versions answer once the client proxy has the services and the route.
    assert!(
        eventually(Duration::from_secs(10), || {
            let counts = client.run(|| async {
                let mut c = Http1Client::connect(local(18080)).await.ok()?;
                let mut counts: HashMap<String, usize> = HashMap::new();
                for _ in 0..40 {
                    *counts.entry(ask(&mut c).await.ok()?).or_default() += 1;
                }
                Some(counts)
            });
            // Both answering is not enough: before the route arrives, the service's
            // own endpoints (v1 and v2) answer too, but not evenly.
            counts.is_some_and(|c| c.len() == 2 && c.values().all(|n| *n >= 8))
        }),
        "the 50/50 split never reached the client"
    );
    let counts = client.run(|| tally(400));
    let v1_share = counts.get("v1").copied().unwrap_or(0);
    // Binomial(400, 0.5): sd 10; ±5 sd.
    assert!((150..=250).contains(&v1_share), "50/50 gave {counts:?}");

    let (ok, out) = mesh.cli(&cp, &["get", "workloads"]);
    assert!(ok, "{out}");
    assert_eq!(
        out.matches("Healthy").count(),
        3,
        "three registered workloads:\n{out}"
    );

    let applied = Instant::now();
    mesh.apply(&cp, "shift", &echo_split(100, 0));
    let took = client
        .run(|| converge_on("v1", applied, Duration::from_secs(5)))
        .expect("traffic never moved to v1 only");
    assert!(
        took < Duration::from_secs(1),
        "100/0 took {took:?} to reach the client"
    );
}

#[test]
fn proxies_serve_through_a_control_plane_outage_and_restart_from_persisted_config() {
    let Some(mesh) =
        Mesh::new("proxies_serve_through_a_control_plane_outage_and_restart_from_persisted_config")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let mut control = mesh.control_plane(&cp, &[]);
    let _v1 = meshed_echo(&mesh, &v1, &cp, "v1");
    let _v2 = meshed_echo(&mesh, &v2, &cp, "v2");
    let boot = mesh.bootstrap(&client, "client", &[], &[], &[(18080, "echo", 80)]);
    let token = mesh.workload_token(&cp, "client", &[]);
    let mut proxy = mesh.tokened_proxy(&client, &boot, &token, &cp);
    mesh.apply(&cp, "services", ECHO_SERVICES);
    mesh.apply(&cp, "split", &echo_split(50, 50));
    assert!(
        eventually(Duration::from_secs(10), || client.run(|| get(18080, "/")).0
            == 200),
        "the mesh never served"
    );

    // Continuous traffic while the control plane goes away.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        client.spawn(move || async move {
            let mut c = Http1Client::connect(local(18080)).await.expect("connect");
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
    std::thread::sleep(Duration::from_millis(500));
    control.kill().expect("stop the control plane");
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let errors = load.join().expect("load thread");
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
    proxy.sigterm().expect("SIGTERM");
    proxy
        .wait_exit(Duration::from_secs(15))
        .expect("proxy exits");
    drop(proxy);
    let _proxy = mesh.tokened_proxy(&client, &boot, &token, &cp);
    let counts = client.run(|| tally(100));
    assert_eq!(counts.values().sum::<usize>(), 100);
    assert_eq!(
        counts.len(),
        2,
        "both versions serve from the persisted route: {counts:?}"
    );

    // The control plane comes back on the same data; a new change reaches everyone.
    let _control = mesh.control_plane(&cp, &[]);
    let applied = Instant::now();
    mesh.apply(&cp, "shift", &echo_split(0, 100));
    let took = client.run(|| converge_on("v2", applied, Duration::from_secs(15)));
    assert!(
        took.is_some(),
        "the client never reconverged after the control plane returned"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let (_, out) = mesh.cli(&cp, &["get", "workloads"]);
            out.matches("Healthy").count() == 3
        }),
        "every workload re-registered: {}",
        mesh.cli(&cp, &["get", "workloads"]).1
    );
}

#[test]
fn a_route_the_proxy_cannot_apply_is_nacked_alone_and_shown_by_inspect() {
    let Some(mesh) =
        Mesh::new("a_route_the_proxy_cannot_apply_is_nacked_alone_and_shown_by_inspect")
    else {
        return;
    };
    let cp = mesh.host("cp");
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let _cp = mesh.control_plane(&cp, &[]);
    let _v1 = meshed_echo(&mesh, &v1, &cp, "v1");
    let _v2 = meshed_echo(&mesh, &v2, &cp, "v2");
    let boot = mesh.bootstrap(&client, "client", &[], &[], &[(18080, "echo", 80)]);
    let _client = mesh.meshed_proxy(&client, &boot, &cp);
    mesh.apply(&cp, "services", ECHO_SERVICES);
    mesh.apply(&cp, "split", &echo_split(100, 0));
    assert!(
        eventually(Duration::from_secs(10), || client.run(|| get(18080, "/"))
            == (200, Some("v1".into()))),
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
    mesh.apply(&cp, "bad-route", &route);
    let inspected = eventually(Duration::from_secs(10), || {
        let (ok, out) = mesh.cli(&cp, &["inspect", "proxy", "client"]);
        ok && out.contains("size limit")
    });
    let (_, out) = mesh.cli(&cp, &["inspect", "proxy", "client"]);
    assert!(inspected, "inspect never showed the NACK:\n{out}");
    assert!(
        out.contains("NACK") && out.contains("echo.default"),
        "the NACK names the refused route table:\n{out}"
    );
    // The old route table stays in force: everything still goes to v1.
    let counts = client.run(|| tally(50));
    assert_eq!(counts.get("v1"), Some(&50), "{counts:?}");
}

#[test]
fn a_write_through_one_control_plane_reaches_proxies_on_another_sharing_postgresql() {
    let Some(mesh) = Mesh::new(
        "a_write_through_one_control_plane_reaches_proxies_on_another_sharing_postgresql",
    ) else {
        return;
    };
    let db = mesh.host("db");
    let cp1 = mesh.host("cp1");
    let cp2 = mesh.host("cp2");
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let bin = crate::support::postgres_bin()
        .expect("PostgreSQL server binaries (Debian package postgresql)");
    let _pg = crate::support::Postgres::start(&db, &bin, mesh.dir.path());
    let url = format!("postgres://postgres@{}:5432/postgres", db.ip());
    let _c1 = mesh.control_plane(&cp1, &["--store", &url]);
    let _c2 = mesh.control_plane(&cp2, &["--store", &url]);
    // The server registers through cp1, the client talks to cp2.
    let _v1 = meshed_echo(&mesh, &v1, &cp1, "v1");
    let boot = mesh.bootstrap(&client, "client", &[], &[], &[(18080, "echo", 80)]);
    let _client = mesh.meshed_proxy(&client, &boot, &cp2);
    // Written through cp1's API.
    mesh.apply(&cp1, "services", ECHO_SERVICES);
    assert!(
        eventually(Duration::from_secs(10), || client.run(|| get(18080, "/"))
            == (200, Some("v1".into()))),
        "the client (on cp2) never learned the service written through cp1"
    );
    let (ok, out) = mesh.cli(&cp2, &["get", "workloads", "-o", "wide"]);
    assert!(
        ok && out.contains("echo-v1") && out.contains("cp1"),
        "{out}"
    );
}
