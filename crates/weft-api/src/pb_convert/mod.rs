//! Conversions between the wire resources ([`pb::v1`](crate::pb::v1)) and the proxy
//! model ([`proxy`]).
//!
//! The proxy converts what it receives over xDS with [`TryFrom`] / [`route_tables_from_pb`];
//! a malformed field fails the one resource (the proxy NACKs it) with an [`Error`] that
//! names the field path inside that resource (`endpoints[2].address`). The reverse
//! direction is infallible and is used to persist accepted config and in tests.
//!
//! Route tables differ in shape: on the wire a `RouteTable` holds a list of `Route`
//! chunks, each with an optional port and the user resource it came from, in precedence
//! order; the proxy model has one table per (service, port). [`route_tables_from_pb`]
//! concatenates the chunks of each port in order.

use std::net::IpAddr;
use std::time::Duration;

use crate::pb::v1 as pb;
use crate::proxy::{self, FieldError};

mod authorization;
mod backend;
mod inbound;
mod route;
mod service;
#[cfg(test)]
mod tests;

pub use authorization::{
    authorization_to_pb, default_action_to_pb, operation_to_pb, permission_to_pb,
};
pub use backend::policy_to_pb;
pub use inbound::{
    fault_to_pb, mtls_mode_to_pb, path_normalization_to_pb, rate_limit_to_pb, telemetry_to_pb,
};
pub use route::{key_value_to_pb, route_table_to_pb, route_tables_from_pb};
pub use service::{load_balancer_to_pb, protocol_to_pb};

/// A wire resource field that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Error {
    /// Field path inside the resource, e.g. `endpoints[2].address`.
    pub path: String,
    /// What is wrong, with the offending value.
    pub message: String,
}

impl Error {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl From<Error> for FieldError {
    fn from(e: Error) -> Self {
        FieldError {
            path: e.path,
            message: e.message,
        }
    }
}

fn ip(path: &str, text: &str) -> Result<IpAddr, Error> {
    text.parse()
        .map_err(|_| Error::new(path, format!("{text:?} is not an IP address")))
}

fn port(path: &str, value: u32) -> Result<u16, Error> {
    match u16::try_from(value) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(Error::new(path, format!("{value} is not a port (1-65535)"))),
    }
}

fn protocol(path: &str, value: i32) -> Result<proxy::Protocol, Error> {
    Ok(match pb::Protocol::try_from(value) {
        Ok(pb::Protocol::Auto) => proxy::Protocol::Auto,
        Ok(pb::Protocol::Http) => proxy::Protocol::Http,
        Ok(pb::Protocol::Http2) => proxy::Protocol::Http2,
        Ok(pb::Protocol::Grpc) => proxy::Protocol::Grpc,
        Ok(pb::Protocol::Tcp) => proxy::Protocol::Tcp,
        Err(_) => {
            return Err(Error::new(
                path,
                format!("unknown protocol {value} (a newer control plane?)"),
            ))
        }
    })
}

/// Converts a duration to its wire form, saturating at `i64::MAX` seconds.
pub fn duration_to_pb(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0), // always < 1e9
    }
}

/// Reads a wire duration; negative or out-of-range values are an error at `path`.
fn duration_from_pb(path: &str, d: &prost_types::Duration) -> Result<Duration, Error> {
    let nanos = u32::try_from(d.nanos).ok().filter(|n| *n < 1_000_000_000);
    match (u64::try_from(d.seconds), nanos) {
        (Ok(s), Some(n)) => Ok(Duration::new(s, n)),
        _ => Err(Error::new(
            path,
            format!("{}s {}ns is not a valid duration", d.seconds, d.nanos),
        )),
    }
}
