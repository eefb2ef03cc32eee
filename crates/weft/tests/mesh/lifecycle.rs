//! Config hot swap under load, and a bad config rejected while the old one serves.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_testkit::client::Http1Client;

use crate::harness::{eventually, get, Host, Mesh};

/// Client config splitting `echo` between v1 and v2 by the given weights.
fn split(mesh: &Mesh, client: &Host, v1: &Host, v2: &Host, w1: u32, w2: u32) -> String {
    let services = format!(
        "{}{}{}",
        mesh.service("echo", 80, "http", &[]),
        mesh.service("echo-v1", 80, "http", &[mesh.endpoint(v1, "echo")]),
        mesh.service("echo-v2", 80, "http", &[mesh.endpoint(v2, "echo")]),
    );
    mesh.client_config(
        client,
        "client",
        &services,
        &format!(
            "routes:\n  - service: echo\n    rules:\n      - backends: [{{ service: echo-v1, weight: {w1} }}, {{ service: echo-v2, weight: {w2} }}]\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_hot_swap_under_load_fails_no_request_and_traffic_follows() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let v1 = mesh.host("v1");
    let v2 = mesh.host("v2");
    let _v1 = mesh.echo_workload(&v1, "v1").await;
    let _v2 = mesh.echo_workload(&v2, "v2").await;
    let path = mesh.write("client", &split(&mesh, &client, &v1, &v2, 100, 0));
    let proxy = mesh.proxy(&client, &path).await;
    let listen = mesh.listen(&client);

    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (failures, sent, stop) = (failures.clone(), sent.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut c = Http1Client::connect(listen).await.expect("connect");
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
                        c = Http1Client::connect(listen).await.expect("reconnect");
                    }
                }
            }
        }));
    }

    // Shift 100/0 → 0/100 → 50/50 → 0/100 while the load runs.
    for (w1, w2) in [(0, 100), (50, 50), (0, 100)] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        mesh.write("client", &split(&mesh, &client, &v1, &v2, w1, w2));
    }
    // After the last swap (0/100), new requests must land on v2 within a second.
    let started = Instant::now();
    // 20 answers in a row from v2: under the previous 50/50 split that happens by
    // chance once in a million.
    let followed = eventually(Duration::from_secs(3), || async {
        for _ in 0..20 {
            if get(listen, "/probe").await.1.as_deref() != Some("v2") {
                return false;
            }
        }
        true
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_config_is_rejected_with_its_field_path_and_the_old_one_stays() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let (_app, _sp) = mesh.echo_workload(&server, "echo").await;
    let good = mesh.client_config(
        &client,
        "client",
        &mesh.service("echo", 80, "http", &[mesh.endpoint(&server, "echo")]),
        "",
    );
    let path = mesh.write("client", &good);
    let proxy = mesh.proxy(&client, &path).await;
    let listen = mesh.listen(&client);
    assert_eq!(get(listen, "/before").await.0, 200);

    let target = format!("targetPort: {}", mesh.ports.app);
    let bad = good.replace(&target, &format!("{target}, tragetPort: 1"));
    assert_ne!(bad, good);
    mesh.write("client", &bad);
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.logs().contains("config rejected")
        })
        .await,
        "no rejection logged:\n{}",
        proxy.logs()
    );
    let logs = proxy.logs();
    assert!(
        logs.contains("services[0].ports[0]") && logs.contains("tragetPort"),
        "error lacks the field path:\n{logs}"
    );
    assert_eq!(
        get(listen, "/after").await.0,
        200,
        "the previous config must stay in force"
    );

    // The same file through --check: non-zero exit, field path on stderr, nothing started.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["proxy", "--check", "--config"])
        .arg(&path)
        .output()
        .await
        .expect("weft proxy --check");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("services[0].ports[0]"), "{stderr}");
}
