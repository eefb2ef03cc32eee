//! Refusals: wrong identities, bad certificates, plaintext, oversized headers. Each one
//! fails clearly and forwards nothing.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_testkit::echo;
use weft_testkit::Host;

use crate::support::{addr, get, local, outbound, service, Mesh};

/// A server host running the echo app behind a proxy with `server_certs`, and a client
/// host whose service `echo` expects `expected_sa` at that endpoint.
struct Setup {
    client: Host,
    app: weft_testkit::netns::Hosted<echo::Server>,
    client_proxy: weft_testkit::process::WeftProcess,
    _server_proxy: weft_testkit::process::WeftProcess,
}

fn setup(
    mesh: &Mesh,
    server_certs: &weft_tls::ca::IssuedPaths,
    client_certs: &weft_tls::ca::IssuedPaths,
    expected_sa: &str,
) -> Setup {
    let client = mesh.host("client");
    let server = mesh.host("server");
    let app = server
        .spawn_server(|| echo::spawn_http(local(8080), "echo"))
        .expect("app");
    let server_cfg = mesh.write(
        "server",
        &mesh.identity_yaml_with(&server, "echo", &[(8080, "http")], server_certs),
    );
    let server_proxy = mesh.proxy(&server, &server_cfg);
    let client_cfg = format!(
        "{}outbound:\n{}services:\n{}",
        mesh.identity_yaml_with(&client, "client", &[], client_certs),
        outbound(18080, "echo", 80),
        service(
            "echo",
            80,
            8080,
            "http",
            &[Mesh::endpoint(&server, expected_sa)]
        ),
    );
    let client_proxy = mesh.proxy(&client, &mesh.write("client", &client_cfg));
    Setup {
        client,
        app,
        client_proxy,
        _server_proxy: server_proxy,
    }
}

fn assert_refused(s: &Setup, log_needle: &str) {
    let (status, server) = s.client.run(|| get(18080, "/secret"));
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

#[test]
fn client_refuses_a_server_with_the_wrong_spiffe_id() {
    let Some(mesh) = Mesh::new("client_refuses_a_server_with_the_wrong_spiffe_id") else {
        return;
    };
    let server = mesh.pki.issue("default", "echo").expect("certs");
    let client = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(&mesh, &server, &client, "payments");
    assert_refused(&s, "spiffe://cluster.local/ns/default/sa/payments");
}

#[test]
fn an_expired_server_certificate_is_refused() {
    let Some(mesh) = Mesh::new("an_expired_server_certificate_is_refused") else {
        return;
    };
    let server = mesh.pki.issue_expired("default", "echo").expect("certs");
    let client = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(&mesh, &server, &client, "echo");
    assert_refused(&s, "expired");
}

#[test]
fn an_expired_client_certificate_is_refused() {
    let Some(mesh) = Mesh::new("an_expired_client_certificate_is_refused") else {
        return;
    };
    let server = mesh.pki.issue("default", "echo").expect("certs");
    let client = mesh.pki.issue_expired("default", "client").expect("certs");
    let s = setup(&mesh, &server, &client, "echo");
    let (status, _) = s.client.run(|| get(18080, "/secret"));
    assert!(status == 502 || status == 503, "got {status}");
    assert_eq!(s.app.recorder().count(), 0, "a request reached the app");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let Some(mesh) = Mesh::new("a_certificate_from_another_ca_is_refused") else {
        return;
    };
    let other = mesh.pki.unrelated().expect("second CA");
    let server = other.issue("default", "echo").expect("certs");
    let client = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(&mesh, &server, &client, "echo");
    assert_refused(&s, "UnknownIssuer");
}

#[test]
fn plaintext_to_the_hbone_port_is_dropped() {
    let Some(mesh) = Mesh::new("plaintext_to_the_hbone_port_is_dropped") else {
        return;
    };
    let server_certs = mesh.pki.issue("default", "echo").expect("certs");
    let client_certs = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(&mesh, &server_certs, &client_certs, "echo");
    let server_ip = mesh
        .topo
        .hosts()
        .into_iter()
        .find(|h| h.name() == "server")
        .expect("server host");
    let target = addr(&server_ip, 15008);
    let answer = s.client.run(|| async move {
        let mut conn = tokio::net::TcpStream::connect(target).await.expect("tcp connect");
        let _ = conn
            .write_all(b"CONNECT 127.0.0.1:8080 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\nGET /secret HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut buf)).await;
        buf
    });
    assert!(
        !String::from_utf8_lossy(&answer).contains("200"),
        "plaintext got an answer: {answer:?}"
    );
    assert_eq!(s.app.recorder().count(), 0, "plaintext reached the app");
}

#[test]
fn oversized_request_headers_are_rejected_before_forwarding() {
    let Some(mesh) = Mesh::new("oversized_request_headers_are_rejected_before_forwarding") else {
        return;
    };
    let server_certs = mesh.pki.issue("default", "echo").expect("certs");
    let client_certs = mesh.pki.issue("default", "client").expect("certs");
    let s = setup(&mesh, &server_certs, &client_certs, "echo");
    let status = s.client.run(|| async {
        let mut conn = tokio::net::TcpStream::connect(local(18080))
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
        String::from_utf8_lossy(&buf[..n]).to_string()
    });
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
    let (ok, _) = s.client.run(|| get(18080, "/fine"));
    assert_eq!(ok, 200);
}
