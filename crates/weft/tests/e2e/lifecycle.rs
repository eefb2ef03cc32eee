//! Graceful shutdown on SIGTERM of a `weft proxy` process, and the admin API seen
//! from its own host and from another. (Config hot swap and bad configs need no host
//! of their own: they are in the in-process suite, `tests/mesh`.)

use std::time::Duration;

use crate::support::{get, service, Mesh};

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

    // One series per peer and status: its labels include these, its count is 1.
    let counted = |text: &str, labels: &[&str]| {
        text.lines().any(|l| {
            l.starts_with("weft_proxy_requests_total{")
                && l.ends_with("} 1")
                && labels.iter().all(|label| l.contains(label))
        })
    };
    let (_, metrics) = curl(&client, &["http://127.0.0.1:15020/metrics"]);
    assert!(
        counted(
            &metrics,
            &[
                r#"direction="outbound""#,
                r#"destination_service="echo.default""#,
                r#"status="200""#,
                r#"connection_security="mutual_tls""#,
            ]
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("weft_proxy_request_duration_seconds_bucket"),
        "{metrics}"
    );
    let (_, server_metrics) = curl(&server, &["http://127.0.0.1:15020/metrics"]);
    assert!(
        counted(
            &server_metrics,
            &[
                r#"direction="inbound""#,
                r#"status="200""#,
                r#"connection_security="mutual_tls""#,
            ]
        ),
        "{server_metrics}"
    );
    // The admin API is bound to loopback: other hosts cannot reach it.
    let (reachable, _) = curl(&server, &[&format!("http://{}:15000/ready", client.ip())]);
    assert!(!reachable, "the admin API answered another host");
}
