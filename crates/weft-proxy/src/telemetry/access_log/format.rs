//! One [`Entry`] as one line: a JSON object, or text from a [`Template`]. Formatting
//! appends UTF-8 to the caller's byte buffer and allocates nothing per field; it runs
//! on the request's thread, once per request, so it never does I/O and writes
//! numbers, times and the common strings without `fmt`.

use std::cell::Cell;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Direction, Entry, ResponseFlags};

/// Every field of a line, in the order JSON writes them; a text template names them
/// as `{start_time}`. The config model's list, so a template is checked against the
/// same names when a config is read.
pub const FIELD_NAMES: [&str; 21] = weft_api::proxy::ACCESS_LOG_FIELDS;

/// The text format's default template, Envoy's default line with the mesh's fields
/// after it.
pub const DEFAULT_TEXT_TEMPLATE: &str = "[{start_time}] \"{method} {path} {protocol}\" \
    {status} {response_flags} {bytes_received} {bytes_sent} {duration_ms} \
    \"{authority}\" \"{upstream_host}\" {direction} {source_identity} \
    {destination_service} {route} {retry_count} {trace_id}";

/// How a line is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line, fields named and ordered as [`FIELD_NAMES`]; every
    /// field is always present, an absent optional is `null`.
    Json,
    /// Text from a template; absent values and empty strings are `-`, and strings
    /// are escaped as inside a JSON string (without the quotes), so a line is always
    /// one line.
    Text(Template),
}

/// A text line's shape: literal text with `{field}` placeholders named as in
/// [`FIELD_NAMES`]; `{{` and `}}` are literal braces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: Box<str>,
    parts: Vec<Part>,
}

/// Why a template is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder names no field.
    #[error(
        "unknown access log field {name:?} at byte {offset}; valid fields: {}",
        FIELD_NAMES.join(", ")
    )]
    UnknownField {
        /// The name in the braces.
        name: String,
        /// Byte offset of its `{`.
        offset: usize,
    },
    /// A `{` is not closed before the end or the next `{`.
    #[error(
        "unclosed '{{' at byte {offset}; close it with '}}', or write '{{{{' for a literal brace"
    )]
    Unclosed {
        /// Byte offset of the `{`.
        offset: usize,
    },
    /// A `}` closes nothing.
    #[error("unmatched '}}' at byte {offset}; write '}}}}' for a literal brace")]
    Unmatched {
        /// Byte offset of the `}`.
        offset: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Field(Field),
}

/// A field of a line; its index in [`FIELD_NAMES`] is its discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    StartTime,
    Direction,
    SourceIdentity,
    DestinationService,
    DestinationWorkload,
    DestinationIdentity,
    UpstreamHost,
    Route,
    RouteRule,
    Method,
    Authority,
    Path,
    Protocol,
    Status,
    GrpcStatus,
    DurationMs,
    BytesReceived,
    BytesSent,
    RetryCount,
    TraceId,
    ResponseFlags,
}

/// A field's value, borrowed from the entry.
enum Value<'a> {
    Str(&'a str),
    Time(SystemTime),
    Addr(SocketAddr),
    Uint(u64),
    Millis(Duration),
    TraceId([u8; 16]),
    Flags(ResponseFlags),
    Null,
}

// === impl Format ===

impl Format {
    /// Appends `entry` as one line of UTF-8 to `line`, without the newline.
    pub fn append(&self, entry: &Entry<'_>, line: &mut Vec<u8>) {
        match self {
            Self::Json => json_line(entry, line),
            Self::Text(template) => {
                for part in &template.parts {
                    match part {
                        Part::Literal(text) => line.extend_from_slice(text.as_bytes()),
                        Part::Field(field) => field.value(entry).write_text(line),
                    }
                }
            }
        }
    }
}

/// Appends `e` as a JSON object, fields in [`FIELD_NAMES`]' order (tests hold it to
/// that): written out field by field, since every request with the log on runs it.
fn json_line(e: &Entry<'_>, out: &mut Vec<u8>) {
    /// `"key":"value"` for a string value, then the key of the next field.
    fn string(out: &mut Vec<u8>, value: &str, next: &[u8]) {
        escape(value, out);
        out.extend_from_slice(next);
    }
    out.reserve(640 + e.path.len() + e.authority.len());
    out.extend_from_slice(b"{\"start_time\":\"");
    write_time(e.start, out);
    out.extend_from_slice(b"\",\"direction\":\"");
    out.extend_from_slice(direction(e.direction).as_bytes());
    out.extend_from_slice(b"\",\"source_identity\":\"");
    string(out, e.source_identity, b"\",\"destination_service\":\"");
    string(
        out,
        e.destination_service,
        b"\",\"destination_workload\":\"",
    );
    string(
        out,
        e.destination_workload,
        b"\",\"destination_identity\":\"",
    );
    string(out, e.destination_identity, b"\",\"upstream_host\":");
    match e.upstream {
        Some(addr) => {
            out.push(b'"');
            Value::Addr(addr).write_plain(out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"route\":\"");
    string(out, e.route, b"\",\"route_rule\":");
    optional(out, e.route_rule.map(u64::from));
    out.extend_from_slice(b",\"method\":\"");
    string(out, e.method, b"\",\"authority\":\"");
    string(out, e.authority, b"\",\"path\":\"");
    string(out, e.path, b"\",\"protocol\":\"");
    string(out, e.protocol, b"\",\"status\":");
    push_uint(out, e.status.into());
    out.extend_from_slice(b",\"grpc_status\":");
    optional(out, e.grpc_status.map(u64::from));
    out.extend_from_slice(b",\"duration_ms\":");
    Value::Millis(e.duration).write_plain(out);
    out.extend_from_slice(b",\"bytes_received\":");
    push_uint(out, e.request_bytes);
    out.extend_from_slice(b",\"bytes_sent\":");
    push_uint(out, e.response_bytes);
    out.extend_from_slice(b",\"retry_count\":");
    push_uint(out, e.retries.into());
    out.extend_from_slice(b",\"trace_id\":");
    match e.trace_id {
        Some(id) => {
            out.push(b'"');
            Value::TraceId(id).write_plain(out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"response_flags\":\"");
    Value::Flags(e.flags).write_plain(out);
    out.extend_from_slice(b"\"}");
}

/// A number, or `null`.
fn optional(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => push_uint(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

/// The `direction` field's value.
fn direction(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

// === impl Template ===

impl Template {
    /// Parses a template, naming the first thing wrong with it.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut at = 0;
        while let Some(found) = source[at..].find(['{', '}']) {
            let brace = at + found;
            literal.push_str(&source[at..brace]);
            let after = &source[brace + 1..];
            if source[brace..].starts_with('}') {
                if !after.starts_with('}') {
                    return Err(TemplateError::Unmatched { offset: brace });
                }
                literal.push('}');
                at = brace + 2;
            } else if after.starts_with('{') {
                literal.push('{');
                at = brace + 2;
            } else {
                let end = match after.find(['{', '}']) {
                    Some(end) if after[end..].starts_with('}') => end,
                    _ => return Err(TemplateError::Unclosed { offset: brace }),
                };
                let name = &after[..end];
                let field = Field::named(name).ok_or_else(|| TemplateError::UnknownField {
                    name: name.to_owned(),
                    offset: brace,
                })?;
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal).into()));
                }
                parts.push(Part::Field(field));
                at = brace + 1 + end + 1;
            }
        }
        literal.push_str(&source[at..]);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.into()));
        }
        Ok(Self {
            source: source.into(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl Default for Template {
    /// [`DEFAULT_TEXT_TEMPLATE`].
    fn default() -> Self {
        // A test proves the default parses; the fallback only keeps this infallible.
        Self::parse(DEFAULT_TEXT_TEMPLATE).unwrap_or_else(|_| Self {
            source: DEFAULT_TEXT_TEMPLATE.into(),
            parts: Vec::new(),
        })
    }
}

// === impl Field ===

impl Field {
    const ALL: [Self; 21] = [
        Self::StartTime,
        Self::Direction,
        Self::SourceIdentity,
        Self::DestinationService,
        Self::DestinationWorkload,
        Self::DestinationIdentity,
        Self::UpstreamHost,
        Self::Route,
        Self::RouteRule,
        Self::Method,
        Self::Authority,
        Self::Path,
        Self::Protocol,
        Self::Status,
        Self::GrpcStatus,
        Self::DurationMs,
        Self::BytesReceived,
        Self::BytesSent,
        Self::RetryCount,
        Self::TraceId,
        Self::ResponseFlags,
    ];

    fn named(name: &str) -> Option<Self> {
        let i = FIELD_NAMES.iter().position(|n| *n == name)?;
        Some(Self::ALL[i])
    }

    fn value<'a>(self, e: &Entry<'a>) -> Value<'a> {
        match self {
            Self::StartTime => Value::Time(e.start),
            Self::Direction => Value::Str(direction(e.direction)),
            Self::SourceIdentity => Value::Str(e.source_identity),
            Self::DestinationService => Value::Str(e.destination_service),
            Self::DestinationWorkload => Value::Str(e.destination_workload),
            Self::DestinationIdentity => Value::Str(e.destination_identity),
            Self::UpstreamHost => e.upstream.map_or(Value::Null, Value::Addr),
            Self::Route => Value::Str(e.route),
            Self::RouteRule => e.route_rule.map_or(Value::Null, |r| Value::Uint(r.into())),
            Self::Method => Value::Str(e.method),
            Self::Authority => Value::Str(e.authority),
            Self::Path => Value::Str(e.path),
            Self::Protocol => Value::Str(e.protocol),
            Self::Status => Value::Uint(e.status.into()),
            Self::GrpcStatus => e.grpc_status.map_or(Value::Null, |s| Value::Uint(s.into())),
            Self::DurationMs => Value::Millis(e.duration),
            Self::BytesReceived => Value::Uint(e.request_bytes),
            Self::BytesSent => Value::Uint(e.response_bytes),
            Self::RetryCount => Value::Uint(e.retries.into()),
            Self::TraceId => e.trace_id.map_or(Value::Null, Value::TraceId),
            Self::ResponseFlags => Value::Flags(e.flags),
        }
    }
}

// === impl Value ===

impl Value<'_> {
    fn write_text(&self, out: &mut Vec<u8>) {
        match self {
            Self::Null | Self::Str("") => out.push(b'-'),
            Self::Str(s) => escape(s, out),
            _ => self.write_plain(out),
        }
    }

    /// Writes a value that is not a string from the entry, unquoted. Numbers, times
    /// and IPv4 addresses are written digit by digit, without `fmt`: this runs once
    /// per field of every line.
    fn write_plain(&self, out: &mut Vec<u8>) {
        match self {
            Self::Null | Self::Str(_) => {}
            Self::Time(time) => write_time(*time, out),
            Self::Addr(SocketAddr::V4(addr)) => {
                let [a, b, c, d] = addr.ip().octets();
                for (octet, after) in [(a, b'.'), (b, b'.'), (c, b'.'), (d, b':')] {
                    push_uint(out, octet.into());
                    out.push(after);
                }
                push_uint(out, addr.port().into());
            }
            // Writing to a Vec cannot fail.
            Self::Addr(addr) => {
                let _ = write!(out, "{addr}");
            }
            Self::Uint(n) => push_uint(out, *n),
            Self::Millis(d) => {
                let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                push_uint(out, micros / 1000);
                out.push(b'.');
                push_padded(out, micros % 1000, 3);
            }
            Self::TraceId(id) => {
                let mut hex = [0u8; 32];
                crate::telemetry::trace::context::write_hex(&mut hex, id);
                out.extend_from_slice(&hex);
            }
            Self::Flags(flags) if flags.is_empty() => out.push(b'-'),
            Self::Flags(flags) => {
                let _ = write!(out, "{flags}");
            }
        }
    }
}

/// "00" to "99", for writing two digits at a time.
const PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Appends `n` in decimal.
fn push_uint(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 10 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    // A last single digit, or the zero of 0.
    if n > 0 || at == digits.len() {
        at -= 1;
        digits[at] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `n` in decimal with at least `width` digits (up to 4), zero-padded.
fn push_padded(out: &mut Vec<u8>, n: u64, width: u32) {
    let mut pad = 10u64.pow(width.saturating_sub(1));
    while pad > 1 && n < pad {
        out.push(b'0');
        pad /= 10;
    }
    push_uint(out, n);
}

thread_local! {
    /// The second last written by this thread and its text, `YYYY-MM-DDTHH:MM:SS`:
    /// lines come many to a second.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Writes `time` as RFC 3339 UTC with milliseconds (`2023-11-14T22:13:20.123Z`),
/// clamped to what RFC 3339 can say (1970 to 9999): a clock set wrong must not panic
/// the proxy.
fn write_time(time: SystemTime, out: &mut Vec<u8>) {
    const LAST: Duration = Duration::new(253_402_300_799, 999_999_999);
    let since = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .min(LAST);
    let secs = since.as_secs();
    let second = match SECOND.try_with(Cell::get) {
        Ok((cached, text)) if cached == secs => text,
        _ => {
            let text = second_text(secs);
            let _ = SECOND.try_with(|c| c.set((secs, text)));
            text
        }
    };
    out.extend_from_slice(&second);
    out.push(b'.');
    push_padded(out, since.subsec_millis().into(), 3);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of `secs` after the epoch (before year 10000).
fn second_text(secs: u64) -> [u8; 19] {
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let mut text = [0u8; 19];
    let mut put = |at: usize, n: u64, width: usize| {
        let mut n = n;
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, of_day / 3600, 2);
    put(14, of_day / 60 % 60, 2);
    put(17, of_day % 60, 2);
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        text[at] = sep;
    }
    text
}

/// The proleptic Gregorian date `days` after 1970-01-01: Howard Hinnant's
/// `civil_from_days`, for days that are not before the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Days since 0000-03-01, so leap days end each 4-, 100- and 400-year cycle.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 is March
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Whether any byte of `bytes` is outside printable ASCII or is `"` or `\`: eight
/// bytes at a time, with the bit tricks of "Bit Twiddling Hacks" (each test is exact
/// about whether some byte matches, so a string it passes needs no escaping).
fn needs_care(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH != 0;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(word);
        let w = u64::from_ne_bytes(eight);
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0;
        // 0x7f and above: the high bit once 1 is added (a carry from a byte below
        // only makes a false alarm, which costs the careful path).
        let high = (w | w.wrapping_add(ONES)) & HIGH != 0;
        if control
            || high
            || has_zero(w ^ (ONES * u64::from(b'"')))
            || has_zero(w ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|b| !(0x20..0x7f).contains(b) || *b == b'"' || *b == b'\\')
}

/// Appends `s` escaped as the inside of a JSON string: `"` and `\` and every control
/// character (C0, DEL, C1) escaped, everything else as is.
fn escape(s: &str, out: &mut Vec<u8>) {
    // Most values are names and paths of printable ASCII: copied whole.
    if !needs_care(s.as_bytes()) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    let mut done = 0;
    for (i, c) in s.char_indices() {
        let short: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            c if c.is_control() => b"",
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[done..i]);
        if short.is_empty() {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.extend_from_slice(short);
        }
        done = i + c.len_utf8();
    }
    out.extend_from_slice(&s.as_bytes()[done..]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::{json, Value as Json};

    fn start() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
    }

    fn allowed() -> Entry<'static> {
        Entry {
            start: start(),
            direction: Direction::Inbound,
            source_identity: "spiffe://cluster.local/ns/shop/sa/frontend",
            destination_service: "catalog.shop",
            destination_workload: "shop/catalog-7d9f8c6b5-x2k4p",
            destination_identity: "spiffe://cluster.local/ns/shop/sa/catalog",
            upstream: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            route: "",
            route_rule: None,
            method: "GET",
            authority: "catalog.shop:80",
            path: "/items/42",
            protocol: "HTTP/1.1",
            status: 200,
            grpc_status: None,
            duration: Duration::from_micros(12_345),
            request_bytes: 0,
            response_bytes: 512,
            retries: 0,
            trace_id: Some([
                0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
                0x47, 0x36,
            ]),
            flags: ResponseFlags::EMPTY,
        }
    }

    fn retried() -> Entry<'static> {
        Entry {
            direction: Direction::Outbound,
            source_identity: "spiffe://cluster.local/ns/shop/sa/frontend",
            upstream: Some("[fd00::7]:15008".parse().unwrap()),
            route: "HTTPRoute/shop/catalog",
            route_rule: Some(2),
            protocol: "HTTP/2",
            status: 503,
            grpc_status: Some(14),
            duration: Duration::from_secs(2),
            request_bytes: 17,
            response_bytes: 0,
            retries: 3,
            flags: ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED
                | ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
            ..allowed()
        }
    }

    fn failed_without_upstream() -> Entry<'static> {
        Entry {
            direction: Direction::Outbound,
            source_identity: "",
            destination_workload: "",
            destination_identity: "",
            upstream: None,
            route: "HTTPRoute/shop/catalog",
            route_rule: Some(0),
            status: 503,
            duration: Duration::from_nanos(999),
            response_bytes: 19,
            trace_id: None,
            flags: ResponseFlags::NO_HEALTHY_UPSTREAM,
            ..allowed()
        }
    }

    fn line(format: &Format, entry: &Entry<'_>) -> String {
        let mut line = Vec::new();
        format.append(entry, &mut line);
        String::from_utf8(line).unwrap()
    }

    fn text(template: &str, entry: &Entry<'_>) -> String {
        line(&Format::Text(Template::parse(template).unwrap()), entry)
    }

    #[test]
    fn json_lines_parse_back_with_every_field_and_its_value() {
        // `base` with the fields of `changes` replaced.
        let with = |base: &Json, changes: Json| {
            let mut want = base.clone();
            for (field, value) in changes.as_object().unwrap() {
                assert!(want.get(field).is_some(), "{field} is a field");
                want[field] = value.clone();
            }
            want
        };
        let allowed_json = json!({
            "start_time": "2023-11-14T22:13:20.123Z",
            "direction": "inbound",
            "source_identity": "spiffe://cluster.local/ns/shop/sa/frontend",
            "destination_service": "catalog.shop",
            "destination_workload": "shop/catalog-7d9f8c6b5-x2k4p",
            "destination_identity": "spiffe://cluster.local/ns/shop/sa/catalog",
            "upstream_host": "127.0.0.1:8080",
            "route": "",
            "route_rule": null,
            "method": "GET",
            "authority": "catalog.shop:80",
            "path": "/items/42",
            "protocol": "HTTP/1.1",
            "status": 200,
            "grpc_status": null,
            "duration_ms": 12.345,
            "bytes_received": 0,
            "bytes_sent": 512,
            "retry_count": 0,
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "response_flags": "-",
        });
        let cases = [
            ("allowed", allowed(), allowed_json.clone()),
            (
                "retried",
                retried(),
                with(
                    &allowed_json,
                    json!({
                        "direction": "outbound",
                        "upstream_host": "[fd00::7]:15008",
                        "route": "HTTPRoute/shop/catalog",
                        "route_rule": 2,
                        "protocol": "HTTP/2",
                        "status": 503,
                        "grpc_status": 14,
                        "duration_ms": 2000.0,
                        "bytes_received": 17,
                        "bytes_sent": 0,
                        "retry_count": 3,
                        "response_flags": "UF,URX",
                    }),
                ),
            ),
            (
                "failed without upstream",
                failed_without_upstream(),
                with(
                    &allowed_json,
                    json!({
                        "direction": "outbound",
                        "source_identity": "",
                        "destination_workload": "",
                        "destination_identity": "",
                        "upstream_host": null,
                        "route": "HTTPRoute/shop/catalog",
                        "route_rule": 0,
                        "status": 503,
                        "duration_ms": 0.0,
                        "bytes_sent": 19,
                        "trace_id": null,
                        "response_flags": "UH",
                    }),
                ),
            ),
        ];
        for (name, entry, want) in cases {
            let line = line(&Format::Json, &entry);
            let got: Json = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Map equality: every field, each with its value, and no other field.
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn json_writes_fields_in_the_documented_order() {
        let line = line(&Format::Json, &allowed());
        let positions: Vec<_> = FIELD_NAMES
            .iter()
            .map(|name| line.find(&format!("\"{name}\":")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "{line}");
    }

    #[test]
    fn duration_is_milliseconds_with_three_decimals() {
        let ms = |duration| {
            let entry = Entry {
                duration,
                ..allowed()
            };
            text("{duration_ms}", &entry)
        };
        assert_eq!(ms(Duration::from_micros(12_345)), "12.345");
        assert_eq!(ms(Duration::from_nanos(999)), "0.000");
        assert_eq!(ms(Duration::from_micros(1_001)), "1.001");
        assert_eq!(ms(Duration::from_secs(2)), "2000.000");
    }

    #[test]
    fn json_escapes_quotes_backslashes_and_control_characters() {
        let nasty = "say \"hi\"\\ \n\r\t\u{8}\u{c}\u{0}\u{1b}[31m\u{7f}\u{85} é☃😀 </script> '";
        let entry = Entry {
            path: nasty,
            authority: "\"}\n{\"injected\":true",
            method: "",
            ..allowed()
        };
        let line = line(&Format::Json, &entry);
        assert!(
            !line.chars().any(char::is_control),
            "no raw control character: {line:?}"
        );
        let got: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(got["path"], nasty);
        assert_eq!(got["authority"], "\"}\n{\"injected\":true");
        assert_eq!(got["method"], "");
        assert!(got.get("injected").is_none());
        assert!(line.contains(r"\u001b[31m\u007f\u0085 é☃😀"), "{line}");
        assert!(line.contains(r#"say \"hi\"\\ \n\r\t\b\f\u0000"#), "{line}");
    }

    #[test]
    fn text_escapes_strings_so_a_line_stays_one_line() {
        let entry = Entry {
            path: "/a\nb \"c\"\u{1b}",
            ..allowed()
        };
        assert_eq!(text("\"{path}\"", &entry), r#""/a\nb \"c\"\u001b""#);
    }

    #[test]
    fn text_renders_fields_and_literal_braces() {
        let entry = retried();
        assert_eq!(
            text("{{{status}}} {method} {{x}} {route}#{route_rule}", &entry),
            "{503} GET {x} HTTPRoute/shop/catalog#2"
        );
        assert_eq!(text("no fields", &entry), "no fields");
        assert_eq!(text("", &entry), "");
        assert_eq!(text("{{}}", &entry), "{}");
    }

    #[test]
    fn text_writes_a_dash_for_absent_and_empty_values() {
        let entry = failed_without_upstream();
        assert_eq!(
            text(
                "{upstream_host} {grpc_status} {trace_id} {source_identity} {response_flags}",
                &entry
            ),
            "- - - - UH"
        );
        assert_eq!(text("{response_flags}", &allowed()), "-");
    }

    #[test]
    fn every_field_name_is_a_placeholder_for_its_own_field() {
        let json: Json = serde_json::from_str(&line(&Format::Json, &retried())).unwrap();
        for (i, name) in FIELD_NAMES.iter().enumerate() {
            assert_eq!(Field::ALL[i] as usize, i);
            assert_eq!(
                Field::named(name).map(|f| FIELD_NAMES[f as usize]),
                Some(*name)
            );
            let want = match &json[name] {
                Json::String(s) if s.is_empty() => "-".to_owned(),
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            let got = text(&format!("{{{name}}}"), &retried());
            if *name == "duration_ms" {
                assert_eq!(got, "2000.000");
            } else {
                assert_eq!(got, want, "{name}");
            }
        }
    }

    #[test]
    fn default_template_renders_an_envoy_like_line() {
        assert_eq!(Template::default().as_str(), DEFAULT_TEXT_TEMPLATE);
        assert_eq!(
            Template::default(),
            Template::parse(DEFAULT_TEXT_TEMPLATE).unwrap()
        );
        assert_eq!(
            line(&Format::Text(Template::default()), &retried()),
            "[2023-11-14T22:13:20.123Z] \"GET /items/42 HTTP/2\" 503 UF,URX 17 0 2000.000 \
             \"catalog.shop:80\" \"[fd00::7]:15008\" outbound \
             spiffe://cluster.local/ns/shop/sa/frontend catalog.shop HTTPRoute/shop/catalog 3 \
             4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    #[test]
    fn an_unknown_field_is_named_with_the_valid_ones() {
        let err = Template::parse("{status} {user_agent}").unwrap_err();
        assert_eq!(
            err,
            TemplateError::UnknownField {
                name: "user_agent".into(),
                offset: 9
            }
        );
        let message = err.to_string();
        assert!(message.contains("\"user_agent\""), "{message}");
        for name in FIELD_NAMES {
            assert!(message.contains(name), "{message} lists {name}");
        }
        assert_eq!(
            Template::parse("{}").unwrap_err(),
            TemplateError::UnknownField {
                name: String::new(),
                offset: 0
            }
        );
    }

    #[test]
    fn an_unclosed_brace_gives_its_byte_offset() {
        let cases = [
            ("{status", 0),
            ("é {status", 3),
            ("{status} {method", 9),
            ("{method {status}", 0),
            ("{{{", 2),
        ];
        for (template, offset) in cases {
            assert_eq!(
                Template::parse(template),
                Err(TemplateError::Unclosed { offset }),
                "{template}"
            );
        }
        assert!(Template::parse("ab {status")
            .unwrap_err()
            .to_string()
            .contains("byte 3"));
        assert_eq!(
            Template::parse("{status} }"),
            Err(TemplateError::Unmatched { offset: 9 })
        );
    }

    #[test]
    fn times_are_rfc_3339_as_humantime_writes_them_across_leap_years_and_centuries() {
        // Every day boundary from 1970 to 2500 in steps of 7 days + a prime, and the
        // days around the leap days of 2000 (leap) and 2100 (not).
        let step = 7 * 86_400 + 7919;
        let mut seconds: Vec<u64> = (0..16_725_225_600 / step).map(|i: u64| i * step).collect();
        for day in [
            10_957u64, 11_016, 11_017, 11_018, 47_541, 47_482, 47_483, 2_932_896,
        ] {
            seconds.extend([day * 86_400, day * 86_400 + 86_399]);
        }
        for secs in seconds {
            for millis in [0, 7, 999] {
                let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
                let mut ours = Vec::new();
                write_time(time, &mut ours);
                let ours = String::from_utf8(ours).unwrap();
                let theirs = humantime::format_rfc3339_millis(time).to_string();
                assert_eq!(ours, theirs, "{secs} s {millis} ms");
            }
        }
    }

    #[test]
    fn numbers_are_written_in_full_from_zero_to_the_largest() {
        for n in [0, 1, 9, 10, 99, 100, 65_535, 1_000_000_007, u64::MAX] {
            let mut out = Vec::new();
            push_uint(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        let mut padded = Vec::new();
        for (n, width) in [
            (0, 3),
            (7, 3),
            (42, 3),
            (999, 3),
            (5, 2),
            (2026, 4),
            (12_345, 4),
        ] {
            padded.clear();
            push_padded(&mut padded, n, width);
            assert_eq!(padded, format!("{n:0w$}", w = width as usize).as_bytes());
        }
    }

    #[test]
    fn addresses_are_written_as_socket_addr_displays_them() {
        for addr in [
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.0.7:15008",
            "[::1]:8080",
            "[fe80::1%2]:1",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            Value::Addr(addr).write_plain(&mut out);
            assert_eq!(out, addr.to_string().as_bytes());
        }
    }

    #[test]
    fn printable_ascii_is_copied_and_anything_else_takes_the_careful_path() {
        let escaped = |s: &str| {
            let mut out = Vec::new();
            escape(s, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(escaped("/items/42?x=ü"), "/items/42?x=ü");
        assert_eq!(escaped("a\u{85}b\u{7f}c\u{1b}"), "a\\u0085b\\u007fc\\u001b");
        // Every byte that needs care, at every position of a word and of the tail,
        // is seen; no printable ASCII byte is.
        for len in 1..=19 {
            for at in 0..len {
                for bad in [0u8, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xc2, 0xff] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = bad;
                    assert!(needs_care(&bytes), "{bad:#x} at {at} of {len}");
                }
            }
            let printable: Vec<u8> = (0x20u8..0x7f)
                .filter(|b| *b != b'"' && *b != b'\\')
                .cycle()
                .take(len * 5)
                .collect();
            assert!(!needs_care(&printable), "{len}");
        }
    }
}
