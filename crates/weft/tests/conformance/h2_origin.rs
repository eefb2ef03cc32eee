//! The HTTP/2 origin the HTTP/2 vectors end at, and one view over it and the HTTP/1.1
//! origin (`origin.rs`) so a vector is judged the same way whichever protocol the app
//! port declares.
//!
//! The app is the `h2` crate's server (it is the application, not the code under test),
//! but what the origin *logs* does not come from it: a tap under the server decodes the
//! bytes the proxy sent, frame by frame, with this suite's own HPACK decoder. So a field
//! the `h2` server would have refused (an uppercase name, a `connection` header), a
//! pseudo-header in trailers, a request the server reset: all are logged as received.
//!
//! Answers: `200` with body `ok\n` once the request body and trailers are read;
//! `/big/<n>` answers `n` bytes, sent as flow control allows (for the stalled-reader
//! floods).

use std::fmt::Write as _;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::frame::{flag, kind, Frame, Reason, PREFACE};
use super::hpack::{Decoder, Field, DEFAULT_TABLE_SIZE};
use crate::origin;

/// One request as an origin received it, whatever its protocol.
#[derive(Clone, Debug, Default)]
pub(crate) struct Arrival {
    /// The upstream connection (origin's accept order).
    pub(crate) conn: usize,
    /// The HTTP/2 stream id (0 for HTTP/1.1).
    pub(crate) stream: u32,
    /// The header section in order, pseudo-header fields included (for HTTP/1.1:
    /// `:method` and `:path` from the request line, then the fields, names lowercased).
    pub(crate) fields: Vec<Field>,
    pub(crate) body: Vec<u8>,
    /// The trailer section, if one came.
    pub(crate) trailers: Option<Vec<Field>>,
    /// The request ended normally (END_STREAM, or a complete HTTP/1.1 message).
    pub(crate) complete: bool,
    /// RST_STREAM from the proxy, if any.
    pub(crate) reset: Option<Reason>,
}

/// What arrived at an origin since a mark.
#[derive(Clone, Debug, Default)]
pub(crate) struct Seen {
    pub(crate) arrivals: Vec<Arrival>,
    /// Anything else: bytes that never became a request, undecodable blocks.
    pub(crate) other: Vec<String>,
}

/// The origin behind a lane: HTTP/2 (this file) or HTTP/1.1 (`origin.rs`).
pub(crate) enum Witness {
    H2(H2Origin),
    H1(origin::Origin),
}

/// A position in a [`Witness`]'s log.
pub(crate) enum Mark {
    H2(usize, usize),
    H1(origin::Mark),
}

/// An HTTP/2 origin on 127.0.0.1; stops when dropped.
pub(crate) struct H2Origin {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Log {
    arrivals: Vec<Arrival>,
    other: Vec<String>,
    /// Each accepted connection's peer (the proxy's side), in accept order.
    peers: Vec<SocketAddr>,
}

// === impl Witness ===

impl Witness {
    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Self::H2(o) => o.addr,
            Self::H1(o) => o.addr(),
        }
    }

    pub(crate) fn is_h1(&self) -> bool {
        matches!(self, Self::H1(_))
    }

    pub(crate) fn mark(&self) -> Mark {
        match self {
            Self::H2(o) => {
                let log = o.log.lock().unwrap();
                Mark::H2(log.arrivals.len(), log.other.len())
            }
            Self::H1(o) => Mark::H1(o.mark()),
        }
    }

    pub(crate) fn since(&self, mark: &Mark) -> Seen {
        match (self, mark) {
            (Self::H2(o), Mark::H2(a, e)) => {
                let log = o.log.lock().unwrap();
                Seen {
                    arrivals: log.arrivals[*a..].to_vec(),
                    other: log.other[*e..].to_vec(),
                }
            }
            (Self::H1(o), Mark::H1(mark)) => h1_seen(&o.since(mark)),
            _ => unreachable!("a mark from another origin"),
        }
    }

    /// The peers (proxy side) of the connections this origin accepted.
    pub(crate) fn peers(&self) -> Vec<SocketAddr> {
        match self {
            Self::H2(o) => o.log.lock().unwrap().peers.clone(),
            // The HTTP/1.1 origin does not record peers; RSS checks use HTTP/2 lanes.
            Self::H1(_) => Vec::new(),
        }
    }

    /// Drops half-received HTTP/1.1 requests so they cannot bleed into the next vector.
    pub(crate) fn reset(&self) {
        if let Self::H1(o) = self {
            o.close_all();
        }
    }
}

fn h1_seen(activity: &origin::Activity) -> Seen {
    let arrivals = activity
        .requests
        .iter()
        .map(|r| {
            let mut fields = vec![
                (b":method".to_vec(), r.method.clone().into_bytes()),
                (b":path".to_vec(), r.target.clone().into_bytes()),
            ];
            fields.extend(
                r.headers
                    .iter()
                    .map(|(n, v)| (n.to_ascii_lowercase().into_bytes(), v.clone())),
            );
            let trailers = (!r.trailers.is_empty()).then(|| {
                r.trailers
                    .iter()
                    .map(|(n, v)| (n.to_ascii_lowercase().into_bytes(), v.clone()))
                    .collect()
            });
            Arrival {
                conn: r.connection,
                stream: 0,
                fields,
                body: r.body.clone(),
                trailers,
                complete: true,
                reset: None,
            }
        })
        .collect();
    let mut other: Vec<String> = activity
        .errors
        .iter()
        .map(|e| {
            format!(
                "conn#{} unparsable ({}): {}",
                e.connection,
                e.reason,
                origin::escape(&e.bytes, 200)
            )
        })
        .collect();
    other.extend(activity.pending.iter().map(|(conn, bytes)| {
        format!(
            "conn#{conn} holds {} bytes of an incomplete request: {}",
            bytes.len(),
            origin::escape(bytes, 200)
        )
    }));
    Seen { arrivals, other }
}

// === impl Seen ===

impl Seen {
    /// Arrivals that are not the harness's own well-formed requests (`/good/…`).
    pub(crate) fn foreign(&self) -> Vec<&Arrival> {
        self.arrivals.iter().filter(|a| !a.is_good()).collect()
    }

    pub(crate) fn describe(&self) -> String {
        if self.arrivals.is_empty() && self.other.is_empty() {
            return "origin received nothing".to_owned();
        }
        let mut lines: Vec<String> = self.arrivals.iter().map(Arrival::describe).collect();
        lines.extend(self.other.iter().map(|o| format!("origin: {o}")));
        lines.join("\n")
    }
}

// === impl Arrival ===

impl Arrival {
    /// The values of field `name` (pseudo-header or regular), in order.
    pub(crate) fn values(&self, name: &str) -> Vec<&[u8]> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    pub(crate) fn path(&self) -> String {
        self.values(":path")
            .first()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default()
    }

    /// One of the harness's own well-formed requests.
    pub(crate) fn is_good(&self) -> bool {
        self.path().starts_with("/good/")
    }

    pub(crate) fn trailer_values(&self, name: &str) -> Vec<&[u8]> {
        self.trailers
            .iter()
            .flatten()
            .filter(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    pub(crate) fn describe(&self) -> String {
        let fields: Vec<String> = self.fields.iter().map(field_text).collect();
        let mut out = format!(
            "origin conn#{} stream {}: [{}] body={}",
            self.conn,
            self.stream,
            fields.join(", "),
            origin::escape(&self.body, 80)
        );
        if let Some(trailers) = &self.trailers {
            let t: Vec<String> = trailers.iter().map(field_text).collect();
            let _ = write!(out, " trailers=[{}]", t.join(", "));
        }
        if !self.complete {
            out.push_str(" (incomplete)");
        }
        if let Some(reason) = self.reset {
            let _ = write!(out, " RST_STREAM {reason}");
        }
        out
    }
}

/// `name: value` with bytes escaped, values cut at 60 bytes.
pub(crate) fn field_text((name, value): &Field) -> String {
    format!(
        "{}: {}",
        origin::escape(name, 40),
        origin::escape(value, 60)
    )
}

// === impl H2Origin ===

impl H2Origin {
    /// Listens on `127.0.0.1:0` and serves until dropped.
    pub(crate) async fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind h2 origin");
        let addr = listener.local_addr().expect("h2 origin address");
        let log = Arc::new(Mutex::new(Log::default()));
        let task = tokio::spawn(accept(listener, log.clone()));
        Self { addr, log, task }
    }
}

impl Drop for H2Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, log: Arc<Mutex<Log>>) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let conn = {
            let mut log = log.lock().unwrap();
            log.peers.push(peer);
            log.peers.len() - 1
        };
        // Owned by the set: aborted with the accept task when the origin is dropped.
        tasks.spawn(serve(stream, conn, log.clone()));
        while tasks.try_join_next().is_some() {}
    }
}

async fn serve(stream: TcpStream, conn: usize, log: Arc<Mutex<Log>>) {
    let tap = Tap {
        inner: stream,
        parser: Parser {
            conn,
            log,
            buf: Vec::new(),
            preface: false,
            decoder: Decoder::new(DEFAULT_TABLE_SIZE),
            partial: None,
        },
    };
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(1000)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(8 << 20)
        .max_header_list_size(1 << 20)
        .handshake::<_, Bytes>(tap);
    let Ok(mut h2) = handshake.await else {
        return;
    };
    let mut streams = tokio::task::JoinSet::new();
    while let Some(Ok((request, respond))) = h2.accept().await {
        streams.spawn(answer(request, respond));
        while streams.try_join_next().is_some() {}
    }
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let big = request
        .uri()
        .path()
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<usize>().ok());
    let mut body = request.into_body();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    if body.trailers().await.is_err() {
        return;
    }
    let response = http::Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(())
        .unwrap();
    let Ok(mut send) = respond.send_response(response, false) else {
        return;
    };
    let Some(mut left) = big else {
        let _ = send.send_data(Bytes::from_static(b"ok\n"), true);
        return;
    };
    while left > 0 {
        send.reserve_capacity(left.min(64 * 1024));
        let Some(Ok(capacity)) = poll_fn(|cx| send.poll_capacity(cx)).await else {
            return;
        };
        let n = capacity.min(left);
        left -= n;
        if send
            .send_data(Bytes::from(vec![b'x'; n]), left == 0)
            .is_err()
        {
            return;
        }
    }
}

/// The server's socket, with every byte read also fed to a [`Parser`].
struct Tap {
    inner: TcpStream,
    parser: Parser,
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let new = buf.filled()[before..].to_vec();
            self.parser.feed(&new);
        }
        poll
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Turns the bytes the proxy sent into [`Arrival`]s.
struct Parser {
    conn: usize,
    log: Arc<Mutex<Log>>,
    buf: Vec<u8>,
    preface: bool,
    decoder: Decoder,
    /// A header block awaiting CONTINUATION: stream, END_STREAM, fragments so far.
    partial: Option<(u32, bool, Vec<u8>)>,
}

impl Parser {
    fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if !self.preface {
            if self.buf.len() < PREFACE.len() {
                return;
            }
            if !self.buf.starts_with(PREFACE) {
                let text = origin::escape(&self.buf, 200);
                self.log
                    .lock()
                    .unwrap()
                    .other
                    .push(format!("conn#{} no HTTP/2 preface: {text}", self.conn));
                self.buf.clear();
                return;
            }
            self.buf.drain(..PREFACE.len());
            self.preface = true;
        }
        while let Some(frame) = Frame::decode(&mut self.buf) {
            self.on_frame(&frame);
        }
    }

    fn on_frame(&mut self, frame: &Frame) {
        match frame.kind {
            kind::HEADERS => {
                let block = frame.block().unwrap_or_default().to_vec();
                let end_stream = frame.has(flag::END_STREAM);
                if frame.has(flag::END_HEADERS) {
                    self.block(frame.stream, end_stream, &block);
                } else {
                    self.partial = Some((frame.stream, end_stream, block));
                }
            }
            kind::CONTINUATION => {
                if let Some((stream, end_stream, mut block)) = self.partial.take() {
                    block.extend_from_slice(&frame.payload);
                    if frame.has(flag::END_HEADERS) {
                        self.block(stream, end_stream, &block);
                    } else {
                        self.partial = Some((stream, end_stream, block));
                    }
                }
            }
            kind::DATA => {
                let data = frame.data_payload().unwrap_or_default().to_vec();
                let mut log = self.log.lock().unwrap();
                if let Some(a) = find(&mut log, self.conn, frame.stream) {
                    a.body.extend_from_slice(&data);
                    a.complete |= frame.has(flag::END_STREAM);
                }
            }
            kind::RST_STREAM => {
                let mut log = self.log.lock().unwrap();
                if let Some(a) = find(&mut log, self.conn, frame.stream) {
                    a.reset = frame.reason();
                }
            }
            _ => {}
        }
    }

    fn block(&mut self, stream: u32, end_stream: bool, block: &[u8]) {
        let decoded = self.decoder.decode(block);
        let mut log = self.log.lock().unwrap();
        let fields = match decoded {
            Ok(fields) => fields,
            Err(e) => {
                log.other.push(format!(
                    "conn#{} stream {stream}: header block did not decode: {e}",
                    self.conn
                ));
                return;
            }
        };
        let conn = self.conn;
        if let Some(a) = find(&mut log, conn, stream) {
            a.trailers = Some(fields);
            a.complete |= end_stream;
        } else {
            log.arrivals.push(Arrival {
                conn,
                stream,
                fields,
                complete: end_stream,
                ..Arrival::default()
            });
        }
    }
}

fn find(log: &mut Log, conn: usize, stream: u32) -> Option<&mut Arrival> {
    log.arrivals
        .iter_mut()
        .rev()
        .find(|a| a.conn == conn && a.stream == stream)
}
