//! The UDP and TCP servers of the mesh DNS, and forwarding to the upstreams.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use super::MAX_FORWARDS;
use crate::state::names::Lookup;
use crate::state::Store;
use crate::telemetry::Metrics;

/// How long one upstream has to answer before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP client may stay silent between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP clients served at once; more are closed at accept.
const MAX_TCP_CLIENTS: usize = 256;
/// The largest DNS message (the TCP length prefix is 16 bits).
const MAX_MESSAGE: usize = 65_535;

/// What to do with one query.
#[doc(hidden)] // public for the fuzz targets (`fuzz/`) only
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send this response; the metric label says what it is.
    Reply(Vec<u8>, &'static str),
    /// Not ours: ask the upstreams.
    Forward,
    /// Not even a DNS header: nothing to answer.
    Ignore,
}

/// What every query handler shares.
struct Shared {
    store: Arc<Store>,
    /// The host's resolvers, used when the config names no `dns.upstreams`.
    system: Arc<[SocketAddr]>,
    forwards: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn upstreams(&self) -> Arc<[SocketAddr]> {
        let configured = &self.store.load().config.dns.upstreams;
        if configured.is_empty() {
            self.system.clone()
        } else {
            configured.as_slice().into()
        }
    }

    /// The upstream's reply, or SERVFAIL; counted either way.
    fn forwarded(&self, reply: Option<Vec<u8>>, query: &[u8]) -> Vec<u8> {
        if let Some(reply) = reply {
            self.metrics.dns("forwarded");
            reply
        } else {
            self.metrics.dns("servfail");
            servfail(query)
        }
    }
}

/// Serves `udp` and `tcp` until the process ends. `system` are the host's resolvers,
/// used when the config names no `dns.upstreams`.
pub fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    store: Arc<Store>,
    system: Vec<SocketAddr>,
    metrics: Arc<Metrics>,
) {
    let shared = Arc::new(Shared {
        store,
        system: system.into(),
        forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
        metrics,
    });
    tokio::spawn(serve_udp(Arc::new(udp), shared.clone()));
    tokio::spawn(serve_tcp(tcp, shared));
}

async fn serve_udp(udp: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (n, client) = match udp.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors from earlier replies surface here; the socket is fine.
                tracing::debug!(error = %e, "mesh DNS: receive failed");
                continue;
            }
        };
        let query = &buf[..n];
        let reply = match decide(query, &shared.store) {
            Decision::Reply(reply, result) => {
                shared.metrics.dns(result);
                reply
            }
            Decision::Ignore => {
                shared.metrics.dns("malformed");
                continue;
            }
            Decision::Forward => {
                if let Ok(permit) = shared.forwards.clone().try_acquire_owned() {
                    let (udp, shared, query) = (udp.clone(), shared.clone(), query.to_vec());
                    tokio::spawn(async move {
                        let reply = forward_udp(&query, &shared.upstreams()).await;
                        drop(permit);
                        let reply = shared.forwarded(reply, &query);
                        send(&udp, &reply, client).await;
                    });
                    continue;
                }
                tracing::warn!(
                    limit = MAX_FORWARDS,
                    "mesh DNS: too many queries in flight; answering SERVFAIL"
                );
                shared.forwarded(None, query)
            }
        };
        send(&udp, &reply, client).await;
    }
}

async fn send(udp: &UdpSocket, reply: &[u8], client: SocketAddr) {
    if let Err(e) = udp.send_to(reply, client).await {
        tracing::debug!(%client, error = %e, "mesh DNS: could not reply");
    }
}

async fn serve_tcp(tcp: TcpListener, shared: Arc<Shared>) {
    let clients = Arc::new(Semaphore::new(MAX_TCP_CLIENTS));
    loop {
        let stream = match tcp.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "mesh DNS: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = MAX_TCP_CLIENTS,
                "mesh DNS: too many TCP clients; closing"
            );
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_tcp_client(stream, &shared).await {
                tracing::debug!(error = %e, "mesh DNS: TCP client ended");
            }
            drop(permit);
        });
    }
}

/// Length-prefixed queries, answered in order, until the client closes or idles.
async fn serve_tcp_client(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    loop {
        let Ok(query) = tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)).await else {
            return Ok(());
        };
        let Some(query) = query? else {
            return Ok(());
        };
        let reply = match decide(&query, &shared.store) {
            Decision::Reply(reply, result) => {
                shared.metrics.dns(result);
                reply
            }
            Decision::Ignore => {
                shared.metrics.dns("malformed");
                return Ok(());
            }
            Decision::Forward => {
                let reply = match shared.forwards.try_acquire() {
                    Ok(_permit) => forward_tcp(&query, &shared.upstreams()).await,
                    Err(_) => None,
                };
                shared.forwarded(reply, &query)
            }
        };
        write_framed(&mut stream, &reply).await?;
    }
}

/// One length-prefixed message; `None` at a clean end of stream.
async fn read_framed(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    Ok(Some(message))
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "DNS message over 64 KiB"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}

/// Answers a query from the snapshot's name table, or says to forward it.
#[doc(hidden)] // public for the fuzz targets (`fuzz/`) only
pub fn decide(query: &[u8], store: &Store) -> Decision {
    let Ok(request) = Message::from_vec(query) else {
        return if query.len() >= 12 {
            Decision::Reply(header_only(query, ResponseCode::FormErr), "malformed")
        } else {
            Decision::Ignore
        };
    };
    if request.metadata.message_type != MessageType::Query
        || request.metadata.op_code != OpCode::Query
        || request.queries.len() != 1
    {
        return Decision::Forward;
    }
    let question = &request.queries[0];
    if question.query_class() != DNSClass::IN {
        return Decision::Forward;
    }
    let snap = store.load();
    let ttl = u32::try_from(snap.config.dns.ttl.as_secs()).unwrap_or(u32::MAX);
    match snap.dns().lookup(&question.name().to_ascii()) {
        Lookup::Service(vip) => answer(&request, question, Some(vip), ResponseCode::NoError, ttl),
        Lookup::Unknown => answer(&request, question, None, ResponseCode::NXDomain, ttl),
        Lookup::Elsewhere => Decision::Forward,
    }
}

/// An authoritative response: the VIP when the question asks for its family.
fn answer(
    request: &Message,
    question: &Query,
    vip: Option<IpAddr>,
    code: ResponseCode,
    ttl: u32,
) -> Decision {
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = code;
    response.add_query(question.clone());
    let name = question.name().clone();
    let rdata = match (vip, question.query_type()) {
        (Some(IpAddr::V4(v4)), RecordType::A | RecordType::ANY) => Some(RData::A(A(v4))),
        (Some(IpAddr::V6(v6)), RecordType::AAAA | RecordType::ANY) => Some(RData::AAAA(AAAA(v6))),
        _ => None,
    };
    if let Some(rdata) = rdata {
        response.add_answer(Record::from_rdata(name, ttl, rdata));
    }
    let result = if code == ResponseCode::NXDomain {
        "nxdomain"
    } else {
        "service"
    };
    match response.to_vec() {
        Ok(bytes) => Decision::Reply(bytes, result),
        Err(e) => {
            tracing::warn!(error = %e, "mesh DNS: could not encode an answer");
            let mut header = [0u8; 12];
            header[..2].copy_from_slice(&request.metadata.id.to_be_bytes());
            Decision::Reply(header_only(&header, ResponseCode::ServFail), "servfail")
        }
    }
}

/// A response with no sections, echoing the query's id and opcode.
fn header_only(query: &[u8], code: ResponseCode) -> Vec<u8> {
    let mut reply = vec![0u8; 12];
    reply[..2].copy_from_slice(&query[..2]);
    // QR=1, the query's opcode and RD; RA=1; the rcode.
    reply[2] = 0x80 | (query[2] & 0x79);
    reply[3] = 0x80 | (u16::from(code) as u8 & 0x0f);
    reply
}

/// SERVFAIL for `query`, with its question when it parses.
#[doc(hidden)] // public for the fuzz targets (`fuzz/`) only
pub fn servfail(query: &[u8]) -> Vec<u8> {
    let Ok(request) = Message::from_vec(query) else {
        return if query.len() >= 12 {
            header_only(query, ResponseCode::ServFail)
        } else {
            Vec::new()
        };
    };
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = ResponseCode::ServFail;
    response.add_queries(request.queries.iter().cloned());
    response
        .to_vec()
        .unwrap_or_else(|_| header_only(query, ResponseCode::ServFail))
}

/// Asks each upstream in turn over UDP, from a fresh socket (a random source port, and
/// `connect` so only the upstream's datagrams are read); the first reply carrying the
/// query's id wins.
async fn forward_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for &upstream in upstreams {
        let attempt = async {
            let local: SocketAddr = if upstream.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local).await?;
            socket.connect(upstream).await?;
            socket.send(query).await?;
            let mut buf = vec![0u8; MAX_MESSAGE];
            loop {
                let n = socket.recv(&mut buf).await?;
                if n >= 12 && buf[..2] == query[..2] {
                    buf.truncate(n);
                    return Ok::<_, io::Error>(buf);
                }
            }
        };
        match tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "mesh DNS: upstream failed"),
            Err(_) => tracing::debug!(%upstream, "mesh DNS: upstream timed out"),
        }
    }
    None
}

/// Asks each upstream in turn over TCP.
async fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for &upstream in upstreams {
        let attempt = async {
            let mut stream = TcpStream::connect(upstream).await?;
            write_framed(&mut stream, query).await?;
            read_framed(&mut stream)
                .await?
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed"))
        };
        match tokio::time::timeout(UPSTREAM_TIMEOUT, attempt).await {
            Ok(Ok(reply)) => return Some(reply),
            Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "mesh DNS: upstream failed"),
            Err(_) => tracing::debug!(%upstream, "mesh DNS: upstream timed out"),
        }
    }
    None
}

/// The host's resolvers: the `nameserver`s of `/etc/resolv.conf`, or, when those are
/// only systemd-resolved's stub (`127.0.0.53`, which would send the queries back
/// through the redirect), the real ones it lists in `/run/systemd/resolve/resolv.conf`.
pub fn system_upstreams() -> Vec<SocketAddr> {
    let main = nameservers(Path::new("/etc/resolv.conf"));
    let stub: IpAddr = [127, 0, 0, 53].into();
    if !main.is_empty() && main.iter().all(|a| a.ip() == stub) {
        let resolved = nameservers(Path::new("/run/systemd/resolve/resolv.conf"));
        if !resolved.is_empty() {
            return resolved;
        }
    }
    main
}

fn nameservers(path: &Path) -> Vec<SocketAddr> {
    std::fs::read_to_string(path)
        .map(|text| parse_resolv_conf(&text))
        .unwrap_or_default()
}

/// `nameserver ADDRESS` lines (a `%zone` suffix is dropped), on port 53.
fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let addr = words.next()?;
            let addr = addr.split_once('%').map_or(addr, |(a, _)| a);
            addr.parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read_in_order_and_comments_ignored() {
        let got = parse_resolv_conf(
            "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n\
             ;nameserver 10.9.9.9\nnameserver not-an-ip\noptions ndots:5\n",
        );
        assert_eq!(
            got,
            vec![
                "10.0.0.2:53".parse().expect("addr"),
                "[fe80::1]:53".parse().expect("addr"),
            ]
        );
    }

    #[test]
    fn a_header_only_reply_keeps_the_id_and_sets_the_code() {
        let query = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let reply = header_only(&query, ResponseCode::FormErr);
        assert_eq!(&reply[..2], &[0xab, 0xcd]);
        assert_eq!(reply[2] & 0x80, 0x80, "a response");
        assert_eq!(reply[2] & 0x01, 0x01, "RD echoed");
        assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
    }
}
