//! Refusals: wrong identities, bad certificates, plaintext, oversized headers. Each one
//! fails clearly and forwards nothing.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_testkit::echo;

use crate::harness::{get, Host, Mesh, Proxy};

/// A server host running the echo app behind a proxy with `server_certs`, and a client
/// host whose service `echo` expects `expected_sa` at that endpoint.
struct Setup {
    mesh: Mesh,
    client: Host,
    server: Host,
    app: echo::Server,
    client_proxy: Proxy,
    _server_proxy: Proxy,
}

async fn setup(
    mesh: Mesh,
    server_certs: &weft_tls::ca::IssuedPaths,
    client_certs: &weft_tls::ca::IssuedPaths,
    expected_sa: &str,
) -> Setup {
    let client = mesh.host("client");
    let server = mesh.host("server");
    let app = echo::spawn_http(mesh.app(&server), "echo")
        .await
        .expect("app");
    let server_cfg = mesh.write(
        "server",
        &mesh.identity_yaml_with(&server, "echo", &[(mesh.ports.app, "http")], server_certs),
    );
    let server_proxy = mesh.proxy(&server, &server_cfg).await;
    let client_cfg = format!(
        "{}outbound:\n{}services:\n{}",
        mesh.identity_yaml_with(&client, "client", &[], client_certs),
        Mesh::outbound(&client, mesh.ports.listen, "echo", 80),
        mesh.service("echo", 80, "http", &[mesh.endpoint(&server, expected_sa)]),
    );
    let client_proxy = mesh
        .proxy(&client, &mesh.write("client", &client_cfg))
        .await;
    Setup {
        mesh,
        client,
        server,
        app,
        client_proxy,
        _server_proxy: server_proxy,
    }
}

async fn assert_refused(s: &Setup, log_needle: &str) {
    let (status, server) = get(s.mesh.listen(&s.client), "/secret").await;
    assert!(
        status == 502 || status == 503,
        "expected a proxy error, got {status} from {server:?}"
    );
    assert_eq!(s.app.recorder().count(), 0, "a request reached the app");
    let logs = s.client_proxy.logs();
    assert!(
        logs.contains(log_needle),
        "client proxy log lacks {log_needle:?}:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refuses_a_server_with_the_wrong_spiffe_id() {
    let mesh = Mesh::new();
    let server = mesh.pki.issue("default", "echo").expect("certs");
    let client = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(mesh, &server, &client, "payments").await;
    assert_refused(&s, "spiffe://cluster.local/ns/default/sa/payments").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let mesh = Mesh::new();
    let server = mesh.pki.issue_expired("default", "echo").expect("certs");
    let client = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(mesh, &server, &client, "echo").await;
    assert_refused(&s, "expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_certificate_is_refused() {
    let mesh = Mesh::new();
    let server = mesh.pki.issue("default", "echo").expect("certs");
    let client = mesh.pki.issue_expired("default", "client").expect("certs");
    let s = setup(mesh, &server, &client, "echo").await;
    let (status, _) = get(s.mesh.listen(&s.client), "/secret").await;
    assert!(status == 502 || status == 503, "got {status}");
    assert_eq!(s.app.recorder().count(), 0, "a request reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused() {
    let mesh = Mesh::new();
    let other = mesh.pki.unrelated().expect("second CA");
    let server = other.issue("default", "echo").expect("certs");
    let client = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(mesh, &server, &client, "echo").await;
    assert_refused(&s, "UnknownIssuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_to_the_hbone_port_is_dropped() {
    let mesh = Mesh::new();
    let server_certs = mesh.pki.issue("default", "echo").expect("certs");
    let client_certs = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(mesh, &server_certs, &client_certs, "echo").await;
    let target = s.server.addr(s.mesh.ports.hbone);
    let app = s.mesh.app(&s.server);
    let mut conn = tokio::net::TcpStream::connect(target)
        .await
        .expect("tcp connect");
    let _ = conn
        .write_all(
            format!(
                "CONNECT {app} HTTP/1.1\r\nHost: {app}\r\n\r\nGET /secret HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200"),
        "plaintext got an answer: {answer:?}"
    );
    assert_eq!(s.app.recorder().count(), 0, "plaintext reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_headers_are_rejected_before_forwarding() {
    let mesh = Mesh::new();
    let server_certs = mesh.pki.issue("default", "echo").expect("certs");
    let client_certs = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(mesh, &server_certs, &client_certs, "echo").await;
    let listen = s.mesh.listen(&s.client);
    let mut conn = tokio::net::TcpStream::connect(listen)
        .await
        .expect("connect");
    let big = "a".repeat(100 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: echo\r\nX-Big: {big}\r\n\r\n");
    let _ = conn.write_all(req.as_bytes()).await;
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    let status = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        status.starts_with("HTTP/1.1 431"),
        "expected 431, got {status:?}"
    );
    assert_eq!(
        s.app.recorder().count(),
        0,
        "an oversized request reached the app"
    );
    // A request with normal headers still works on a new connection.
    let (ok, _) = get(listen, "/fine").await;
    assert_eq!(ok, 200);
}
