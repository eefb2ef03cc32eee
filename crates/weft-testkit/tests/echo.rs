//! The echo servers and test clients, on loopback (no root needed), plus one run across
//! two namespaces.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use weft_testkit::client::{self, Http1Client, Http2Client, Trailers};
use weft_testkit::echo::{self, EchoReply};
use weft_testkit::{e2e_guard, Topology};

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn post(path: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("host", "echo.test")
        .header("x-probe", "one")
        .header("x-probe", "two")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request")
}

#[tokio::test]
async fn http_echo_reports_request() {
    let server = echo::spawn_http(loopback(), "alpha").await.expect("bind");

    // HTTP/1.1
    let response = client::http1_request(server.addr(), post("/a/b?x=1", "hello"))
        .await
        .expect("h1 request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[echo::SERVER_HEADER], "alpha");
    let reply = EchoReply::from_body(response.body()).expect("json");
    assert_eq!(reply.server, "alpha");
    assert_eq!(reply.method, "POST");
    assert_eq!(reply.path, "/a/b?x=1");
    assert_eq!(reply.version, "HTTP/1.1");
    assert_eq!(reply.header("Host"), Some("echo.test"));
    assert_eq!(reply.header("x-probe"), Some("one, two"));
    assert_eq!(reply.body_len, 5);
    assert_eq!(reply.body_sha256, echo::sha256_hex(b"hello"));

    // HTTP/2, prior knowledge, same port.
    let response = client::http2_request(server.addr(), post("/h2?y=2", "hello h2"))
        .await
        .expect("h2 request");
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.headers()[echo::SERVER_HEADER], "alpha");
    let reply = EchoReply::from_body(response.body()).expect("json");
    assert_eq!(reply.version, "HTTP/2.0");
    assert_eq!(reply.path, "/h2?y=2");
    assert_eq!(reply.body_len, 8);
    assert_eq!(reply.header("x-probe"), Some("one, two"));

    let requests = server.recorder().requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].version, Version::HTTP_11);
    assert_eq!(requests[0].body, Bytes::from_static(b"hello"));
    assert_eq!(requests[1].version, Version::HTTP_2);
    assert_eq!(requests[1].method, Method::POST);
    assert_eq!(
        requests[1]
            .uri
            .authority()
            .map(http::uri::Authority::as_str),
        Some("echo.test")
    );
}

#[tokio::test]
async fn http_echo_reports_chunked_bodies_and_h2_trailers() {
    let server = echo::spawn_http(loopback(), "chunks").await.expect("bind");
    let frames = |trailers: Option<HeaderMap>| {
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"abc"))),
            Ok(Frame::data(Bytes::from_static(b"defg"))),
        ];
        if let Some(trailers) = trailers {
            frames.push(Ok(Frame::trailers(trailers)));
        }
        StreamBody::new(futures::stream::iter(frames))
    };

    // HTTP/1.1 without a length: sent chunked.
    let request = Request::post("/chunked")
        .body(frames(None))
        .expect("request");
    let response = client::http1_request(server.addr(), request)
        .await
        .expect("h1");
    let reply = EchoReply::from_body(response.body()).expect("json");
    assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
    assert_eq!(reply.body_len, 7);

    // HTTP/2 with trailers.
    let mut trailers = HeaderMap::new();
    trailers.insert("x-request-trailer", "done".parse().expect("value"));
    let request = Request::post("/trailers")
        .body(frames(Some(trailers)))
        .expect("request");
    let response = client::http2_request(server.addr(), request)
        .await
        .expect("h2");
    let reply = EchoReply::from_body(response.body()).expect("json");
    assert_eq!(reply.body_len, 7);
    assert_eq!(
        reply.trailers.get("x-request-trailer").map(String::as_str),
        Some("done")
    );
    let recorded = server.recorder().last_request().expect("recorded");
    assert_eq!(
        recorded
            .trailers
            .as_ref()
            .and_then(|t| t.get("x-request-trailer")),
        Some(&"done".parse().expect("value"))
    );
    assert!(response.extensions().get::<Trailers>().is_none());
}

#[tokio::test]
async fn http_echo_special_paths() {
    let server = echo::spawn_http(loopback(), "paths").await.expect("bind");
    let mut client = Http1Client::connect(server.addr()).await.expect("connect");
    let get = |path: &str| {
        Request::get(path)
            .body(Full::<Bytes>::default())
            .expect("request")
    };

    let response = client.send(get("/status/503")).await.expect("status");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        EchoReply::from_body(response.body()).expect("json").path,
        "/status/503"
    );

    let response = client.send(get("/status/204")).await.expect("status 204");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.body().is_empty());

    let response = client.send(get("/bytes/100000")).await.expect("bytes");
    assert_eq!(response.body(), &echo::bytes_body(100_000));

    let started = Instant::now();
    let response = client.send(get("/delay/200")).await.expect("delay");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));

    let response = client.send(get("/status/abc")).await.expect("bad status");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // All on one kept-alive connection.
    assert!(client.is_open());
    let peers: Vec<_> = server
        .recorder()
        .requests()
        .iter()
        .map(|r| r.peer)
        .collect();
    assert_eq!(peers.len(), 5);
    assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");

    // HTTP/2 streams share one connection too.
    let h2 = Http2Client::connect(server.addr())
        .await
        .expect("h2 connect");
    let (one, two) = tokio::join!(h2.send(get("/delay/100")), h2.send(get("/status/201")));
    assert_eq!(one.expect("one").status(), StatusCode::OK);
    assert_eq!(two.expect("two").status(), StatusCode::CREATED);
}

#[tokio::test]
async fn http_echo_answers_expect_100_continue() {
    let server = echo::spawn_http(loopback(), "expect").await.expect("bind");
    let stream = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(
            b"POST /upload HTTP/1.1\r\nHost: echo\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .expect("write head");
    let mut line = String::new();
    stream.read_line(&mut line).await.expect("read 100");
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    line.clear();
    stream.read_line(&mut line).await.expect("blank line");
    assert_eq!(line, "\r\n");
    stream
        .get_mut()
        .write_all(b"data")
        .await
        .expect("write body");
    line.clear();
    stream.read_line(&mut line).await.expect("read 200");
    assert_eq!(line, "HTTP/1.1 200 OK\r\n");
    assert_eq!(
        server.recorder().last_request().expect("recorded").body,
        "data"
    );
}

#[tokio::test]
async fn websocket_echo_roundtrip() {
    let server = echo::spawn_http(loopback(), "ws").await.expect("bind");
    let long = "x".repeat(70_000);
    let messages = ["hello", "", "ünïcode", long.as_str()];
    let echoed = client::websocket_echo(server.addr(), "ws.test", "/socket", &messages)
        .await
        .expect("websocket");
    assert_eq!(echoed, messages);
    let upgrade = server.recorder().last_request().expect("recorded");
    assert_eq!(upgrade.uri.path(), "/socket");
    assert_eq!(upgrade.headers["upgrade"], "websocket");
}

#[tokio::test]
async fn tcp_echo_roundtrip() {
    let server = echo::spawn_tcp(loopback(), "tcp").await.expect("bind");
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let echoed = client::tcp_roundtrip(server.addr(), &payload)
        .await
        .expect("round trip");
    assert_eq!(echoed, payload);
    assert_eq!(server.recorder().connections().len(), 1);
}

#[tokio::test]
async fn server_first_banner_arrives_before_client_sends() {
    let server = echo::spawn_server_first(loopback(), "db")
        .await
        .expect("bind");

    // The banner is readable without writing a byte.
    let mut stream = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let mut banner = [0u8; 14];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut banner))
        .await
        .expect("banner in time")
        .expect("banner");
    assert_eq!(&banner, b"220 db ready\r\n");
    drop(stream);

    let (banner, echo) = client::server_first_roundtrip(server.addr())
        .await
        .expect("round trip");
    assert_eq!(banner, "220 db ready");
    assert_eq!(echo, "ping");
    assert!(
        server
            .recorder()
            .wait_for_async(2, Duration::from_secs(5))
            .await
    );
}

#[tokio::test]
async fn dropping_the_server_closes_listener_and_connections() {
    let server = echo::spawn_tcp(loopback(), "closing").await.expect("bind");
    let addr = server.addr();
    let mut open = tokio::net::TcpStream::connect(addr).await.expect("connect");
    assert!(
        server
            .recorder()
            .wait_for_async(1, Duration::from_secs(5))
            .await
    );
    drop(server);
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), open.read(&mut buf))
        .await
        .expect("connection closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn http_echo_across_hosts() {
    if !e2e_guard("http_echo_across_hosts") {
        return;
    }
    let topology = Topology::new().expect("topology");
    let a = topology.add_host("a").expect("host a");
    let b = topology.add_host("b").expect("host b");
    let listen = SocketAddr::from((b.ip(), 8080));
    let server = b
        .spawn_server(move || echo::spawn_http(listen, "b"))
        .expect("http echo in b");

    let (h1, h2, ws) = a.run(|| async move {
        let h1 = client::http1_get(listen, "b.test", "/one").await;
        let h2 = client::http2_request(listen, post("/two", "x")).await;
        let ws = client::websocket_echo(listen, "b.test", "/ws", &["over", "bridge"]).await;
        (h1, h2, ws)
    });
    assert_eq!(h1.expect("h1").status(), StatusCode::OK);
    assert_eq!(h2.expect("h2").version(), Version::HTTP_2);
    assert_eq!(ws.expect("ws"), ["over", "bridge"]);
    assert!(server.recorder().wait_for(3, Duration::from_secs(5)));
    let peers: Vec<_> = server
        .recorder()
        .requests()
        .iter()
        .map(|r| r.peer.ip())
        .collect();
    assert!(peers.iter().all(|ip| *ip == a.ip()), "{peers:?}");
}
