//! HTTP machinery shared by the outbound and inbound sides.
//!
//! [`server`] serves a downstream connection with Weft's limits, [`pool`] keeps upstream
//! connections to one endpoint, [`forward`] sends one request upstream (including
//! protocol upgrades such as WebSocket), [`headers`] strips hop-by-hop and spoofable
//! identity headers, [`strict`] decides which request heads are refused rather than
//! forwarded, and [`body`] is the response body type.

pub mod body;
pub mod forward;
pub mod headers;
pub mod pool;
pub mod server;
pub mod strict;
