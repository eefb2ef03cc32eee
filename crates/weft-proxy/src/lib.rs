//! Weft's data plane: the `weft proxy` process as a library.
//!
//! Follow one connection through the modules in order:
//! [`transport`] accepts it (explicit listener or transparent capture) and detects its
//! protocol; [`outbound`] routes it (per request for HTTP, per connection for TCP),
//! balances across endpoints and connects; [`hbone`] carries it to the peer proxy over a
//! pooled mTLS HTTP/2 CONNECT stream; on the other side [`inbound`] terminates HBONE,
//! learns the caller's SPIFFE identity and forwards to the app on loopback.
//! [`http`] holds the HTTP plumbing both sides share, [`state`] the current config
//! (swapped atomically on reload), [`telemetry`] the metrics, and [`admin`] the
//! loopback admin API. [`run`] wires them together for the `weft proxy` command.

pub mod admin;
pub mod control;
pub mod dns;
pub mod error;
pub mod hbone;
pub mod http;
pub mod identity;
pub mod inbound;
pub mod outbound;
pub mod run;
pub mod state;
pub mod telemetry;
pub mod transport;
pub mod xds;
