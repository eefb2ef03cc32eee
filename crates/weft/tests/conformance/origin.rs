//! The origin every HTTP/1.1 vector ends at: a raw TCP server (no hyper) that parses
//! strictly and simply, answers each request with a small `200` naming the request's
//! sequence number, and **logs exactly what it received**: the bytes of each connection,
//! each request it parsed (method, target, headers in order, body and how it was
//! framed) and anything it could not parse.
//!
//! It is the witness of the suite: a vector proves what reached the app by reading this
//! log ([`Origin::mark`] before the vector, [`Origin::since`] after). Its parser accepts
//! only what a strict proxy may send (CRLF line ends, token names, no obs-fold, one
//! framing), so a lenient proxy's leftovers show up as [`ParseError`]s or as bytes that
//! never became a request.
//!
//! Not a general HTTP server: no `Expect: 100-continue`, no upgrades, no HTTP/2.

use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The largest head the origin buffers before calling it unparsable: 4 MiB, far above
/// any proxy limit, so an oversized head that got through is logged as received.
const MAX_HEAD: usize = 4 << 20;

/// The origin server; stops when dropped.
pub struct Origin {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    reset: watch::Sender<u64>,
    task: JoinHandle<()>,
}

/// Everything the origin saw since it started.
#[derive(Default, Debug)]
struct Log {
    connections: Vec<Connection>,
    requests: Vec<Request>,
    errors: Vec<ParseError>,
}

/// One accepted connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Index in accept order.
    pub id: usize,
    /// Every byte received, in order.
    pub received: Vec<u8>,
    /// Bytes received but not (yet) part of a complete request.
    pub pending: Vec<u8>,
    /// Whether the connection has ended.
    pub closed: bool,
}

/// How a request body was delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No `content-length`, no `transfer-encoding`: no body.
    None,
    /// `content-length: n`.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
}

/// One request the origin parsed.
#[derive(Debug, Clone)]
pub struct Request {
    /// 1-based sequence number over the origin's lifetime; named in the response.
    pub seq: u64,
    /// The connection it arrived on.
    pub connection: usize,
    /// The method.
    pub method: String,
    /// The request-target, as received.
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: String,
    /// Header fields in order, names as received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// How the body was delimited.
    pub framing: Framing,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, Vec<u8>)>,
}

/// Bytes the origin could not parse as a request.
#[derive(Debug, Clone)]
pub struct ParseError {
    /// The connection.
    pub connection: usize,
    /// What was wrong.
    pub reason: String,
    /// The unparsed bytes (from the start of the failed request).
    pub bytes: Vec<u8>,
}

/// A position in the log (see [`Origin::since`]).
#[derive(Debug, Clone, Default)]
pub struct Mark {
    received: Vec<usize>,
    requests: usize,
    errors: usize,
}

/// What the origin saw between a [`Mark`] and now.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// New bytes, per connection that received any: `(connection, bytes)`.
    pub bytes: Vec<(usize, Vec<u8>)>,
    /// Requests parsed.
    pub requests: Vec<Request>,
    /// Parse failures.
    pub errors: Vec<ParseError>,
    /// Connections left holding bytes that are not a complete request.
    pub pending: Vec<(usize, Vec<u8>)>,
}

/// The result of parsing the front of a connection's buffer.
enum Parsed {
    Request(Box<Request>, usize),
    Partial,
    Error(String),
}

// === impl Origin ===

impl Origin {
    /// Listens on `127.0.0.1:0` and serves until dropped.
    pub async fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("origin address");
        let log = Arc::new(Mutex::new(Log::default()));
        let (reset, _) = watch::channel(0u64);
        let task = tokio::spawn(accept(listener, log.clone(), reset.clone()));
        Self {
            addr,
            log,
            reset,
            task,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The current end of the log.
    pub fn mark(&self) -> Mark {
        let log = self.log.lock().expect("origin log");
        Mark {
            received: log.connections.iter().map(|c| c.received.len()).collect(),
            requests: log.requests.len(),
            errors: log.errors.len(),
        }
    }

    /// What arrived since `mark`.
    pub fn since(&self, mark: &Mark) -> Activity {
        let log = self.log.lock().expect("origin log");
        let mut activity = Activity::default();
        for c in &log.connections {
            let from = mark.received.get(c.id).copied().unwrap_or(0);
            if c.received.len() > from {
                activity.bytes.push((c.id, c.received[from..].to_vec()));
            }
            if !c.closed && !c.pending.is_empty() {
                activity.pending.push((c.id, c.pending.clone()));
            }
        }
        activity.requests = log.requests[mark.requests..].to_vec();
        activity.errors = log.errors[mark.errors..].to_vec();
        activity
    }

    /// Closes every open connection, so what one vector left half-parsed cannot
    /// bleed into the next. Callers wait a moment after for the proxy to notice.
    pub fn close_all(&self) {
        self.reset.send_modify(|epoch| *epoch += 1);
    }

    /// A copy of one connection's record.
    pub fn connection(&self, id: usize) -> Option<Connection> {
        self.log
            .lock()
            .expect("origin log")
            .connections
            .get(id)
            .cloned()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
        self.close_all();
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

// === impl Activity ===

impl Activity {
    /// Nothing at all arrived: no byte, no request, no error.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.requests.is_empty() && self.errors.is_empty()
    }

    /// Total new bytes.
    pub fn byte_count(&self) -> usize {
        self.bytes.iter().map(|(_, b)| b.len()).sum()
    }

    /// Whether anything is left that the origin could not turn into a request.
    pub fn is_dirty(&self) -> bool {
        !self.errors.is_empty() || !self.pending.is_empty()
    }

    /// The log as text, for mismatch reports (long byte runs are shortened).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        if self.is_empty() && self.pending.is_empty() {
            return "origin: nothing received\n".to_owned();
        }
        for (conn, bytes) in &self.bytes {
            let _ = writeln!(
                out,
                "origin conn#{conn} received {} bytes: {}",
                bytes.len(),
                escape(bytes, 600)
            );
        }
        for r in &self.requests {
            let _ = writeln!(out, "origin parsed {}", r.describe());
        }
        for e in &self.errors {
            let _ = writeln!(
                out,
                "origin conn#{} could NOT parse ({}): {}",
                e.connection,
                e.reason,
                escape(&e.bytes, 300)
            );
        }
        for (conn, bytes) in &self.pending {
            let _ = writeln!(
                out,
                "origin conn#{conn} holds {} unparsed bytes: {}",
                bytes.len(),
                escape(bytes, 300)
            );
        }
        out
    }
}

// === impl Request ===

impl Request {
    /// Values of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The only value of `name`, as text; `None` if absent or repeated.
    pub fn header(&self, name: &str) -> Option<String> {
        match self.header_values(name).as_slice() {
            [one] => Some(String::from_utf8_lossy(one).into_owned()),
            _ => None,
        }
    }

    /// One line: `#seq conn#c METHOD target VERSION [headers] body=…`.
    pub fn describe(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", escape(v, 120)))
            .collect();
        format!(
            "#{} conn#{} {} {} {} [{}] framing={:?} body={}",
            self.seq,
            self.connection,
            self.method,
            shorten(&self.target, 120),
            self.version,
            headers.join(" | "),
            self.framing,
            escape(&self.body, 200)
        )
    }
}

// === serving ===

async fn accept(listener: TcpListener, log: Arc<Mutex<Log>>, reset: watch::Sender<u64>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let id = {
            let mut log = log.lock().expect("origin log");
            let id = log.connections.len();
            log.connections.push(Connection {
                id,
                received: Vec::new(),
                pending: Vec::new(),
                closed: false,
            });
            id
        };
        tokio::spawn(serve(stream, id, log.clone(), reset.subscribe()));
    }
}

async fn serve(
    mut stream: TcpStream,
    id: usize,
    log: Arc<Mutex<Log>>,
    mut reset: watch::Receiver<u64>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    'conn: loop {
        let n = tokio::select! {
            r = stream.read(&mut chunk) => r.unwrap_or(0),
            _ = reset.changed() => break 'conn,
        };
        if n == 0 {
            if !buf.is_empty() {
                let mut log = log.lock().expect("origin log");
                log.errors.push(ParseError {
                    connection: id,
                    reason: format!("connection closed with {} unparsed bytes", buf.len()),
                    bytes: buf.clone(),
                });
            }
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        log.lock().expect("origin log").connections[id]
            .received
            .extend_from_slice(&chunk[..n]);
        loop {
            match parse(&buf) {
                Parsed::Partial => {
                    log.lock().expect("origin log").connections[id]
                        .pending
                        .clone_from(&buf);
                    break;
                }
                Parsed::Error(reason) => {
                    {
                        let mut log = log.lock().expect("origin log");
                        log.connections[id].pending.clear();
                        log.errors.push(ParseError {
                            connection: id,
                            reason,
                            bytes: buf.clone(),
                        });
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 13\r\nconnection: close\r\nx-origin-error: 1\r\n\r\norigin: error",
                        )
                        .await;
                    break 'conn;
                }
                Parsed::Request(mut request, used) => {
                    buf.drain(..used);
                    request.connection = id;
                    let close = wants_close(&request);
                    let response = {
                        let mut log = log.lock().expect("origin log");
                        request.seq = log.requests.len() as u64 + 1;
                        log.connections[id].pending.clone_from(&buf);
                        let response = respond(&request, close);
                        log.requests.push(*request);
                        response
                    };
                    if stream.write_all(&response).await.is_err() || close {
                        break 'conn;
                    }
                }
            }
        }
    }
    let mut log = log.lock().expect("origin log");
    log.connections[id].closed = true;
}

fn wants_close(request: &Request) -> bool {
    let tokens: Vec<String> = request
        .header_values("connection")
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .to_ascii_lowercase()
                .split(',')
                .map(|t| t.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    if request.version == "HTTP/1.0" {
        !tokens.iter().any(|t| t == "keep-alive")
    } else {
        tokens.iter().any(|t| t == "close")
    }
}

/// `200`, body `origin seq=N\n`; `x-origin-seq` and `x-origin-target` name the request
/// so a client can tell whose answer it got. `HEAD` gets what a real server sends: the
/// `content-length` a `GET` would have had and no body, so a proxy that waits for that
/// body swallows the next response; `x-origin-head` tells the test client not to.
fn respond(request: &Request, close: bool) -> Vec<u8> {
    let body = format!("origin seq={}\n", request.seq);
    let head_only = request.method == "HEAD";
    let target: String = shorten(&request.target, 200)
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    let mut head = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-origin-seq: {}\r\nx-origin-target: {target}\r\n",
        body.len(),
        request.seq
    );
    if head_only {
        head.push_str("x-origin-head: 1\r\n");
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    if !head_only {
        head.push_str(&body);
    }
    head.into_bytes()
}

// === parsing ===

/// `tchar` of RFC 9110 §5.6.2.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses one request from the front of `buf`, strictly: CRLF only, one SP between
/// request-line parts, token names, no obs-fold, exactly one framing.
fn parse(buf: &[u8]) -> Parsed {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Parsed::Error(format!("no end of head within {MAX_HEAD} bytes"));
        }
        if let Some(reason) = early_error(buf) {
            return Parsed::Error(reason);
        }
        return Parsed::Partial;
    };
    let head = &buf[..head_end];
    let mut lines = split_crlf(head);
    let request_line = lines.next().unwrap_or_default();
    let (method, target, version) = match request_line_parts(request_line) {
        Ok(parts) => parts,
        Err(e) => return Parsed::Error(e),
    };
    let mut headers = Vec::new();
    for line in lines {
        match field(line) {
            Ok(f) => headers.push(f),
            Err(e) => return Parsed::Error(e),
        }
    }
    let mut request = Request {
        seq: 0,
        connection: 0,
        method,
        target,
        version,
        headers,
        body: Vec::new(),
        framing: Framing::None,
        trailers: Vec::new(),
    };
    let te = request.header_values("transfer-encoding");
    let cl = request.header_values("content-length");
    let body_start = head_end + 4;
    match (te.as_slice(), cl.as_slice()) {
        ([], []) => Parsed::Request(Box::new(request), body_start),
        ([], [len]) => {
            if len.is_empty() || !len.iter().all(u8::is_ascii_digit) || len.len() > 18 {
                return Parsed::Error(format!("content-length {:?}", escape(len, 40)));
            }
            let n: usize = String::from_utf8_lossy(len).parse().unwrap_or(usize::MAX);
            if buf.len() - body_start < n {
                return Parsed::Partial;
            }
            request.body = buf[body_start..body_start + n].to_vec();
            request.framing = Framing::Length(n as u64);
            Parsed::Request(Box::new(request), body_start + n)
        }
        ([], _) => Parsed::Error("several content-length fields".to_owned()),
        ([coding], []) if coding.eq_ignore_ascii_case(b"chunked") => {
            match chunked(&buf[body_start..]) {
                Ok(Some((body, trailers, used))) => {
                    request.body = body;
                    request.trailers = trailers;
                    request.framing = Framing::Chunked;
                    Parsed::Request(Box::new(request), body_start + used)
                }
                Ok(None) => Parsed::Partial,
                Err(e) => Parsed::Error(e),
            }
        }
        (_, []) => Parsed::Error("transfer-encoding other than one `chunked`".to_owned()),
        (_, _) => Parsed::Error("both transfer-encoding and content-length".to_owned()),
    }
}

/// Errors visible before the head is complete (so a bad line is reported even if the
/// blank line never comes).
fn early_error(buf: &[u8]) -> Option<String> {
    let line_end = find(buf, b"\n")?;
    if line_end == 0 || buf[line_end - 1] != b'\r' {
        return Some("request line not ended by CRLF".to_owned());
    }
    request_line_parts(&buf[..line_end - 1]).err()
}

fn request_line_parts(line: &[u8]) -> Result<(String, String, String), String> {
    let bad = || format!("request line {}", escape(line, 200));
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad());
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..=0x7e).contains(&b)) {
        return Err(bad());
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Err(bad());
    }
    Ok((
        String::from_utf8_lossy(method).into_owned(),
        String::from_utf8_lossy(target).into_owned(),
        String::from_utf8_lossy(version).into_owned(),
    ))
}

/// One `name: value` line (CRLF already removed): token name, no space before the
/// colon, value of VCHAR/obs-text with inner SP/HTAB, OWS trimmed.
fn field(line: &[u8]) -> Result<(String, Vec<u8>), String> {
    let bad = |why: &str| format!("field {why}: {}", escape(line, 200));
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return Err(bad("obs-fold"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| bad("without colon"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad("name not a token"));
    }
    let value = trim_ows(&line[colon + 1..]);
    if value
        .iter()
        .any(|&b| b != b'\t' && b != b' ' && (b < 0x21 || b == 0x7f))
    {
        return Err(bad("control character in value"));
    }
    Ok((String::from_utf8_lossy(name).into_owned(), value.to_vec()))
}

type Fields = Vec<(String, Vec<u8>)>;

/// De-chunks `buf`: `Ok(None)` if incomplete, else the body, trailers and bytes used.
fn chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, Fields, usize)>, String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(rel) = find(&buf[at..], b"\r\n") else {
            if buf.len() - at > 4096 {
                return Err("chunk-size line longer than 4 KiB".to_owned());
            }
            return Ok(None);
        };
        let line = &buf[at..at + rel];
        let (size, ext) = match line.iter().position(|&b| b == b';') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!("chunk-size {}", escape(line, 80)));
        }
        if let Some(ext) = ext {
            if ext.iter().any(|&b| b < 0x20 || b == 0x7f) {
                return Err(format!("chunk-ext {}", escape(line, 80)));
            }
        }
        let n = usize::from_str_radix(&String::from_utf8_lossy(size), 16)
            .map_err(|e| format!("chunk-size: {e}"))?;
        at += rel + 2;
        if n == 0 {
            // Trailer section, then the empty line.
            let mut trailers = Vec::new();
            loop {
                let Some(rel) = find(&buf[at..], b"\r\n") else {
                    return Ok(None);
                };
                let line = &buf[at..at + rel];
                at += rel + 2;
                if line.is_empty() {
                    return Ok(Some((body, trailers, at)));
                }
                trailers.push(field(line)?);
            }
        }
        if buf.len() < at + n + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + n]);
        at += n;
        if &buf[at..at + 2] != b"\r\n" {
            return Err(format!(
                "chunk data not followed by CRLF: {}",
                escape(&buf[at..(at + 16).min(buf.len())], 40)
            ));
        }
        at += 2;
    }
}

fn split_crlf(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(head);
    std::iter::from_fn(move || {
        let r = rest?;
        if let Some(i) = find(r, b"\r\n") {
            rest = Some(&r[i + 2..]);
            Some(&r[..i])
        } else {
            rest = None;
            Some(r)
        }
    })
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// The first index of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes as printable ASCII with `\r`, `\n`, `\t`, `\xNN` escapes, cut at `max` with the
/// number of bytes left out.
pub fn escape(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(max) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > max {
        let _ = write!(out, "…(+{} bytes)", bytes.len() - max);
    }
    out
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        s.to_owned()
    } else {
        format!("{}…(+{})", &s[..max], s.len() - max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(bytes: &[u8]) -> (Request, usize) {
        match parse(bytes) {
            Parsed::Request(r, used) => (*r, used),
            Parsed::Partial => panic!("partial"),
            Parsed::Error(e) => panic!("error: {e}"),
        }
    }

    fn error(bytes: &[u8]) -> String {
        match parse(bytes) {
            Parsed::Error(e) => e,
            Parsed::Partial => panic!("partial"),
            Parsed::Request(r, _) => panic!("parsed {}", r.describe()),
        }
    }

    #[test]
    fn parses_content_length_and_chunked_bodies() {
        let (r, used) = request(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET");
        assert_eq!((r.body.as_slice(), used), (&b"abc"[..], 51));
        let (r, _) = request(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        );
        assert_eq!((r.body.as_slice(), r.trailers.len()), (&b"abc"[..], 1));
    }

    #[test]
    fn refuses_what_a_strict_proxy_never_sends() {
        error(b"GET / HTTP/1.1\nHost: x\r\n\r\n");
        error(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n");
        error(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n");
        error(b"GET  / HTTP/1.1\r\n\r\n");
        error(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        error(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n");
        error(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n");
    }
}
