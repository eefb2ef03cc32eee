//! HBONE: how one Weft proxy carries a connection to another.
//!
//! HBONE (HTTP-Based Overlay Network Encapsulation, as in Istio's ambient mode) tunnels
//! each application connection as one HTTP/2 `CONNECT` stream over a mutually
//! authenticated TLS 1.3 connection (ALPN `h2`) to the destination proxy's port 15008.
//! The request's `:authority` names the target workload as `ip:port`. Many application
//! connections share one pooled mTLS connection per destination proxy, so TLS handshakes
//! are paid once per peer rather than once per connection.
//!
//! Where it sits in the flow: [`outbound`](crate::outbound) picks an endpoint and calls
//! [`Pool::connect`], which returns an [`H2Stream`] to copy the application's bytes into.
//! On the destination host, [`Server::serve`] terminates the tunnel, learns the caller's
//! SPIFFE identity from its certificate, asks the inbound side whether the caller may
//! reach the target, and hands the accepted stream to [`inbound`](crate::inbound), which
//! forwards it to the application.
//!
//! - [`stream`]: a `CONNECT` stream as a tokio byte stream, honouring HTTP/2 flow control.
//! - [`client`]: the connection pool and the `CONNECT` request.
//! - [`server`]: the port-15008 listener: handshake, identity, authorization callback.
//!
//! What it is not: it knows nothing of routes, policies or the application protocol
//! carried inside a stream. Certificates and rustls settings come from [`weft_tls`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use weft_tls::SpiffeId;

pub mod client;
pub mod server;
pub mod stream;

pub use client::{Pool, PoolConfig};
pub use server::{Accepted, Server, ServerConfig};
pub use stream::H2Stream;

// HTTP/2 settings both ends of an HBONE connection use.

/// HTTP/2 stream window we advertise: how much a peer may send on one stream before we
/// read it. Large enough for one stream to fill a fast link with some latency.
const STREAM_WINDOW: u32 = 4 * 1024 * 1024;

/// HTTP/2 connection window we advertise, shared by all streams of a connection.
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;

/// Largest DATA frame we accept. Bigger frames than the 16 KiB default cut per-frame
/// overhead on bulk transfers.
const MAX_FRAME_SIZE: u32 = 64 * 1024;

/// Most bytes one stream may have queued for the connection to write; past it, writes
/// wait. Bounds memory per stream; the peer's window, not this queue, keeps data in
/// flight (the queue only has to cover the time the connection task takes to run).
const SEND_BUFFER: usize = 256 * 1024;

/// Largest header block we accept (DESIGN §7: 64 KiB).
const MAX_HEADER_LIST_SIZE: u32 = 64 * 1024;

/// Why an HBONE connection or stream could not be set up.
///
/// Client-side errors ([`Pool::connect`]) name the peer proxy's address and, where it
/// matters, the identity it had to prove. Server-side errors only reach the logs: the
/// server drops a failing connection and counts it (see [`server::Stats`]).
///
/// Nothing was forwarded to the target when any of these is returned, so the caller may
/// try another endpoint; [`Error::is_connect`] and [`Error::is_tls`] tell apart a peer
/// that could not be reached from one that could not be trusted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection to the peer proxy failed.
    #[error("cannot connect to HBONE peer {addr}: {source}; is its proxy running and port 15008 reachable?")]
    Connect {
        /// The peer proxy's HBONE address.
        addr: SocketAddr,
        /// The socket error.
        source: io::Error,
    },

    /// The TCP, TLS and HTTP/2 handshakes with the peer proxy took too long.
    #[error("timed out after {after:?} connecting to HBONE peer {addr} (TCP, TLS and HTTP/2 handshakes); is its proxy overloaded or the network dropping packets?")]
    ConnectTimeout {
        /// The peer proxy's HBONE address.
        addr: SocketAddr,
        /// The configured connect timeout.
        after: Duration,
    },

    /// The TLS handshake with the peer proxy failed, e.g. because it presented a
    /// certificate from another CA or for another identity than expected.
    #[error(
        "TLS handshake with HBONE peer {addr} failed (expected identity {expected}): {source}"
    )]
    Tls {
        /// The peer proxy's HBONE address.
        addr: SocketAddr,
        /// The SPIFFE ID the peer had to prove.
        expected: SpiffeId,
        /// The handshake error; its inner error is a `rustls::Error` when TLS refused.
        source: io::Error,
    },

    /// Our own credentials could not be turned into a TLS client configuration.
    #[error(
        "cannot build the TLS client settings to reach HBONE peer {addr} as {expected}: {source}"
    )]
    Credentials {
        /// The peer proxy's HBONE address.
        addr: SocketAddr,
        /// The SPIFFE ID the peer had to prove.
        expected: SpiffeId,
        /// What is wrong with the credentials.
        source: Box<weft_tls::CredsError>,
    },

    /// A client completed the TLS handshake with the HBONE server but failed it; server
    /// side only (e.g. no client certificate, a certificate from another CA, expired).
    #[error("TLS handshake with HBONE client {addr} failed: {source}")]
    Accept {
        /// The client's address.
        addr: SocketAddr,
        /// The handshake error.
        source: io::Error,
    },

    /// A client did not finish the TLS and HTTP/2 handshakes in time; server side only.
    #[error("HBONE client {addr} did not finish the TLS and HTTP/2 handshakes within {after:?}")]
    HandshakeTimeout {
        /// The client's address.
        addr: SocketAddr,
        /// The configured handshake timeout.
        after: Duration,
    },

    /// The peer's verified certificate does not carry a usable SPIFFE ID.
    #[error("HBONE peer {addr} presented a certificate without a usable mesh identity: {source}")]
    Identity {
        /// The peer's address.
        addr: SocketAddr,
        /// What is wrong with the certificate's identity.
        source: Box<weft_tls::verify::Error>,
    },

    /// The TLS session did not negotiate ALPN `h2`, so the peer cannot speak HBONE.
    #[error("TLS session with HBONE peer {addr} negotiated ALPN {found:?}; HBONE requires \"h2\" (is the peer a Weft proxy?)")]
    Alpn {
        /// The peer's address.
        addr: SocketAddr,
        /// The protocol selected, if any.
        found: Option<String>,
    },

    /// HTTP/2 failed on the connection or the `CONNECT` stream.
    #[error("HTTP/2 error with HBONE peer {addr}: {source}")]
    H2 {
        /// The peer's address.
        addr: SocketAddr,
        /// The HTTP/2 error.
        source: h2::Error,
    },

    /// The peer proxy answered the `CONNECT` with a non-2xx status (e.g. 403 when
    /// authorization denies us, 404 when the target is not one of its workloads).
    #[error("HBONE peer {addr} refused CONNECT to {target} with status {status}")]
    Rejected {
        /// The peer proxy's HBONE address.
        addr: SocketAddr,
        /// The target workload address we asked for.
        target: SocketAddr,
        /// The status it answered.
        status: http::StatusCode,
    },

    /// The `CONNECT` request for the target could not be built.
    #[error("cannot build an HBONE CONNECT request for target {target}: {source}")]
    Request {
        /// The target workload address.
        target: SocketAddr,
        /// The request builder's complaint.
        source: http::Error,
    },
}

// === impl Error ===

impl Error {
    /// Whether the peer could not be reached (TCP connect failed or timed out).
    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::ConnectTimeout { .. })
    }

    /// Whether a connect or handshake deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::ConnectTimeout { .. } | Error::HandshakeTimeout { .. }
        )
    }

    /// Whether the peer could not be authenticated: a TLS handshake failure (wrong
    /// identity, foreign CA, expired certificate) or an unusable certificate identity or
    /// protocol.
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            Error::Tls { .. } | Error::Accept { .. } | Error::Identity { .. } | Error::Alpn { .. }
        )
    }

    /// Whether the peer proxy answered the `CONNECT` with a non-2xx status.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected { .. })
    }

    /// Whether HTTP/2 failed on the connection or stream.
    pub fn is_h2(&self) -> bool {
        matches!(self, Error::H2 { .. })
    }

    /// The status the peer proxy answered, for [`Error::Rejected`].
    pub fn status(&self) -> Option<http::StatusCode> {
        match self {
            Error::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The address of the peer this error is about, when there is one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Error::Connect { addr, .. }
            | Error::ConnectTimeout { addr, .. }
            | Error::Tls { addr, .. }
            | Error::Credentials { addr, .. }
            | Error::Accept { addr, .. }
            | Error::HandshakeTimeout { addr, .. }
            | Error::Identity { addr, .. }
            | Error::Alpn { addr, .. }
            | Error::H2 { addr, .. }
            | Error::Rejected { addr, .. } => Some(*addr),
            Error::Request { .. } => None,
        }
    }
}
