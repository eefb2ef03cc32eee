//! The raw HTTP/1.1 client of the suite: writes a vector's bytes exactly as given on a
//! fresh TCP connection, reads whatever comes back until the proxy closes or goes quiet,
//! and splits it into responses.
//!
//! Reading runs while the bytes are still being written, so a proxy that answers early
//! (`431` for a 1 MiB target) and closes is heard before the reset that closing with
//! unread data causes. Not a general client: no TLS, no HTTP/2, no redirects.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::origin::{escape, find};

/// After the expected responses are complete: how long more bytes may still come.
const QUIET_DONE: Duration = Duration::from_millis(120);

/// Before the expected responses are complete: the longest pause between reads. Long
/// enough for a loaded 2-core machine (the HTTP/2 floods run beside these vectors); only
/// a proxy that never answers pays it.
const QUIET_WAITING: Duration = Duration::from_millis(1500);

/// The longest a whole exchange may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The proxy closed the connection (EOF).
    Closed,
    /// The connection was reset.
    Reset,
    /// Nothing more came for a while; the connection was still open.
    Quiet,
}

/// One response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

/// What one connection got back.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Every byte received.
    pub received: Vec<u8>,
    /// Complete final responses, in order.
    pub responses: Vec<Response>,
    /// `1xx` responses skipped.
    pub interim: usize,
    /// Bytes after the last complete response that are not a response.
    pub leftover: Vec<u8>,
    /// How it ended.
    pub end: End,
    /// Writing failed part-way (the proxy closed before reading everything).
    pub write_error: Option<String>,
}

// === impl Response ===

impl Response {
    /// The only value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        match (values.next(), values.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }

    /// Whether `Connection` lists `close`.
    pub fn closes(&self) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

// === impl Exchange ===

impl Exchange {
    /// Whether the proxy ended the connection (closed or reset).
    pub fn closed(&self) -> bool {
        matches!(self.end, End::Closed | End::Reset)
    }

    /// Statuses in order, e.g. `200 400`.
    pub fn statuses(&self) -> String {
        let s: Vec<String> = self
            .responses
            .iter()
            .map(|r| r.status.to_string())
            .collect();
        s.join(" ")
    }

    /// The exchange as text, for mismatch reports.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "client got {} response(s) [{}], {} interim, ended {:?}",
            self.responses.len(),
            self.statuses(),
            self.interim,
            self.end
        );
        if let Some(e) = &self.write_error {
            let _ = write!(out, ", write failed: {e}");
        }
        if !self.leftover.is_empty() {
            let _ = write!(out, ", unparsable tail: {}", escape(&self.leftover, 200));
        }
        let _ = writeln!(
            out,
            "\nclient received {} bytes: {}",
            self.received.len(),
            escape(&self.received, 600)
        );
        out
    }
}

/// Sends `bytes` on a new connection to `addr` and reads until the proxy closes, or
/// `expected` final responses are complete and nothing more comes for a moment, or
/// nothing comes for longer, or the deadline passes. `expected == 0` waits only for the
/// quiet period (a client that sends a partial request and leaves).
pub async fn exchange(addr: SocketAddr, bytes: &[u8], expected: usize) -> Exchange {
    let stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_nodelay(true).ok();
    let (mut read, mut write) = stream.into_split();
    let payload = bytes.to_vec();
    let mut writer = tokio::spawn(async move {
        let result = write.write_all(&payload).await;
        // Keep the write half open (no FIN): a half-close would change what the proxy
        // does with the request. It is dropped with the task once reading is done.
        (result, write)
    });

    let start = Instant::now();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        let complete = count_complete(&received);
        let pause = if expected == 0 {
            QUIET_DONE * 2
        } else if complete >= expected {
            QUIET_DONE
        } else {
            QUIET_WAITING
        };
        let left = DEADLINE.saturating_sub(start.elapsed());
        if left.is_zero() {
            break End::Quiet;
        }
        match tokio::time::timeout(pause.min(left), read.read(&mut buf)).await {
            Err(_) => break End::Quiet,
            Ok(Ok(0)) => break End::Closed,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break End::Reset,
        }
    };
    let write_error = match tokio::time::timeout(Duration::from_millis(50), &mut writer).await {
        Ok(Ok((Err(e), _))) => Some(e.to_string()),
        Ok(Ok((Ok(()), _)) | Err(_)) => None,
        Err(_) => {
            // The proxy stopped reading without closing: give up, closing the socket.
            writer.abort();
            Some("write did not finish".to_owned())
        }
    };
    let (responses, interim, leftover) = parse_responses(&received, end != End::Quiet);
    Exchange {
        received,
        responses,
        interim,
        leftover,
        end,
        write_error,
    }
}

fn count_complete(bytes: &[u8]) -> usize {
    parse_responses(bytes, false).0.len()
}

/// Splits `bytes` into final responses (`1xx` counted apart). A response without
/// `content-length` or chunked framing runs to the end, and is complete only if the
/// connection `closed`.
pub fn parse_responses(bytes: &[u8], closed: bool) -> (Vec<Response>, usize, Vec<u8>) {
    let mut responses = Vec::new();
    let mut interim = 0;
    let mut at = 0;
    while at < bytes.len() {
        match parse_response(&bytes[at..], closed) {
            Some((response, used)) => {
                at += used;
                if (100..200).contains(&response.status) {
                    interim += 1;
                } else {
                    responses.push(response);
                }
            }
            None => break,
        }
    }
    (responses, interim, bytes[at..].to_vec())
}

fn parse_response(bytes: &[u8], closed: bool) -> Option<(Response, usize)> {
    let head_end = find(bytes, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let body_start = head_end + 4;
    let rest = &bytes[body_start..];
    // `x-origin-head`: the origin's answer to a HEAD (a content-length, no body).
    if (100..200).contains(&status)
        || status == 204
        || status == 304
        || response.header("x-origin-head").is_some()
    {
        return Some((response, body_start));
    }
    let chunked = response
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let (body, used) = dechunk(rest)?;
        response.body = body;
        return Some((response, body_start + used));
    }
    if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        response.body = rest[..len].to_vec();
        return Some((response, body_start + len));
    }
    if closed {
        response.body = rest.to_vec();
        return Some((response, bytes.len()));
    }
    None
}

fn dechunk(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + find(&bytes[at..], b"\r\n")?;
        let line = String::from_utf8_lossy(&bytes[at..line_end]);
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers until the empty line.
            loop {
                let end = at + find(&bytes[at..], b"\r\n")?;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some((body, at));
                }
            }
        }
        if bytes.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&bytes[at..at + size]);
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pipelined_responses_and_skips_interim_ones() {
        let bytes = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nyo\r\n0\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n";
        let (open, _, _) = parse_responses(bytes, false);
        assert_eq!(open.len(), 2);
        let (closed, interim, leftover) = parse_responses(bytes, true);
        assert_eq!((closed.len(), interim, leftover.len()), (3, 1, 0));
        assert_eq!(closed[1].body, b"yo");
    }
}
