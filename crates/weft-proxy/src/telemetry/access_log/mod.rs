//! The access log: one line per finished HTTP exchange, as JSON or as text from a
//! template, written to stdout or to a size-rotated file.
//!
//! The request path builds an [`Entry`] when an exchange ends (the answer's body
//! ended, or the client went away) and hands it to [`AccessLog::write`], which formats
//! the line on the caller's thread and queues it without waiting on I/O; one thread per
//! log writes what is queued in batches, at most [`GATHER`] after a line came. A full
//! queue drops lines (counted) rather than slow requests down. This module is not the metrics ([`super::exchange`] records
//! those) and not tracing.
//!
//! Fields, in the JSON names both formats use ([`FIELD_NAMES`]):
//!
//! | field | value |
//! |---|---|
//! | `start_time` | when the request arrived, RFC 3339 UTC with milliseconds |
//! | `direction` | `inbound` or `outbound` |
//! | `source_identity` | the caller's SPIFFE ID |
//! | `destination_service`, `destination_workload`, `destination_identity` | who answered |
//! | `upstream_host` | the endpoint or app address that answered, `ip:port` |
//! | `route`, `route_rule` | the route (`HTTPRoute/shop/catalog`) and its rule's index |
//! | `method`, `authority`, `path`, `protocol` | the request; `path` never has the query |
//! | `status`, `grpc_status` | the answer's HTTP and gRPC status |
//! | `duration_ms` | request to the end of the answer, milliseconds with 3 decimals |
//! | `bytes_received`, `bytes_sent` | request and response body bytes |
//! | `retry_count` | retries sent |
//! | `trace_id` | 32 lowercase hex digits |
//! | `response_flags` | [`ResponseFlags`]: Envoy's short codes, `-` when none |
//!
//! Absent values: in JSON an absent optional (`None`) is `null` and strings are
//! written as given (an empty one is `""`), so every line has every field; in text both
//! are `-`, so space-separated fields stay countable.

mod format;
mod writer;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::Direction;

pub use format::{Format, Template, TemplateError, DEFAULT_TEXT_TEMPLATE, FIELD_NAMES};
pub use writer::{AccessLog, Destination, GATHER, QUEUE_BYTES};

/// One finished HTTP exchange, as the access log writes it. Field docs name the
/// logged field.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// When the request arrived (`start_time`).
    pub start: SystemTime,
    /// Which side of the proxy saw it (`direction`).
    pub direction: Direction,
    /// The caller's SPIFFE ID, empty if it has none (`source_identity`).
    pub source_identity: &'a str,
    /// The service called, empty if not known (`destination_service`).
    pub destination_service: &'a str,
    /// The workload that answered, empty if not known (`destination_workload`).
    pub destination_workload: &'a str,
    /// The answering workload's SPIFFE ID, empty if none (`destination_identity`).
    pub destination_identity: &'a str,
    /// The endpoint or app address that answered, if one was reached
    /// (`upstream_host`).
    pub upstream: Option<SocketAddr>,
    /// The route, as `HTTPRoute/<namespace>/<name>`, empty if none (`route`).
    pub route: &'a str,
    /// The index of the route's rule that matched (`route_rule`).
    pub route_rule: Option<u32>,
    /// The request method (`method`).
    pub method: &'a str,
    /// The request authority (`authority`).
    pub authority: &'a str,
    /// The request path without its query: a query may carry secrets (`path`).
    pub path: &'a str,
    /// `HTTP/1.1` or `HTTP/2` (`protocol`).
    pub protocol: &'a str,
    /// The answer's HTTP status (`status`).
    pub status: u16,
    /// The answer's gRPC status, if it carried one (`grpc_status`).
    pub grpc_status: Option<u8>,
    /// From the request to the end of the answer (`duration_ms`).
    pub duration: Duration,
    /// Bytes of the request body (`bytes_received`).
    pub request_bytes: u64,
    /// Bytes of the response body (`bytes_sent`).
    pub response_bytes: u64,
    /// Retries sent (`retry_count`).
    pub retries: u32,
    /// The W3C trace ID, if the request was traced (`trace_id`).
    pub trace_id: Option<[u8; 16]>,
    /// What went wrong, if anything (`response_flags`).
    pub flags: ResponseFlags,
}

/// What went wrong with an exchange, in the spirit of Envoy's response flags: a small
/// set, shown as Envoy's short codes joined by `,` (in Envoy's order), or `-` when
/// empty.
#[derive(Clone, Copy, Debug, Default, Hash, PartialEq, Eq)]
pub struct ResponseFlags(u16);

// === impl ResponseFlags ===

impl ResponseFlags {
    /// No flag.
    pub const EMPTY: Self = Self(0);
    /// `UH`: no healthy upstream endpoint.
    pub const NO_HEALTHY_UPSTREAM: Self = Self(1 << 0);
    /// `UT`: the upstream request timed out.
    pub const UPSTREAM_REQUEST_TIMEOUT: Self = Self(1 << 1);
    /// `UF`: the upstream connection failed.
    pub const UPSTREAM_CONNECTION_FAILURE: Self = Self(1 << 2);
    /// `UO`: upstream overflow, a connection or request limit refused it.
    pub const UPSTREAM_OVERFLOW: Self = Self(1 << 3);
    /// `NR`: no route or no service for the request.
    pub const NO_ROUTE: Self = Self(1 << 4);
    /// `FI`: a fault was injected.
    pub const FAULT_INJECTED: Self = Self(1 << 5);
    /// `RL`: rate limited.
    pub const RATE_LIMITED: Self = Self(1 << 6);
    /// `UAEX`: unauthorized, denied by authorization.
    pub const UNAUTHORIZED: Self = Self(1 << 7);
    /// `DC`: the downstream connection ended before the answer did.
    pub const DOWNSTREAM_CONNECTION_TERMINATION: Self = Self(1 << 8);
    /// `URX`: the retry limit was exceeded.
    pub const UPSTREAM_RETRY_LIMIT_EXCEEDED: Self = Self(1 << 9);
    /// `DPE`: downstream protocol error, a refused request.
    pub const DOWNSTREAM_PROTOCOL_ERROR: Self = Self(1 << 10);

    /// Every flag and its code, in display order.
    const CODES: [(Self, &'static str); 11] = [
        (Self::NO_HEALTHY_UPSTREAM, "UH"),
        (Self::UPSTREAM_REQUEST_TIMEOUT, "UT"),
        (Self::UPSTREAM_CONNECTION_FAILURE, "UF"),
        (Self::UPSTREAM_OVERFLOW, "UO"),
        (Self::NO_ROUTE, "NR"),
        (Self::FAULT_INJECTED, "FI"),
        (Self::RATE_LIMITED, "RL"),
        (Self::UNAUTHORIZED, "UAEX"),
        (Self::DOWNSTREAM_CONNECTION_TERMINATION, "DC"),
        (Self::UPSTREAM_RETRY_LIMIT_EXCEEDED, "URX"),
        (Self::DOWNSTREAM_PROTOCOL_ERROR, "DPE"),
    ];

    /// Adds the flags of `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for ResponseFlags {
    fn bitor_assign(&mut self, other: Self) {
        self.insert(other);
    }
}

impl std::fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, code) in Self::CODES {
            if self.contains(flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(code)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn response_flags_show_envoy_codes_in_envoy_order_or_a_dash() {
        assert_eq!(ResponseFlags::EMPTY.to_string(), "-");
        assert_eq!(ResponseFlags::default().to_string(), "-");
        let mut flags = ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED;
        flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
        flags |= ResponseFlags::NO_HEALTHY_UPSTREAM;
        assert_eq!(flags.to_string(), "UH,UF,URX");
        let all = ResponseFlags::CODES
            .iter()
            .fold(ResponseFlags::EMPTY, |all, (flag, _)| all | *flag);
        assert_eq!(all.to_string(), "UH,UT,UF,UO,NR,FI,RL,UAEX,DC,URX,DPE");
    }

    #[test]
    fn response_flags_contain_exactly_what_was_inserted() {
        let mut flags = ResponseFlags::EMPTY;
        assert!(flags.is_empty());
        flags.insert(ResponseFlags::RATE_LIMITED);
        assert!(!flags.is_empty());
        assert!(flags.contains(ResponseFlags::RATE_LIMITED));
        assert!(flags.contains(ResponseFlags::EMPTY));
        assert!(!flags.contains(ResponseFlags::UNAUTHORIZED));
        assert!(!flags.contains(ResponseFlags::RATE_LIMITED | ResponseFlags::UNAUTHORIZED));
        let distinct: std::collections::HashSet<_> = ResponseFlags::CODES
            .iter()
            .map(|(flag, _)| flag.0)
            .collect();
        assert_eq!(distinct.len(), ResponseFlags::CODES.len(), "one bit each");
        assert!(distinct.iter().all(|bit| bit.is_power_of_two()));
    }
}
