//! Dev-only test support for Weft's integration and end-to-end suites.
//!
//! What it holds, in the order a test uses it:
//!
//! - [`netns`]: simulated hosts (network namespaces on a bridge) and running code in them;
//!   [`e2e_guard`] decides whether such a test can run here.
//! - [`process`]: a real `weft` process inside a host, ready once its admin `/ready` says so.
//! - [`echo`]: apps that answer and report what they received (HTTP/1.1 + HTTP/2,
//!   WebSocket, TCP, server-speaks-first).
//! - [`client`]: small clients for those apps, usable inside [`netns::Host::run`] or on
//!   loopback.
//! - [`grpc`]: the Python `grpcio` echo server and client (real gRPC, no generated code).
//! - [`ext_authz`]: an Envoy external authorization server on tonic.
//! - [`webserver`]: nginx and Apache httpd as apps, each reading paths its own way.
//! - [`dns`]: a DNS stub client and a fake upstream resolver.
//! - [`ca`]: a throw-away PKI (test CA, workload certificates, expired ones, a second CA).
//! - [`postgres`]: a throw-away PostgreSQL server, on loopback or inside a host.
//! - [`ports`]: ports for the processes a test starts, reserved against other test processes.
//!
//! An end-to-end test reads like this (`weft` flags are illustrative):
//!
//! ```no_run
//! use std::net::SocketAddr;
//! use std::path::Path;
//! use weft_testkit::{client, echo, e2e_guard, process::WeftProcess, Topology};
//!
//! #[test]
//! fn forwards_tcp_between_hosts() {
//!     if !e2e_guard("forwards_tcp_between_hosts") {
//!         return;
//!     }
//!     // Declared first, dropped last: processes and servers go before the namespaces.
//!     let topology = Topology::new().expect("topology");
//!     let a = topology.add_host("client").expect("host");
//!     let b = topology.add_host("server").expect("host");
//!
//!     let app = SocketAddr::from(([127, 0, 0, 1], 8080)); // each host has its own loopback
//!     let server = b.spawn_server(move || echo::spawn_tcp(app, "b")).expect("echo");
//!     let admin = SocketAddr::from(([127, 0, 0, 1], 15000));
//!     let bin = Path::new(env!("CARGO_BIN_EXE_weft"));
//!     let _proxy_b = WeftProcess::spawn(&b, bin, &["proxy"], &[], admin).expect("proxy b");
//!     let _proxy_a = WeftProcess::spawn(&a, bin, &["proxy"], &[], admin).expect("proxy a");
//!
//!     let target = SocketAddr::from(([127, 0, 0, 1], 9000)); // a's outbound listener
//!     let echoed = a.run(|| client::tcp_roundtrip(target, b"hi")).expect("round trip");
//!     assert_eq!(echoed, b"hi");
//!     assert_eq!(server.recorder().connections().len(), 1);
//! }
//! ```
//!
//! It is not a mocking framework: everything talks over real sockets, so the code under
//! test runs exactly as in production. Nothing here is used by the shipped binary.

pub mod ca;
pub mod client;
pub mod dns;
pub mod echo;
pub mod ext_authz;
pub mod grpc;
pub mod netns;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod wait;
pub mod webserver;
pub mod websocket;

pub use netns::{e2e_guard, Host, Topology};
pub use wait::{eventually, eventually_async};

/// A fresh temporary directory (`weft-test-*`), removed when dropped.
pub fn tempdir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("weft-test-").tempdir()
}

pub use tempfile::TempDir;
