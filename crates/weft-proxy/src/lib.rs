//! Weft's data plane: the `weft proxy` process as a library.
//!
//! Follow one connection through the modules in order:
//! [`transport`] accepts it (explicit listener or transparent capture) and detects its
//! protocol; [`outbound`] routes it (per request for HTTP, per connection for TCP),
//! balances across endpoints and connects; [`hbone`] carries it to the peer proxy over a
//! pooled mTLS HTTP/2 CONNECT stream; on the other side [`inbound`] terminates HBONE,
//! learns the caller's SPIFFE identity and forwards to the app on loopback.
//! [`http`] holds the HTTP plumbing both sides share, [`route`] the compiled route
//! tables, [`state`] the current config snapshot (swapped atomically on reload),
//! [`upstream`] what the proxy learns about the services it sends to (endpoint
//! statistics, health, ejections, pools) and the balancer over them, [`ratelimit`] the
//! inbound token buckets, [`dns`] the mesh DNS, [`telemetry`] the metrics, [`drain`]
//! graceful shutdown, and [`admin`] the loopback admin API. [`control_plane`] is the
//! client that takes config and certificates from `weft control-plane`; [`run`] wires
//! it all together for the `weft proxy` command.

pub mod admin;
pub mod authz;
pub mod backoff;
pub mod control_plane;
pub mod dns;
pub mod drain;
pub mod error;
pub mod hbone;
pub mod http;
pub mod inbound;
pub mod jwt;
pub mod memory;
pub mod outbound;
pub mod ratelimit;
pub mod route;
pub mod run;
pub mod state;
pub mod telemetry;
pub mod transport;
pub mod upstream;
