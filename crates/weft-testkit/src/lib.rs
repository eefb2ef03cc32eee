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
//! - [`ca`]: a throw-away PKI (test CA, workload certificates, expired ones, a second CA).
//!
//! It is not a mocking framework: everything talks over real sockets, so the code under
//! test runs exactly as in production. Nothing here is used by the shipped binary.

pub mod ca;
pub mod client;
pub mod echo;
pub mod grpc;
pub mod netns;
pub mod process;
pub mod websocket;

pub use netns::{e2e_guard, Host, Topology};

/// A fresh temporary directory (`weft-test-*`), removed when dropped.
pub fn tempdir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("weft-test-").tempdir()
}

pub use tempfile::TempDir;
