//! DNS for tests: a stub client that asks one server one question (UDP or TCP), and a
//! fake upstream resolver that answers a fixed table and counts what it was asked.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub use hickory_proto::op::ResponseCode as Rcode;
pub use hickory_proto::rr::RecordType as Type;

/// What a server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The response code.
    pub code: ResponseCode,
    /// The addresses in the answer section (A and AAAA records).
    pub addresses: Vec<IpAddr>,
    /// Whether the server said it is authoritative.
    pub authoritative: bool,
}

fn query_message(name: &str, record_type: RecordType) -> io::Result<Vec<u8>> {
    let name =
        Name::from_ascii(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut message = Message::query();
    message.metadata.id = fastid();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, record_type));
    message
        .to_vec()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn fastid() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0x1234);
    // Truncation is the point: ids wrap.
    #[allow(clippy::cast_possible_truncation)]
    let id = NEXT.fetch_add(7919, Ordering::Relaxed) as u16;
    id
}

fn parse_answer(bytes: &[u8], query: &[u8]) -> io::Result<Answer> {
    let message =
        Message::from_vec(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if bytes[..2] != query[..2] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "reply id differs",
        ));
    }
    let addresses = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok(Answer {
        code: message.metadata.response_code,
        addresses,
        authoritative: message.metadata.authoritative,
    })
}

/// Asks `server` over UDP (5 s timeout).
pub async fn query_udp(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
) -> io::Result<Answer> {
    let query = query_message(name, record_type)?;
    let local: SocketAddr = if server.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(&query).await?;
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no DNS reply in 5 s"))??;
    parse_answer(&buf[..n], &query)
}

/// Asks `server` over TCP (5 s timeout).
pub async fn query_tcp(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
) -> io::Result<Answer> {
    let query = query_message(name, record_type)?;
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        let len = u16::try_from(query.len()).map_err(|_| io::ErrorKind::InvalidData)?;
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(&query).await?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut reply).await?;
        Ok::<_, io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no DNS reply in 5 s"))??;
    parse_answer(&reply, &query)
}

/// A fake resolver on UDP and TCP: names in its table get their address, others
/// NXDOMAIN. Dropping it stops it.
pub struct Upstream {
    addr: SocketAddr,
    asked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Upstream {
    /// Where it listens (the same port for UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many queries it has received.
    pub fn asked(&self) -> usize {
        self.asked.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1. The UDP port is
/// picked by the kernel; another test may already hold it for TCP, so a few are tried.
async fn udp_and_tcp_on_one_port() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

/// Starts a fake resolver on `127.0.0.1` answering `records` (lowercase names without
/// the trailing dot).
pub async fn spawn_upstream(records: &[(&str, IpAddr)]) -> io::Result<Upstream> {
    let table: Arc<HashMap<String, IpAddr>> = Arc::new(
        records
            .iter()
            .map(|(n, ip)| ((*n).to_owned(), *ip))
            .collect(),
    );
    let (udp, tcp) = udp_and_tcp_on_one_port().await?;
    let udp = Arc::new(udp);
    let addr = udp.local_addr()?;
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let udp_task = {
        let (table, asked) = (table.clone(), asked.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                asked.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = respond(&buf[..n], &table) {
                    let _ = udp.send_to(&reply, peer).await;
                }
            }
        })
    };
    let tcp_task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let (table, asked) = (table.clone(), asked.clone());
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                while stream.read_exact(&mut len).await.is_ok() {
                    let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if stream.read_exact(&mut query).await.is_err() {
                        return;
                    }
                    asked.fetch_add(1, Ordering::SeqCst);
                    let Some(reply) = respond(&query, &table) else {
                        return;
                    };
                    let Ok(len) = u16::try_from(reply.len()) else {
                        return;
                    };
                    if stream.write_all(&len.to_be_bytes()).await.is_err()
                        || stream.write_all(&reply).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(Upstream {
        addr,
        asked: counter,
        tasks: vec![udp_task, tcp_task],
    })
}

fn respond(query: &[u8], table: &HashMap<String, IpAddr>) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let question = request.queries.first()?.clone();
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let name = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    match table.get(&name) {
        Some(ip) => {
            let rdata = match (ip, question.query_type()) {
                (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
                (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
                _ => None,
            };
            if let Some(rdata) = rdata {
                response.add_answer(Record::from_rdata(question.name().clone(), 60, rdata));
            }
        }
        None => response.metadata.response_code = ResponseCode::NXDomain,
    }
    response.add_query(question);
    response.to_vec().ok()
}
