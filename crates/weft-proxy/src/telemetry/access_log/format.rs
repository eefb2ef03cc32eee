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
mod tests;
