//! The Weft control plane (DESIGN §2): a store of user resources (SQLite or
//! PostgreSQL), an HTTP API over it, compilation of resources into proxy resources,
//! and a delta xDS server that pushes each proxy what it subscribed to.

pub mod api;
pub mod controller;
pub mod server;
pub mod store;
pub mod xds;
