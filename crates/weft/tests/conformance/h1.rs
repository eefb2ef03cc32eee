//! The HTTP/1.1 side of the suite: each vector of [`h1_vectors`](crate::h1_vectors) is
//! sent as raw bytes through one hop and two hops, and judged against its expected
//! verdict by what the client got back and what the [`Origin`] logged.
//!
//! - One `#[test]` per path runs every vector and reports every mismatch at once.
//! - `WEFT_VECTOR=name[,name…]` runs only those vectors (the table test then skips).
//! - The table test renders the verdict table of `docs/security/http-conformance.md`
//!   (section `h1-vectors`) from the same runs; `WEFT_BLESS=1` rewrites it.
//!
//! After every vector a *canary* (`GET /__canary/<vector>` on a new client connection)
//! must get its own answer and reach the origin intact: a vector that left half a request
//! on the proxy's pooled upstream connection, or an extra response in its queue, shows
//! up there.

use std::fmt;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::client::{self, Exchange};
use crate::h1_vectors::vectors;
use crate::origin::{escape, Activity, Origin, Request};
use crate::table::{self, Row};
use crate::topology::{Hops, Lane, PortProtocol, Topology};

/// Origins (and lanes) per path: vectors in different lanes run concurrently.
const LANES: usize = 4;

/// How long after an exchange the origin's log is read (bytes in flight land).
const SETTLE: Duration = Duration::from_millis(30);

/// The `Host` every well-formed vector sends.
pub const HOST: &str = "app.example";

/// One vector: raw bytes and the verdict a strict proxy gives them.
pub struct Vector {
    /// Unique, kebab-case; what `WEFT_VECTOR` selects.
    pub name: &'static str,
    /// What it probes.
    pub class: Class,
    /// Exactly what the client writes.
    pub bytes: Vec<u8>,
    /// The expected verdict.
    pub expect: Expect,
}

/// The vector classes of issue 12, item 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Well-formed requests every path must carry unchanged.
    Baseline,
    /// `Content-Length` together with `Transfer-Encoding`.
    ClTe,
    /// `Transfer-Encoding` values and spellings other than one `chunked`.
    TeObfuscation,
    /// `Content-Length` values that are not `1*DIGIT`, or disagree.
    InvalidContentLength,
    /// Chunk sizes and chunk framing.
    ChunkSize,
    /// Chunk extensions.
    ChunkExtension,
    /// A CR not followed by LF.
    BareCr,
    /// LF alone as a line terminator.
    BareLf,
    /// Header lines continued with leading whitespace.
    ObsFold,
    /// Whitespace between a field name and its colon.
    WhitespaceBeforeColon,
    /// Control characters and non-token names.
    ControlCharacters,
    /// Missing, repeated or malformed `Host`.
    InvalidHost,
    /// Request-line syntax and request-target forms.
    RequestLine,
    /// HTTP versions.
    Version,
    /// Methods.
    Method,
    /// `Connection` nominating framing or `Host` fields, or others.
    ConnectionHeader,
    /// absolute-form targets against `Host`.
    AbsoluteForm,
    /// `OPTIONS *` and `*` with other methods.
    AsteriskForm,
    /// `CONNECT` and authority-form.
    Connect,
    /// Request-line and header-section size limits.
    SizeLimit,
    /// Client-supplied identity headers.
    IdentityForgery,
    /// Several requests on one connection.
    Pipelining,
    /// Leaving something on the proxy's pooled upstream connection.
    UpstreamPoisoning,
    /// Making the proxy hand a response to the wrong request.
    ResponseQueue,
}

/// Which statuses a refusal may carry.
#[derive(Clone, Copy, Debug)]
pub enum Status {
    /// Exactly this one.
    Is(u16),
    /// Any of these.
    OneOf(&'static [u16]),
    /// Any 4xx (size limits: 400, 413, 414 and 431 are all right).
    Any4xx,
}

/// What must happen after the forwarded requests.
#[derive(Clone, Copy, Debug)]
pub enum Then {
    /// Nothing: the client gets exactly the forwarded requests' responses.
    Nothing,
    /// The proxy answers the next request itself with this status and
    /// `connection: close`, closes, and nothing of it reaches the origin.
    Refused(Status),
    /// The client sent an incomplete request and leaves: no complete request of it may
    /// reach the origin, and the canary must still be answered correctly.
    Abandoned,
    /// The proxy closes the connection after the forwarded requests' answers, and
    /// nothing after them reaches the origin (RFC 9112 §6.1: a request with both
    /// Content-Length and Transfer-Encoding is read by its chunked framing alone, the
    /// Content-Length removed, and the connection closed after the response).
    Closed,
}

/// The expected verdict.
pub struct Expect {
    /// The requests the origin must receive, in order.
    pub forwarded: Vec<Want>,
    /// What follows them.
    pub then: Then,
}

/// One request the origin must receive, and what it must look like.
#[derive(Clone, Debug)]
pub struct Want {
    method: String,
    target: String,
    host: HostIs,
    body: Vec<u8>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// What the forwarded `Host` must be.
#[derive(Clone, Debug)]
enum HostIs {
    Exact(String),
    /// The authority the listener routed by (the lane's service), not the client's.
    Routed,
}

/// One vector's result on one path.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The vector.
    pub name: &'static str,
    /// `None`: as expected.
    pub mismatch: Option<Mismatch>,
    /// What happened, pass or not (printed for `WEFT_VECTOR` runs).
    pub report: String,
}

/// How the actual outcome differs from the expected one.
#[derive(Clone, Debug)]
pub struct Mismatch {
    /// Something unparsed, ambiguous or forged reached the origin or another client.
    pub unsafe_: bool,
    /// A short, stable description of what happened (table cell).
    pub summary: String,
    /// Everything needed to debug it: problems, exchange, origin log, canary.
    pub report: String,
}

/// A failed check: what, and how bad.
struct Problem {
    severity: Severity,
    label: String,
}

/// How bad a failed check is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Severity {
    /// The right thing was kept out, but not as the policy says (status, close, …).
    Differs,
    /// Something unparsed, ambiguous or forged reached the origin or another client.
    Unsafe,
    /// Bytes, but no complete request, reached the origin. Unsafe too, but whether it
    /// happens depends on timing (the proxy streamed the head before it met the bad
    /// body), so it is reported and does not change the table.
    UnsafeTiming,
}

// === impl Vector ===

impl Vector {
    /// How many final responses the client should get.
    fn expected_responses(&self) -> usize {
        self.expect.forwarded.len() + usize::from(matches!(self.expect.then, Then::Refused(_)))
    }

    /// A printable summary of the bytes: escaped, long runs folded, cut at 140 chars.
    pub fn bytes_summary(&self) -> String {
        summarize(&self.bytes, 140)
    }
}

// === impl Class ===

impl Class {
    /// The label used in the table.
    pub fn label(self) -> &'static str {
        match self {
            Class::Baseline => "baseline",
            Class::ClTe => "CL/TE conflict",
            Class::TeObfuscation => "TE obfuscation",
            Class::InvalidContentLength => "invalid Content-Length",
            Class::ChunkSize => "chunk-size",
            Class::ChunkExtension => "chunk-extension",
            Class::BareCr => "bare CR",
            Class::BareLf => "bare LF",
            Class::ObsFold => "obs-fold",
            Class::WhitespaceBeforeColon => "whitespace before colon",
            Class::ControlCharacters => "control characters",
            Class::InvalidHost => "invalid Host",
            Class::RequestLine => "request-line forms",
            Class::Version => "versions",
            Class::Method => "methods",
            Class::ConnectionHeader => "Connection header",
            Class::AbsoluteForm => "absolute-form vs Host",
            Class::AsteriskForm => "asterisk-form",
            Class::Connect => "CONNECT",
            Class::SizeLimit => "size limits",
            Class::IdentityForgery => "identity-header forgery",
            Class::Pipelining => "pipelining",
            Class::UpstreamPoisoning => "upstream poisoning",
            Class::ResponseQueue => "response-queue poisoning",
        }
    }
}

// === impl Status ===

impl Status {
    fn allows(self, status: u16) -> bool {
        match self {
            Status::Is(s) => s == status,
            Status::OneOf(set) => set.contains(&status),
            Status::Any4xx => (400..500).contains(&status),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Is(s) => write!(f, "{s}"),
            Status::OneOf(set) => {
                let s: Vec<String> = set.iter().map(u16::to_string).collect();
                f.write_str(&s.join("/"))
            }
            Status::Any4xx => f.write_str("4xx"),
        }
    }
}

// === impl Expect ===

impl Expect {
    /// Refused with `status`, nothing forwarded.
    pub fn refused(status: Status) -> Self {
        Self {
            forwarded: Vec::new(),
            then: Then::Refused(status),
        }
    }

    /// Exactly `wants` forwarded and answered.
    pub fn forwarded(wants: Vec<Want>) -> Self {
        Self {
            forwarded: wants,
            then: Then::Nothing,
        }
    }

    /// `wants` forwarded and answered, then the next request refused with `status`.
    pub fn forwarded_then_refused(wants: Vec<Want>, status: Status) -> Self {
        Self {
            forwarded: wants,
            then: Then::Refused(status),
        }
    }

    /// Exactly `wants` forwarded and answered, then the connection closes.
    pub fn forwarded_then_closed(wants: Vec<Want>) -> Self {
        Self {
            forwarded: wants,
            then: Then::Closed,
        }
    }

    /// `wants` forwarded, then an incomplete request the client abandons.
    pub fn abandoned(wants: Vec<Want>) -> Self {
        Self {
            forwarded: wants,
            then: Then::Abandoned,
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.forwarded.len();
        match (n, self.then) {
            (0, Then::Refused(s)) => write!(f, "refused {s}"),
            (n, Then::Refused(s)) => write!(f, "forwarded {n}, then refused {s}"),
            (n, Then::Nothing) => write!(f, "forwarded {n}"),
            (n, Then::Closed) => write!(f, "forwarded {n}, then closed"),
            (0, Then::Abandoned) => f.write_str("nothing forwarded (abandoned)"),
            (n, Then::Abandoned) => write!(f, "forwarded {n}, rest abandoned"),
        }
    }
}

// === impl Want ===

impl Want {
    /// `method target`, `Host: app.example`, empty body.
    pub fn new(method: &str, target: &str) -> Self {
        Self {
            method: method.to_owned(),
            target: target.to_owned(),
            host: HostIs::Exact(HOST.to_owned()),
            body: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// `GET target`.
    pub fn get(target: &str) -> Self {
        Self::new("GET", target)
    }

    /// `POST target` with `body`.
    pub fn post(target: &str, body: &[u8]) -> Self {
        Self::new("POST", target).body(body)
    }

    /// The body the origin must receive.
    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    /// The forwarded `Host` must be `host`.
    pub fn host(mut self, host: &str) -> Self {
        self.host = HostIs::Exact(host.to_owned());
        self
    }

    /// The forwarded `Host` must be the routed service, whatever the client sent.
    pub fn routed_host(mut self) -> Self {
        self.host = HostIs::Routed;
        self
    }

    /// Header `name` must be present once with `value`.
    pub fn header(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_owned(), Some(value.to_vec())));
        self
    }

    /// Header `name` must be absent.
    pub fn absent(mut self, name: &str) -> Self {
        self.headers.push((name.to_owned(), None));
        self
    }
}

// === running ===

static RESULTS: [OnceLock<Vec<Outcome>>; 2] = [OnceLock::new(), OnceLock::new()];

/// The outcomes of every selected vector on `hops`, run once per test binary.
fn results(hops: Hops) -> &'static [Outcome] {
    let cell = &RESULTS[match hops {
        Hops::One => 0,
        Hops::Two => 1,
    }];
    cell.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(run(hops))
    })
}

/// `WEFT_VECTOR`, split on commas; empty when unset.
fn selection() -> Vec<String> {
    std::env::var("WEFT_VECTOR")
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default()
}

async fn run(hops: Hops) -> Vec<Outcome> {
    let started = Instant::now();
    let selected = selection();
    let all = vectors();
    let chosen: Vec<Vector> = all
        .into_iter()
        .filter(|v| selected.is_empty() || selected.iter().any(|s| s == v.name))
        .collect();
    assert!(
        !chosen.is_empty(),
        "WEFT_VECTOR={selected:?} names no HTTP/1.1 vector"
    );
    let mut origins = Vec::new();
    for _ in 0..LANES.min(chosen.len()) {
        origins.push(Origin::spawn().await);
    }
    let addrs: Vec<_> = origins.iter().map(Origin::addr).collect();
    let mut topology = Topology::start(hops, PortProtocol::Http, &addrs).await;
    let xfcc = topology.expected_xfcc();

    // Lane i runs vectors i, i+LANES, … in order, on its own origin.
    let mut per_lane: Vec<Vec<(usize, Vector)>> = (0..origins.len()).map(|_| Vec::new()).collect();
    for (i, v) in chosen.into_iter().enumerate() {
        per_lane[i % origins.len()].push((i, v));
    }
    let tasks: Vec<_> = per_lane
        .into_iter()
        .zip(origins)
        .zip(topology.lanes().to_vec())
        .map(|((vectors, origin), lane)| {
            let xfcc = xfcc.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for (i, v) in vectors {
                    out.push((i, run_one(&v, &lane, &origin, xfcc.as_deref()).await));
                }
                out
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("lane task"));
    }
    outcomes.sort_by_key(|(i, _)| *i);
    assert!(
        topology.alive(),
        "{hops}: a proxy exited during the run\n{}",
        topology.log_tails(60)
    );
    eprintln!(
        "h1 vectors, {hops}: {} run in {:.1?}",
        outcomes.len(),
        started.elapsed()
    );
    outcomes.into_iter().map(|(_, o)| o).collect()
}

async fn run_one(v: &Vector, lane: &Lane, origin: &Origin, xfcc: Option<&str>) -> Outcome {
    let mark = origin.mark();
    let exchange = client::exchange(lane.listen, &v.bytes, v.expected_responses()).await;
    tokio::time::sleep(SETTLE).await;
    let activity = origin.since(&mark);

    let canary_target = format!("/__canary/{}", v.name);
    let canary_bytes =
        format!("GET {canary_target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let mark = origin.mark();
    let canary = client::exchange(lane.listen, canary_bytes.as_bytes(), 1).await;
    tokio::time::sleep(SETTLE).await;
    let canary_activity = origin.since(&mark);

    let outcome = judge(
        v,
        lane,
        xfcc,
        &exchange,
        &activity,
        &canary_target,
        &canary,
        &canary_activity,
    );
    if activity.is_dirty() || canary_activity.is_dirty() || !origin.since(&mark).pending.is_empty()
    {
        // Whatever is half-parsed must not bleed into the next vector.
        origin.close_all();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
fn judge(
    v: &Vector,
    lane: &Lane,
    xfcc: Option<&str>,
    exchange: &Exchange,
    activity: &Activity,
    canary_target: &str,
    canary: &Exchange,
    canary_activity: &Activity,
) -> Outcome {
    let mut problems = Vec::new();
    let mut fail = |severity: Severity, label: String| problems.push(Problem { severity, label });
    let wants = &v.expect.forwarded;
    let got = &activity.requests;

    // What reached the origin.
    if got.len() > wants.len() {
        fail(
            Severity::Unsafe,
            format!("origin got {} request(s), want {}", got.len(), wants.len()),
        );
    } else if got.len() < wants.len() {
        fail(
            Severity::Differs,
            format!("origin got {} request(s), want {}", got.len(), wants.len()),
        );
    }
    for (i, (want, request)) in wants.iter().zip(got).enumerate() {
        for label in check_request(want, request, lane) {
            fail(Severity::Unsafe, format!("request {}: {label}", i + 1));
        }
    }
    for (i, request) in got.iter().enumerate() {
        if let Some(label) = check_identity(request, xfcc) {
            fail(Severity::Unsafe, format!("request {}: {label}", i + 1));
        }
    }
    let abandoned = matches!(v.expect.then, Then::Abandoned);
    if !activity.errors.is_empty() && !abandoned {
        fail(
            Severity::UnsafeTiming,
            "origin got bytes it could not parse".to_owned(),
        );
    }
    if !activity.pending.is_empty() && !abandoned {
        fail(
            Severity::UnsafeTiming,
            "origin left holding a partial request".to_owned(),
        );
    }
    if wants.is_empty() && !abandoned && !activity.bytes.is_empty() && got.is_empty() {
        fail(
            Severity::UnsafeTiming,
            format!("origin received {} bytes", activity.byte_count()),
        );
    }

    // What came back to the client: the forwarded requests' answers, in order.
    for (i, request) in got.iter().enumerate().take(wants.len()) {
        match exchange.responses.get(i) {
            None => fail(Severity::Differs, format!("no response {}", i + 1)),
            Some(r) if r.header("x-origin-seq") != Some(&request.seq.to_string()) => fail(
                Severity::Unsafe,
                format!(
                    "response {} is not the answer to request {} (status {}, x-origin-seq {:?})",
                    i + 1,
                    i + 1,
                    r.status,
                    r.header("x-origin-seq")
                ),
            ),
            Some(_) => {}
        }
    }
    let n = wants.len();
    match v.expect.then {
        Then::Nothing => {
            if exchange.responses.len() > n {
                let extra = &exchange.responses[n..];
                let from_origin = extra.iter().any(|r| r.header("x-origin-seq").is_some());
                fail(
                    if from_origin {
                        Severity::Unsafe
                    } else {
                        Severity::Differs
                    },
                    format!("{} extra response(s) [{}]", extra.len(), statuses(extra)),
                );
            }
        }
        Then::Refused(status) => match exchange.responses.get(n) {
            None => fail(
                Severity::Differs,
                if exchange.closed() {
                    "closed without a response".to_owned()
                } else {
                    "no response".to_owned()
                },
            ),
            Some(r) => {
                if r.header("x-origin-seq").is_some() {
                    fail(Severity::Unsafe, format!("{} from the origin", r.status));
                } else {
                    if !status.allows(r.status) {
                        fail(
                            Severity::Differs,
                            format!("status {} (want {status})", r.status),
                        );
                    }
                    if !r.closes() {
                        fail(Severity::Differs, "no `connection: close`".to_owned());
                    }
                    if !exchange.closed() {
                        fail(Severity::Differs, "connection left open".to_owned());
                    }
                }
                if exchange.responses.len() > n + 1 {
                    fail(
                        Severity::Unsafe,
                        format!(
                            "{} response(s) after the refusal",
                            exchange.responses.len() - n - 1
                        ),
                    );
                }
            }
        },
        Then::Closed => {
            if exchange.responses.len() > n {
                let extra = &exchange.responses[n..];
                fail(
                    Severity::Unsafe,
                    format!(
                        "{} response(s) after the last forwarded one [{}]",
                        extra.len(),
                        statuses(extra)
                    ),
                );
            }
            if !exchange.closed() {
                fail(Severity::Differs, "connection left open".to_owned());
            }
        }
        Then::Abandoned => {
            if exchange.responses.len() > n {
                let extra = &exchange.responses[n..];
                let from_origin = extra.iter().any(|r| r.header("x-origin-seq").is_some());
                if from_origin {
                    fail(
                        Severity::Unsafe,
                        "the incomplete request was answered by the origin".to_owned(),
                    );
                }
            }
        }
    }

    // The canary: its own answer, and the origin saw exactly it.
    // Errors on other connections may be the vector's own leftovers closing late.
    let canary_ok = canary.responses.len() == 1
        && canary.responses[0].status == 200
        && canary.responses[0].header("x-origin-target") == Some(canary_target)
        && canary_activity.requests.len() == 1
        && canary_activity.requests[0].target == canary_target
        && canary_activity.requests[0].body.is_empty()
        && !canary_activity
            .errors
            .iter()
            .any(|e| e.connection == canary_activity.requests[0].connection);
    if !canary_ok {
        fail(Severity::Unsafe, "canary poisoned".to_owned());
    }

    let unsafe_ = problems.iter().any(|p| p.severity != Severity::Differs);
    let summary = if problems.is_empty() {
        "pass".to_owned()
    } else {
        summary(exchange, activity, &problems)
    };
    let mut report = format!(
        "vector {} [{}]\n  bytes:    {}\n  expected: {}\n  actual:   {summary}\n",
        v.name,
        v.class.label(),
        escape(&v.bytes, 400),
        v.expect,
    );
    if !problems.is_empty() {
        report.push_str("  problems:\n");
    }
    for p in &problems {
        let _ = writeln!(
            report,
            "    - {}{}",
            match p.severity {
                Severity::Differs => "",
                Severity::Unsafe => "UNSAFE: ",
                Severity::UnsafeTiming => "UNSAFE (timing): ",
            },
            p.label
        );
    }
    report.push_str(&indent(&exchange.describe()));
    report.push_str(&indent(&activity.describe()));
    if !canary_ok || problems.is_empty() {
        let _ = writeln!(report, "  canary {canary_target}:");
        report.push_str(&indent(&canary.describe()));
        report.push_str(&indent(&canary_activity.describe()));
    }
    if let (Some(a), Some(b)) = (got.last(), canary_activity.requests.first()) {
        let _ = writeln!(
            report,
            "  canary on origin conn#{} (the vector's last request on conn#{})",
            b.connection, a.connection
        );
    }
    Outcome {
        name: v.name,
        mismatch: (!problems.is_empty()).then(|| Mismatch {
            unsafe_,
            summary,
            report: report.clone(),
        }),
        report,
    }
}

/// The checks a [`Want`] makes of one forwarded request; each failure as a label.
fn check_request(want: &Want, request: &Request, lane: &Lane) -> Vec<String> {
    let mut failed = Vec::new();
    if request.method != want.method {
        failed.push(format!(
            "method {:?} (want {:?})",
            request.method, want.method
        ));
    }
    if request.target != want.target {
        failed.push(format!(
            "target {:?} (want {:?})",
            shorten(&request.target),
            shorten(&want.target)
        ));
    }
    let hosts = request.header_values("host");
    match (&want.host, hosts.as_slice()) {
        (_, []) => failed.push("no Host".to_owned()),
        (_, [_, _, ..]) => failed.push(format!("{} Host fields", hosts.len())),
        (HostIs::Exact(h), [got]) if got != &h.as_bytes() => {
            failed.push(format!("Host {:?} (want {h:?})", escape(got, 60)));
        }
        (HostIs::Routed, [got]) => {
            // The service's name as the proxy spells it (`origin-1`, `origin-1:80`,
            // `origin-1.default:80`, …): routed, not client-chosen.
            let got_text = String::from_utf8_lossy(got);
            let service = lane.service.as_str();
            let routed = got_text == service
                || got_text.starts_with(&format!("{service}."))
                || got_text.starts_with(&format!("{service}:"));
            if !routed {
                failed.push(format!(
                    "Host {:?} (want the routed service {:?})",
                    escape(got, 60),
                    lane.service
                ));
            }
        }
        _ => {}
    }
    if request.body != want.body {
        failed.push(format!(
            "body {:?} (want {:?})",
            escape(&request.body, 60),
            escape(&want.body, 60)
        ));
    }
    let te = request.header_values("transfer-encoding");
    let cl = request.header_values("content-length");
    if !te.is_empty() && !cl.is_empty() {
        failed.push("both transfer-encoding and content-length".to_owned());
    }
    if cl.len() > 1 {
        failed.push(format!("{} content-length fields", cl.len()));
    }
    for (name, value) in &want.headers {
        let values = request.header_values(name);
        match (value, values.as_slice()) {
            (None, []) => {}
            (None, _) => failed.push(format!("{name} present")),
            (Some(v), [got]) if got == v => {}
            (Some(v), _) => failed.push(format!(
                "{name} {:?} (want {:?})",
                values.iter().map(|g| escape(g, 40)).collect::<Vec<_>>(),
                escape(v, 40)
            )),
        }
    }
    failed
}

/// `x-forwarded-client-cert` (and its trailer) is exactly what the path sets.
fn check_identity(request: &Request, xfcc: Option<&str>) -> Option<String> {
    let values = request.header_values("x-forwarded-client-cert");
    let ok = match xfcc {
        None => values.is_empty(),
        Some(want) => values.len() == 1 && values[0] == want.as_bytes(),
    };
    let in_trailers = request
        .trailers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-client-cert"));
    if ok && !in_trailers {
        return None;
    }
    let shown: Vec<String> = values.iter().map(|v| escape(v, 120)).collect();
    Some(format!(
        "x-forwarded-client-cert {shown:?}{} (want {xfcc:?})",
        if in_trailers { " and in trailers" } else { "" }
    ))
}

/// The table cell: stable from run to run, so only what does not depend on timing (the
/// client's answers, whether the proxy closed, how many requests reached the origin).
fn summary(exchange: &Exchange, activity: &Activity, problems: &[Problem]) -> String {
    let unsafe_ = problems.iter().any(|p| p.severity == Severity::Unsafe);
    let client = if exchange.responses.is_empty() {
        "no response".to_owned()
    } else {
        statuses(&exchange.responses)
    };
    let closed = if exchange.closed() { ", closed" } else { "" };
    let origin = match activity.requests.len() {
        0 => "no request".to_owned(),
        n => format!("{n} req"),
    };
    let mut out = format!(
        "{}: client {client}{closed}; origin {origin}",
        if unsafe_ { "UNSAFE" } else { "differs" }
    );
    if problems.iter().any(|p| p.label == "canary poisoned") {
        out.push_str("; canary poisoned");
    }
    out
}

fn statuses(responses: &[client::Response]) -> String {
    let s: Vec<String> = responses.iter().map(|r| r.status.to_string()).collect();
    s.join(" ")
}

fn indent(text: &str) -> String {
    text.lines().fold(String::new(), |mut out, l| {
        let _ = writeln!(out, "  {l}");
        out
    })
}

fn shorten(s: &str) -> String {
    if s.len() > 80 {
        format!("{}…(+{})", &s[..80], s.len() - 80)
    } else {
        s.to_owned()
    }
}

/// `bytes` escaped, with runs of more than 8 equal bytes folded to `x×N`, cut at `max`.
pub fn summarize(bytes: &[u8], max: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|&&b| b == bytes[i]).count();
        if run > 8 {
            let _ = write!(out, "{}×{run}", escape(&bytes[i..=i], 1));
            i += run;
        } else {
            out.push_str(&escape(&bytes[i..=i], 1));
            i += 1;
        }
        if out.len() > max {
            let _ = write!(out, "…({} bytes)", bytes.len());
            break;
        }
    }
    out
}

fn report(hops: Hops, outcomes: &[Outcome]) {
    if !selection().is_empty() {
        for o in outcomes {
            eprintln!("{hops}: {}", o.report);
        }
    }
    let failed: Vec<&Mismatch> = outcomes
        .iter()
        .filter_map(|o| o.mismatch.as_ref())
        .collect();
    if failed.is_empty() {
        return;
    }
    let unsafe_count = failed.iter().filter(|m| m.unsafe_).count();
    let mut text = String::new();
    for m in &failed {
        text.push_str(&m.report);
        text.push('\n');
    }
    panic!(
        "{hops}: {} of {} HTTP/1.1 vectors differ from the strict policy ({unsafe_count} accepted unsafely):\n\n{text}",
        failed.len(),
        outcomes.len()
    );
}

// === tests ===

#[test]
fn h1_vectors_one_hop() {
    report(Hops::One, results(Hops::One));
}

#[test]
fn h1_vectors_two_hops() {
    report(Hops::Two, results(Hops::Two));
}

/// The `h1-vectors` table of `docs/security/http-conformance.md` is what the vectors
/// say and what this tree does (`WEFT_BLESS=1` rewrites it).
#[test]
fn h1_verdict_table_matches_the_doc() {
    if !selection().is_empty() {
        eprintln!("WEFT_VECTOR is set: the table needs every vector; skipped");
        return;
    }
    let vectors = vectors();
    let cell = |o: &Outcome| match &o.mismatch {
        None => "pass".to_owned(),
        Some(m) => m.summary.clone(),
    };
    // Both paths at once (each runs on its own runtime).
    let (one, two) = std::thread::scope(|s| {
        let one = s.spawn(|| results(Hops::One));
        let two = s.spawn(|| results(Hops::Two));
        (one.join().expect("one hop"), two.join().expect("two hops"))
    });
    let rows: Vec<Row> = vectors
        .iter()
        .zip(one.iter().zip(two))
        .map(|(v, (a, b))| Row {
            name: v.name.to_owned(),
            class: v.class.label().to_owned(),
            bytes: v.bytes_summary(),
            expected: v.expect.to_string(),
            one_hop: cell(a),
            two_hops: cell(b),
        })
        .collect();
    let failing = |o: &[Outcome]| o.iter().filter(|o| o.mismatch.is_some()).count();
    let mut rendered = format!(
        "{} vectors; differing from the policy: {} on one hop, {} on two hops.\n\n",
        vectors.len(),
        failing(one),
        failing(two)
    );
    rendered.push_str(&table::render(&rows));
    if let Err(diff) = table::sync_section("h1-vectors", &rendered) {
        panic!("{diff}");
    }
}

#[test]
fn vector_names_are_unique_and_kebab_case() {
    let vectors = vectors();
    let mut names: Vec<&str> = vectors.iter().map(|v| v.name).collect();
    for name in &names {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}"
        );
    }
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate vector names");
    assert!(before >= 150, "only {before} vectors");
}

/// The judge itself, on made-up exchanges: it must catch what the proxy under test
/// might do wrong, not only bless what it does right.
#[cfg(test)]
mod judge_tests {
    use super::*;
    use crate::client::{parse_responses, End};
    use crate::origin::Framing;

    fn lane() -> Lane {
        Lane {
            index: 0,
            service: "origin-0".to_owned(),
            listen: "127.0.0.1:1".parse().unwrap(),
            app: "127.0.0.1:2".parse().unwrap(),
        }
    }

    fn exchange(bytes: &[u8], end: End) -> Exchange {
        let (responses, interim, leftover) = parse_responses(bytes, end != End::Quiet);
        Exchange {
            received: bytes.to_vec(),
            responses,
            interim,
            leftover,
            end,
            write_error: None,
        }
    }

    fn ok(seq: u64, target: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-origin-seq: {seq}\r\nx-origin-target: {target}\r\n\r\n"
        )
        .into_bytes()
    }

    fn request(seq: u64, target: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            seq,
            connection: 0,
            method: "GET".to_owned(),
            target: target.to_owned(),
            version: "HTTP/1.1".to_owned(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
                .collect(),
            body: Vec::new(),
            framing: Framing::None,
            trailers: Vec::new(),
        }
    }

    fn seen(requests: Vec<Request>) -> Activity {
        Activity {
            requests,
            ..Activity::default()
        }
    }

    fn run(vector: &Vector, ex: &Exchange, activity: &Activity, canary: (&[u8], u64)) -> Outcome {
        let target = format!("/__canary/{}", vector.name);
        let canary_ex = exchange(canary.0, End::Closed);
        let canary_seen = seen(vec![request(canary.1, &target, &[("host", HOST)])]);
        judge(
            vector,
            &lane(),
            None,
            ex,
            activity,
            &target,
            &canary_ex,
            &canary_seen,
        )
    }

    fn vector(expect: Expect) -> Vector {
        Vector {
            name: "t",
            class: Class::Baseline,
            bytes: b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n".to_vec(),
            expect,
        }
    }

    #[test]
    fn passes_an_exact_forward() {
        let v = vector(Expect::forwarded(vec![Want::get("/")]));
        let out = run(
            &v,
            &exchange(&ok(1, "/"), End::Quiet),
            &seen(vec![request(1, "/", &[("host", HOST)])]),
            (&ok(2, "/__canary/t"), 2),
        );
        assert!(out.mismatch.is_none(), "{}", out.report);
    }

    #[test]
    fn a_canary_answered_with_another_requests_response_is_poisoned() {
        let v = vector(Expect::forwarded(vec![Want::get("/")]));
        let out = run(
            &v,
            &exchange(&ok(1, "/"), End::Quiet),
            &seen(vec![request(1, "/", &[("host", HOST)])]),
            (&ok(7, "/smuggled"), 2),
        );
        let m = out.mismatch.expect("mismatch");
        assert!(
            m.unsafe_ && m.summary.contains("canary poisoned"),
            "{}",
            m.report
        );
    }

    #[test]
    fn a_refusal_that_reached_the_origin_is_unsafe() {
        let v = vector(Expect::refused(Status::Is(400)));
        let out = run(
            &v,
            &exchange(&ok(1, "/"), End::Closed),
            &seen(vec![request(1, "/", &[("host", HOST)])]),
            (&ok(2, "/__canary/t"), 2),
        );
        let m = out.mismatch.expect("mismatch");
        assert!(m.unsafe_ && m.summary.starts_with("UNSAFE"), "{}", m.report);
    }

    #[test]
    fn a_forged_identity_header_is_unsafe() {
        let v = vector(Expect::forwarded(vec![Want::get("/")]));
        let forged = request(
            1,
            "/",
            &[("host", HOST), ("x-forwarded-client-cert", "URI=x")],
        );
        let out = run(
            &v,
            &exchange(&ok(1, "/"), End::Quiet),
            &seen(vec![forged]),
            (&ok(2, "/__canary/t"), 2),
        );
        let m = out.mismatch.expect("mismatch");
        assert!(
            m.unsafe_ && m.report.contains("x-forwarded-client-cert"),
            "{}",
            m.report
        );
    }

    #[test]
    fn a_refusal_without_close_only_differs() {
        let v = vector(Expect::refused(Status::Is(400)));
        let out = run(
            &v,
            &exchange(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
                End::Quiet,
            ),
            &Activity::default(),
            (&ok(1, "/__canary/t"), 1),
        );
        let m = out.mismatch.expect("mismatch");
        assert!(!m.unsafe_, "{}", m.report);
        assert_eq!(m.summary, "differs: client 400; origin no request");
    }
}
