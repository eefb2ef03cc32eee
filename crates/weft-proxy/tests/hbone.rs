//! HBONE end to end on 127.0.0.1: the client pool against the server, with certificates
//! minted by a test CA. Each test starts its own server on port 0.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use weft_proxy::hbone::server::Stats;
use weft_proxy::hbone::{Accepted, H2Stream, Pool, PoolConfig, Server, ServerConfig};
use weft_proxy::telemetry::Metrics;
use weft_tls::ca::Authority;
use weft_tls::{Credentials, SpiffeId};

const DAY: Duration = Duration::from_secs(86_400);
const TRUST_DOMAIN: &str = "cluster.local";
/// A target port the test server's authorization refuses with 403.
const DENIED_PORT: u16 = 9;
/// Generous bound on anything that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(10);

fn id(sa: &str) -> SpiffeId {
    SpiffeId::new(TRUST_DOMAIN, "default", sa).unwrap()
}

fn creds(ca: &Authority, sa: &str) -> Arc<Credentials> {
    let issued = ca.issue(&id(sa), DAY).unwrap();
    Arc::new(
        Credentials::from_pem(
            issued.cert_pem.as_bytes(),
            issued.key_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
        .unwrap(),
    )
}

fn target() -> SocketAddr {
    "127.0.0.1:8080".parse().unwrap()
}

type StreamHandler = Arc<dyn Fn(H2Stream) -> BoxFuture<'static, ()> + Send + Sync>;

/// What the server's handler saw of one accepted stream.
#[derive(Debug)]
struct Seen {
    peer: SpiffeId,
    peer_addr: SocketAddr,
    target: SocketAddr,
}

/// A running HBONE server.
struct Peer {
    addr: SocketAddr,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
    seen: mpsc::UnboundedReceiver<Seen>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

async fn start(creds: Arc<Credentials>, handle: StreamHandler) -> Peer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_on(listener, creds, handle)
}

fn start_on(listener: TcpListener, creds: Arc<Credentials>, handle: StreamHandler) -> Peer {
    start_with(listener, creds, handle, ServerConfig::default())
}

fn start_with(
    listener: TcpListener,
    creds: Arc<Credentials>,
    handle: StreamHandler,
    config: ServerConfig,
) -> Peer {
    let addr = listener.local_addr().unwrap();
    let (tx, seen) = mpsc::unbounded_channel();
    let metrics = Metrics::new();
    let server = Server::new(
        config,
        Arc::new(move || Some(creds.clone())),
        Arc::new(|_: &SpiffeId, target: SocketAddr| {
            if target.port() == DENIED_PORT {
                Err(StatusCode::FORBIDDEN)
            } else {
                Ok(())
            }
        }),
        Arc::new(move |accepted: Accepted| {
            let _ = tx.send(Seen {
                peer: accepted.peer,
                peer_addr: accepted.peer_addr,
                target: accepted.target,
            });
            handle(accepted.stream)
        }),
        metrics.clone(),
    );
    let stats = server.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.serve(listener, shutdown.clone()));
    Peer {
        addr,
        stats,
        metrics,
        seen,
        shutdown,
        task,
    }
}

/// Copies everything back, then ends the stream.
fn echo() -> StreamHandler {
    Arc::new(|stream| {
        async move {
            let (mut read, mut write) = tokio::io::split(stream);
            tokio::io::copy(&mut read, &mut write).await.unwrap();
            write.shutdown().await.unwrap();
        }
        .boxed()
    })
}

fn pool() -> Pool {
    Pool::new(PoolConfig::default())
}

async fn roundtrip(stream: &mut H2Stream, message: &[u8]) {
    stream.write_all(message).await.unwrap();
    let mut back = vec![0; message.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, message);
}

/// Waits until `check` holds, failing the test after [`PROMPTLY`].
async fn eventually(what: &str, check: impl Fn() -> bool) {
    weft_testkit::eventually_async(what, PROMPTLY, check).await;
}

/// Deterministic, non-repeating-looking test data.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 13) as u8) ^ seed)
        .collect()
}

#[tokio::test]
async fn connect_roundtrips_bytes_through_a_connect_stream() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let mut server = start(creds(&ca, "server"), echo()).await;
    let client = creds(&ca, "client");

    let mut stream = pool()
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    stream.write_all(b"hello over hbone").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut back = Vec::new();
    stream.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, b"hello over hbone");

    let seen = server.seen.recv().await.unwrap();
    assert_eq!(seen.target, target());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_streams_share_one_pooled_connection() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let server = start(creds(&ca, "server"), echo()).await;
    let client = creds(&ca, "client");
    let pool = pool();

    // Twenty callers at once, on an empty pool: they must share one dial.
    let streams = futures::future::join_all((0..20u8).map(|i| {
        let (pool, client) = (pool.clone(), client.clone());
        async move {
            let mut stream = pool
                .connect(&client, server.addr, &id("server"), target())
                .await
                .unwrap();
            roundtrip(&mut stream, &[i; 100]).await;
            stream
        }
    }))
    .await;

    assert_eq!(streams.len(), 20);
    assert_eq!(pool.connections(), 1);
    assert_eq!(server.stats.connections(), 1);
    assert_eq!(server.stats.streams(), 20);
}

#[tokio::test]
async fn opens_another_connection_past_max_streams() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let server = start(creds(&ca, "server"), echo()).await;
    let client = creds(&ca, "client");
    let pool = Pool::new(PoolConfig {
        max_streams_per_connection: 2,
        ..PoolConfig::default()
    });

    let mut streams = Vec::new();
    for i in 0..3u8 {
        let mut stream = pool
            .connect(&client, server.addr, &id("server"), target())
            .await
            .unwrap();
        roundtrip(&mut stream, &[i; 10]).await;
        streams.push(stream);
    }
    assert_eq!(pool.connections(), 2);
    assert_eq!(server.stats.connections(), 2);

    // A freed slot is reused rather than dialing a third connection.
    streams.truncate(1);
    let mut again = pool
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    roundtrip(&mut again, b"reused").await;
    assert_eq!(pool.connections(), 2);
    assert_eq!(server.stats.connections(), 2);
}

#[tokio::test]
async fn client_rejects_server_with_wrong_identity() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let mut server = start(creds(&ca, "impostor"), echo()).await;
    let client = creds(&ca, "client");
    let dialler = Metrics::new();
    let pool = Pool::counted(PoolConfig::default(), Some(dialler.clone()));

    let err = pool
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap_err();
    assert!(err.is_tls(), "{err:?}");
    assert!(
        dialler.encode().contains(
            r#"weft_proxy_hbone_handshakes_total{direction="outbound",result="failed"} 1"#
        ),
        "{}",
        dialler.encode()
    );
    let msg = err.to_string();
    assert!(
        msg.contains("spiffe://cluster.local/ns/default/sa/server"),
        "{msg}"
    );
    assert!(msg.contains(&server.addr.to_string()), "{msg}");
    assert_eq!(pool.connections(), 0);

    eventually("the server counts the failed handshake", || {
        server.stats.handshake_failures() == 1
    })
    .await;
    let counted = server.metrics.encode();
    assert!(
        counted.contains(
            r#"weft_proxy_hbone_handshakes_total{direction="inbound",result="failed"} 1"#
        ) && !counted.contains(r#"result="ok""#),
        "{counted}"
    );
    assert_eq!(server.stats.connections(), 0);
    assert!(
        server.seen.try_recv().is_err(),
        "nothing may reach the handler"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_a_failed_dial() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let client = creds(&ca, "client");
    // A peer that accepts TCP, stalls the TLS handshake long enough for every caller to
    // be waiting, then hangs up.
    let stalling = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = stalling.local_addr().unwrap();
    let dials = Arc::new(AtomicUsize::new(0));
    let _peer = tokio::spawn({
        let dials = dials.clone();
        async move {
            while let Ok((tcp, _)) = stalling.accept().await {
                dials.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    drop(tcp);
                });
            }
        }
    });
    let pool = pool();

    let results = futures::future::join_all((0..10).map(|_| {
        let (pool, client) = (pool.clone(), client.clone());
        async move { pool.connect(&client, addr, &id("server"), target()).await }
    }))
    .await;
    for result in results {
        let err = result.unwrap_err();
        assert!(err.is_tls(), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("spiffe://cluster.local/ns/default/sa/server"),
            "{msg}"
        );
        assert!(msg.contains(&addr.to_string()), "{msg}");
    }
    // One shared dial, not ten.
    assert_eq!(dials.load(Ordering::SeqCst), 1);
    assert_eq!(pool.connections(), 0);
}

#[tokio::test]
async fn server_rejects_client_from_other_ca() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let other_ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let mut server = start(creds(&ca, "server"), echo()).await;
    // Trusts our CA (so it accepts the server) but its own certificate is foreign.
    let stranger = {
        let issued = other_ca.issue(&id("client"), DAY).unwrap();
        let bundle = format!("{}{}", ca.cert_pem(), other_ca.cert_pem());
        Arc::new(
            Credentials::from_pem(
                issued.cert_pem.as_bytes(),
                issued.key_pem.as_bytes(),
                bundle.as_bytes(),
            )
            .unwrap(),
        )
    };

    let err = pool()
        .connect(&stranger, server.addr, &id("server"), target())
        .await
        .unwrap_err();
    assert!(err.is_tls(), "{err:?}");
    assert!(err.to_string().contains(&server.addr.to_string()), "{err}");

    eventually("the server counts the failed handshake", || {
        server.stats.handshake_failures() >= 1
    })
    .await;
    assert_eq!(server.stats.connections(), 0);
    assert!(
        server.seen.try_recv().is_err(),
        "nothing may reach the handler"
    );
}

#[tokio::test]
async fn server_rejects_expired_client_certificate() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let mut server = start(creds(&ca, "server"), echo()).await;
    let expired = {
        let now = std::time::SystemTime::now();
        let issued = ca
            .issue_with_validity(&id("client"), now - 2 * DAY, now - DAY)
            .unwrap();
        Arc::new(
            Credentials::from_pem(
                issued.cert_pem.as_bytes(),
                issued.key_pem.as_bytes(),
                ca.cert_pem().as_bytes(),
            )
            .unwrap(),
        )
    };

    let err = pool()
        .connect(&expired, server.addr, &id("server"), target())
        .await
        .unwrap_err();
    assert!(err.is_tls(), "{err:?}");
    eventually("the server counts the failed handshake", || {
        server.stats.handshake_failures() >= 1
    })
    .await;
    assert_eq!(server.stats.connections(), 0);
    assert!(
        server.seen.try_recv().is_err(),
        "nothing may reach the handler"
    );
}

#[tokio::test]
async fn server_refuses_plaintext() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let mut server = start(creds(&ca, "server"), echo()).await;

    for (i, request) in [
        &b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"[..],
        &b"CONNECT 127.0.0.1:8080 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"[..],
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0"[..],
    ]
    .into_iter()
    .enumerate()
    {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        // The server closes the connection (perhaps after a TLS alert); a reset is fine.
        let _ = tokio::time::timeout(PROMPTLY, tcp.read_to_end(&mut answer))
            .await
            .expect("the server must close a plaintext connection");
        assert!(
            !String::from_utf8_lossy(&answer).contains("HTTP/"),
            "plaintext got an HTTP answer: {answer:?}"
        );
        eventually("the server counts the failed handshake", || {
            server.stats.handshake_failures() == i as u64 + 1
        })
        .await;
    }
    assert_eq!(server.stats.connections(), 0);
    assert!(
        server.seen.try_recv().is_err(),
        "nothing may reach the handler"
    );
}

#[tokio::test]
async fn server_sees_client_identity() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let mut server = start(creds(&ca, "server"), echo()).await;
    let client = creds(&ca, "web-frontend");

    let mut stream = pool()
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    roundtrip(&mut stream, b"who am i").await;

    let seen = server.seen.recv().await.unwrap();
    assert_eq!(seen.peer, id("web-frontend"));
    assert_eq!(seen.peer_addr.ip(), server.addr.ip());
    assert_eq!(seen.target, target());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_transfer_respects_flow_control() {
    const LEN: usize = 8 * 1024 * 1024;
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let server = start(creds(&ca, "server"), echo()).await;
    let client = creds(&ca, "client");

    let stream = pool()
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    let (mut read, mut write) = tokio::io::split(stream);
    let sent = pattern(LEN, 0x5a);
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            // Odd-sized writes, so frames do not line up with the data.
            for chunk in sent.chunks(100_003) {
                write.write_all(chunk).await.unwrap();
            }
            write.shutdown().await.unwrap();
        })
    };
    let mut received = Vec::with_capacity(LEN);
    tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert_eq!(received.len(), LEN);
    assert!(received == sent, "echoed bytes differ");
}

#[tokio::test]
async fn writer_waits_for_a_slow_reader() {
    const LEN: usize = 32 * 1024 * 1024;
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let (open_tx, open_rx) = oneshot::channel::<()>();
    let (done_tx, done_rx) = oneshot::channel::<Vec<u8>>();
    let gate = Arc::new(Mutex::new(Some((open_rx, done_tx))));
    let handler: StreamHandler = Arc::new(move |mut stream| {
        let gate = gate.clone();
        async move {
            let (open, done) = gate.lock().await.take().unwrap();
            // Read nothing until the test says so.
            open.await.unwrap();
            let mut received = Vec::new();
            stream.read_to_end(&mut received).await.unwrap();
            let _ = done.send(received);
        }
        .boxed()
    });
    let server = start(creds(&ca, "server"), handler).await;
    let client = creds(&ca, "client");

    let mut stream = pool()
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    let sent = pattern(LEN, 0xa5);
    let writer = {
        let sent = sent.clone();
        tokio::spawn(async move {
            stream.write_all(&sent).await.unwrap();
            stream.shutdown().await.unwrap();
            stream
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !writer.is_finished(),
        "32 MiB cannot fit in the flow-control windows of a reader that reads nothing"
    );

    open_tx.send(()).unwrap();
    let received = tokio::time::timeout(Duration::from_secs(60), done_rx)
        .await
        .unwrap()
        .unwrap();
    let _stream = writer.await.unwrap();
    assert_eq!(received.len(), LEN);
    assert!(received == sent, "received bytes differ");
}

#[tokio::test]
async fn half_close_propagates() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let handler: StreamHandler = Arc::new(|mut stream| {
        async move {
            let mut request = Vec::new();
            // EOF arrives while our write half is still open.
            stream.read_to_end(&mut request).await.unwrap();
            assert_eq!(request, b"ping");
            stream.write_all(b"pong after your FIN").await.unwrap();
            stream.shutdown().await.unwrap();
        }
        .boxed()
    });
    let server = start(creds(&ca, "server"), handler).await;
    let client = creds(&ca, "client");

    let mut stream = pool()
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    stream.write_all(b"ping").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(PROMPTLY, stream.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, b"pong after your FIN");
}

#[tokio::test]
async fn denied_target_is_rejected_with_its_status() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let mut server = start(creds(&ca, "server"), echo()).await;
    let client = creds(&ca, "client");
    let pool = pool();
    let denied: SocketAddr = format!("127.0.0.1:{DENIED_PORT}").parse().unwrap();

    let err = pool
        .connect(&client, server.addr, &id("server"), denied)
        .await
        .unwrap_err();
    assert!(err.is_rejected(), "{err:?}");
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
    assert!(err.to_string().contains(&denied.to_string()), "{err}");
    assert_eq!(server.stats.rejected_streams(), 1);
    assert!(
        server.seen.try_recv().is_err(),
        "nothing may reach the handler"
    );

    // The connection itself stays usable.
    let mut stream = pool
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    roundtrip(&mut stream, b"still fine").await;
    assert_eq!(server.stats.connections(), 1);
}

#[tokio::test]
async fn server_answers_405_to_other_methods_and_400_to_bad_targets() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let mut server = start(creds(&ca, "server"), echo()).await;
    let client = creds(&ca, "client");

    // Speak HTTP/2 over the mesh TLS directly, to send what the pool never sends.
    let tls = tokio_rustls::TlsConnector::from(client.client_config(&id("server")).unwrap());
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(server.addr.ip().into());
    let tls = tls.connect(name, tcp).await.unwrap();
    let (send, connection) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(connection);

    let status = |request: http::Request<()>| {
        let send = send.clone();
        async move {
            let mut send = send.ready().await.unwrap();
            let (response, _body) = send.send_request(request, false).unwrap();
            response.await.unwrap().status()
        }
    };
    let get = http::Request::get("https://127.0.0.1:8080/")
        .body(())
        .unwrap();
    assert_eq!(status(get).await, StatusCode::METHOD_NOT_ALLOWED);
    let by_name = http::Request::connect("backend.example:8080")
        .body(())
        .unwrap();
    assert_eq!(status(by_name).await, StatusCode::BAD_REQUEST);
    let no_port = http::Request::connect("127.0.0.1").body(()).unwrap();
    assert_eq!(status(no_port).await, StatusCode::BAD_REQUEST);

    assert_eq!(server.stats.rejected_streams(), 3);
    assert!(
        server.seen.try_recv().is_err(),
        "nothing may reach the handler"
    );
}

#[tokio::test]
async fn connect_times_out_on_a_silent_peer() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let client = creds(&ca, "client");
    // Accepts TCP, never answers the TLS handshake.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            held.push(tcp);
        }
    });
    let pool = Pool::new(PoolConfig {
        connect_timeout: Duration::from_millis(200),
        ..PoolConfig::default()
    });

    let err = pool
        .connect(&client, addr, &id("server"), target())
        .await
        .unwrap_err();
    assert!(err.is_timeout() && err.is_connect(), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn connect_to_closed_port_is_a_connect_error() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let client = creds(&ca, "client");
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };

    let err = pool()
        .connect(&client, addr, &id("server"), target())
        .await
        .unwrap_err();
    assert!(err.is_connect() && !err.is_timeout(), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn idle_connection_leaves_the_pool() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let server = start(creds(&ca, "server"), echo()).await;
    let client = creds(&ca, "client");
    let pool = Pool::new(PoolConfig {
        idle_timeout: Duration::from_millis(200),
        ..PoolConfig::default()
    });

    let mut stream = pool
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    roundtrip(&mut stream, b"busy").await;
    // A connection with an open stream is not idle, however long it is quiet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pool.connections(), 1);

    drop(stream);
    eventually("the idle connection leaves the pool", || {
        pool.connections() == 0
    })
    .await;
}

#[tokio::test]
async fn shutdown_drains_streams_and_pool_redials() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let server_creds = creds(&ca, "server");
    let server = start(server_creds.clone(), echo()).await;
    let client = creds(&ca, "client");
    let pool = pool();

    let mut stream = pool
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    roundtrip(&mut stream, b"before shutdown").await;

    server.shutdown.cancel();
    // GOAWAY lets the open stream finish.
    roundtrip(&mut stream, b"while draining").await;
    assert!(
        !server.task.is_finished(),
        "serve returns only once streams end"
    );
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    drop(stream);
    tokio::time::timeout(PROMPTLY, server.task)
        .await
        .expect("serve returns once drained")
        .unwrap();
    eventually("the pool drops the closed connection", || {
        pool.connections() == 0
    })
    .await;

    // A new server on the same address: the next call dials it.
    let listener = TcpListener::bind(server.addr).await.unwrap();
    let restarted = start_on(listener, server_creds, echo());
    let mut stream = pool
        .connect(&client, restarted.addr, &id("server"), target())
        .await
        .unwrap();
    roundtrip(&mut stream, b"after restart").await;
    assert_eq!(pool.connections(), 1);
    assert_eq!(restarted.stats.connections(), 1);
}

/// Opens a TCP connection to `to` from the loopback address `from` (any of 127.0.0.0/8
/// works without root), so that tests can play clients from several sources.
async fn connect_from(from: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(to).await
}

/// Whether the server closed `stream` (EOF or reset) within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    read.await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_connections_and_a_slowloris_from_one_source_do_not_starve_a_peer() {
    const IDLE: usize = 2000;
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Scaled-down caps: without the per-source cap, the attacker alone would fill the
    // listener's 1500 slots and the mesh peer would be refused.
    let server = start_with(
        listener,
        creds(&ca, "server"),
        echo(),
        ServerConfig {
            max_connections: 1500,
            max_connections_per_source: 500,
            handshake_timeout: Duration::from_secs(3),
            ..ServerConfig::default()
        },
    );
    let client = creds(&ca, "client");

    // The attacker (127.0.0.2): connections that never start TLS...
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(connect_from([127, 0, 0, 2], server.addr).await.unwrap());
    }
    // ...and a slowloris trickling a TLS ClientHello, a byte at a time.
    let mut slow = connect_from([127, 0, 0, 3], server.addr).await.unwrap();
    let trickle = tokio::spawn({
        let addr = server.addr;
        async move {
            let mut slow = connect_from([127, 0, 0, 3], addr).await.unwrap();
            for byte in [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc] {
                if slow.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    slow.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let stats = server.stats.clone();
    eventually(
        "the server refuses the attacker past its per-source cap",
        || stats.refused_connections() >= (IDLE - 500) as u64,
    )
    .await;

    // The legitimate peer (127.0.0.1) is served promptly.
    let started = std::time::Instant::now();
    let mut stream = tokio::time::timeout(
        Duration::from_secs(3),
        pool().connect(&client, server.addr, &id("server"), target()),
    )
    .await
    .expect("a legitimate peer connects within 3s")
    .unwrap();
    roundtrip(&mut stream, b"still served").await;
    assert!(started.elapsed() < Duration::from_secs(3));

    // The slowloris is cut at the handshake timeout.
    assert!(
        closed_within(&mut slow, Duration::from_secs(6)).await,
        "a stalled handshake is closed at the handshake timeout"
    );
    trickle.abort();
    drop(idle);
}

#[tokio::test]
async fn a_connection_without_streams_is_closed_after_the_idle_timeout() {
    let ca = Authority::generate(TRUST_DOMAIN, DAY).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = start_with(
        listener,
        creds(&ca, "server"),
        echo(),
        ServerConfig {
            idle_timeout: Duration::from_millis(300),
            ..ServerConfig::default()
        },
    );
    let client = creds(&ca, "client");
    let pool = Pool::new(PoolConfig {
        idle_timeout: Duration::from_secs(3600),
        ..PoolConfig::default()
    });

    let mut stream = pool
        .connect(&client, server.addr, &id("server"), target())
        .await
        .unwrap();
    roundtrip(&mut stream, b"busy").await;
    // An open stream keeps the connection, however quiet.
    tokio::time::sleep(Duration::from_millis(800)).await;
    roundtrip(&mut stream, b"still open").await;
    assert_eq!(pool.connections(), 1);

    drop(stream);
    eventually("the server closes the idle connection", || {
        pool.connections() == 0
    })
    .await;
}
