//! The Weft control plane (DESIGN §2): a store of user resources (SQLite or
//! PostgreSQL), an HTTP API over it, compilation of resources into proxy resources,
//! a delta xDS server that pushes each proxy what it subscribed to, and the mesh CA that
//! signs workload certificates for token-authenticated proxies.

pub mod api;
pub mod ca;
pub mod controller;
pub mod identity;
pub mod metrics;
mod registrar;
pub mod seal;
pub mod server;
pub mod stats;
pub mod store;
pub mod tls;
pub mod xds;
