//! A raw HTTP/2 client over prior-knowledge h2c: it writes whatever frames a vector
//! gives it, in order, and records everything that comes back — response headers and
//! body per stream, RST_STREAM and GOAWAY codes — so a vector can be judged on what the
//! proxy actually did.
//!
//! It does the minimum to keep a connection healthy (acknowledges SETTINGS and PING,
//! returns flow-control credit for DATA it reads) and nothing else: no validation, no
//! stream state. Floods do not use it for the attacking connection; they write raw bytes
//! without reading (see `h2_flood.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::frame::{flag, kind, setting, Frame, Reason, PREFACE};
use super::hpack::{Block, Decoder, Field, DEFAULT_TABLE_SIZE};

/// How long a connect or a single expected answer may take before it counts as none.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// How a connection starts.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// SETTINGS the client sends after the preface.
    pub(crate) settings: Vec<(u16, u32)>,
    /// Return flow-control credit for DATA received (off to stall a sender).
    pub(crate) replenish: bool,
}

/// What happened on one stream, as the client saw it.
#[derive(Clone, Debug, Default)]
pub(crate) struct StreamLog {
    /// Each decoded header block in order (informational, final, trailers).
    pub(crate) blocks: Vec<Vec<Field>>,
    pub(crate) body: Vec<u8>,
    /// END_STREAM received.
    pub(crate) ended: bool,
    pub(crate) reset: Option<Reason>,
}

/// Everything the connection received.
#[derive(Default)]
struct State {
    streams: BTreeMap<u32, StreamLog>,
    /// Last stream id and error code of the first GOAWAY received.
    goaway: Option<(u32, Reason, Vec<u8>)>,
    /// The peer closed (EOF or error) its side.
    closed: bool,
    /// A header block from the proxy that did not decode (a finding in itself).
    decode_error: Option<String>,
    /// Each frame received: type, flags, stream; for reports.
    frames: Vec<(u8, u8, u32)>,
}

/// The end of one stream as the client saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A final response: its status, and the reset that cut it short if any.
    Response {
        status: u16,
        body: Vec<u8>,
        reset: Option<Reason>,
    },
    /// RST_STREAM with no final response before it.
    Reset(Reason),
    /// GOAWAY that did not cover the stream, or came before any answer.
    GoAway { code: Reason, last_stream: u32 },
    /// The connection closed with no GOAWAY and no answer.
    Closed,
    /// Nothing conclusive within the timeout.
    Timeout,
}

/// One client connection: a writer task fed in order and a reader task that records.
pub(crate) struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

// === impl Options ===

impl Default for Options {
    fn default() -> Self {
        Self {
            settings: vec![
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, 1 << 20),
            ],
            replenish: true,
        }
    }
}

// === impl Conn ===

impl Conn {
    /// Connects, sends the preface and `options.settings`, and starts reading.
    pub(crate) async fn open(addr: SocketAddr, options: &Options) -> std::io::Result<Self> {
        let mut first = PREFACE.to_vec();
        Frame::settings(&options.settings).encode_into(&mut first);
        Self::open_raw(addr, first, options.replenish).await
    }

    /// Connects and sends `first` as the connection's opening bytes, whatever they are.
    pub(crate) async fn open_raw(
        addr: SocketAddr,
        first: Vec<u8>,
        replenish: bool,
    ) -> std::io::Result<Self> {
        let stream = tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::other(format!("connect to {addr} timed out")))??;
        stream.set_nodelay(true)?;
        let (mut read, write) = stream.into_split();
        let (out, rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let state = Arc::new(Mutex::new(State::default()));
        let changed = Arc::new(Notify::new());
        tokio::spawn(write_loop(write, rx));
        let _ = out.send(first);
        let (reader_state, reader_changed, reader_out) =
            (state.clone(), changed.clone(), out.clone());
        tokio::spawn(async move {
            let mut reader = Reader {
                state: reader_state,
                changed: reader_changed,
                out: reader_out,
                decoder: Decoder::new(DEFAULT_TABLE_SIZE),
                partial: None,
                replenish,
            };
            let mut buf = Vec::with_capacity(64 * 1024);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match read.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(frame) = Frame::decode(&mut buf) {
                            reader.on_frame(&frame);
                        }
                    }
                }
            }
            reader.state.lock().unwrap().closed = true;
            reader.changed.notify_waiters();
        });
        Ok(Self {
            out,
            state,
            changed,
        })
    }

    /// Queues `frame` for sending (frames go out in the order queued).
    pub(crate) fn send(&self, frame: &Frame) {
        let _ = self.out.send(frame.encode());
    }

    /// Queues raw bytes.
    pub(crate) fn send_raw(&self, bytes: Vec<u8>) {
        let _ = self.out.send(bytes);
    }

    /// Sends a well-formed GET for `path` on `stream`, literal fields only.
    pub(crate) fn get(&self, stream: u32, path: &str) {
        let block = Block::literals(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "app.example"),
            (":path", path),
        ])
        .into_bytes();
        self.send(&Frame::headers(
            stream,
            block,
            flag::END_HEADERS | flag::END_STREAM,
        ));
    }

    /// Waits until `stream` has an outcome: a complete response, a reset, or the end of
    /// the connection; `Timeout` after `timeout`.
    pub(crate) async fn outcome(&self, stream: u32, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(outcome) = self.settled(stream) {
                return outcome;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.settled(stream).unwrap_or(Outcome::Timeout);
            }
        }
    }

    fn settled(&self, stream: u32) -> Option<Outcome> {
        let state = self.state.lock().unwrap();
        let log = state.streams.get(&stream);
        let status = log.and_then(StreamLog::status);
        if let Some(log) = log {
            match (status, log.reset) {
                (Some(status), reset) if log.ended || reset.is_some() => {
                    return Some(Outcome::Response {
                        status,
                        body: log.body.clone(),
                        reset,
                    })
                }
                (None, Some(reason)) => return Some(Outcome::Reset(reason)),
                _ => {}
            }
        }
        if let Some((last_stream, code, _)) = &state.goaway {
            // A stream the GOAWAY does not cover will never be answered; one it covers
            // may still finish, until the connection closes.
            if stream > *last_stream || state.closed {
                return Some(match status {
                    Some(status) => Outcome::Response {
                        status,
                        body: log.map(|l| l.body.clone()).unwrap_or_default(),
                        reset: Some(*code),
                    },
                    None => Outcome::GoAway {
                        code: *code,
                        last_stream: *last_stream,
                    },
                });
            }
        }
        state.closed.then_some(Outcome::Closed)
    }

    /// Waits for a GOAWAY or the end of the connection; the GOAWAY's code and last
    /// stream id if one came.
    pub(crate) async fn closing(&self, timeout: Duration) -> Option<(Reason, u32)> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.state.lock().unwrap();
                if let Some((last, code, _)) = &state.goaway {
                    return Some((*code, *last));
                }
                if state.closed {
                    return None;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// The GOAWAY received so far, if any.
    pub(crate) fn goaway(&self) -> Option<(Reason, u32)> {
        let state = self.state.lock().unwrap();
        state.goaway.as_ref().map(|(last, code, _)| (*code, *last))
    }

    /// Whether the peer closed the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().unwrap().closed
    }

    /// A header block from the proxy that did not decode, if one came.
    pub(crate) fn decode_error(&self) -> Option<String> {
        self.state.lock().unwrap().decode_error.clone()
    }

    /// The stream's record so far.
    pub(crate) fn stream(&self, stream: u32) -> StreamLog {
        let state = self.state.lock().unwrap();
        state.streams.get(&stream).cloned().unwrap_or_default()
    }

    /// The frames received so far, one line, for reports.
    pub(crate) fn describe(&self) -> String {
        let state = self.state.lock().unwrap();
        let mut out: Vec<String> = Vec::new();
        let mut last: Option<(String, usize)> = None;
        for &(kind, flags, stream) in &state.frames {
            let text = format!(
                "{}[{stream}{}]",
                Frame::kind_name(kind),
                flag_text(kind, flags)
            );
            match &mut last {
                Some((prev, n)) if *prev == text => *n += 1,
                _ => {
                    if let Some((prev, n)) = last.take() {
                        out.push(repeat(&prev, n));
                    }
                    last = Some((text, 1));
                }
            }
        }
        if let Some((prev, n)) = last {
            out.push(repeat(&prev, n));
        }
        if let Some((last, code, debug)) = &state.goaway {
            out.push(format!(
                "GOAWAY={code} last={last} debug={:?}",
                String::from_utf8_lossy(debug)
            ));
        }
        for (id, log) in &state.streams {
            if let Some(reason) = log.reset {
                out.push(format!("RST[{id}]={reason}"));
            }
            if let Some(status) = log.status() {
                out.push(format!("status[{id}]={status}"));
            }
        }
        if state.closed {
            out.push("EOF".to_owned());
        }
        out.join(" ")
    }
}

fn repeat(text: &str, n: usize) -> String {
    if n == 1 {
        text.to_owned()
    } else {
        format!("{text}×{n}")
    }
}

fn flag_text(kind: u8, flags: u8) -> String {
    let mut out = String::new();
    match kind {
        kind::DATA | kind::HEADERS if flags & flag::END_STREAM != 0 => out.push_str(" ES"),
        kind::SETTINGS | kind::PING if flags & flag::ACK != 0 => out.push_str(" ACK"),
        _ => {}
    }
    out
}

async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = rx.recv().await {
        if write.write_all(&bytes).await.is_err() {
            break;
        }
    }
    let _ = write.shutdown().await;
}

/// The reading side: decodes frames into [`State`] and keeps the connection alive.
struct Reader {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
    out: mpsc::UnboundedSender<Vec<u8>>,
    decoder: Decoder,
    /// A header block awaiting CONTINUATION: stream, END_STREAM, fragments so far.
    partial: Option<(u32, bool, Vec<u8>)>,
    replenish: bool,
}

impl Reader {
    fn on_frame(&mut self, frame: &Frame) {
        let shared = self.state.clone();
        let mut state = shared.lock().unwrap();
        state.frames.push((frame.kind, frame.flags, frame.stream));
        match frame.kind {
            kind::SETTINGS if !frame.has(flag::ACK) => {
                let _ = self.out.send(Frame::settings_ack().encode());
            }
            kind::PING if !frame.has(flag::ACK) => {
                let mut opaque = [0u8; 8];
                if frame.payload.len() == 8 {
                    opaque.copy_from_slice(&frame.payload);
                }
                let _ = self.out.send(Frame::ping(opaque, true).encode());
            }
            kind::HEADERS => {
                let block = frame.block().unwrap_or_default().to_vec();
                let end_stream = frame.has(flag::END_STREAM);
                if frame.has(flag::END_HEADERS) {
                    self.finish_block(&mut state, frame.stream, end_stream, &block);
                } else {
                    self.partial = Some((frame.stream, end_stream, block));
                }
            }
            kind::CONTINUATION => {
                if let Some((stream, end_stream, mut block)) = self.partial.take() {
                    block.extend_from_slice(&frame.payload);
                    if frame.has(flag::END_HEADERS) {
                        self.finish_block(&mut state, stream, end_stream, &block);
                    } else {
                        self.partial = Some((stream, end_stream, block));
                    }
                }
            }
            kind::DATA => {
                let data = frame.data_payload().unwrap_or_default();
                let log = state.streams.entry(frame.stream).or_default();
                log.body.extend_from_slice(data);
                if frame.has(flag::END_STREAM) {
                    log.ended = true;
                }
                let len = frame.payload.len() as u32;
                if self.replenish && len > 0 {
                    let mut out = Frame::window_update(0, len).encode();
                    if !frame.has(flag::END_STREAM) {
                        Frame::window_update(frame.stream, len).encode_into(&mut out);
                    }
                    let _ = self.out.send(out);
                }
            }
            kind::RST_STREAM => {
                let reason = frame.reason().unwrap_or(Reason::NO_ERROR);
                state.streams.entry(frame.stream).or_default().reset = Some(reason);
            }
            kind::GOAWAY if state.goaway.is_none() => {
                let debug = frame.payload.get(8..).unwrap_or_default().to_vec();
                state.goaway = Some((
                    frame.last_stream().unwrap_or(0),
                    frame.reason().unwrap_or(Reason::NO_ERROR),
                    debug,
                ));
            }
            _ => {}
        }
        drop(state);
        self.changed.notify_waiters();
    }

    fn finish_block(&mut self, state: &mut State, stream: u32, end_stream: bool, block: &[u8]) {
        match self.decoder.decode(block) {
            Ok(fields) => {
                let log = state.streams.entry(stream).or_default();
                log.blocks.push(fields);
                if end_stream {
                    log.ended = true;
                }
            }
            Err(e) => {
                state
                    .decode_error
                    .get_or_insert_with(|| format!("stream {stream}: {e}"));
            }
        }
    }
}

// === impl StreamLog ===

impl StreamLog {
    /// The status of the final (non-1xx) response, if one came.
    pub(crate) fn status(&self) -> Option<u16> {
        self.blocks.iter().find_map(|block| {
            let status = block
                .iter()
                .find(|(n, _)| n == b":status")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<u16>().ok())?;
            (status >= 200).then_some(status)
        })
    }
}

// === impl Outcome ===

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Response {
                status,
                reset: None,
                ..
            } => write!(f, "{status} response"),
            Self::Response {
                status,
                reset: Some(reason),
                ..
            } => write!(f, "{status} response cut by {reason}"),
            Self::Reset(reason) => write!(f, "RST_STREAM {reason}"),
            Self::GoAway { code, last_stream } => {
                write!(f, "GOAWAY {code} (last stream {last_stream})")
            }
            Self::Closed => f.write_str("connection closed without GOAWAY"),
            Self::Timeout => f.write_str("no answer"),
        }
    }
}
