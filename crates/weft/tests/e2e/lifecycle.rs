//! Config hot-swap, bad config, and graceful shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;

use crate::support::{get, local, outbound, service, Mesh};

/// Client config splitting `echo` between v1 and v2 by the given weights.
fn split(v1: &weft_testkit::Host, v2: &weft_testkit::Host, w1: u32, w2: u32, id: &str) -> String {
    format!(
        "{id}outbound:\n{ob}services:\n{echo}{ev1}{ev2}\
         routes:\n  - service: echo\n    rules:\n      - backends: [{{ service: echo-v1, weight: {w1} }}, {{ service: echo-v2, weight: {w2} }}]\n",
        ob = outbound(18080, "echo", 80),
        echo = service("echo", 80, 8080, "http", &[]),
        ev1 = service("echo-v1", 80, 8080, "http", &[Mesh::endpoint(v1, "echo")]),
        ev2 = service("echo-v2", 80, 8080, "http", &[Mesh::endpoint(v2, "echo")]),
    )
}

#[test]
fn config_hot_swap_under_load_fails_no_request_and_traffic_follows() {
    let Some(mesh) = Mesh::new("config_hot_swap_under_load_fails_no_request_and_traffic_follows")
    else {
        return;
    };
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let _v1 = crate::support::echo_workload(&mesh, &v1, "v1");
    let _v2 = crate::support::echo_workload(&mesh, &v2, "v2");
    let id = mesh.identity_yaml(&client, "client", &[]);
    let path = mesh.write("client", &split(&v1, &v2, 100, 0, &id));
    let proxy = mesh.proxy(&client, &path);

    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (failures, sent, stop) = (failures.clone(), sent.clone(), stop.clone());
        client.spawn(move || async move {
            let mut workers = Vec::new();
            for _ in 0..4 {
                let (failures, sent, stop) = (failures.clone(), sent.clone(), stop.clone());
                workers.push(tokio::spawn(async move {
                    let mut c = Http1Client::connect(local(18080)).await.expect("connect");
                    while !stop.load(Ordering::Relaxed) {
                        let req = http::Request::get("/load")
                            .header("host", "echo")
                            .body(http_body_util::Empty::<bytes::Bytes>::new())
                            .expect("req");
                        sent.fetch_add(1, Ordering::Relaxed);
                        match c.send(req).await {
                            Ok(r) if r.status() == 200 => {}
                            _ => {
                                failures.fetch_add(1, Ordering::Relaxed);
                                c = Http1Client::connect(local(18080)).await.expect("reconnect");
                            }
                        }
                    }
                }));
            }
            for w in workers {
                let _ = w.await;
            }
        })
    };

    // Shift 100/0 → 0/100 → 50/50 → 0/100 while the load runs.
    for (w1, w2) in [(0, 100), (50, 50), (0, 100)] {
        std::thread::sleep(Duration::from_millis(700));
        mesh.write("client", &split(&v1, &v2, w1, w2, &id));
    }
    // After the last swap (0/100), new requests must land on v2 within a second.
    let started = Instant::now();
    // 20 answers in a row from v2: under the previous 50/50 split that happens by
    // chance once in a million.
    let followed = crate::support::eventually(Duration::from_secs(3), || {
        client.run(|| async {
            for _ in 0..20 {
                if get(18080, "/probe").await.1.as_deref() != Some("v2") {
                    return false;
                }
            }
            true
        })
    });
    stop.store(true, Ordering::Relaxed);
    drop(load);
    assert!(
        followed,
        "traffic did not move to v2 after the config change"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let sent = sent.load(Ordering::Relaxed);
    assert!(
        sent > 100,
        "the load generator barely ran ({sent} requests)"
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed during hot swaps ({sent} sent)"
    );
    let logs = proxy.logs();
    assert!(logs.matches("config reloaded").count() >= 3, "{logs}");
}

#[test]
fn a_malformed_config_is_rejected_with_its_field_path_and_the_old_one_stays() {
    let Some(mesh) =
        Mesh::new("a_malformed_config_is_rejected_with_its_field_path_and_the_old_one_stays")
    else {
        return;
    };
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (_app, _sp) = crate::support::echo_workload(&mesh, &server, "echo");
    let good = crate::support::client_config(
        &mesh,
        &client,
        &service("echo", 80, 8080, "http", &[Mesh::endpoint(&server, "echo")]),
        "",
    );
    let path = mesh.write("client", &good);
    let proxy = mesh.proxy(&client, &path);
    assert_eq!(client.run(|| get(18080, "/before")).0, 200);

    let bad = good.replace("targetPort: 8080", "targetPort: 8080, tragetPort: 1");
    mesh.write("client", &bad);
    assert!(
        crate::support::eventually(Duration::from_secs(5), || proxy
            .logs()
            .contains("config rejected")),
        "no rejection logged:\n{}",
        proxy.logs()
    );
    let logs = proxy.logs();
    assert!(
        logs.contains("services[0].ports[0]") && logs.contains("tragetPort"),
        "error lacks the field path:\n{logs}"
    );
    assert_eq!(
        client.run(|| get(18080, "/after")).0,
        200,
        "the previous config must stay in force"
    );

    // The same file through --check: non-zero exit, field path on stderr, nothing started.
    let out = std::process::Command::new(crate::support::weft())
        .args(["proxy", "--check", "--config"])
        .arg(&path)
        .output()
        .expect("weft proxy --check");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("services[0].ports[0]"), "{stderr}");
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let Some(mesh) = Mesh::new("sigterm_drains_in_flight_requests_then_exits_zero") else {
        return;
    };
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (app, _sp) = crate::support::echo_workload(&mesh, &server, "echo");
    let cfg = crate::support::client_config(
        &mesh,
        &client,
        &service("echo", 80, 8080, "http", &[Mesh::endpoint(&server, "echo")]),
        "",
    );
    let mut proxy = mesh.proxy(&client, &mesh.write("client", &cfg));
    let in_flight = client.spawn(|| get(18080, "/delay/1500"));
    // The app records the request before it starts waiting: from then on it is in flight.
    assert!(
        app.recorder().wait_for(1, Duration::from_secs(10)),
        "the slow request never reached the app"
    );
    proxy.sigterm().expect("SIGTERM");
    let ready_status = || {
        let out = client
            .command("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "http://127.0.0.1:15000/ready",
            ])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        crate::support::eventually(Duration::from_secs(5), || ready_status() == "503"),
        "/ready did not report the drain"
    );
    let (refused, _) = client.run(|| get(18080, "/new"));
    assert_eq!(refused, 0, "a new connection was accepted while draining");
    let (status, _) = in_flight.join().expect("in-flight request finished");
    assert_eq!(status, 200, "the in-flight request must complete");
    let exit = proxy
        .wait_exit(Duration::from_secs(5))
        .expect("proxy exits");
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn admin_and_metrics_report_readiness_config_levels_and_requests() {
    let Some(mesh) = Mesh::new("admin_and_metrics_report_readiness_config_levels_and_requests")
    else {
        return;
    };
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (_app, _sp) = crate::support::echo_workload(&mesh, &server, "echo");
    let cfg = crate::support::client_config(
        &mesh,
        &client,
        &service("echo", 80, 8080, "http", &[Mesh::endpoint(&server, "echo")]),
        "",
    );
    let _cp = mesh.proxy(&client, &mesh.write("client", &cfg));
    assert_eq!(client.run(|| get(18080, "/counted")).0, 200);

    let curl = |host: &weft_testkit::Host, args: &[&str]| -> (bool, String) {
        let out = host
            .command("curl")
            .args(["-sS", "-g", "--max-time", "5"])
            .args(args)
            .output()
            .expect("curl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, dump) = curl(&client, &["http://127.0.0.1:15000/config_dump"]);
    assert!(ok);
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("config_dump is JSON");
    assert_eq!(
        dump["identity"],
        "spiffe://cluster.local/ns/default/sa/client"
    );
    assert_eq!(dump["config"]["services"][0]["name"], "echo");
    assert!(dump["version"].as_str().is_some_and(|v| !v.is_empty()));

    let (ok, level) = curl(
        &client,
        &["-X", "POST", "http://127.0.0.1:15000/logging?level=debug"],
    );
    assert!(ok, "{level}");
    assert_eq!(
        curl(&client, &["http://127.0.0.1:15000/logging"]).1.trim(),
        "debug"
    );
    let (_, bad) = curl(
        &client,
        &["-X", "POST", "http://127.0.0.1:15000/logging?level=[[["],
    );
    assert!(bad.starts_with("invalid filter"), "{bad}");

    let (_, metrics) = curl(&client, &["http://127.0.0.1:15020/metrics"]);
    assert!(
        metrics.contains(r#"weft_proxy_requests_total{direction="outbound",service="echo.default",status="200",connection_security="unknown"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("weft_proxy_request_duration_seconds_bucket"),
        "{metrics}"
    );
    let (_, server_metrics) = curl(&server, &["http://127.0.0.1:15020/metrics"]);
    assert!(
        server_metrics.contains(r#"weft_proxy_requests_total{direction="inbound",service="echo.default",status="200",connection_security="mutual_tls"} 1"#),
        "{server_metrics}"
    );
    // The admin API is bound to loopback: other hosts cannot reach it.
    let (reachable, _) = curl(&server, &[&format!("http://{}:15000/ready", client.ip())]);
    assert!(!reachable, "the admin API answered another host");
}
