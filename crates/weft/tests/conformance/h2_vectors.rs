//! The HTTP/2 vectors: what a hostile or broken client sends, and what a strict proxy
//! must do about it, written from RFC 9113 (§3.4 preface, §4 frames, §5 streams, §6
//! frame definitions, §8 HTTP semantics), RFC 7541 (HPACK) and public advisories
//! (CVE-2019-9511..9518, CVE-2023-44487, the 2024 CONTINUATION floods, HPACK bombs).
//!
//! Each vector is data: a name, a class, what is sent ([`Attack`]) and the verdict. This
//! file holds those types and the building blocks; the lists are in `h2_requests.rs`,
//! `h2_framing.rs` and `h2_flood.rs`; how a vector is run and judged is in `h2.rs`.
//!
//! The strict policy the verdicts encode:
//! - a malformed request (§8.1.1) is a stream error: `RST_STREAM(PROTOCOL_ERROR)` or a
//!   `400`; nothing reaches the origin; the connection's other streams carry on;
//! - an error the RFC makes connection-wide gets `GOAWAY` with the code the RFC names;
//! - framing fields never travel as trailers; identity headers never come from clients.

use std::fmt::{self, Write as _};
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
    /// What the table says instead of listing the fields (for long requests).
    pub(crate) described: Option<&'static str>,
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
            described: None,
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

    /// Shows `what` in the table instead of the fields.
    pub(crate) fn described(mut self, what: &'static str) -> Self {
        self.described = Some(what);
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

    /// What differs from `GET /v`, for the table: new or changed fields as
    /// `name: value`, a repeat of one the GET has as `+name: value`, missing ones as
    /// `no name`, and the field order when it changed.
    pub(crate) fn summary(&self) -> String {
        let base = Self::get().fields;
        let mut parts: Vec<String> = Vec::new();
        if let Some(what) = self.described {
            parts.push(what.to_owned());
        } else if let Some((_, holds)) = &self.block {
            parts.push(format!("block: {holds}"));
        } else {
            let count =
                |fields: &[Field], name: &[u8]| fields.iter().filter(|(n, _)| n == name).count();
            for (n, v) in &self.fields {
                if !base.contains(&(n.clone(), v.clone())) {
                    // A second field of a name the GET already has is marked as such.
                    let extra = count(&base, n) > 0 && count(&self.fields, n) > count(&base, n);
                    let mark = if extra { "+" } else { "" };
                    parts.push(format!("{mark}{}: {}", text(n), text(v)));
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

pub(crate) fn field(name: &str, value: &str) -> Field {
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
            Self::Opening(bytes) => match bytes.strip_prefix(super::frame::PREFACE) {
                Some(rest) => {
                    let mut rest = rest.to_vec();
                    let frames: Vec<String> = std::iter::from_fn(|| Frame::decode(&mut rest))
                        .map(|f| frame_summary(&f))
                        .collect();
                    format!("preface, then {}", collapse(frames))
                }
                None => format!("opening bytes `{}`", text(bytes)),
            },
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
        kind::SETTINGS if frame.payload.len().is_multiple_of(6) => {
            frame.payload.chunks(6).fold(String::new(), |mut out, c| {
                let id = u16::from_be_bytes([c[0], c[1]]);
                let value = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
                let _ = write!(out, " {}={value}", setting_name(id));
                out
            })
        }
        kind::PRIORITY if frame.payload.len() == 5 => {
            let dep = u32::from_be_bytes([
                frame.payload[0],
                frame.payload[1],
                frame.payload[2],
                frame.payload[3],
            ]);
            format!(" on s{}", dep & 0x7fff_ffff)
        }
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

fn setting_name(id: u16) -> String {
    match id {
        setting::HEADER_TABLE_SIZE => "HEADER_TABLE_SIZE".to_owned(),
        setting::ENABLE_PUSH => "ENABLE_PUSH".to_owned(),
        setting::MAX_CONCURRENT_STREAMS => "MAX_CONCURRENT_STREAMS".to_owned(),
        setting::INITIAL_WINDOW_SIZE => "INITIAL_WINDOW_SIZE".to_owned(),
        setting::MAX_FRAME_SIZE => "MAX_FRAME_SIZE".to_owned(),
        setting::MAX_HEADER_LIST_SIZE => "MAX_HEADER_LIST_SIZE".to_owned(),
        other => format!("0x{other:x}"),
    }
}

/// Runs of the same text as `text ×n`.
pub(crate) fn collapse(parts: Vec<String>) -> String {
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

pub(crate) fn alternatives(codes: &[Reason], statuses: &[u16]) -> String {
    let mut alts: Vec<String> = statuses.iter().map(u16::to_string).collect();
    alts.extend(codes.iter().map(|c| format!("RST_STREAM {c}")));
    alts.join(" or ")
}

// === checks ===

impl Check {
    pub(crate) fn new(
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
pub(crate) fn intact() -> Check {
    Check::new("the request as sent", |a, ctx| {
        expect_values(a, "x-probe", &[b"v"])?;
        expect_xfcc(a, ctx)
    })
}

pub(crate) fn expect_values(a: &Arrival, name: &str, want: &[&[u8]]) -> Result<(), String> {
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

pub(crate) fn expect_xfcc(a: &Arrival, ctx: &Ctx) -> Result<(), String> {
    let want: Vec<&[u8]> = ctx.xfcc.iter().map(String::as_bytes).collect();
    expect_values(a, "x-forwarded-client-cert", &want)
}

pub(crate) fn body_is(body: &'static [u8]) -> Check {
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

pub(crate) fn no_forged_xfcc() -> Check {
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

pub(crate) fn trailer_lacks(name: &'static str, says: &'static str) -> Check {
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

// === building blocks for the vector lists ===

pub(crate) const PROTOCOL: &[Reason] = &[Reason::PROTOCOL_ERROR];
pub(crate) const FRAME_SIZE: &[Reason] = &[Reason::FRAME_SIZE_ERROR];
pub(crate) const FLOW: &[Reason] = &[Reason::FLOW_CONTROL_ERROR];
pub(crate) const COMPRESSION: &[Reason] = &[Reason::COMPRESSION_ERROR];
pub(crate) const REFUSED: &[Reason] = &[
    Reason::REFUSED_STREAM,
    Reason::PROTOCOL_ERROR,
    Reason::ENHANCE_YOUR_CALM,
];

pub(crate) fn v(
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

pub(crate) fn bad(name: &'static str, class: Class, source: &'static str, req: Req) -> Vector {
    v(
        name,
        class,
        source,
        Attack::Request(req),
        Verdict::malformed(),
    )
}

pub(crate) fn bad_body(name: &'static str, class: Class, source: &'static str, req: Req) -> Vector {
    v(
        name,
        class,
        source,
        Attack::Request(req),
        Verdict::malformed_body(),
    )
}

pub(crate) fn ok(
    name: &'static str,
    class: Class,
    source: &'static str,
    req: Req,
    check: Check,
) -> Vector {
    v(
        name,
        class,
        source,
        Attack::Request(req),
        Verdict::forwarded(check),
    )
}

pub(crate) fn conn(
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

pub(crate) fn hpack(
    name: &'static str,
    source: &'static str,
    block: Vec<u8>,
    holds: &'static str,
) -> Vector {
    v(
        name,
        Class::Hpack,
        source,
        Attack::Request(Req::get().block(block, holds)),
        Verdict::connection(COMPRESSION),
    )
}

/// A header block of the base GET's fields followed by `tail`.
pub(crate) fn base_then(tail: &[u8]) -> Vec<u8> {
    Block::literals(&Req::get().fields).raw(tail).into_bytes()
}

/// Stream 3 opened by a POST that leaves the stream open.
pub(crate) fn open_stream() -> Frame {
    let block = Block::literals(&Req::get().set(":method", "POST").fields).into_bytes();
    Frame::headers(3, block, flag::END_HEADERS)
}

/// Every vector, in table order: requests (`h2_requests.rs`), frames and HPACK
/// (`h2_framing.rs`), floods (`h2_flood.rs`).
pub(crate) fn all() -> Vec<Vector> {
    let mut all = super::requests::vectors();
    all.extend(super::framing::vectors());
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
