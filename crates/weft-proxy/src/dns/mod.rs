//! Mesh DNS (`listeners.dns`, usually `127.0.0.1:15053`): the host's DNS, redirected
//! here by `weft redirect install`, gets service names answered with their VIPs, and
//! everything else forwarded to the host's own resolvers.
//!
//! A query for a service name (see [`crate::state::names::Table`], compiled with each
//! snapshot) is answered at once, authoritatively: `A` or `AAAA` by the VIP's family,
//! an empty answer for the other types. An unknown name inside the mesh zone
//! (`*.svc.<domain>`) is NXDOMAIN. Anything else goes,
//! byte for byte, to the upstreams in turn (UDP queries over UDP, TCP over TCP), and
//! their answer comes back byte for byte; when none answers, SERVFAIL. Forwards are
//! bounded ([`MAX_FORWARDS`] at a time), so a flood of queries cannot exhaust the
//! proxy; past the bound the client gets SERVFAIL at once, never silence.

mod server;

#[doc(hidden)] // for the fuzz targets (`fuzz/`) only
pub use server::{decide, servfail, Decision};
pub use server::{serve, system_upstreams};

/// Forwarded queries in flight at once, UDP and TCP together.
pub const MAX_FORWARDS: usize = 1024;
