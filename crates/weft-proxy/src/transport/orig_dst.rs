//! The original destination of a connection redirected to the capture listener.
//!
//! iptables `REDIRECT` (and nft `redirect`) rewrite the destination to the proxy; the
//! kernel keeps the original one in conntrack and returns it via `SO_ORIGINAL_DST`
//! (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6), chosen by the socket's own family.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use nix::sys::socket::{getsockopt, sockopt};
use tokio::net::TcpStream;

/// The address the client originally dialled.
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    if stream.local_addr()?.is_ipv6() {
        let addr = getsockopt(stream, sockopt::Ip6tOriginalDst).map_err(io::Error::from)?;
        let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
        // A dual-stack socket reports IPv4 peers as mapped addresses.
        let ip = ip.to_ipv4_mapped().map_or(ip.into(), std::net::IpAddr::V4);
        return Ok(SocketAddr::new(ip, u16::from_be(addr.sin6_port)));
    }
    let addr = getsockopt(stream, sockopt::OriginalDst).map_err(io::Error::from)?;
    let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
    Ok(SocketAddr::from((ip, u16::from_be(addr.sin_port))))
}
