//! The original destination of a connection redirected to the capture listener.
//!
//! iptables `REDIRECT` (and nft `redirect`) rewrite the destination to the proxy; the
//! kernel keeps the original one in conntrack and returns it via `SO_ORIGINAL_DST`.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpStream;

/// The address the client originally dialled (IPv4 only; IPv6 capture comes with
/// `redirect install`).
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let addr = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::OriginalDst)
        .map_err(io::Error::from)?;
    let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
    Ok(SocketAddr::from((ip, u16::from_be(addr.sin_port))))
}
