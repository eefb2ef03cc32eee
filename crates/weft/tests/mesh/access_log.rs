//! Access logs through two real proxies: a JSON line per exchange on each side, for a
//! request that was allowed, one that was retried until the retries ran out, and one
//! that failed at the app; every line parsed back and checked field by field.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use weft_testkit::client::Http1Client;
use weft_testkit::echo::{self, EchoReply};

use crate::harness::{eventually, Mesh};

/// The JSON lines of `path` so far.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Waits until `path` holds at least `n` lines; returns them.
async fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    let ok = eventually(Duration::from_secs(5), || async { lines(path).len() >= n }).await;
    let got = lines(path);
    assert!(ok, "{n} lines in {}: {got:#?}", path.display());
    got
}

fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    line.get(name)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_logs_allowed_retried_and_failed_requests_as_json_lines() {
    let mesh = Mesh::new();
    let client = mesh.host("client");
    let server = mesh.host("server");
    let logs = tempfile::tempdir().unwrap();
    let (client_log, server_log) = (
        logs.path().join("client.log"),
        logs.path().join("server.log"),
    );
    let telemetry = |path: &Path| {
        format!(
            "telemetry:\n  accessLog: {{ format: json, path: {} }}\n  \
             tracing: {{ endpoint: \"http://127.0.0.1:9\", sampling: 100 }}\n",
            path.display()
        )
    };
    let server_cfg = mesh.write(
        "server",
        &format!(
            "{}{}",
            mesh.identity_yaml(&server, "echo", &[(mesh.ports.app, "http")]),
            telemetry(&server_log)
        ),
    );
    let services = mesh.service("echo", 80, "http", &[mesh.endpoint(&server, "echo")]);
    let routes =
        "routes:\n  - service: echo\n    rules:\n      - backends: [{ service: echo }]\n        \
                  retry: { attempts: 2, codes: [503], backoff: 5ms }\n";
    let client_cfg = mesh.write(
        "client",
        &mesh.client_config(
            &client,
            "client",
            &services,
            &format!("{routes}{}", telemetry(&client_log)),
        ),
    );
    let _server_proxy = mesh.proxy(&server, &server_cfg).await;
    let _client_proxy = mesh.proxy(&client, &client_cfg).await;
    let app = echo::spawn_http(mesh.app(&server), "echo").await.unwrap();
    let mut conn = Http1Client::connect(mesh.listen(&client)).await.unwrap();
    let get = |path: &'static str| {
        Request::get(path)
            .header("host", "echo")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // Allowed.
    let resp = conn.send(get("/items/1?token=secret")).await.unwrap();
    assert_eq!(resp.status(), 200);
    let reply = EchoReply::from_body(resp.body()).unwrap();
    let trace_id = reply.headers["traceparent"]
        .split('-')
        .nth(1)
        .unwrap()
        .to_owned();
    let client_lines = wait_lines(&client_log, 1).await;
    let server_lines = wait_lines(&server_log, 1).await;
    let out = &client_lines[0];
    let inn = &server_lines[0];
    for (line, direction) in [(out, "outbound"), (inn, "inbound")] {
        assert_eq!(field(line, "direction"), direction);
        assert_eq!(field(line, "method"), "GET");
        assert_eq!(field(line, "path"), "/items/1", "the query is never logged");
        assert_eq!(field(line, "status"), 200);
        assert_eq!(field(line, "protocol"), "HTTP/1.1");
        assert_eq!(field(line, "response_flags"), "-");
        assert_eq!(field(line, "retry_count"), 0);
        assert_eq!(field(line, "trace_id"), trace_id.as_str(), "{line}");
        assert_eq!(
            field(line, "source_identity"),
            "spiffe://cluster.local/ns/default/sa/client"
        );
        assert_eq!(
            field(line, "destination_identity"),
            "spiffe://cluster.local/ns/default/sa/echo"
        );
        assert_eq!(
            field(line, "bytes_sent").as_u64(),
            Some(resp.body().len() as u64),
            "{line}"
        );
        assert!(field(line, "duration_ms")
            .as_f64()
            .is_some_and(|d| d >= 0.0));
        assert!(field(line, "start_time")
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
    }
    assert_eq!(field(out, "destination_service"), "echo.default");
    assert_eq!(field(out, "route"), "routes[0]");
    assert_eq!(field(out, "route_rule"), 0);
    assert_eq!(
        field(out, "upstream_host"),
        mesh.app(&server).to_string().as_str(),
        "the endpoint that answered, on the target port"
    );
    assert_eq!(
        field(inn, "upstream_host"),
        mesh.app(&server).to_string().as_str()
    );

    // Retried until the rule's retries ran out: one line on the caller's side with
    // the retries and URX, three on the server's.
    let resp = conn.send(get("/status/503")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let client_lines = wait_lines(&client_log, 2).await;
    let server_lines = wait_lines(&server_log, 4).await;
    let out = &client_lines[1];
    assert_eq!(field(out, "status"), 503);
    assert_eq!(field(out, "retry_count"), 2);
    assert_eq!(field(out, "response_flags"), "URX");
    let tries: Vec<&Value> = server_lines[1..]
        .iter()
        .filter(|l| l["path"] == "/status/503")
        .collect();
    assert_eq!(tries.len(), 3, "{server_lines:#?}");
    assert!(tries
        .iter()
        .all(|l| l["status"] == 503 && l["response_flags"] == "-"));

    // Failed at the app: the server's proxy could not reach it.
    drop(app);
    let resp = conn.send(get("/gone")).await.unwrap();
    assert_eq!(resp.status(), 502);
    let server_lines = wait_lines(&server_log, 5).await;
    let failed = server_lines.last().unwrap();
    assert_eq!(field(failed, "path"), "/gone");
    assert_eq!(field(failed, "status"), 502);
    assert_eq!(field(failed, "response_flags"), "UF", "{failed}");
    let client_lines = wait_lines(&client_log, 3).await;
    assert_eq!(field(&client_lines[2], "status"), 502);
}
