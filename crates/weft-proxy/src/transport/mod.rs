//! Accepting connections and learning what they carry.
//!
//! [`listen`] runs accept loops with connection caps and drain support, [`orig_dst`]
//! recovers the destination of a transparently redirected connection, [`detect`] sniffs
//! the first bytes (TLS, HTTP/1.x, HTTP/2, or opaque) and [`rewind`] replays them to
//! whoever handles the connection next.

pub mod detect;
pub mod idle;
pub mod listen;
pub mod orig_dst;
pub mod rewind;
