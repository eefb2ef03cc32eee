//! Every protocol the data path carries crosses two proxies and HBONE mTLS intact.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use weft_testkit::client::{self, Http1Client, Http2Client};
use weft_testkit::echo::{self, EchoReply};
use weft_testkit::Host;

use crate::support::{local, outbound, service, Mesh};

/// Client host with an outbound listener per `(listen, service, port)` and the given
/// services; server host with the app ports. Returns the proxies to keep them alive.
fn two_hosts(
    mesh: &Mesh,
    app_ports: &[(u16, &str)],
    outbounds: &[(u16, &str, u16)],
    services: &str,
) -> (Host, Host, Vec<weft_testkit::process::WeftProcess>) {
    let client = mesh.host("client");
    let server = mesh.host("server");
    let server_cfg = mesh.write("server", &mesh.identity_yaml(&server, "echo", app_ports));
    let outbound_yaml: String = outbounds
        .iter()
        .map(|(l, s, p)| outbound(*l, s, *p))
        .collect();
    let client_cfg = mesh.write(
        "client",
        &format!(
            "{}outbound:\n{outbound_yaml}services:\n{}",
            mesh.identity_yaml(&client, "client", &[]),
            services.replace("@SERVER@", &Mesh::endpoint(&server, "echo"))
        ),
    );
    let sp = mesh.proxy(&server, &server_cfg);
    let cp = mesh.proxy(&client, &client_cfg);
    (client, server, vec![cp, sp])
}

#[test]
fn http1_crosses_hbone_with_the_callers_verified_identity() {
    let Some(mesh) = Mesh::new("http1_crosses_hbone_with_the_callers_verified_identity") else {
        return;
    };
    let services = service("echo", 80, 8080, "http", &["@SERVER@".into()]);
    let (client, server, _proxies) =
        two_hosts(&mesh, &[(8080, "http")], &[(18080, "echo", 80)], &services);
    let app = server
        .spawn_server(|| echo::spawn_http(local(8080), "echo"))
        .expect("app");

    let replies = client.run(|| async {
        let mut c = Http1Client::connect(local(18080))
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
        replies
    });
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

#[test]
fn expect_100_continue_and_chunked_bodies_are_relayed() {
    let Some(mesh) = Mesh::new("expect_100_continue_and_chunked_bodies_are_relayed") else {
        return;
    };
    let services = service("echo", 80, 8080, "http", &["@SERVER@".into()]);
    let (client, server, _proxies) =
        two_hosts(&mesh, &[(8080, "http")], &[(18080, "echo", 80)], &services);
    let _app = server
        .spawn_server(|| echo::spawn_http(local(8080), "echo"))
        .expect("app");
    let body = mesh.dir.path().join("body.bin");
    std::fs::write(&body, vec![b'a'; 200_000]).expect("body file");
    let started = Instant::now();
    // curl waits up to --expect100-timeout for "100 Continue" before sending the body
    // anyway; a proxy that swallowed it would make this take the full 5 s.
    let out = client
        .command("curl")
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
        .arg("http://127.0.0.1:18080/upload")
        .output()
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

#[test]
fn http2_and_grpc_streaming_cross_hbone() {
    let Some(mesh) = Mesh::new("http2_and_grpc_streaming_cross_hbone") else {
        return;
    };
    if !weft_testkit::grpc::available("http2_and_grpc_streaming_cross_hbone") {
        return;
    }
    let services = format!(
        "{}{}",
        service("echo", 80, 8080, "auto", &["@SERVER@".into()]),
        service("grpc", 50051, 50051, "grpc", &["@SERVER@".into()])
    );
    let (client, server, _proxies) = two_hosts(
        &mesh,
        &[(8080, "auto"), (50051, "grpc")],
        &[(18080, "echo", 80), (15051, "grpc", 50051)],
        &services,
    );
    let _app = server
        .spawn_server(|| echo::spawn_http(local(8080), "echo"))
        .expect("app");
    let _grpc = weft_testkit::grpc::GrpcServer::spawn(Some(&server), local(50051), "grpc-echo")
        .expect("grpc server");

    let statuses = client.run(|| async {
        let c = Http2Client::connect(local(18080))
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
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("join"));
        }
        out
    });
    assert_eq!(statuses, vec![200; 10]);

    let report = weft_testkit::grpc::run_client(Some(&client), local(15051), None)
        .expect("grpc client through the mesh");
    assert_eq!(report.server, "grpc-echo");
    assert_eq!(report.unary, "grpc-echo|hello");
    assert_eq!(report.server_streaming, 3);
    assert_eq!(report.client_streaming, "grpc-echo|a,b,c");
    assert_eq!(report.bidi, 2);
}

#[test]
fn websocket_upgrade_crosses_hbone() {
    let Some(mesh) = Mesh::new("websocket_upgrade_crosses_hbone") else {
        return;
    };
    let services = service("echo", 80, 8080, "http", &["@SERVER@".into()]);
    let (client, server, _proxies) =
        two_hosts(&mesh, &[(8080, "http")], &[(18080, "echo", 80)], &services);
    let _app = server
        .spawn_server(|| echo::spawn_http(local(8080), "echo"))
        .expect("app");
    let echoed = client.run(|| async {
        client::websocket_echo(
            local(18080),
            "echo",
            "/ws",
            &["hello", "through", "the mesh"],
        )
        .await
    });
    assert_eq!(
        echoed.expect("websocket through the mesh"),
        vec!["hello", "through", "the mesh"]
    );
}

#[test]
fn opaque_tcp_and_server_first_protocols_cross_hbone() {
    let Some(mesh) = Mesh::new("opaque_tcp_and_server_first_protocols_cross_hbone") else {
        return;
    };
    let services = format!(
        "{}{}",
        service("blob", 9000, 9000, "auto", &["@SERVER@".into()]),
        service("banner", 2525, 2525, "auto", &["@SERVER@".into()])
    );
    let (client, server, _proxies) = two_hosts(
        &mesh,
        &[(9000, "auto"), (2525, "auto")],
        &[(19000, "blob", 9000), (12525, "banner", 2525)],
        &services,
    );
    let _tcp = server
        .spawn_server(|| echo::spawn_tcp(local(9000), "blob"))
        .expect("tcp app");
    let _first = server
        .spawn_server(|| echo::spawn_server_first(local(2525), "db"))
        .expect("server-first app");

    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (echoed, banner, took) = client.run(|| async {
        let echoed = client::tcp_roundtrip(local(19000), &payload)
            .await
            .expect("tcp through the mesh");
        let started = Instant::now();
        let banner = client::server_first_roundtrip(local(12525))
            .await
            .expect("server-first through the mesh");
        (echoed, banner, started.elapsed())
    });
    assert!(echoed == payload, "opaque bytes changed in transit");
    assert_eq!(banner, ("220 db ready".to_owned(), "ping".to_owned()));
    // Detection gives up after its short default wait (well under a second) on each side.
    assert!(
        took < Duration::from_secs(2),
        "server-first protocol stalled for {took:?}"
    );
}

#[test]
fn postgres_is_queried_with_psql_through_the_mesh() {
    let Some(mesh) = Mesh::new("postgres_is_queried_with_psql_through_the_mesh") else {
        return;
    };
    let Some(bin) = crate::support::postgres_bin() else {
        weft_testkit::wait::skip(
            "postgres_is_queried_with_psql_through_the_mesh",
            "PostgreSQL server binaries not found (apt-get install postgresql)",
        );
        return;
    };
    let services = service("db", 5432, 5432, "auto", &["@SERVER@".into()]);
    let (client, server, _proxies) =
        two_hosts(&mesh, &[(5432, "auto")], &[(15432, "db", 5432)], &services);
    let _pg = crate::support::Postgres::start(&server, &bin, mesh.dir.path());
    let out = client
        .command("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "15432",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ])
        .arg("select 'meshed:' || (40 + 2)")
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "meshed:42");
}
