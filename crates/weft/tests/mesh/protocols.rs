//! Every protocol the data path carries crosses two proxies and HBONE mTLS intact.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use weft_testkit::client::{self, Http1Client, Http2Client};
use weft_testkit::echo::{self, EchoReply};

use crate::harness::{eventually, Host, Mesh, Proxy};

/// Client host with an outbound listener per `(listen, service, port)` and the given
/// services (`@SERVER@` stands for the server's endpoint); server host with the app
/// ports. Returns the proxies to keep them alive.
async fn two_hosts(
    mesh: &Mesh,
    app_ports: &[(u16, &str)],
    outbounds: &[(u16, &str, u16)],
    services: &str,
) -> (Host, Host, Vec<Proxy>) {
    let client = mesh.host("client");
    let server = mesh.host("server");
    let server_cfg = mesh.write("server", &mesh.identity_yaml(&server, "echo", app_ports));
    let outbound_yaml: String = outbounds
        .iter()
        .map(|(l, s, p)| Mesh::outbound(&client, *l, s, *p))
        .collect();
    let client_cfg = mesh.write(
        "client",
        &format!(
            "{}outbound:\n{outbound_yaml}services:\n{}",
            mesh.identity_yaml(&client, "client", &[]),
            services.replace("@SERVER@", &mesh.endpoint(&server, "echo"))
        ),
    );
    let sp = mesh.proxy(&server, &server_cfg).await;
    let cp = mesh.proxy(&client, &client_cfg).await;
    (client, server, vec![cp, sp])
}

/// The echo service on the mesh's app port, through the client's listener.
async fn echo_hosts(mesh: &Mesh) -> (Host, Host, Vec<Proxy>) {
    let services = mesh.service("echo", 80, "http", &["@SERVER@".into()]);
    two_hosts(
        mesh,
        &[(mesh.ports.app, "http")],
        &[(mesh.ports.listen, "echo", 80)],
        &services,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_crosses_hbone_with_the_callers_verified_identity() {
    let mesh = Mesh::new();
    let (client, server, _proxies) = echo_hosts(&mesh).await;
    let app = echo::spawn_http(mesh.app(&server), "echo")
        .await
        .expect("app");

    let mut c = Http1Client::connect(mesh.listen(&client))
        .await
        .expect("connect to outbound listener");
    let mut replies = Vec::new();
    for i in 0..3 {
        let req = Request::post(format!("/items/{i}?q=1"))
            .header("host", "echo")
            .header(
                "x-forwarded-client-cert",
                "URI=spiffe://cluster.local/ns/default/sa/admin",
            )
            .body(Full::new(Bytes::from(vec![b'x'; 1000 * (i + 1)])))
            .expect("request");
        let resp = c.send(req).await.expect("response through the mesh");
        assert_eq!(resp.status(), 200);
        replies.push(EchoReply::from_body(resp.body()).expect("echo reply"));
    }
    assert_eq!(replies.len(), 3);
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.path, format!("/items/{i}?q=1"));
        assert_eq!(r.body_len, 1000 * (i + 1));
        let xfcc = r
            .header("x-forwarded-client-cert")
            .expect("the inbound proxy sets XFCC");
        assert!(
            xfcc.contains("URI=spiffe://cluster.local/ns/default/sa/client"),
            "{xfcc}"
        );
        assert!(
            !xfcc.contains("sa/admin"),
            "a spoofed identity header reached the app: {xfcc}"
        );
    }
    let peers: std::collections::HashSet<_> =
        app.recorder().requests().iter().map(|r| r.peer).collect();
    assert_eq!(
        peers.len(),
        1,
        "keep-alive requests reuse one upstream connection: {peers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_and_chunked_bodies_are_relayed() {
    let mesh = Mesh::new();
    let (client, server, _proxies) = echo_hosts(&mesh).await;
    let _app = echo::spawn_http(mesh.app(&server), "echo")
        .await
        .expect("app");
    let body = mesh.dir.path().join("body.bin");
    std::fs::write(&body, vec![b'a'; 200_000]).expect("body file");
    let started = Instant::now();
    // curl waits up to --expect100-timeout for "100 Continue" before sending the body
    // anyway; a proxy that swallowed it would make this take the full 5 s.
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--expect100-timeout",
            "5",
            "-H",
            "Expect: 100-continue",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .arg(format!("http://{}/upload", mesh.listen(&client)))
        .output()
        .await
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = EchoReply::from_body(&out.stdout).expect("echo reply");
    assert_eq!(reply.body_len, 200_000);
    assert_eq!(
        reply.header("transfer-encoding"),
        Some("chunked"),
        "the body stays chunked end to end"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "100-continue was not relayed: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_and_grpc_streaming_cross_hbone() {
    if !weft_testkit::grpc::available("http2_and_grpc_streaming_cross_hbone") {
        return;
    }
    let mesh = Mesh::new();
    let (grpc_port, grpc_listen) = (mesh.port(), mesh.port());
    let services = format!(
        "{}{}",
        mesh.service("echo", 80, "auto", &["@SERVER@".into()]),
        Mesh::service_on("grpc", 50051, grpc_port, "grpc", &["@SERVER@".into()])
    );
    let (client, server, _proxies) = two_hosts(
        &mesh,
        &[(mesh.ports.app, "auto"), (grpc_port, "grpc")],
        &[
            (mesh.ports.listen, "echo", 80),
            (grpc_listen, "grpc", 50051),
        ],
        &services,
    )
    .await;
    let _app = echo::spawn_http(mesh.app(&server), "echo")
        .await
        .expect("app");
    let _grpc = weft_testkit::grpc::GrpcServer::spawn(None, server.addr(grpc_port), "grpc-echo")
        .expect("grpc server");

    let c = Http2Client::connect(mesh.listen(&client))
        .await
        .expect("h2 connect");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get(format!("/h2/{i}"))
                .header("host", "echo")
                .body(Full::new(Bytes::new()))
                .expect("req");
            let resp = c.send(req).await.expect("h2 response");
            let reply = EchoReply::from_body(resp.body()).expect("reply");
            assert_eq!(
                reply.version, "HTTP/2.0",
                "the app must see HTTP/2 end to end"
            );
            resp.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("join"));
    }
    assert_eq!(statuses, vec![200; 10]);

    let target = client.addr(grpc_listen);
    let report =
        tokio::task::spawn_blocking(move || weft_testkit::grpc::run_client(None, target, None))
            .await
            .expect("join")
            .expect("grpc client through the mesh");
    assert_eq!(report.server, "grpc-echo");
    assert_eq!(report.unary, "grpc-echo|hello");
    assert_eq!(report.server_streaming, 3);
    assert_eq!(report.client_streaming, "grpc-echo|a,b,c");
    assert_eq!(report.bidi, 2);
    assert_eq!(report.streamed_failure, "UNAVAILABLE after 1");

    // Each call counted under the gRPC status its trailers carried, after its data:
    // four OK, one UNAVAILABLE (14), on the caller's side and the server's.
    for (host, direction) in [(&client, "outbound"), (&server, "inbound")] {
        let counted = |text: &str, code: &str| {
            let labels = [("direction", direction), ("grpc_status", code)];
            crate::telemetry::value(text, "weft_proxy_requests_total", &labels)
        };
        assert!(
            eventually(Duration::from_secs(5), || async {
                let text = crate::telemetry::metrics(&mesh, host).await;
                counted(&text, "0") == Some(4) && counted(&text, "14") == Some(1)
            })
            .await,
            "{direction}: {}",
            crate::telemetry::metrics(&mesh, host).await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_crosses_hbone() {
    let mesh = Mesh::new();
    let (client, server, _proxies) = echo_hosts(&mesh).await;
    let _app = echo::spawn_http(mesh.app(&server), "echo")
        .await
        .expect("app");
    let echoed = client::websocket_echo(
        mesh.listen(&client),
        "echo",
        "/ws",
        &["hello", "through", "the mesh"],
    )
    .await;
    assert_eq!(
        echoed.expect("websocket through the mesh"),
        vec!["hello", "through", "the mesh"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tcp_and_server_first_protocols_cross_hbone() {
    let mesh = Mesh::new();
    let (blob, banner) = (mesh.port(), mesh.port());
    let (blob_listen, banner_listen) = (mesh.port(), mesh.port());
    let services = format!(
        "{}{}",
        Mesh::service_on("blob", 9000, blob, "auto", &["@SERVER@".into()]),
        Mesh::service_on("banner", 2525, banner, "auto", &["@SERVER@".into()])
    );
    let (client, server, _proxies) = two_hosts(
        &mesh,
        &[(blob, "auto"), (banner, "auto")],
        &[(blob_listen, "blob", 9000), (banner_listen, "banner", 2525)],
        &services,
    )
    .await;
    let _tcp = echo::spawn_tcp(server.addr(blob), "blob")
        .await
        .expect("tcp app");
    let _first = echo::spawn_server_first(server.addr(banner), "db")
        .await
        .expect("server-first app");

    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let to = |port: u16| -> SocketAddr { client.addr(port) };
    let echoed = client::tcp_roundtrip(to(blob_listen), &payload)
        .await
        .expect("tcp through the mesh");
    let started = Instant::now();
    let banner = client::server_first_roundtrip(to(banner_listen))
        .await
        .expect("server-first through the mesh");
    let took = started.elapsed();
    assert!(echoed == payload, "opaque bytes changed in transit");
    assert_eq!(banner, ("220 db ready".to_owned(), "ping".to_owned()));
    // Detection gives up after its short default wait (well under a second) on each side.
    assert!(
        took < Duration::from_secs(2),
        "server-first protocol stalled for {took:?}"
    );
}
