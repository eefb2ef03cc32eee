//! The HTTP/2 vectors: what a hostile or broken client sends, and what a strict proxy
//! must do about it, written from RFC 9113 (§3.4 preface, §4 frames, §5 streams, §6
//! frame definitions, §8 HTTP semantics), RFC 7541 (HPACK) and public advisories
//! (CVE-2019-9511..9518, CVE-2023-44487, the 2024 CONTINUATION floods, HPACK bombs).
//!
//! Each vector is data: a name, a class, what is sent ([`Attack`]) and the verdict. How
//! a vector is run and judged is in `h2.rs`; floods are in `h2_flood.rs`.
//!
//! The strict policy the verdicts encode:
//! - a malformed request (§8.1.1) is a stream error: `RST_STREAM(PROTOCOL_ERROR)` or a
//!   `400`; nothing reaches the origin; the connection's other streams carry on;
//! - an error the RFC makes connection-wide gets `GOAWAY` with the code the RFC names;
//! - framing fields never travel as trailers; identity headers never come from clients.

use std::fmt;
use std::sync::Arc;

use super::flood::Flood;
use super::frame::{flag, kind, setting, Frame, Reason};
use super::hpack::{Block, Field};
use super::origin::Arrival;

/// The `:path` of the vector's own request (the harness's are `/good/…`).
pub(crate) const PATH: &str = "/v";

/// What a vector tests, for the report and the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// Well-formed traffic a strict proxy must still carry (no over-blocking).
    Baseline,
    PseudoHeader,
    ConnectionSpecific,
    FieldName,
    FieldValue,
    Trailers,
    ContentLength,
    Identity,
    Limits,
    FrameRules,
    Hpack,
    Flood,
}

/// One vector.
pub(crate) struct Vector {
    pub(crate) name: &'static str,
    pub(crate) class: Class,
    /// Where the rule comes from.
    pub(crate) source: &'static str,
    pub(crate) attack: Attack,
    pub(crate) verdict: Verdict,
}

/// What the client does.
pub(crate) enum Attack {
    /// One request on stream 3, between well-formed GETs on stream 1 (answered before)
    /// and the next free stream (sent after the outcome).
    Request(Req),
    /// Frames sent once stream 1 is answered, instead of a request.
    Frames(Vec<Frame>),
    /// The connection's first bytes, instead of the preface and SETTINGS.
    Opening(Vec<u8>),
    /// A flood on one connection while a second connection sends normal requests.
    Flood(Flood),
}

/// A request to build into frames: fields in order, DATA frames, trailers.
#[derive(Clone, Debug)]
pub(crate) struct Req {
    pub(crate) fields: Vec<Field>,
    pub(crate) data: Vec<Vec<u8>>,
    pub(crate) trailers: Option<Vec<Field>>,
    /// A hand-made header block replacing `fields` on the wire, and what it holds.
    pub(crate) block: Option<(Vec<u8>, &'static str)>,
    /// Header block split into HEADERS + CONTINUATION frames of this many bytes.
    pub(crate) split: Option<usize>,
    /// Pad HEADERS and DATA frames with this many bytes.
    pub(crate) pad: Option<u8>,
    /// Leave the stream open after the header block (no END_STREAM anywhere).
    pub(crate) open: bool,
}

/// The expected result.
pub(crate) struct Verdict {
    /// What the client must get back.
    pub(crate) answer: Answer,
    /// What may reach the origin.
    pub(crate) reach: Reach,
}

/// What the client must get back on the vector's stream (or connection).
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// A `200` from the origin.
    Ok,
    /// Not treated as malformed: any final status but `400`, no RST_STREAM
    /// PROTOCOL_ERROR.
    NotMalformed,
    /// RST_STREAM with one of `codes`, or a response with one of `statuses`; the
    /// connection's other streams carry on.
    StreamError {
        codes: &'static [Reason],
        statuses: &'static [u16],
    },
    /// Either a `200` or that stream error.
    OkOrStreamError {
        codes: &'static [Reason],
        statuses: &'static [u16],
    },
    /// GOAWAY with one of `codes`; with `or_eof` closing without GOAWAY also passes.
    ConnectionError {
        codes: &'static [Reason],
        or_eof: bool,
    },
    /// No visible effect: no reset, no GOAWAY, the next stream is answered.
    Ignored,
    /// The legitimate client keeps 100% success with sane latency, the proxies' memory
    /// stays bounded and they stay up; the attacking connection may be closed with
    /// GOAWAY, and must be if `goaway` is not empty (one of those codes).
    Withstood { goaway: &'static [Reason] },
}

/// What may reach the origin.
#[derive(Clone)]
pub(crate) enum Reach {
    /// Nothing of the vector's request.
    Nothing,
    /// Perhaps its header section, never a complete request (the proxy streams; it
    /// finds the fault in the body and must cut the upstream stream).
    Incomplete,
    /// The request, and the check holds for it.
    Request(Check),
    /// If the request arrives, the check holds for it.
    IfArrived(Check),
    /// Not judged (the request is valid; the fault comes after it).
    Any,
}

/// A condition on what the origin received.
#[derive(Clone)]
pub(crate) struct Check {
    pub(crate) says: &'static str,
    #[allow(clippy::type_complexity)]
    pub(crate) test: Arc<dyn Fn(&Arrival, &Ctx) -> Result<(), String> + Send + Sync>,
}

/// What a check needs to know about the path.
pub(crate) struct Ctx {
    /// The origin speaks HTTP/1.1 (the inbound proxy converted).
    pub(crate) h1_origin: bool,
    /// The `x-forwarded-client-cert` the origin must see (none on one hop).
    pub(crate) xfcc: Option<String>,
}

// === impl Class ===

impl Class {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::PseudoHeader => "pseudo-header",
            Self::ConnectionSpecific => "connection-specific field",
            Self::FieldName => "field name",
            Self::FieldValue => "field value",
            Self::Trailers => "trailers",
            Self::ContentLength => "content-length",
            Self::Identity => "identity forgery",
            Self::Limits => "limits",
            Self::FrameRules => "frame rules",
            Self::Hpack => "HPACK",
            Self::Flood => "flood",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

// === impl Req ===

impl Req {
    /// `GET /v` with the four pseudo-header fields and one regular field.
    pub(crate) fn get() -> Self {
        Self {
            fields: vec![
                field(":method", "GET"),
                field(":scheme", "http"),
                field(":authority", "app.example"),
                field(":path", PATH),
                field("x-probe", "v"),
            ],
            data: Vec::new(),
            trailers: None,
            block: None,
            split: None,
            pad: None,
            open: false,
        }
    }

    /// `POST /v` with `body` in one DATA frame (no content-length).
    pub(crate) fn post(body: &[u8]) -> Self {
        Self::get().set(":method", "POST").data(body)
    }

    /// Replaces the first field named `name` (dropping later ones), or appends it.
    pub(crate) fn set(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        let (name, value) = (name.as_ref().to_vec(), value.as_ref().to_vec());
        match self.fields.iter().position(|(n, _)| *n == name) {
            Some(i) => {
                self.fields[i].1 = value;
                let mut seen = 0;
                self.fields.retain(|(n, _)| {
                    if *n == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.fields.push((name, value)),
        }
        self
    }

    /// Appends a field (after the others, even if it is a pseudo-header field).
    pub(crate) fn push(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.fields
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Inserts a field at `index`.
    pub(crate) fn insert(
        mut self,
        index: usize,
        name: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Self {
        self.fields
            .insert(index, (name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    pub(crate) fn remove(mut self, name: &str) -> Self {
        self.fields.retain(|(n, _)| n != name.as_bytes());
        self
    }

    pub(crate) fn data(mut self, bytes: &[u8]) -> Self {
        self.data.push(bytes.to_vec());
        self
    }

    pub(crate) fn trailers(mut self, fields: &[(&str, &str)]) -> Self {
        self.trailers = Some(fields.iter().map(|(n, v)| field(n, v)).collect());
        self
    }

    /// Sends `block` instead of the literal encoding of the fields.
    pub(crate) fn block(mut self, block: Vec<u8>, holds: &'static str) -> Self {
        self.block = Some((block, holds));
        self
    }

    pub(crate) fn split(mut self, bytes: usize) -> Self {
        self.split = Some(bytes);
        self
    }

    pub(crate) fn padded(mut self, pad: u8) -> Self {
        self.pad = Some(pad);
        self
    }

    pub(crate) fn open(mut self) -> Self {
        self.open = true;
        self
    }

    /// The header block as sent: the hand-made one, or every field as a literal.
    pub(crate) fn header_block(&self) -> Vec<u8> {
        match &self.block {
            Some((block, _)) => block.clone(),
            None => Block::literals(&self.fields).into_bytes(),
        }
    }

    /// The request as frames on `stream`.
    pub(crate) fn frames(&self, stream: u32) -> Vec<Frame> {
        let mut frames = Vec::new();
        let block = self.header_block();
        let ends_on_headers = !self.open && self.data.is_empty() && self.trailers.is_none();
        let end_stream = if ends_on_headers { flag::END_STREAM } else { 0 };
        let pad = |frame: Frame| match self.pad {
            Some(n) => frame.padded(n, usize::from(n)),
            None => frame,
        };
        match self.split {
            Some(size) if size < block.len() => {
                let mut chunks = block.chunks(size);
                let first = chunks.next().unwrap_or_default().to_vec();
                frames.push(pad(Frame::headers(stream, first, end_stream)));
                let rest: Vec<&[u8]> = chunks.collect();
                for (i, chunk) in rest.iter().enumerate() {
                    frames.push(Frame::continuation(
                        stream,
                        chunk.to_vec(),
                        i + 1 == rest.len(),
                    ));
                }
            }
            _ => frames.push(pad(Frame::headers(
                stream,
                block,
                flag::END_HEADERS | end_stream,
            ))),
        }
        for (i, data) in self.data.iter().enumerate() {
            let last = !self.open && i + 1 == self.data.len() && self.trailers.is_none();
            frames.push(pad(Frame::data(stream, data, last)));
        }
        if let Some(trailers) = &self.trailers {
            let flags = flag::END_HEADERS | if self.open { 0 } else { flag::END_STREAM };
            frames.push(Frame::headers(
                stream,
                Block::literals(trailers).into_bytes(),
                flags,
            ));
        }
        frames
    }

    /// What differs from `GET /v`, for the table: added fields as `name: value`,
    /// missing ones as `no name`, and the field order when it changed.
    pub(crate) fn summary(&self) -> String {
        let base = Self::get().fields;
        let mut parts: Vec<String> = Vec::new();
        if let Some((_, holds)) = &self.block {
            parts.push(format!("block: {holds}"));
        } else {
            for (n, v) in &self.fields {
                if !base.contains(&(n.clone(), v.clone())) {
                    parts.push(format!("{}: {}", text(n), text(v)));
                }
            }
            for (n, _) in &base {
                if !self.fields.iter().any(|(f, _)| f == n) {
                    parts.push(format!("no {}", text(n)));
                }
            }
            let kept: Vec<&Field> = self.fields.iter().filter(|f| base.contains(f)).collect();
            let in_base: Vec<&Field> = base.iter().filter(|f| kept.contains(f)).collect();
            if kept != in_base {
                let order: Vec<String> = self.fields.iter().map(|(n, _)| text(n)).collect();
                parts.push(format!("order {}", order.join(", ")));
            }
        }
        if let Some(size) = self.split {
            parts.push(format!("CONTINUATION every {size} bytes"));
        }
        if let Some(pad) = self.pad {
            parts.push(format!("padded {pad}"));
        }
        if !self.data.is_empty() {
            let sizes: Vec<String> = self.data.iter().map(|d| d.len().to_string()).collect();
            parts.push(format!("DATA {}", sizes.join("+")));
        }
        if let Some(trailers) = &self.trailers {
            let t: Vec<String> = trailers
                .iter()
                .map(|(n, v)| format!("{}: {}", text(n), text(v)))
                .collect();
            parts.push(format!("trailers [{}]", t.join(", ")));
        }
        if self.open {
            parts.push("stream left open".to_owned());
        }
        if parts.is_empty() {
            "GET /v".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

fn field(name: &str, value: &str) -> Field {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// Bytes for the table: printable ASCII as is, others as `\xNN`, long runs cut.
pub(crate) fn text(bytes: &[u8]) -> String {
    crate::origin::escape(bytes, 40).replace('|', "\\|")
}

// === impl Attack ===

impl Attack {
    /// The frames, for the table.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Request(req) => req.summary(),
            Self::Frames(frames) => {
                let parts: Vec<String> = frames.iter().map(frame_summary).collect();
                collapse(parts)
            }
            Self::Opening(bytes) => format!("opening bytes `{}`", text(bytes)),
            Self::Flood(flood) => flood.summary(),
        }
    }

    /// The highest stream id the attack uses (the next good stream goes above it).
    pub(crate) fn max_stream(&self) -> u32 {
        match self {
            Self::Frames(frames) => frames.iter().map(|f| f.stream).max().unwrap_or(0).max(3),
            Self::Request(_) | Self::Opening(_) | Self::Flood(_) => 3,
        }
    }
}

fn frame_summary(frame: &Frame) -> String {
    let name = if frame.kind <= kind::CONTINUATION {
        Frame::kind_name(frame.kind).to_owned()
    } else {
        format!("type 0x{:02x}", frame.kind)
    };
    let mut flags = Vec::new();
    if frame.kind == kind::HEADERS || frame.kind == kind::DATA {
        if frame.has(flag::END_STREAM) {
            flags.push("ES");
        }
        if frame.has(flag::PADDED) {
            flags.push("PADDED");
        }
    }
    if (frame.kind == kind::HEADERS || frame.kind == kind::CONTINUATION)
        && frame.has(flag::END_HEADERS)
    {
        flags.push("EH");
    }
    if frame.kind == kind::HEADERS && frame.has(flag::PRIORITY) {
        flags.push("PRIORITY");
    }
    if (frame.kind == kind::SETTINGS || frame.kind == kind::PING) && frame.has(flag::ACK) {
        flags.push("ACK");
    }
    let flags = if flags.is_empty() {
        String::new()
    } else {
        format!(" {}", flags.join(","))
    };
    let detail = match frame.kind {
        kind::WINDOW_UPDATE if frame.payload.len() == 4 => {
            format!(" +{}", frame.increment().unwrap_or(0))
        }
        kind::RST_STREAM | kind::GOAWAY => {
            frame.reason().map(|r| format!(" {r}")).unwrap_or_default()
        }
        _ => String::new(),
    };
    format!(
        "{name}(s{}{flags}{detail}, {}B)",
        frame.stream,
        frame.payload.len()
    )
}

/// Runs of the same text as `text ×n`.
fn collapse(parts: Vec<String>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(String, usize)> = None;
    for p in parts {
        match &mut run {
            Some((prev, n)) if *prev == p => *n += 1,
            _ => {
                if let Some((prev, n)) = run.take() {
                    out.push(if n > 1 { format!("{prev} ×{n}") } else { prev });
                }
                run = Some((p, 1));
            }
        }
    }
    if let Some((prev, n)) = run {
        out.push(if n > 1 { format!("{prev} ×{n}") } else { prev });
    }
    out.join(", ")
}

// === impl Verdict ===

impl Verdict {
    /// Malformed (RFC 9113 §8.1.1): stream error, nothing forwarded.
    pub(crate) fn malformed() -> Self {
        Self {
            answer: Answer::StreamError {
                codes: &[Reason::PROTOCOL_ERROR],
                statuses: &[400],
            },
            reach: Reach::Nothing,
        }
    }

    /// Malformed in the body: stream error; the origin never sees a complete request.
    pub(crate) fn malformed_body() -> Self {
        Self {
            reach: Reach::Incomplete,
            ..Self::malformed()
        }
    }

    pub(crate) fn forwarded(check: Check) -> Self {
        Self {
            answer: Answer::Ok,
            reach: Reach::Request(check),
        }
    }

    pub(crate) fn connection(codes: &'static [Reason]) -> Self {
        Self {
            answer: Answer::ConnectionError {
                codes,
                or_eof: false,
            },
            reach: Reach::Nothing,
        }
    }

    pub(crate) fn stream(codes: &'static [Reason], reach: Reach) -> Self {
        Self {
            answer: Answer::StreamError {
                codes,
                statuses: &[],
            },
            reach,
        }
    }

    pub(crate) fn ignored() -> Self {
        Self {
            answer: Answer::Ignored,
            reach: Reach::Any,
        }
    }

    pub(crate) fn withstood(goaway: &'static [Reason]) -> Self {
        Self {
            answer: Answer::Withstood { goaway },
            reach: Reach::Any,
        }
    }

    /// The verdict in a few words, for the table.
    pub(crate) fn summary(&self) -> String {
        let answer = match &self.answer {
            Answer::Ok => "200".to_owned(),
            Answer::NotMalformed => "not treated as malformed (any status but 400)".to_owned(),
            Answer::StreamError { codes, statuses } => {
                format!("stream error: {}", alternatives(codes, statuses))
            }
            Answer::OkOrStreamError { codes, statuses } => {
                format!("200, or stream error: {}", alternatives(codes, statuses))
            }
            Answer::ConnectionError { codes, or_eof } => {
                let codes: Vec<String> = codes.iter().map(ToString::to_string).collect();
                let eof = if *or_eof { " (or close)" } else { "" };
                format!("GOAWAY {}{eof}", codes.join(" or "))
            }
            Answer::Ignored => "ignored; the connection carries on".to_owned(),
            Answer::Withstood { goaway: [] } => "legitimate client 100%, memory bounded".to_owned(),
            Answer::Withstood { goaway } => {
                let codes: Vec<String> = goaway.iter().map(ToString::to_string).collect();
                format!(
                    "GOAWAY {} to the attacker; legitimate client 100%, memory bounded",
                    codes.join(" or ")
                )
            }
        };
        let reach = match &self.reach {
            Reach::Nothing => "; nothing forwarded".to_owned(),
            Reach::Incomplete => "; origin never sees a complete request".to_owned(),
            Reach::Request(check) => format!("; origin: {}", check.says),
            Reach::IfArrived(check) => format!("; if forwarded: {}", check.says),
            Reach::Any => String::new(),
        };
        format!("{answer}{reach}")
    }
}

fn alternatives(codes: &[Reason], statuses: &[u16]) -> String {
    let mut alts: Vec<String> = statuses.iter().map(u16::to_string).collect();
    alts.extend(codes.iter().map(|c| format!("RST_STREAM {c}")));
    alts.join(" or ")
}

// === checks ===

impl Check {
    fn new(
        says: &'static str,
        test: impl Fn(&Arrival, &Ctx) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            says,
            test: Arc::new(test),
        }
    }
}

/// The origin got the vector's method, path and `x-probe`, and the identity header only
/// as the mesh sets it.
fn intact() -> Check {
    Check::new("the request as sent", |a, ctx| {
        expect_values(a, "x-probe", &[b"v"])?;
        expect_xfcc(a, ctx)
    })
}

fn expect_values(a: &Arrival, name: &str, want: &[&[u8]]) -> Result<(), String> {
    let got = a.values(name);
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "origin got {name} = {:?}, want {:?}",
            got.iter().map(|v| text(v)).collect::<Vec<_>>(),
            want.iter().map(|v| text(v)).collect::<Vec<_>>()
        ))
    }
}

fn expect_xfcc(a: &Arrival, ctx: &Ctx) -> Result<(), String> {
    let want: Vec<&[u8]> = ctx.xfcc.iter().map(String::as_bytes).collect();
    expect_values(a, "x-forwarded-client-cert", &want)
}

fn body_is(body: &'static [u8]) -> Check {
    Check::new("the body as sent", move |a, ctx| {
        if a.body != body {
            return Err(format!(
                "origin body {:?}, want {:?}",
                text(&a.body),
                text(body)
            ));
        }
        expect_xfcc(a, ctx)
    })
}

fn no_forged_xfcc() -> Check {
    Check::new(
        "x-forwarded-client-cert only as the inbound proxy sets it",
        |a, ctx| {
            expect_xfcc(a, ctx)?;
            if !a.trailer_values("x-forwarded-client-cert").is_empty() {
                return Err("origin got x-forwarded-client-cert in trailers".to_owned());
            }
            Ok(())
        },
    )
}

fn trailer_lacks(name: &'static str, says: &'static str) -> Check {
    Check::new(says, move |a, ctx| {
        if !a.trailer_values(name).is_empty() {
            return Err(format!("origin got {name} in trailers"));
        }
        if !a.complete {
            return Err("origin got an incomplete request".to_owned());
        }
        expect_xfcc(a, ctx)
    })
}

// === the vectors ===

const PROTOCOL: &[Reason] = &[Reason::PROTOCOL_ERROR];
const FRAME_SIZE: &[Reason] = &[Reason::FRAME_SIZE_ERROR];
const FLOW: &[Reason] = &[Reason::FLOW_CONTROL_ERROR];
const COMPRESSION: &[Reason] = &[Reason::COMPRESSION_ERROR];
const CALM: &[Reason] = &[
    Reason::ENHANCE_YOUR_CALM,
    Reason::PROTOCOL_ERROR,
    Reason::COMPRESSION_ERROR,
];
const REFUSED: &[Reason] = &[
    Reason::REFUSED_STREAM,
    Reason::PROTOCOL_ERROR,
    Reason::ENHANCE_YOUR_CALM,
];

fn v(
    name: &'static str,
    class: Class,
    source: &'static str,
    attack: Attack,
    verdict: Verdict,
) -> Vector {
    Vector {
        name,
        class,
        source,
        attack,
        verdict,
    }
}

fn bad(name: &'static str, class: Class, source: &'static str, req: Req) -> Vector {
    v(
        name,
        class,
        source,
        Attack::Request(req),
        Verdict::malformed(),
    )
}

fn bad_body(name: &'static str, class: Class, source: &'static str, req: Req) -> Vector {
    v(
        name,
        class,
        source,
        Attack::Request(req),
        Verdict::malformed_body(),
    )
}

fn ok(name: &'static str, class: Class, source: &'static str, req: Req, check: Check) -> Vector {
    v(
        name,
        class,
        source,
        Attack::Request(req),
        Verdict::forwarded(check),
    )
}

fn conn(
    name: &'static str,
    source: &'static str,
    frames: Vec<Frame>,
    codes: &'static [Reason],
) -> Vector {
    // A stream the frames open and leave open may have had its head forwarded.
    let opens = frames
        .iter()
        .any(|f| f.kind == kind::HEADERS && f.stream != 0 && !f.has(flag::END_STREAM));
    let mut verdict = Verdict::connection(codes);
    if opens {
        verdict.reach = Reach::Incomplete;
    }
    v(
        name,
        Class::FrameRules,
        source,
        Attack::Frames(frames),
        verdict,
    )
}

fn hpack(name: &'static str, source: &'static str, block: Vec<u8>, holds: &'static str) -> Vector {
    v(
        name,
        Class::Hpack,
        source,
        Attack::Request(Req::get().block(block, holds)),
        Verdict::connection(COMPRESSION),
    )
}

/// A header block of the base GET's fields followed by `tail`.
fn base_then(tail: &[u8]) -> Vec<u8> {
    Block::literals(&Req::get().fields).raw(tail).into_bytes()
}

/// Stream 3 opened by a POST that leaves the stream open.
fn open_stream() -> Frame {
    let block = Block::literals(&Req::get().set(":method", "POST").fields).into_bytes();
    Frame::headers(3, block, flag::END_HEADERS)
}

/// Every vector, in table order.
pub(crate) fn all() -> Vec<Vector> {
    use Class::*;
    let mut all = vec![
        // --- baseline: what a strict proxy must still carry ---
        ok("baseline-get", Baseline, "RFC 9113 §8.3.1", Req::get(), intact()),
        ok(
            "baseline-post-body",
            Baseline,
            "RFC 9113 §8.1",
            Req::post(b"hello").set("content-length", "5"),
            body_is(b"hello"),
        ),
        ok(
            "post-body-in-two-frames",
            Baseline,
            "RFC 9113 §8.1",
            Req::post(b"hel").data(b"lo"),
            body_is(b"hello"),
        ),
        ok(
            "content-length-split-across-frames",
            ContentLength,
            "RFC 9113 §8.1.1",
            Req::post(b"hello").data(b"world").set("content-length", "10"),
            body_is(b"helloworld"),
        ),
        ok(
            "padding-not-counted-in-content-length",
            ContentLength,
            "RFC 9113 §6.1, §8.1.1",
            Req::post(b"hello").set("content-length", "5").padded(10),
            body_is(b"hello"),
        ),
        ok(
            "trailers-forwarded",
            Trailers,
            "RFC 9113 §8.1",
            Req::post(b"hello").trailers(&[("x-checksum", "abc")]),
            Check::new("the trailer x-checksum", |a, ctx| {
                // HTTP/1.1 lets a recipient drop trailers (RFC 9110 §6.5.1).
                if !ctx.h1_origin || a.trailers.is_some() {
                    let got = a.trailer_values("x-checksum");
                    if got != [b"abc"] {
                        return Err(format!("origin trailers {:?}", a.trailers));
                    }
                }
                expect_xfcc(a, ctx)
            }),
        ),
        ok(
            "te-trailers-allowed",
            ConnectionSpecific,
            "RFC 9113 §8.2.2",
            Req::get().push("te", "trailers"),
            Check::new("the request (te: trailers may go on, for gRPC)", |a, ctx| {
                let te = a.values("te");
                if !(te.is_empty() || te == [b"trailers"]) {
                    return Err(format!("origin got te {te:?}"));
                }
                if !ctx.h1_origin && te.is_empty() {
                    return Err("te: trailers did not reach an HTTP/2 origin".to_owned());
                }
                expect_xfcc(a, ctx)
            }),
        ),
        ok(
            "cookie-crumbs",
            Baseline,
            "RFC 9113 §8.2.3",
            Req::get().push("cookie", "a=1").push("cookie", "b=2"),
            Check::new("both cookie crumbs", |a, _| {
                let all: Vec<String> = a
                    .values("cookie")
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect();
                let joined = all.join("; ");
                if joined == "a=1; b=2" {
                    Ok(())
                } else {
                    Err(format!("origin cookies {all:?}"))
                }
            }),
        ),
        ok(
            "repeated-field-order-kept",
            Baseline,
            "RFC 9110 §5.3",
            Req::get()
                .push("x-order", "1")
                .push("x-other", "a")
                .push("x-order", "2")
                .push("x-order", "3"),
            Check::new("x-order values in order", |a, _| {
                let got: Vec<&[u8]> = a.values("x-order");
                let joined: Vec<u8> = got.join(&b","[..]);
                if got == [b"1", b"2", b"3"] || joined == b"1, 2, 3" {
                    Ok(())
                } else {
                    Err(format!("origin x-order {:?}", text(&joined)))
                }
            }),
        ),
        ok(
            "headers-split-in-continuations",
            Baseline,
            "RFC 9113 §6.10",
            Req::get().split(30),
            intact(),
        ),
        v(
            "headers-with-priority-flag",
            Baseline,
            "RFC 9113 §6.2",
            Attack::Frames(vec![Frame::headers(
                3,
                [&[0, 0, 0, 0, 15][..], &Req::get().header_block()].concat(),
                flag::END_HEADERS | flag::END_STREAM | flag::PRIORITY,
            )]),
            Verdict::forwarded(intact()),
        ),
        ok(
            "hpack-huffman-strings",
            Hpack,
            "RFC 7541 §5.2",
            Req::get().block(
                Req::get()
                    .fields
                    .iter()
                    .fold(Block::new(), |b, (n, v)| b.huffman(n, v))
                    .into_bytes(),
                "the GET's fields, Huffman-coded",
            ),
            intact(),
        ),
        ok(
            "hpack-dynamic-table-reuse",
            Hpack,
            "RFC 7541 §2.3.2, §6.1",
            Req::get().block(
                Block::literals(&Req::get().fields)
                    .literal_indexed(b"x-indexed", b"one")
                    .indexed(62)
                    .into_bytes(),
                "the GET's fields + x-indexed: one (incremental indexing) + index 62",
            ),
            Check::new("x-indexed twice", |a, _| {
                expect_values(a, "x-indexed", &[b"one", b"one"]).or_else(|_| {
                    expect_values(a, "x-indexed", &[b"one, one"])
                })
            }),
        ),
        ok(
            "hpack-static-name-reference",
            Hpack,
            "RFC 7541 §6.2.2",
            Req::get().block(
                Block::literals(&Req::get().fields)
                    .literal_name_ref(58, b"weft-conformance")
                    .into_bytes(),
                "the GET's fields + user-agent by static index 58",
            ),
            Check::new("user-agent: weft-conformance", |a, _| {
                expect_values(a, "user-agent", &[b"weft-conformance"])
            }),
        ),
        ok(
            "hpack-table-size-update-first",
            Hpack,
            "RFC 7541 §4.2",
            Req::get().block(
                Block::new()
                    .size_update(0)
                    .into_bytes()
                    .into_iter()
                    .chain(base_then(&[]))
                    .collect(),
                "size update to 0, then the GET's fields",
            ),
            intact(),
        ),
        ok(
            "hpack-never-indexed",
            Hpack,
            "RFC 7541 §6.2.3",
            Req::get().block(
                Block::literals(&Req::get().fields)
                    .never_indexed(b"authorization", b"secret")
                    .into_bytes(),
                "the GET's fields + authorization never-indexed",
            ),
            Check::new("authorization: secret", |a, _| {
                expect_values(a, "authorization", &[b"secret"])
            }),
        ),
        v(
            "path-asterisk-options",
            PseudoHeader,
            "RFC 9113 §8.3.1",
            Attack::Request(Req::get().set(":method", "OPTIONS").set(":path", "*")),
            Verdict {
                answer: Answer::NotMalformed,
                reach: Reach::Any,
            },
        ),
        ok(
            "host-instead-of-authority",
            PseudoHeader,
            "RFC 9113 §8.3.1",
            Req::get().remove(":authority").push("host", "app.example"),
            Check::new("the request, with its host", |a, ctx| {
                let host = a.values("host");
                let authority = a.values(":authority");
                if host != [b"app.example"] && authority != [b"app.example"] {
                    return Err("origin lost the host".to_owned());
                }
                expect_xfcc(a, ctx)
            }),
        ),
        // --- pseudo-header fields (RFC 9113 §8.3) ---
        bad("pseudo-missing-method", PseudoHeader, "RFC 9113 §8.3.1", Req::get().remove(":method")),
        bad("pseudo-missing-scheme", PseudoHeader, "RFC 9113 §8.3.1", Req::get().remove(":scheme")),
        bad("pseudo-missing-path", PseudoHeader, "RFC 9113 §8.3.1", Req::get().remove(":path")),
        bad(
            "pseudo-duplicate-method",
            PseudoHeader,
            "RFC 9113 §8.3",
            Req::get().insert(1, ":method", "POST"),
        ),
        bad(
            "pseudo-duplicate-path",
            PseudoHeader,
            "RFC 9113 §8.3",
            Req::get().insert(4, ":path", "/admin"),
        ),
        bad(
            "pseudo-duplicate-authority",
            PseudoHeader,
            "RFC 9113 §8.3",
            Req::get().insert(3, ":authority", "evil.example"),
        ),
        bad(
            "pseudo-unknown",
            PseudoHeader,
            "RFC 9113 §8.3",
            Req::get().insert(4, ":foo", "bar"),
        ),
        bad(
            "pseudo-status-in-request",
            PseudoHeader,
            "RFC 9113 §8.3.2",
            Req::get().insert(4, ":status", "200"),
        ),
        bad(
            "pseudo-after-regular-field",
            PseudoHeader,
            "RFC 9113 §8.3",
            Req::get().remove(":path").push(":path", PATH),
        ),
        bad("path-empty", PseudoHeader, "RFC 9113 §8.3.1", Req::get().set(":path", "")),
        bad(
            "path-not-starting-with-slash",
            PseudoHeader,
            "RFC 9113 §8.3.1",
            Req::get().set(":path", "v"),
        ),
        bad(
            "path-absolute-uri",
            PseudoHeader,
            "RFC 9113 §8.3.1",
            Req::get().set(":path", "http://evil.example/v"),
        ),
        bad(
            "path-asterisk-with-get",
            PseudoHeader,
            "RFC 9113 §8.3.1",
            Req::get().set(":path", "*"),
        ),
        bad(
            "path-with-fragment",
            PseudoHeader,
            "RFC 9113 §8.3.1, RFC 9110 §4.2.4",
            Req::get().set(":path", "/v#frag"),
        ),
        bad(
            "path-with-space",
            PseudoHeader,
            "RFC 9113 §8.3.1",
            Req::get().set(":path", "/v x"),
        ),
        bad(
            "authority-with-userinfo",
            PseudoHeader,
            "RFC 9113 §8.3.1",
            Req::get().set(":authority", "user:pass@app.example"),
        ),
        bad(
            "authority-empty",
            PseudoHeader,
            "RFC 9113 §8.3.1, RFC 9110 §4.2.1",
            Req::get().set(":authority", ""),
        ),
        bad(
            "authority-and-host-differ",
            PseudoHeader,
            "RFC 9113 §8.3.1 (SHOULD)",
            Req::get().push("host", "evil.example"),
        ),
        bad(
            "method-not-a-token",
            PseudoHeader,
            "RFC 9113 §8.3.1, RFC 9110 §9.1",
            Req::get().set(":method", "G T"),
        ),
        bad(
            "scheme-not-a-scheme",
            PseudoHeader,
            "RFC 9113 §8.3.1, RFC 3986 §3.1",
            Req::get().set(":scheme", "ht tp"),
        ),
        bad(
            "connect-with-path",
            PseudoHeader,
            "RFC 9113 §8.5",
            Req::get().set(":method", "CONNECT").remove(":scheme"),
        ),
        bad(
            "connect-with-scheme",
            PseudoHeader,
            "RFC 9113 §8.5",
            Req::get().set(":method", "CONNECT").remove(":path"),
        ),
        bad(
            "connect-without-authority",
            PseudoHeader,
            "RFC 9113 §8.5",
            Req::get()
                .set(":method", "CONNECT")
                .remove(":path")
                .remove(":scheme")
                .remove(":authority"),
        ),
        bad(
            "protocol-on-get",
            PseudoHeader,
            "RFC 8441 §4, RFC 9113 §8.3",
            Req::get().insert(4, ":protocol", "websocket"),
        ),
        bad(
            "extended-connect-not-enabled",
            PseudoHeader,
            "RFC 8441 §3, RFC 9113 §8.3",
            Req::get()
                .set(":method", "CONNECT")
                .insert(4, ":protocol", "websocket"),
        ),
        // --- connection-specific fields (RFC 9113 §8.2.2) ---
        bad(
            "connection-field",
            ConnectionSpecific,
            "RFC 9113 §8.2.2",
            Req::get().push("connection", "keep-alive"),
        ),
        bad(
            "keep-alive-field",
            ConnectionSpecific,
            "RFC 9113 §8.2.2",
            Req::get().push("keep-alive", "timeout=5"),
        ),
        bad(
            "proxy-connection-field",
            ConnectionSpecific,
            "RFC 9113 §8.2.2",
            Req::get().push("proxy-connection", "keep-alive"),
        ),
        bad(
            "transfer-encoding-chunked",
            ConnectionSpecific,
            "RFC 9113 §8.2.2",
            Req::post(b"5\r\nhello\r\n0\r\n\r\n").push("transfer-encoding", "chunked"),
        ),
        bad(
            "upgrade-field",
            ConnectionSpecific,
            "RFC 9113 §8.2.2",
            Req::get().push("upgrade", "websocket"),
        ),
        bad(
            "te-gzip",
            ConnectionSpecific,
            "RFC 9113 §8.2.2",
            Req::get().push("te", "gzip"),
        ),
        bad(
            "te-trailers-and-gzip",
            ConnectionSpecific,
            "RFC 9113 §8.2.2",
            Req::get().push("te", "trailers, gzip"),
        ),
        // --- field names (RFC 9113 §8.2.1) ---
        bad(
            "name-uppercase",
            FieldName,
            "RFC 9113 §8.2.1",
            Req::get().push("X-Probe2", "v"),
        ),
        bad(
            "name-with-space",
            FieldName,
            "RFC 9113 §8.2.1",
            Req::get().push("x probe", "v"),
        ),
        bad(
            "name-with-colon",
            FieldName,
            "RFC 9113 §8.2.1",
            Req::get().push("x:probe", "v"),
        ),
        bad(
            "name-with-nul",
            FieldName,
            "RFC 9113 §8.2.1",
            Req::get().push("x\0probe", "v"),
        ),
        bad(
            "name-with-del",
            FieldName,
            "RFC 9113 §8.2.1",
            Req::get().push("x\x7fprobe", "v"),
        ),
        bad(
            "name-with-high-byte",
            FieldName,
            "RFC 9113 §8.2.1",
            Req::get().push(b"x\xffprobe", "v"),
        ),
        bad(
            "name-empty",
            FieldName,
            "RFC 9113 §8.2.1, CVE-2019-9516",
            Req::get().push("", "v"),
        ),
        bad(
            "name-not-a-token",
            FieldName,
            "RFC 9110 §5.1 (stricter than RFC 9113 §8.2.1 requires)",
            Req::get().push("x(probe)", "v"),
        ),
        // --- field values (RFC 9113 §8.2.1) ---
        bad(
            "value-leading-space",
            FieldValue,
            "RFC 9113 §8.2.1",
            Req::get().push("x-value", " v"),
        ),
        bad(
            "value-trailing-space",
            FieldValue,
            "RFC 9113 §8.2.1",
            Req::get().push("x-value", "v "),
        ),
        bad(
            "value-leading-tab",
            FieldValue,
            "RFC 9113 §8.2.1",
            Req::get().push("x-value", "\tv"),
        ),
        bad(
            "value-with-nul",
            FieldValue,
            "RFC 9113 §8.2.1",
            Req::get().push("x-value", "a\0b"),
        ),
        bad(
            "value-with-cr",
            FieldValue,
            "RFC 9113 §8.2.1",
            Req::get().push("x-value", "a\rb"),
        ),
        bad(
            "value-with-lf",
            FieldValue,
            "RFC 9113 §8.2.1",
            Req::get().push("x-value", "a\nb"),
        ),
        bad(
            "value-crlf-injection",
            FieldValue,
            "RFC 9113 §8.2.1 (HTTP/1.1 header injection when converted)",
            Req::get().push("x-value", "a\r\nx-injected: 1"),
        ),
        bad(
            "value-with-del",
            FieldValue,
            "RFC 9110 §5.5 (stricter than RFC 9113 §8.2.1 requires)",
            Req::get().push("x-value", "a\x7fb"),
        ),
        bad(
            "pseudo-value-with-space",
            FieldValue,
            "RFC 9113 §8.2.1",
            Req::get().set(":method", "GET "),
        ),
        // --- trailers (RFC 9113 §8.1) ---
        bad_body(
            "trailers-with-pseudo-header",
            Trailers,
            "RFC 9113 §8.1",
            Req::post(b"hello").trailers(&[(":path", "/admin")]),
        ),
        bad_body(
            "trailers-transfer-encoding",
            Trailers,
            "RFC 9113 §8.2.2",
            Req::post(b"hello").trailers(&[("transfer-encoding", "chunked")]),
        ),
        bad_body(
            "trailers-connection",
            Trailers,
            "RFC 9113 §8.2.2",
            Req::post(b"hello").trailers(&[("connection", "close")]),
        ),
        v(
            "trailers-content-length",
            Trailers,
            "RFC 9110 §6.5.1 (framing fields never as trailers)",
            Attack::Request(Req::post(b"hello").trailers(&[("content-length", "1000")])),
            Verdict {
                answer: Answer::OkOrStreamError {
                    codes: PROTOCOL,
                    statuses: &[400],
                },
                reach: Reach::IfArrived(trailer_lacks(
                    "content-length",
                    "no content-length in trailers",
                )),
            },
        ),
        v(
            "trailers-host",
            Trailers,
            "RFC 9110 §6.5.1 (routing fields never as trailers)",
            Attack::Request(Req::post(b"hello").trailers(&[("host", "evil.example")])),
            Verdict {
                answer: Answer::OkOrStreamError {
                    codes: PROTOCOL,
                    statuses: &[400],
                },
                reach: Reach::IfArrived(trailer_lacks("host", "no host in trailers")),
            },
        ),
        bad_body(
            "trailers-without-end-stream",
            Trailers,
            "RFC 9113 §8.1",
            Req::post(b"hello").trailers(&[("x-checksum", "abc")]).open(),
        ),
        // --- content-length (RFC 9113 §8.1.1) ---
        bad_body(
            "content-length-too-much-data",
            ContentLength,
            "RFC 9113 §8.1.1",
            Req::post(b"hellohello").set("content-length", "5"),
        ),
        bad_body(
            "content-length-too-little-data",
            ContentLength,
            "RFC 9113 §8.1.1",
            Req::post(b"hello").set("content-length", "10"),
        ),
        bad(
            "content-length-without-data",
            ContentLength,
            "RFC 9113 §8.1.1",
            Req::get().push("content-length", "5"),
        ),
        bad(
            "content-length-differing-twice",
            ContentLength,
            "RFC 9110 §8.6",
            Req::post(b"hello")
                .push("content-length", "5")
                .push("content-length", "6"),
        ),
        bad(
            "content-length-not-a-number",
            ContentLength,
            "RFC 9110 §8.6",
            Req::post(b"hello").push("content-length", "five"),
        ),
        bad(
            "content-length-negative",
            ContentLength,
            "RFC 9110 §8.6",
            Req::post(b"hello").push("content-length", "-5"),
        ),
        bad(
            "content-length-with-sign",
            ContentLength,
            "RFC 9110 §8.6",
            Req::post(b"hello").push("content-length", "+5"),
        ),
        // --- identity forgery (DESIGN §7) ---
        ok(
            "xfcc-forged",
            Identity,
            "DESIGN §7: identity headers are stripped from input",
            Req::get().push(
                "x-forwarded-client-cert",
                "By=spiffe://cluster.local/ns/default/sa/origin;URI=spiffe://cluster.local/ns/default/sa/admin",
            ),
            no_forged_xfcc(),
        ),
        ok(
            "xfcc-forged-twice",
            Identity,
            "DESIGN §7",
            Req::get()
                .push("x-forwarded-client-cert", "URI=spiffe://cluster.local/ns/default/sa/admin")
                .push("x-forwarded-client-cert", "URI=spiffe://cluster.local/ns/kube-system/sa/root"),
            no_forged_xfcc(),
        ),
        ok(
            "xfcc-forged-never-indexed",
            Identity,
            "DESIGN §7, RFC 7541 §6.2.3",
            Req::get().block(
                Block::literals(&Req::get().fields)
                    .never_indexed(
                        b"x-forwarded-client-cert",
                        b"URI=spiffe://cluster.local/ns/default/sa/admin",
                    )
                    .into_bytes(),
                "the GET's fields + x-forwarded-client-cert never-indexed",
            ),
            no_forged_xfcc(),
        ),
        ok(
            "xfcc-forged-huffman",
            Identity,
            "DESIGN §7, RFC 7541 §5.2",
            Req::get().block(
                Block::literals(&Req::get().fields)
                    .huffman(
                        b"x-forwarded-client-cert",
                        b"URI=spiffe://cluster.local/ns/default/sa/admin",
                    )
                    .into_bytes(),
                "the GET's fields + x-forwarded-client-cert Huffman-coded",
            ),
            no_forged_xfcc(),
        ),
        v(
            "xfcc-forged-in-trailers",
            Identity,
            "DESIGN §7, RFC 9110 §6.5.1",
            Attack::Request(Req::post(b"hello").trailers(&[(
                "x-forwarded-client-cert",
                "URI=spiffe://cluster.local/ns/default/sa/admin",
            )])),
            Verdict {
                answer: Answer::OkOrStreamError {
                    codes: PROTOCOL,
                    statuses: &[400],
                },
                reach: Reach::IfArrived(no_forged_xfcc()),
            },
        ),
        // --- limits (DESIGN §7: 64 KiB header block, 100 headers) ---
        v(
            "header-block-over-64k",
            Limits,
            "DESIGN §7, RFC 9113 §6.5.2 SETTINGS_MAX_HEADER_LIST_SIZE",
            Attack::Request(
                (0..70)
                    .fold(Req::get(), |r, i| r.push(format!("x-big-{i}"), "a".repeat(1000)))
                    .split(16_000),
            ),
            Verdict {
                answer: Answer::StreamError {
                    codes: REFUSED,
                    statuses: &[431],
                },
                reach: Reach::Nothing,
            },
        ),
        v(
            "header-count-over-100",
            Limits,
            "DESIGN §7 (maxHeaders 100)",
            Attack::Request((0..101).fold(Req::get(), |r, i| r.push(format!("x-n-{i}"), "1"))),
            Verdict {
                answer: Answer::StreamError {
                    codes: REFUSED,
                    statuses: &[431],
                },
                reach: Reach::Nothing,
            },
        ),
        ok(
            "header-count-90",
            Limits,
            "DESIGN §7 (under the limit)",
            (0..90).fold(Req::get(), |r, i| r.push(format!("x-n-{i}"), "1")),
            intact(),
        ),
        // --- frame rules (RFC 9113 §3-§6) ---
        conn(
            "data-on-stream-0",
            "RFC 9113 §6.1",
            vec![Frame::data(0, b"x", false)],
            PROTOCOL,
        ),
        conn(
            "headers-on-stream-0",
            "RFC 9113 §6.2",
            vec![Frame::headers(0, Req::get().header_block(), flag::END_HEADERS | flag::END_STREAM)],
            PROTOCOL,
        ),
        conn(
            "headers-on-even-stream",
            "RFC 9113 §5.1.1",
            vec![Frame::headers(4, Req::get().header_block(), flag::END_HEADERS | flag::END_STREAM)],
            PROTOCOL,
        ),
        v(
            "stream-id-going-down",
            FrameRules,
            "RFC 9113 §5.1.1",
            Attack::Frames(vec![
                Frame::headers(9, Req::get().header_block(), flag::END_HEADERS | flag::END_STREAM),
                Frame::headers(7, Req::get().header_block(), flag::END_HEADERS | flag::END_STREAM),
            ]),
            Verdict {
                answer: Answer::ConnectionError {
                    codes: &[Reason::PROTOCOL_ERROR, Reason::STREAM_CLOSED],
                    or_eof: false,
                },
                reach: Reach::Any,
            },
        ),
        conn(
            "data-on-idle-stream",
            "RFC 9113 §5.1",
            vec![Frame::data(3, b"x", true)],
            PROTOCOL,
        ),
        conn(
            "rst-stream-on-idle-stream",
            "RFC 9113 §6.4",
            vec![Frame::rst(3, Reason::CANCEL)],
            PROTOCOL,
        ),
        conn(
            "window-update-on-idle-stream",
            "RFC 9113 §5.1",
            vec![Frame::window_update(3, 100)],
            PROTOCOL,
        ),
        conn(
            "continuation-on-idle-stream",
            "RFC 9113 §6.10",
            vec![Frame::continuation(3, Req::get().header_block(), true)],
            PROTOCOL,
        ),
        conn(
            "rst-stream-on-stream-0",
            "RFC 9113 §6.4",
            vec![Frame::rst(0, Reason::CANCEL)],
            PROTOCOL,
        ),
        conn(
            "rst-stream-wrong-length",
            "RFC 9113 §6.4",
            vec![open_stream(), Frame::new(kind::RST_STREAM, 0, 3, vec![0, 0, 0, 8, 0])],
            FRAME_SIZE,
        ),
        conn(
            "settings-wrong-length",
            "RFC 9113 §6.5",
            vec![Frame::new(kind::SETTINGS, 0, 0, vec![0, 4, 0, 0, 0, 1, 0])],
            FRAME_SIZE,
        ),
        conn(
            "settings-ack-with-payload",
            "RFC 9113 §6.5",
            vec![Frame::new(kind::SETTINGS, flag::ACK, 0, vec![0, 4, 0, 0, 0, 1])],
            FRAME_SIZE,
        ),
        conn(
            "settings-on-a-stream",
            "RFC 9113 §6.5",
            vec![Frame::new(kind::SETTINGS, 0, 1, Vec::new())],
            PROTOCOL,
        ),
        conn(
            "settings-enable-push-2",
            "RFC 9113 §6.5.2",
            vec![Frame::settings(&[(setting::ENABLE_PUSH, 2)])],
            PROTOCOL,
        ),
        conn(
            "settings-initial-window-too-large",
            "RFC 9113 §6.5.2",
            vec![Frame::settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)])],
            FLOW,
        ),
        conn(
            "settings-max-frame-size-too-small",
            "RFC 9113 §6.5.2",
            vec![Frame::settings(&[(setting::MAX_FRAME_SIZE, 16_383)])],
            PROTOCOL,
        ),
        conn(
            "settings-max-frame-size-too-large",
            "RFC 9113 §6.5.2",
            vec![Frame::settings(&[(setting::MAX_FRAME_SIZE, 1 << 24)])],
            PROTOCOL,
        ),
        v(
            "settings-unknown-identifier",
            FrameRules,
            "RFC 9113 §6.5.2",
            Attack::Frames(vec![Frame::settings(&[(0x99, 7)])]),
            Verdict::ignored(),
        ),
        conn(
            "ping-wrong-length",
            "RFC 9113 §6.7",
            vec![Frame::new(kind::PING, 0, 0, vec![0; 7])],
            FRAME_SIZE,
        ),
        conn(
            "ping-on-a-stream",
            "RFC 9113 §6.7",
            vec![Frame::new(kind::PING, 0, 1, vec![0; 8])],
            PROTOCOL,
        ),
        conn(
            "goaway-on-a-stream",
            "RFC 9113 §6.8",
            vec![Frame::new(kind::GOAWAY, 0, 1, vec![0; 8])],
            PROTOCOL,
        ),
        conn(
            "window-update-wrong-length",
            "RFC 9113 §6.9",
            vec![Frame::new(kind::WINDOW_UPDATE, 0, 0, vec![0, 0, 1])],
            FRAME_SIZE,
        ),
        conn(
            "window-update-zero-on-connection",
            "RFC 9113 §6.9",
            vec![Frame::window_update(0, 0)],
            PROTOCOL,
        ),
        v(
            "window-update-zero-on-stream",
            FrameRules,
            "RFC 9113 §6.9",
            Attack::Frames(vec![open_stream(), Frame::window_update(3, 0)]),
            Verdict::stream(PROTOCOL, Reach::Incomplete),
        ),
        conn(
            "window-update-overflows-connection",
            "RFC 9113 §6.9.1",
            vec![
                Frame::window_update(0, 0x7fff_ffff),
                Frame::window_update(0, 0x7fff_ffff),
            ],
            FLOW,
        ),
        v(
            "window-update-overflows-stream",
            FrameRules,
            "RFC 9113 §6.9.1",
            Attack::Frames(vec![open_stream(), Frame::window_update(3, 0x7fff_ffff)]),
            Verdict::stream(FLOW, Reach::Incomplete),
        ),
        v(
            "priority-wrong-length",
            FrameRules,
            "RFC 9113 §6.3",
            Attack::Frames(vec![Frame::new(kind::PRIORITY, 0, 3, vec![0, 0, 0, 0])]),
            Verdict::stream(FRAME_SIZE, Reach::Nothing),
        ),
        conn(
            "priority-on-stream-0",
            "RFC 9113 §6.3",
            vec![Frame::priority(0, 1, false, 16)],
            PROTOCOL,
        ),
        v(
            "priority-on-idle-stream",
            FrameRules,
            "RFC 9113 §5.1, §6.3",
            Attack::Frames(vec![Frame::priority(7, 0, false, 16)]),
            Verdict::ignored(),
        ),
        v(
            "priority-self-dependency",
            FrameRules,
            "RFC 7540 §5.3.1",
            Attack::Frames(vec![Frame::priority(3, 3, false, 16)]),
            Verdict::stream(PROTOCOL, Reach::Nothing),
        ),
        v(
            "headers-self-dependency",
            FrameRules,
            "RFC 7540 §5.3.1",
            Attack::Frames(vec![Frame::headers(
                3,
                [&[0, 0, 0, 3, 15][..], &Req::get().header_block()].concat(),
                flag::END_HEADERS | flag::END_STREAM | flag::PRIORITY,
            )]),
            Verdict::stream(PROTOCOL, Reach::Nothing),
        ),
        conn(
            "headers-frame-too-large",
            "RFC 9113 §4.2",
            vec![Frame::headers(
                3,
                base_then(&Block::new().literal(b"x-pad", &vec![b'a'; 16_400]).into_bytes()),
                flag::END_HEADERS | flag::END_STREAM,
            )],
            FRAME_SIZE,
        ),
        conn(
            "data-frame-too-large",
            "RFC 9113 §4.2",
            vec![open_stream(), Frame::data(3, &vec![b'a'; 16_385], true)],
            FRAME_SIZE,
        ),
        conn(
            "push-promise-from-client",
            "RFC 9113 §8.4",
            vec![
                open_stream(),
                Frame::new(
                    kind::PUSH_PROMISE,
                    flag::END_HEADERS,
                    3,
                    [&[0, 0, 0, 2][..], &Req::get().header_block()].concat(),
                ),
            ],
            PROTOCOL,
        ),
        conn(
            "continuation-interrupted",
            "RFC 9113 §6.10",
            vec![
                Frame::headers(3, Req::get().header_block(), flag::END_STREAM),
                Frame::ping([0; 8], false),
            ],
            PROTOCOL,
        ),
        conn(
            "continuation-on-another-stream",
            "RFC 9113 §6.10",
            vec![
                Frame::headers(3, Req::get().header_block(), flag::END_STREAM),
                Frame::continuation(5, Vec::new(), true),
            ],
            PROTOCOL,
        ),
        conn(
            "headers-padding-too-long",
            "RFC 9113 §6.2",
            vec![Frame::headers(3, Req::get().header_block(), flag::END_HEADERS | flag::END_STREAM)
                .padded(255, 0)],
            PROTOCOL,
        ),
        conn(
            "data-padding-too-long",
            "RFC 9113 §6.1",
            vec![open_stream(), Frame::data(3, b"hello", true).padded(200, 0)],
            PROTOCOL,
        ),
        v(
            "data-after-end-stream",
            FrameRules,
            "RFC 9113 §5.1 (half-closed remote)",
            Attack::Frames(vec![
                Frame::headers(3, Req::get().header_block(), flag::END_HEADERS | flag::END_STREAM),
                Frame::data(3, b"smuggled", true),
            ]),
            Verdict {
                answer: Answer::StreamError {
                    codes: &[Reason::STREAM_CLOSED],
                    statuses: &[],
                },
                reach: Reach::Any,
            },
        ),
        v(
            "unknown-frame-type",
            FrameRules,
            "RFC 9113 §4.1, §5.5",
            Attack::Frames(vec![
                Frame::new(0xfa, 0xff, 0, b"ignore me".to_vec()),
                Frame::new(0xfb, 0, 1, b"ignore me too".to_vec()),
            ]),
            Verdict::ignored(),
        ),
        v(
            "preface-invalid",
            FrameRules,
            "RFC 9113 §3.4",
            Attack::Opening(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n".to_vec()),
            Verdict {
                answer: Answer::ConnectionError {
                    codes: PROTOCOL,
                    or_eof: true,
                },
                reach: Reach::Nothing,
            },
        ),
        v(
            "preface-then-ping-not-settings",
            FrameRules,
            "RFC 9113 §3.4",
            Attack::Opening(
                [super::frame::PREFACE, &Frame::ping([0; 8], false).encode()].concat(),
            ),
            Verdict {
                answer: Answer::ConnectionError {
                    codes: PROTOCOL,
                    or_eof: true,
                },
                reach: Reach::Nothing,
            },
        ),
        // --- HPACK decoding errors (RFC 9113 §4.3: COMPRESSION_ERROR) ---
        hpack(
            "hpack-index-zero",
            "RFC 7541 §6.1",
            base_then(&[0x80]),
            "the GET's fields + indexed field 0",
        ),
        hpack(
            "hpack-index-past-the-table",
            "RFC 7541 §2.3.3",
            base_then(&Block::new().indexed(70).into_bytes()),
            "the GET's fields + index 70 (empty dynamic table)",
        ),
        hpack(
            "hpack-size-update-over-the-limit",
            "RFC 7541 §6.3",
            Block::new()
                .size_update(1 << 20)
                .into_bytes()
                .into_iter()
                .chain(base_then(&[]))
                .collect(),
            "size update to 1 MiB (limit 4096), then the GET's fields",
        ),
        hpack(
            "hpack-size-update-after-a-field",
            "RFC 7541 §4.2",
            base_then(&Block::new().size_update(0).into_bytes()),
            "the GET's fields, then a size update",
        ),
        hpack(
            "hpack-huffman-eos",
            "RFC 7541 §5.2",
            base_then(&[0x00, 0x01, b'x', 0x84, 0xff, 0xff, 0xff, 0xff]),
            "the GET's fields + a value that Huffman-decodes to EOS",
        ),
        hpack(
            "hpack-huffman-padding-zeros",
            "RFC 7541 §5.2",
            base_then(&[0x00, 0x01, b'x', 0x81, 0b0001_1000]),
            "the GET's fields + a Huffman value padded with zeros",
        ),
        hpack(
            "hpack-huffman-padding-too-long",
            "RFC 7541 §5.2",
            base_then(&[0x00, 0x01, b'x', 0x82, 0b0001_1111, 0xff]),
            "the GET's fields + a Huffman value with 11 bits of padding",
        ),
        hpack(
            "hpack-integer-overflow",
            "RFC 7541 §5.1",
            base_then(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            "the GET's fields + an index of more than 64 bits",
        ),
        hpack(
            "hpack-string-past-the-block",
            "RFC 7541 §5.2",
            base_then(&[0x00, 0x01, b'x', 0x64, b'a', b'b', b'c']),
            "the GET's fields + a 100-byte string holding 3 bytes",
        ),
        hpack(
            "hpack-block-cut-short",
            "RFC 7541 §3.1",
            base_then(&[0x00, 0x05, b'x']),
            "the GET's fields + half a literal",
        ),
    ];
    all.extend(super::flood::vectors());
    all
}

/// Every name once.
#[cfg(test)]
mod tests {
    #[test]
    fn vector_names_are_unique_and_enough() {
        let all = super::all();
        let mut names: Vec<&str> = all.iter().map(|v| v.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len(), "duplicate vector names");
        assert!(before >= 80, "{before} vectors");
    }
}
