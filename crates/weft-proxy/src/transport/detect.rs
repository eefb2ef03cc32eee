//! Protocol detection from a connection's first bytes.
//!
//! Decides between TLS (a ClientHello; the SNI is recorded), HTTP/1.x, HTTP/2 with prior
//! knowledge, and opaque TCP. Bytes that begin like an HTTP request are held to the
//! strict request-line rules of [`crate::http::strict`]: a malformed one is refused
//! ([`Detected::Malformed`]), never copied as opaque, and on a port declared `http`
//! nothing but HTTP is served at all.
//!
//! Server-speaks-first protocols send nothing until the server talks, so on an `auto`
//! port detection stops waiting after `detectTimeout` and reports [`Detected::Silent`]:
//! the caller connects upstream and lets whichever side speaks first decide
//! ([`first_word`]). A client that speaks first is detected like any other, so a slow
//! HTTP client is still HTTP. Ports declared `tcp` (or well-known server-first ports)
//! skip detection entirely.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use weft_api::proxy::{Protocol, SERVER_FIRST_PORTS};

use crate::http::strict::{self, Line, Refusal};

/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Largest ClientHello record we buffer to find the SNI.
const MAX_CLIENT_HELLO: usize = 16 * 1024 + 5;

/// What a connection carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detected {
    /// HTTP/1.0 or HTTP/1.1 with a valid request line.
    Http1,
    /// HTTP/2 with prior knowledge (h2c).
    Http2,
    /// TLS; `sni` is the server name the client asked for, if any.
    Tls {
        /// Server name indication.
        sni: Option<String>,
    },
    /// Bytes that are not HTTP (on a port that allows them).
    Opaque,
    /// Begins like an HTTP request but is not a valid one (or not HTTP at all on a port
    /// declared `http`): answered with the refusal's status and closed.
    Malformed(Refusal),
    /// The client sent nothing within the detection wait: the first side to speak
    /// decides ([`first_word`]).
    Silent,
}

impl Detected {
    /// A short name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Http1 | Self::Malformed(_) => "http1",
            Self::Http2 => "http2",
            Self::Tls { .. } => "tls",
            Self::Opaque | Self::Silent => "tcp",
        }
    }
}

/// Detection outcome: what was found, and the bytes consumed to find it.
#[derive(Debug)]
pub struct Outcome {
    /// The protocol.
    pub detected: Detected,
    /// Bytes read during detection; replay them with [`super::rewind::Rewind`].
    pub prefix: Bytes,
}

/// How long to wait for the client, given what the port declares.
pub fn plan(
    declared: Protocol,
    port: u16,
    detect_timeout: Duration,
    header_timeout: Duration,
) -> Plan {
    match declared {
        Protocol::Tcp => Plan::Skip(Detected::Opaque),
        // HTTP of either version: the inbound side converts to the declared one.
        Protocol::Http | Protocol::Http2 | Protocol::Grpc => Plan::Sniff(Sniff {
            first_byte: header_timeout,
            rest: header_timeout,
            http_only: true,
        }),
        Protocol::Auto if SERVER_FIRST_PORTS.contains(&port) => Plan::Skip(Detected::Opaque),
        Protocol::Auto => Plan::Sniff(Sniff {
            first_byte: detect_timeout,
            rest: header_timeout,
            http_only: false,
        }),
    }
}

impl Sniff {
    /// An `auto` port's reading with the settings' waits: what a client that spoke
    /// after a silent start is held to.
    pub fn auto(settings: &weft_api::proxy::Settings) -> Self {
        Self {
            first_byte: settings.detect_timeout,
            rest: settings.request_header_timeout,
            http_only: false,
        }
    }
}

/// Whether to read the client's bytes, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The protocol is known; read nothing.
    Skip(Detected),
    /// Read the client's first bytes.
    Sniff(Sniff),
}

/// How to read a client's first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sniff {
    /// How long to wait for the first byte; after it, the client is [`Detected::Silent`]
    /// (or, with `http_only`, dropped).
    pub first_byte: Duration,
    /// How long to wait for the rest of a request line once bytes arrived: an
    /// unfinished line that could still be HTTP is refused after this, never copied.
    pub rest: Duration,
    /// The port is declared `http`: anything but HTTP is refused.
    pub http_only: bool,
}

/// Detects what `io` carries on a port declared `declared`, with the wait the settings
/// allow. `None` when the client left (or failed) before anything could be decided, or
/// stayed silent on a port declared `http`; failures are logged at debug, since a client
/// hanging up is not the proxy's problem.
pub async fn sniff<S: AsyncRead + Unpin>(
    io: &mut S,
    declared: Protocol,
    port: u16,
    settings: &weft_api::proxy::Settings,
) -> Option<Outcome> {
    let plan = plan(
        declared,
        port,
        settings.detect_timeout,
        settings.request_header_timeout,
    );
    match detect(io, plan).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::debug!(error = %e, port, "connection failed during protocol detection");
            None
        }
    }
}

/// Runs `plan` on `io`. Returns `None` if the client closed before sending anything.
pub async fn detect<S: AsyncRead + Unpin>(
    io: &mut S,
    plan: Plan,
) -> std::io::Result<Option<Outcome>> {
    match plan {
        Plan::Skip(detected) => Ok(Some(Outcome {
            detected,
            prefix: Bytes::new(),
        })),
        Plan::Sniff(sniff) => detect_from(io, sniff, BytesMut::with_capacity(1024)).await,
    }
}

/// Detection continued from the bytes already in `buf`.
async fn detect_from<S: AsyncRead + Unpin>(
    io: &mut S,
    sniff: Sniff,
    mut buf: BytesMut,
) -> std::io::Result<Option<Outcome>> {
    let now = tokio::time::Instant::now();
    let mut deadline = now
        + if buf.is_empty() {
            sniff.first_byte
        } else {
            sniff.rest
        };
    let mut waiting_for_first = buf.is_empty();
    loop {
        if let Some(detected) = classify(&buf) {
            return Ok(Some(Outcome {
                detected: restrict(detected, sniff.http_only),
                prefix: buf.freeze(),
            }));
        }
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            Ok(Ok(0)) if buf.is_empty() => return Ok(None),
            Err(_) if buf.is_empty() => {
                return Ok((!sniff.http_only).then(|| Outcome {
                    detected: Detected::Silent,
                    prefix: Bytes::new(),
                }));
            }
            // EOF or time up: decide on what we have.
            Ok(Ok(0)) | Err(_) => {
                return Ok(Some(Outcome {
                    detected: restrict(classify_final(&buf), sniff.http_only),
                    prefix: buf.freeze(),
                }));
            }
            Ok(Ok(_)) if waiting_for_first => {
                waiting_for_first = false;
                deadline = tokio::time::Instant::now() + sniff.rest;
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// On a port declared `http`, only HTTP is served.
fn restrict(detected: Detected, http_only: bool) -> Detected {
    match detected {
        Detected::Opaque | Detected::Tls { .. } if http_only => {
            Detected::Malformed(strict::NOT_HTTP)
        }
        other => other,
    }
}

/// Which side of a [`Detected::Silent`] connection spoke first.
#[derive(Debug)]
pub enum FirstWord {
    /// The client spoke first; its bytes were detected like any other client's.
    Client(Outcome),
    /// The upstream spoke first (a server-first protocol): these are its first bytes,
    /// to be written to the client before the connection is copied as opaque.
    Upstream(Bytes),
    /// Either side closed, or neither spoke within `idle`.
    Closed,
}

/// After a [`Detected::Silent`] start, with `upstream` connected: waits for whichever
/// side speaks first (at most `idle`). A client that speaks first is detected with
/// `sniff`'s rules, so its HTTP is parsed (never copied) however long it waited.
pub async fn first_word<C, U>(
    client: &mut C,
    upstream: &mut U,
    sniff: Sniff,
    idle: Duration,
) -> std::io::Result<FirstWord>
where
    C: AsyncRead + Unpin,
    U: AsyncRead + Unpin,
{
    let mut from_client = BytesMut::with_capacity(1024);
    let mut from_upstream = BytesMut::with_capacity(1024);
    let spoke = tokio::time::timeout(idle, async {
        tokio::select! {
            r = client.read_buf(&mut from_client) => r.map(|n| (true, n)),
            r = upstream.read_buf(&mut from_upstream) => r.map(|n| (false, n)),
        }
    })
    .await;
    match spoke {
        Err(_) | Ok(Ok((_, 0))) => Ok(FirstWord::Closed),
        Ok(Err(e)) => Err(e),
        Ok(Ok((true, _))) => Ok(detect_from(client, sniff, from_client)
            .await?
            .map_or(FirstWord::Closed, FirstWord::Client)),
        Ok(Ok((false, _))) => Ok(FirstWord::Upstream(from_upstream.freeze())),
    }
}

/// What to do with a silent connection once [`first_word`] has decided.
#[derive(Debug)]
pub enum AfterSilence {
    /// The client spoke HTTP (or malformed HTTP) first: serve it as HTTP; the upstream
    /// opened for the race is dropped.
    Http(Outcome),
    /// Copy the connection as opaque, replaying these client bytes first (the app's
    /// first bytes, if it spoke first, were already written to the client).
    Copy(Bytes),
    /// Nothing more to do: a side closed, failed, or neither spoke.
    Done,
}

/// Runs [`first_word`] on a silent connection and settles it: the one step both
/// sides of the proxy take after [`Detected::Silent`]. Adds what it writes to the
/// client to `written`.
pub async fn settle_silence<C, U>(
    client: &mut C,
    upstream: &mut U,
    sniff: Sniff,
    idle: Duration,
    written: &mut u64,
) -> AfterSilence
where
    C: AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: AsyncRead + Unpin,
{
    use tokio::io::AsyncWriteExt as _;
    match first_word(client, upstream, sniff, idle).await {
        Ok(FirstWord::Client(outcome)) => match outcome.detected {
            Detected::Opaque | Detected::Tls { .. } => AfterSilence::Copy(outcome.prefix),
            _ => AfterSilence::Http(outcome),
        },
        Ok(FirstWord::Upstream(first)) => {
            if client.write_all(&first).await.is_err() {
                return AfterSilence::Done;
            }
            *written += first.len() as u64;
            AfterSilence::Copy(Bytes::new())
        }
        Ok(FirstWord::Closed) => AfterSilence::Done,
        Err(e) => {
            tracing::debug!(error = %e, "connection failed before either side spoke");
            AfterSilence::Done
        }
    }
}

/// A decision from the bytes so far, or `None` if more bytes could change it. Pure:
/// the protocol detector's whole judgement, for tests and fuzzing.
pub fn classify(buf: &[u8]) -> Option<Detected> {
    if buf.is_empty() {
        return None;
    }
    if buf[0] == 0x16 {
        return tls(buf);
    }
    if buf[0] == b'P' && buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(buf) {
        return None;
    }
    if buf.starts_with(H2_PREFACE) {
        return Some(Detected::Http2);
    }
    match strict::request_line(buf) {
        Line::Valid => Some(Detected::Http1),
        Line::Invalid(refusal) => Some(Detected::Malformed(refusal)),
        Line::NotHttp => Some(Detected::Opaque),
        Line::Incomplete => None,
    }
}

/// The decision when no more bytes will come (EOF or timeout): an unfinished line that
/// could still have become HTTP is refused, not copied.
fn classify_final(buf: &[u8]) -> Detected {
    match classify(buf) {
        Some(d) => d,
        None if buf.first() == Some(&0x16) => Detected::Tls { sni: None },
        None => Detected::Malformed(strict::HEAD_TIMEOUT),
    }
}

fn tls(buf: &[u8]) -> Option<Detected> {
    if buf.len() < 5 {
        return if buf.len() >= 2 && buf[1] != 0x03 {
            Some(Detected::Opaque)
        } else {
            None
        };
    }
    if buf[1] != 0x03 {
        return Some(Detected::Opaque);
    }
    let record_len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if buf.len() < 5 + record_len && 5 + record_len <= MAX_CLIENT_HELLO {
        return None;
    }
    Some(Detected::Tls {
        sni: sni(&buf[5..buf.len().min(5 + record_len)]),
    })
}

/// Extracts the server_name extension from a ClientHello handshake message.
fn sni(hello: &[u8]) -> Option<String> {
    let mut r = Reader(hello);
    if r.u8()? != 0x01 {
        return None; // not a ClientHello
    }
    r.skip(3)?; // handshake length
    r.skip(2 + 32)?; // legacy_version, random
    let session = usize::from(r.u8()?);
    r.skip(session)?;
    let suites = usize::from(r.u16()?);
    r.skip(suites)?;
    let compression = usize::from(r.u8()?);
    r.skip(compression)?;
    let ext_len = usize::from(r.u16()?);
    let mut exts = Reader(r.take(ext_len)?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let mut body = Reader(exts.take(len)?);
        if kind == 0 {
            let _list_len = body.u16()?;
            while !body.0.is_empty() {
                let name_type = body.u8()?;
                let name_len = usize::from(body.u16()?);
                let name = body.take(name_len)?;
                if name_type == 0 {
                    return std::str::from_utf8(name).ok().map(str::to_owned);
                }
            }
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn auto(wait: Duration) -> Plan {
        Plan::Sniff(Sniff {
            first_byte: wait,
            rest: wait,
            http_only: false,
        })
    }

    async fn run(input: &[u8], wait_ms: u64) -> Detected {
        let mut io = input;
        detect(&mut io, auto(Duration::from_millis(wait_ms)))
            .await
            .expect("io")
            .expect("bytes")
            .detected
    }

    #[tokio::test]
    async fn detects_http1_request_line() {
        assert_eq!(
            run(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", 100).await,
            Detected::Http1
        );
        assert_eq!(
            run(b"OPTIONS * HTTP/1.0\r\n\r\n", 100).await,
            Detected::Http1
        );
    }

    #[tokio::test]
    async fn detects_h2_prior_knowledge() {
        assert_eq!(run(H2_PREFACE, 100).await, Detected::Http2);
    }

    #[tokio::test]
    async fn treats_bytes_unlike_http_as_opaque() {
        assert_eq!(
            run(b"\x00\x00\x00\x08\x04\xd2\x16\x2f", 100).await,
            Detected::Opaque
        );
        assert_eq!(run(b"hello world\r\n", 100).await, Detected::Opaque);
    }

    #[tokio::test]
    async fn refuses_what_begins_like_http_but_is_malformed() {
        for input in [
            &b"GET /x SPDY/3\r\n"[..],
            b"GET /x HTTP/1.1 \r\n",
            b"GET\t/x\tHTTP/1.1\r\n",
            b"GET /x HTTP/1.1\rX: y\r\n",
            b"get /x http/1.1\r\n",
        ] {
            assert!(
                matches!(run(input, 100).await, Detected::Malformed(_)),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[tokio::test]
    async fn a_port_declared_http_serves_nothing_but_http() {
        let plan = plan(
            Protocol::Http,
            80,
            Duration::ZERO,
            Duration::from_millis(100),
        );
        for input in [&b"hello world\r\n"[..], b"\x16\x03\x01\x00\x01\x01"] {
            let mut io = input;
            let out = detect(&mut io, plan.clone())
                .await
                .expect("io")
                .expect("bytes");
            assert_eq!(out.detected, Detected::Malformed(strict::NOT_HTTP));
        }
        // A silent client on an HTTP port is dropped, not copied.
        let (mut client, _server) = tokio::io::duplex(64);
        assert!(detect(&mut client, plan).await.expect("io").is_none());
    }

    #[tokio::test]
    async fn a_silent_client_is_reported_silent_after_the_wait() {
        let (mut client, _server) = tokio::io::duplex(64);
        let started = tokio::time::Instant::now();
        let out = detect(&mut client, auto(Duration::from_millis(50)))
            .await
            .expect("io")
            .expect("no EOF");
        assert_eq!(out.detected, Detected::Silent);
        assert!(out.prefix.is_empty());
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unfinished_line_that_could_be_http_is_refused_not_copied() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server) = tokio::io::duplex(64);
        server.write_all(b"GE").await.expect("write");
        let out = detect(&mut client, auto(Duration::from_millis(300)))
            .await
            .expect("io")
            .expect("bytes");
        assert_eq!(out.detected, Detected::Malformed(strict::HEAD_TIMEOUT));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_first_byte_detection_waits_the_header_timeout() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut server) = tokio::io::duplex(64);
        let plan = Plan::Sniff(Sniff {
            first_byte: Duration::from_millis(300),
            rest: Duration::from_secs(10),
            http_only: false,
        });
        let task = tokio::spawn(async move { detect(&mut client, plan).await });
        server.write_all(b"GE").await.expect("write");
        tokio::time::sleep(Duration::from_secs(2)).await;
        server.write_all(b"T / HTTP/1.1\r\n").await.expect("write");
        let out = task.await.expect("join").expect("io").expect("bytes");
        assert_eq!(out.detected, Detected::Http1);
        assert_eq!(&out.prefix[..], b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_client_that_speaks_first_after_silence_is_detected() {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut client_peer) = tokio::io::duplex(1024);
        let (mut upstream, _upstream_peer) = tokio::io::duplex(1024);
        client_peer
            .write_all(b"GET / HTTP/1.1\r\nx-forwarded-client-cert: forged\r\n\r\n")
            .await
            .expect("write");
        let sniff = Sniff {
            first_byte: Duration::from_millis(10),
            rest: Duration::from_secs(1),
            http_only: false,
        };
        let word = first_word(&mut client, &mut upstream, sniff, Duration::from_secs(5))
            .await
            .expect("io");
        assert!(
            matches!(&word, FirstWord::Client(o) if o.detected == Detected::Http1),
            "{word:?}"
        );
    }

    #[tokio::test]
    async fn an_upstream_that_speaks_first_makes_the_connection_opaque() {
        use tokio::io::AsyncWriteExt;
        let (mut client, _client_peer) = tokio::io::duplex(1024);
        let (mut upstream, mut upstream_peer) = tokio::io::duplex(1024);
        upstream_peer
            .write_all(b"220 smtp ready\r\n")
            .await
            .expect("write");
        let sniff = Sniff {
            first_byte: Duration::from_millis(10),
            rest: Duration::from_secs(1),
            http_only: false,
        };
        let word = first_word(&mut client, &mut upstream, sniff, Duration::from_secs(5))
            .await
            .expect("io");
        assert!(
            matches!(&word, FirstWord::Upstream(b) if &b[..] == b"220 smtp ready\r\n"),
            "{word:?}"
        );
    }

    #[test]
    fn declared_ports_skip_detection() {
        let d = Duration::from_millis(300);
        let h = Duration::from_secs(10);
        assert_eq!(
            plan(Protocol::Auto, 5432, d, h),
            Plan::Skip(Detected::Opaque)
        );
        assert_eq!(plan(Protocol::Tcp, 80, d, h), Plan::Skip(Detected::Opaque));
        let http_only = Plan::Sniff(Sniff {
            first_byte: h,
            rest: h,
            http_only: true,
        });
        assert_eq!(plan(Protocol::Grpc, 80, d, h), http_only);
        assert_eq!(plan(Protocol::Http2, 80, d, h), http_only);
        assert_eq!(
            plan(Protocol::Auto, 80, d, h),
            Plan::Sniff(Sniff {
                first_byte: d,
                rest: h,
                http_only: false
            })
        );
    }

    #[test]
    fn extracts_sni_from_client_hello() {
        let hello = client_hello("echo.default.svc");
        assert_eq!(
            classify(&hello),
            Some(Detected::Tls {
                sni: Some("echo.default.svc".into())
            })
        );
        // A truncated record waits for the rest.
        assert_eq!(classify(&hello[..10]), None);
    }

    /// A minimal but well-formed TLS 1.2 ClientHello with one SNI entry.
    fn client_hello(name: &str) -> Vec<u8> {
        let name = name.as_bytes();
        let mut sni_ext = Vec::new();
        sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
        sni_ext.push(0);
        sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni_ext.extend_from_slice(name);
        let mut exts = vec![0, 0];
        exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
        exts.extend_from_slice(&sni_ext);
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }
}
