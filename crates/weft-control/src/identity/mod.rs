//! Workload identity: the gRPC `weft.proxy.v1.Identity` service that turns a proxy's
//! CSR into a short-lived certificate, and the workload tokens that authenticate it
//! (DESIGN §7: "a signed workload token for each proxy, bound to its identity, so a
//! proxy can only get certificates and config for the identity it was given").
//!
//! The flow of one `Sign` call: read `authorization: Bearer <token>` metadata →
//! [`Tokens::authenticate`] (signature, expiry with 60 s leeway, trust domain,
//! revocation) → parse the CSR → [`MeshCa::sign`](crate::ca::MeshCa::sign) the token's identity, never the one
//! the CSR asks for → answer with the chain, the trust bundle and the expiry.
//!
//! What it is not: the CA itself ([`crate::ca`]), nor the HTTP endpoints that issue and
//! revoke tokens (`api::tokens`). The service is served next to xDS on the control
//! plane's gRPC port; see [`service`].

mod service;
pub mod tokens;

use std::time::Duration;

pub use service::{
    bearer_token, own_workload, parse_bearer, refusal_status, service, service_counted,
    service_recording, IdentityService,
};
pub use tokens::{IssuedToken, Refusal, Tokens};

/// Certificate lifetimes of the `Sign` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Lifetime when the request names none. Default 24 h.
    pub default_ttl: Duration,
    /// Longest lifetime granted; longer requests are cut to it. Default 24 h.
    pub max_ttl: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            default_ttl: Duration::from_secs(24 * 60 * 60),
            max_ttl: Duration::from_secs(24 * 60 * 60),
        }
    }
}
