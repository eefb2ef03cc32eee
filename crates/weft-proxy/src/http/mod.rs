//! HTTP machinery shared by the outbound and inbound sides.
//!
//! [`server`] serves a downstream connection with Weft's limits, [`pool`] keeps upstream
//! connections to one endpoint, [`forward`] sends one request upstream (including
//! protocol upgrades such as WebSocket), [`headers`] strips hop-by-hop and spoofable
//! identity headers, [`strict`] decides which request heads are refused rather than
//! forwarded, [`body`] is the response body type and [`request_body`] the request
//! body sent upstream.

pub mod body;
pub mod forward;
pub mod headers;
pub mod path;
pub mod pool;
pub mod request_body;
pub mod server;
pub mod strict;
