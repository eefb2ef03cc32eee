//! Weft's own HTTP conformance suite: adversarial vectors (request smuggling, header
//! forgery, connection poisoning) sent as raw bytes through real `weft proxy` processes
//! on loopback, one hop and two hops, each judged by what reached a logging origin and
//! what came back to the client. See `docs/security/http-conformance.md`.
//!
//! - [`topology`]: the proxies (one hop, two hops; `http`, `http2` or `auto` ports).
//! - [`origin`]: the raw HTTP/1.1 origin that logs the bytes and requests it received.
//! - [`client`]: the raw HTTP/1.1 client.
//! - [`h1`], [`h1_vectors`]: the HTTP/1.1 vectors, their runner and verdicts.
//! - [`table`]: the verdict tables of the docs page, shared with the HTTP/2 side.
//!
//! `WEFT_VECTOR=name` runs one vector; `WEFT_BLESS=1` rewrites the tables.

#![allow(unreachable_pub, dead_code, clippy::unwrap_used)]

mod client;
mod h1;
mod h1_vectors;
mod h2;
mod origin;
mod table;
mod topology;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use topology::{Hops, PortProtocol, Topology};

/// The harness itself works: a plain GET crosses both paths and reaches the origin with
/// the identity header each path must carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_get_crosses_both_paths() {
    for hops in Hops::ALL {
        let origin = origin::Origin::spawn().await;
        let topology = Topology::start(hops, PortProtocol::Http, &[origin.addr()]).await;
        let lane = &topology.lanes()[0];
        let mark = origin.mark();
        let mut stream = tokio::net::TcpStream::connect(lane.listen).await.unwrap();
        stream
            .write_all(b"GET /smoke HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_to_end(&mut answer),
        )
        .await
        .expect("answer in time")
        .unwrap();
        let activity = origin.since(&mark);
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{hops}: {}\n{}",
            origin::escape(&answer, 500),
            activity.describe()
        );
        assert_eq!(
            activity.requests.len(),
            1,
            "{hops}: {}",
            activity.describe()
        );
        let request = &activity.requests[0];
        assert_eq!(request.target, "/smoke");
        assert_eq!(
            request.header("x-forwarded-client-cert"),
            topology.expected_xfcc()
        );
    }
}
