//! The mesh path on loopback, without root: two `weft proxy` processes on 127.0.0.1 and
//! 127.0.0.2, HBONE mTLS between them, an echo app behind the second. This is the
//! smoke test every developer runs; the network-namespace suite (`tests/e2e`) covers
//! the rest and needs root.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use weft_testkit::ca::TestPki;
use weft_testkit::echo::{self, EchoReply};
use weft_testkit::process::WeftProcess;

/// A port free on `ip`, reserved for this test process.
fn free_port(ip: &str) -> u16 {
    weft_testkit::ports::free_port(ip.parse::<std::net::IpAddr>().expect("an IP address"))
}

fn write(dir: &std::path::Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// Two proxies on loopback: `web` (127.0.0.1) with an explicit listener for service
/// `api`, and `api` (127.0.0.2) with HBONE in front of an app. Dropping it stops both.
struct TwoHops {
    _server: WeftProcess,
    _client: WeftProcess,
    _dir: tempfile::TempDir,
    /// The client proxy's listener for service `api`.
    listen: SocketAddr,
}

/// Starts the two proxies; the app listens on `app_port` of 127.0.0.1, declared
/// `protocol` on both sides.
async fn two_hops(app_port: u16, protocol: &str) -> TwoHops {
    let pki = TestPki::new("cluster.local").expect("pki");
    let dir = weft_testkit::tempdir().expect("tempdir");
    let (server_admin, hbone) = (free_port("127.0.0.2"), free_port("127.0.0.2"));
    let (client_admin, listen) = (free_port("127.0.0.1"), free_port("127.0.0.1"));

    let server_certs = pki.issue("default", "api").expect("certs");
    let server = write(
        dir.path(),
        "server.yaml",
        &format!(
            "workload: {{ name: api, serviceAccount: api, address: 127.0.0.2, ports: [{{ port: {app_port}, protocol: {protocol} }}] }}\n\
             certificates: {{ cert: {}, key: {}, trustBundle: {} }}\n\
             listeners: {{ admin: 127.0.0.2:{server_admin}, hbone: 127.0.0.2:{hbone}, metrics: null, outboundCapture: null }}\n",
            server_certs.cert.display(),
            server_certs.key.display(),
            server_certs.trust_bundle.display(),
        ),
    );
    let client_certs = pki.issue("default", "web").expect("certs");
    let client = write(
        dir.path(),
        "client.yaml",
        &format!(
            "workload: {{ name: web, serviceAccount: web, address: 127.0.0.1 }}\n\
             certificates: {{ cert: {}, key: {}, trustBundle: {} }}\n\
             listeners: {{ admin: 127.0.0.1:{client_admin}, hbone: null, metrics: null, outboundCapture: null }}\n\
             outbound: [{{ listen: \"127.0.0.1:{listen}\", service: api, port: 80 }}]\n\
             services:\n  - name: api\n    ports: [{{ port: 80, targetPort: {app_port}, protocol: {protocol} }}]\n    \
             endpoints: [{{ address: 127.0.0.2, hbone: \"127.0.0.2:{hbone}\", identity: spiffe://cluster.local/ns/default/sa/api }}]\n",
            client_certs.cert.display(),
            client_certs.key.display(),
            client_certs.trust_bundle.display(),
        ),
    );
    let weft = PathBuf::from(env!("CARGO_BIN_EXE_weft"));
    let admin = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let server = tokio::task::spawn_blocking({
        let weft = weft.clone();
        move || {
            WeftProcess::spawn_local(
                &weft,
                &["proxy", "--config", server.to_str().expect("utf-8")],
                &[],
                SocketAddr::from(([127, 0, 0, 2], server_admin)),
            )
        }
    })
    .await
    .expect("join")
    .expect("server proxy ready");
    let client = tokio::task::spawn_blocking(move || {
        WeftProcess::spawn_local(
            &weft,
            &["proxy", "--config", client.to_str().expect("utf-8")],
            &[],
            admin(client_admin),
        )
    })
    .await
    .expect("join")
    .expect("client proxy ready");
    TwoHops {
        _server: server,
        _client: client,
        _dir: dir,
        listen: admin(listen),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_crosses_two_proxies_over_hbone_on_loopback() {
    let app = echo::spawn_http("127.0.0.1:0".parse().expect("addr"), "app")
        .await
        .expect("app");
    let mesh = two_hops(app.addr().port(), "http").await;

    let resp = weft_testkit::client::http1_get(mesh.listen, "api", "/over/hbone")
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let reply = EchoReply::from_body(resp.body()).expect("echo reply");
    assert_eq!(reply.path, "/over/hbone");
    assert_eq!(
        reply.header("x-forwarded-client-cert"),
        Some("By=spiffe://cluster.local/ns/default/sa/api;URI=spiffe://cluster.local/ns/default/sa/web")
    );
    assert_eq!(app.recorder().count(), 1);
}

/// Sends `request` to `addr` after `delay` on a fresh connection; everything answered
/// until the connection closed.
async fn slow_request(addr: SocketAddr, delay: Duration, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::time::sleep(delay).await;
    stream.write_all(request).await.expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_silent_past_detection_on_an_auto_port_still_cannot_forge_identity() {
    let app = echo::spawn_http("127.0.0.1:0".parse().expect("addr"), "app")
        .await
        .expect("app");
    let mesh = two_hops(app.addr().port(), "auto").await;

    // Both proxies wait 300 ms for the first byte; this client waits longer, so the
    // outbound proxy has already opened the HBONE stream and the inbound proxy has
    // connected to the app when the request arrives. The client spoke first, so its
    // bytes are parsed as HTTP on both hops.
    let answer = slow_request(
        mesh.listen,
        Duration::from_millis(1200),
        b"GET /late HTTP/1.1\r\nhost: api\r\nx-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/default/sa/admin\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let reply = EchoReply::from_body(body.as_bytes()).expect("echo reply");
    assert_eq!(reply.path, "/late");
    assert_eq!(
        reply.header("x-forwarded-client-cert"),
        Some("By=spiffe://cluster.local/ns/default/sa/api;URI=spiffe://cluster.local/ns/default/sa/web"),
        "only the inbound proxy's own identity header reaches the app"
    );

    // A malformed request line after the wait is refused by the first proxy.
    let answer = slow_request(
        mesh.listen,
        Duration::from_millis(1200),
        b"GET /late HTTP/1.1 \r\nhost: api\r\nx-forwarded-client-cert: forged\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(
        app.recorder().count(),
        1,
        "the malformed request reached the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_client_reaches_an_http1_app_through_two_hops() {
    // The echo app speaks both versions and reports the one it received.
    let app = echo::spawn_http("127.0.0.1:0".parse().expect("addr"), "app")
        .await
        .expect("app");
    let mesh = two_hops(app.addr().port(), "http").await;
    let req = http::Request::post("http://api/h2-to-h1")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"hello",
        )))
        .expect("request");
    let resp = weft_testkit::client::http2_request(mesh.listen, req)
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let reply = EchoReply::from_body(resp.body()).expect("echo reply");
    assert_eq!(reply.path, "/h2-to-h1");
    assert_eq!(reply.version, "HTTP/1.1");
    assert_eq!(reply.header("host"), Some("api"));
    assert_eq!(reply.body_len, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_client_reaches_an_h2_app_through_two_hops() {
    let app = echo::spawn_http("127.0.0.1:0".parse().expect("addr"), "app")
        .await
        .expect("app");
    let mesh = two_hops(app.addr().port(), "http2").await;
    let resp = weft_testkit::client::http1_get(mesh.listen, "api", "/h1-to-h2")
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let reply = EchoReply::from_body(resp.body()).expect("echo reply");
    assert_eq!(reply.path, "/h1-to-h2");
    assert_eq!(reply.version, "HTTP/2.0");
    assert_eq!(
        reply.header("host"),
        None,
        "HTTP/2 carries the authority in :authority"
    );
}
