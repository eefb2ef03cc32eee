#![allow(clippy::unwrap_used, missing_docs)]
use futures::FutureExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weft_proxy::hbone::{Accepted, Pool, PoolConfig, Server, ServerConfig};
use weft_proxy::telemetry::Metrics;
use weft_tls::ca::Authority;
use weft_tls::{Credentials, SpiffeId};

const DAY: Duration = Duration::from_secs(86_400);
fn id(sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", "default", sa).unwrap()
}
fn creds(ca: &Authority, sa: &str) -> Arc<Credentials> {
    let i = ca.issue(&id(sa), DAY).unwrap();
    Arc::new(
        Credentials::from_pem(
            i.cert_pem.as_bytes(),
            i.key_pem.as_bytes(),
            ca.cert_pem().as_bytes(),
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput() {
    let ca = Authority::generate("cluster.local", DAY).unwrap();
    let sc = creds(&ca, "server");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(
        ServerConfig::default(),
        Arc::new(move || Some(sc.clone())),
        Arc::new(|_: &SpiffeId, _: SocketAddr| Ok(())),
        Arc::new(|a: Accepted| {
            async move {
                let mut s = a.stream;
                let mut buf = vec![0u8; 256 * 1024];
                let mut n = 0u64;
                loop {
                    let r = s.read(&mut buf).await.unwrap();
                    if r == 0 {
                        break;
                    }
                    n += r as u64;
                }
                s.write_all(&n.to_be_bytes()).await.unwrap();
                s.shutdown().await.unwrap();
            }
            .boxed()
        }),
        Metrics::new(),
    );
    tokio::spawn(server.serve(listener, CancellationToken::new()));
    let client = creds(&ca, "client");
    let pool = Pool::new(PoolConfig::default());
    for streams in [1usize, 4] {
        let total: u64 = 1 << 30;
        let per = total / streams as u64;
        let t = Instant::now();
        let tasks: Vec<_> = (0..streams)
            .map(|_| {
                let pool = pool.clone();
                let client = client.clone();
                tokio::spawn(async move {
                    let mut s = pool
                        .connect(&client, addr, &id("server"), "127.0.0.1:1".parse().unwrap())
                        .await
                        .unwrap();
                    let buf = vec![7u8; 64 * 1024];
                    let mut sent = 0u64;
                    while sent < per {
                        s.write_all(&buf).await.unwrap();
                        sent += buf.len() as u64;
                    }
                    s.shutdown().await.unwrap();
                    let mut b = [0u8; 8];
                    s.read_exact(&mut b).await.unwrap();
                    assert_eq!(u64::from_be_bytes(b), sent);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "streams={streams} {:.2} Gbit/s",
            (total * 8) as f64 / secs / 1e9
        );
    }
}
