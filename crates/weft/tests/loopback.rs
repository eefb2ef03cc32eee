//! The mesh path on loopback, without root: two `weft proxy` processes on 127.0.0.1 and
//! 127.0.0.2, HBONE mTLS between them, an echo app behind the second. This is the
//! smoke test every developer runs; the network-namespace suite (`tests/e2e`) covers
//! the rest and needs root.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use weft_testkit::ca::TestPki;
use weft_testkit::echo::{self, EchoReply};
use weft_testkit::process::WeftProcess;

/// A port that was free a moment ago on `ip`.
fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn write(dir: &std::path::Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_crosses_two_proxies_over_hbone_on_loopback() {
    let pki = TestPki::new("cluster.local").expect("pki");
    let dir = weft_testkit::tempdir().expect("tempdir");
    let app = echo::spawn_http("127.0.0.1:0".parse().expect("addr"), "app")
        .await
        .expect("app");
    let app_port = app.addr().port();
    let (server_admin, hbone) = (free_port("127.0.0.2"), free_port("127.0.0.2"));
    let (client_admin, listen) = (free_port("127.0.0.1"), free_port("127.0.0.1"));

    let server_certs = pki.issue("default", "api").expect("certs");
    let server = write(
        dir.path(),
        "server.yaml",
        &format!(
            "workload: {{ name: api, serviceAccount: api, address: 127.0.0.2, ports: [{{ port: {app_port}, protocol: http }}] }}\n\
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
             services:\n  - name: api\n    ports: [{{ port: 80, targetPort: {app_port}, protocol: http }}]\n    \
             endpoints: [{{ address: 127.0.0.2, hbone: \"127.0.0.2:{hbone}\", identity: spiffe://cluster.local/ns/default/sa/api }}]\n",
            client_certs.cert.display(),
            client_certs.key.display(),
            client_certs.trust_bundle.display(),
        ),
    );
    let weft = PathBuf::from(env!("CARGO_BIN_EXE_weft"));
    let admin = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let _server = tokio::task::spawn_blocking({
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
    let _client = tokio::task::spawn_blocking(move || {
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

    let resp = weft_testkit::client::http1_get(admin(listen), "api", "/over/hbone")
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
