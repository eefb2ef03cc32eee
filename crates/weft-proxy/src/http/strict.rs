//! Strict request heads: what the proxy refuses instead of forwarding.
//!
//! Every L7 guarantee (routes, identity headers, rate limits, authorization) is only as
//! strong as the parser in front of it, so a request whose framing or target another
//! implementation could read differently is answered here and never reaches the app.
//! Two entry points, both pure:
//!
//! - [`request_line`] judges the first line of a connection's bytes during protocol
//!   detection (RFC 9112 §3): a line that begins like HTTP but is not a valid HTTP/1.0
//!   or HTTP/1.1 request line is refused, never copied as opaque TCP.
//! - [`check`] judges every parsed request head (hyper has already applied RFC 9112's
//!   field syntax, or the `h2` crate RFC 9113's): Host, the target's form, framing
//!   fields, `Connection`, and the HTTP/2 field rules hyper leaves to the application.
//!   [`normalize`] then gives the head the one reading the checks settled on.
//!
//! Not here: size limits and header syntax (hyper and `h2` enforce them with Weft's
//! settings), and the answer itself ([`super::server`] turns a [`Refusal`] into a
//! `400` with `connection: close` on HTTP/1, a `PROTOCOL_ERROR` stream reset on HTTP/2).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Version};

/// Longest request line accepted during detection (nginx allows 8 KiB by default).
pub const MAX_REQUEST_LINE: usize = 16 * 1024;

/// Why a request is refused, and with which status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status of the proxy's own answer (HTTP/1).
    pub status: StatusCode,
    /// What was wrong, for the answer's body and the logs.
    pub reason: &'static str,
}

impl Refusal {
    const fn bad(reason: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            reason,
        }
    }

    /// The short metric label of this refusal's status class.
    pub fn as_str(&self) -> &'static str {
        match self.status {
            StatusCode::URI_TOO_LONG => "uri_too_long",
            StatusCode::REQUEST_TIMEOUT => "head_timeout",
            StatusCode::NOT_IMPLEMENTED => "unsupported_transfer_coding",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "too_many_headers",
            _ => "malformed_request",
        }
    }
}

/// Bytes that begin like an HTTP request but are not one.
pub const NOT_HTTP: Refusal =
    Refusal::bad("this port speaks HTTP; the bytes received are not an HTTP request");
/// A request line longer than [`MAX_REQUEST_LINE`].
pub const LINE_TOO_LONG: Refusal = Refusal {
    status: StatusCode::URI_TOO_LONG,
    reason: "the request line is longer than 16 KiB",
};
/// The chunked framing of a body that came with its head is malformed.
pub const BAD_CHUNKED: Refusal = Refusal::bad("the chunked body is malformed (RFC 9112 §7.1)");
/// The head did not arrive in time.
pub const HEAD_TIMEOUT: Refusal = Refusal {
    status: StatusCode::REQUEST_TIMEOUT,
    reason: "the request head did not arrive in time",
};

/// What the first bytes of a connection are, judged as an HTTP/1 request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// A valid request line (`method SP target SP HTTP/1.x`, then CRLF or LF).
    Valid,
    /// More bytes are needed to decide.
    Incomplete,
    /// Nothing like an HTTP request: opaque bytes where the port allows them.
    NotHttp,
    /// Begins like an HTTP request line but is not a valid one.
    Invalid(Refusal),
}

/// Methods whose name alone makes a line HTTP (RFC 9110 §9 and PATCH).
const METHODS: [&[u8]; 9] = [
    b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH",
];

/// `tchar` (RFC 9110 §5.6.2).
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Judges the first line of `buf` (the start of a connection).
///
/// A line "begins like HTTP" when its method is a registered one, when a token is
/// followed by a space or tab and a target (`/`, `*`, `http://`), or when it names an
/// `HTTP/` version anywhere; such a line must then be exactly `token SP target SP
/// HTTP/1.0|HTTP/1.1` ended by CRLF (or a bare LF, RFC 9112 §2.2). Anything else that is
/// complete, or that contains bytes no request line has, is [`Line::NotHttp`].
pub fn request_line(buf: &[u8]) -> Line {
    let end = buf.iter().position(|&b| b == b'\n' || b == b'\r');
    let line = &buf[..end.unwrap_or(buf.len())];
    match looks_like_http(line, end.is_some()) {
        Shape::No => return Line::NotHttp,
        Shape::Undecided if line.len() > MAX_REQUEST_LINE => return Line::NotHttp,
        Shape::Undecided => return Line::Incomplete,
        Shape::Yes => {}
    }
    if line.len() > MAX_REQUEST_LINE {
        return Line::Invalid(LINE_TOO_LONG);
    }
    let Some(end) = end else {
        return Line::Incomplete;
    };
    if buf[end] == b'\r' {
        match buf.get(end + 1) {
            None => return Line::Incomplete,
            Some(b'\n') => {}
            Some(_) => return Line::Invalid(Refusal::bad("bare CR in the request line")),
        }
    }
    match parse_line(line) {
        Ok(()) => Line::Valid,
        Err(refusal) => Line::Invalid(refusal),
    }
}

enum Shape {
    Yes,
    No,
    Undecided,
}

fn looks_like_http(line: &[u8], complete: bool) -> Shape {
    let method_len = line.iter().take_while(|&&b| is_tchar(b)).count();
    if method_len == 0 {
        return Shape::No;
    }
    let method = &line[..method_len];
    let known = METHODS.contains(&method);
    if method_len == line.len() {
        return match (known, complete) {
            (true, _) => Shape::Yes,
            (false, true) => Shape::No,
            (false, false) => Shape::Undecided,
        };
    }
    if known {
        return Shape::Yes;
    }
    let rest = &line[method_len..];
    let after_sep = rest.strip_prefix(b" ").or_else(|| rest.strip_prefix(b"\t"));
    if let Some(target) = after_sep {
        if target.starts_with(b"/")
            || target.starts_with(b"*")
            || starts_with_ignore_case(target, b"http://")
            || starts_with_ignore_case(target, b"https://")
        {
            return Shape::Yes;
        }
    }
    if contains_ignore_case(line, b"http/") {
        return Shape::Yes;
    }
    let printable = line
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    if complete || !printable {
        Shape::No
    } else {
        Shape::Undecided
    }
}

fn starts_with_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.len() >= needle.len() && haystack[..needle.len()].eq_ignore_ascii_case(needle)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// `method SP request-target SP HTTP-version`, nothing more (RFC 9112 §3).
fn parse_line(line: &[u8]) -> Result<(), Refusal> {
    let method_len = line.iter().take_while(|&&b| is_tchar(b)).count();
    let rest = &line[method_len..];
    let Some(rest) = rest.strip_prefix(b" ") else {
        return Err(Refusal::bad(
            "the method must be a token followed by one space",
        ));
    };
    let Some(space) = rest.iter().position(|&b| b == b' ') else {
        return Err(Refusal::bad(
            "the request line has no HTTP version (HTTP/0.9 is not supported)",
        ));
    };
    let (target, version) = (&rest[..space], &rest[space + 1..]);
    if target.is_empty() || !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(Refusal::bad(
            "the request target is empty or has a character outside visible ASCII",
        ));
    }
    if version != b"HTTP/1.1" && version != b"HTTP/1.0" {
        return Err(Refusal::bad(
            "the version must be exactly HTTP/1.1 or HTTP/1.0, after one space, with nothing after it",
        ));
    }
    Ok(())
}

/// What [`check`] learnt about a head that passed, so later steps need not look the
/// same fields up again (each lookup hashes the name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// HTTP/1 with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// The request carries a Host field.
    pub host: bool,
    /// More than one Content-Length value (identical: hyper refused differing ones).
    pub repeated_length: bool,
}

/// Checks a parsed request head. `Err` means the request must not be forwarded.
pub fn check<B>(req: &Request<B>) -> Result<Head, Refusal> {
    if req.method() == Method::CONNECT {
        return Err(Refusal {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "CONNECT tunnels are not supported on this port",
        });
    }
    target(req)?;
    if req.version() == Version::HTTP_2 {
        h2_fields(req).map(|()| Head::default())
    } else {
        h1_fields(req)
    }
}

/// At most `max` fields (`settings.maxHeaders`). hyper enforces this for HTTP/1 while
/// parsing; the `h2` crate bounds only the header block's size, so HTTP/2 requests are
/// counted here.
pub fn field_count<B>(req: &Request<B>, max: usize) -> Result<(), Refusal> {
    if req.headers().len() > max {
        Err(Refusal {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            reason: "more header fields than settings.maxHeaders allows",
        })
    } else {
        Ok(())
    }
}

/// The request-target's form must fit the method (RFC 9112 §3.2).
fn target<B>(req: &Request<B>) -> Result<(), Refusal> {
    let uri = req.uri();
    if uri.path() == "*" {
        return if req.method() == Method::OPTIONS && uri.query().is_none() {
            Ok(())
        } else {
            Err(Refusal::bad(
                "the asterisk-form target `*` is only for OPTIONS",
            ))
        };
    }
    if !uri.path().starts_with('/') {
        return Err(Refusal::bad("the request target must start with `/`"));
    }
    if let Some(authority) = uri.authority() {
        if authority.as_str().contains('@') {
            return Err(Refusal::bad(
                "the target's authority must not carry userinfo",
            ));
        }
        if !valid_host(authority.as_str().as_bytes()) {
            return Err(Refusal::bad(
                "the target's authority is not a valid host[:port]",
            ));
        }
    }
    Ok(())
}

fn h1_fields<B>(req: &Request<B>) -> Result<Head, Refusal> {
    let headers = req.headers();
    // One pass over the fields (a request has a handful) instead of a hashed lookup
    // per name: this runs on every request.
    let (mut hosts, mut first_host, mut lengths, mut te) = (0_usize, None, 0_usize, false);
    let mut head = Head::default();
    for (name, value) in headers {
        if name == header::HOST {
            hosts += 1;
            first_host = first_host.or(Some(value));
        } else if name == header::CONNECTION {
            connection(value)?;
        } else if name == header::CONTENT_LENGTH {
            lengths += 1;
            head.repeated_length |= lengths > 1 || value.as_bytes().contains(&b',');
        } else if name == header::TRANSFER_ENCODING {
            te = true;
        }
    }
    head.host = hosts > 0;
    match (first_host, hosts) {
        (Some(_), 2..) => return Err(Refusal::bad("more than one Host header field")),
        (None, _) if req.version() == Version::HTTP_11 => {
            return Err(Refusal::bad(
                "an HTTP/1.1 request must carry a Host header field",
            ))
        }
        (Some(host), _) if !valid_host(host.as_bytes()) => return Err(Refusal::bad(
            "the Host header field is not a valid host[:port] (no spaces, `/`, `@` or empty value)",
        )),
        _ => {}
    }
    if te {
        if req.version() == Version::HTTP_10 {
            return Err(Refusal::bad(
                "Transfer-Encoding is not defined for HTTP/1.0 (RFC 9112 §6.1)",
            ));
        }
        if lengths > 0 {
            return Err(Refusal::bad(
                "both Content-Length and Transfer-Encoding: the framing is ambiguous",
            ));
        }
        transfer_encoding(headers)?;
        head.chunked = true;
    }
    Ok(head)
}

/// `Connection` may not nominate Host or a framing field (RFC 9110 §7.6.1): removing
/// them as hop-by-hop would change how the next hop reads the message.
fn connection(value: &HeaderValue) -> Result<(), Refusal> {
    for token in value.as_bytes().split(|&b| b == b',') {
        let token = trim_ows(token);
        if [&b"host"[..], b"content-length", b"transfer-encoding"]
            .iter()
            .any(|name| token.eq_ignore_ascii_case(name))
        {
            return Err(Refusal::bad(
                "Connection must not nominate Host, Content-Length or Transfer-Encoding",
            ));
        }
    }
    Ok(())
}

/// Exactly one transfer coding, `chunked`: others would reach the app undecoded once
/// the proxy strips the hop-by-hop field.
fn transfer_encoding(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut codings = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for coding in value.as_bytes().split(|&b| b == b',') {
            let coding = trim_ows(coding);
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(
                    if coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
                        Refusal::bad("malformed Transfer-Encoding")
                    } else {
                        Refusal {
                            status: StatusCode::NOT_IMPLEMENTED,
                            reason: "only the chunked transfer coding is supported",
                        }
                    },
                );
            }
            codings += 1;
        }
    }
    if codings == 1 {
        Ok(())
    } else {
        Err(Refusal::bad("chunked is applied more than once"))
    }
}

/// RFC 9113 §8.2.1 and §8.3 rules the `h2` crate leaves to the application.
fn h2_fields<B>(req: &Request<B>) -> Result<(), Refusal> {
    for value in req.headers().values() {
        let bytes = value.as_bytes();
        if bytes.first().is_some_and(|&b| b == b' ' || b == b'\t')
            || bytes.last().is_some_and(|&b| b == b' ' || b == b'\t')
        {
            return Err(Refusal::bad(
                "a field value starts or ends with whitespace (RFC 9113 §8.2.1)",
            ));
        }
    }
    if let (Some(host), Some(authority)) = (req.headers().get(header::HOST), req.uri().authority())
    {
        if host.as_bytes() != authority.as_str().as_bytes() {
            return Err(Refusal::bad(
                "Host differs from :authority (RFC 9113 §8.3.1)",
            ));
        }
    }
    Ok(())
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The bytes of a reg-name (RFC 3986 §3.2.2: unreserved, sub-delims, `%`), as a table:
/// Host is checked on every request.
static REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b'%'
            );
        b += 1;
    }
    table
};

/// `host [ ":" port ]` with host a reg-name, IPv4 or an IP-literal (RFC 3986 §3.2.2).
pub fn valid_host(value: &[u8]) -> bool {
    let (host, port) = if let Some(rest) = value.strip_prefix(b"[") {
        let Some(close) = rest.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &rest[close + 1..] {
            [] => return true,
            [b':', port @ ..] => (&b""[..], Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        }
    };
    let host_ok = value.starts_with(b"[")
        || (!host.is_empty() && host.iter().all(|&b| REG_NAME[usize::from(b)]));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

/// Gives a checked HTTP/1 head its one reading before it is forwarded: the target's
/// authority replaces Host (RFC 9112 §3.2.2), an HTTP/1.0 request without Host gets
/// `routed_by` (the authority the proxy routed it by), and repeated identical
/// Content-Length values become one field.
pub fn normalize<B>(req: &mut Request<B>, head: Head, routed_by: Option<&HeaderValue>) {
    if req.version() == Version::HTTP_2 {
        return;
    }
    if let Some(authority) = req.uri().authority() {
        if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(header::HOST, value);
        }
    } else if !head.host {
        if let Some(value) = routed_by {
            req.headers_mut().insert(header::HOST, value.clone());
        }
    }
    if head.repeated_length {
        // hyper accepted the values, so they agree: keep one.
        let headers = req.headers_mut();
        if let Some(len) = first_length(headers) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
    }
}

fn first_length(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::CONTENT_LENGTH)?;
    let first = value.as_bytes().split(|&b| b == b',').next()?;
    std::str::from_utf8(trim_ows(first)).ok()?.parse().ok()
}

/// Fields that may never travel as trailers: framing, routing and hop-by-hop fields
/// (RFC 9110 §6.5.1). Removed from every trailer section the proxy forwards.
const NOT_IN_TRAILERS: [HeaderName; 8] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
];

/// Removes the fields that must not be trailers from `trailers`.
pub fn strip_trailers(trailers: &mut HeaderMap) {
    for name in &NOT_IN_TRAILERS {
        trailers.remove(name);
    }
    super::headers::strip_identity(trailers);
}

/// [`strip_trailers`] on a body frame, for the body types that pass frames through.
pub fn strip_frame_trailers(
    frame: Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>,
) -> Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>> {
    match frame {
        Some(Ok(mut frame)) => {
            if let Some(trailers) = frame.trailers_mut() {
                strip_trailers(trailers);
            }
            Some(Ok(frame))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_judged_strictly() {
        let cases: &[(&[u8], Line)] = &[
            (b"GET / HTTP/1.1\r\n", Line::Valid),
            (b"OPTIONS * HTTP/1.0\r\n", Line::Valid),
            (b"GET / HTTP/1.1\n", Line::Valid),
            (b"FOO /x HTTP/1.1\r\n", Line::Valid),
            (b"GET / HTTP/1.1\r", Line::Incomplete),
            (b"GE", Line::Incomplete),
            (b"GET /very/long", Line::Incomplete),
            (b"hello", Line::Incomplete),
            (b"hello world\r\n", Line::NotHttp),
            (b"get key\r\n", Line::NotHttp),
            (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", Line::NotHttp),
            (b"PING\r\n", Line::NotHttp),
            (b"A\x00", Line::NotHttp),
        ];
        for (input, want) in cases {
            assert_eq!(
                request_line(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn lines_that_begin_like_http_but_are_malformed_are_refused() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.2\r\n",
            b"GET / HTTP/2.0\r\n",
            b"GET / http/1.1\r\n",
            b"GET / HTTP/1.1 \r\n",
            b"GET\t/\tHTTP/1.1\r\n",
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\rHost: a\r\n",
            b"G(ET / HTTP/1.1\r\n",
            b"XYZ\x01 / HTTP/1.1\r\n",
            b"GET /\x7f HTTP/1.1\r\n",
            b"GET /\xff HTTP/1.1\r\n",
            b"GET /\r\n",
            b"GET\r\n",
            b"foo / bar\r\n",
        ];
        for input in cases {
            assert!(
                matches!(request_line(input), Line::Invalid(r) if r.status == StatusCode::BAD_REQUEST),
                "{:?} gave {:?}",
                String::from_utf8_lossy(input),
                request_line(input)
            );
        }
    }

    #[test]
    fn an_overlong_request_line_is_refused_before_it_completes() {
        let mut line = b"GET /".to_vec();
        line.resize(MAX_REQUEST_LINE + 10, b'a');
        assert_eq!(request_line(&line), Line::Invalid(LINE_TOO_LONG));
        let mut unknown = b"FOO /".to_vec();
        unknown.resize(MAX_REQUEST_LINE + 10, b'a');
        assert_eq!(request_line(&unknown), Line::Invalid(LINE_TOO_LONG));
    }

    fn req(version: Version, method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri).version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn heads_are_checked_against_rfc_9112() {
        use Version as V;
        let ok = [
            req(V::HTTP_11, "GET", "/", &[("host", "a.example:8080")]),
            req(V::HTTP_11, "GET", "/", &[("host", "[::1]:80")]),
            req(V::HTTP_10, "GET", "/", &[]),
            req(V::HTTP_11, "OPTIONS", "*", &[("host", "a")]),
            req(
                V::HTTP_11,
                "POST",
                "/",
                &[("host", "a"), ("transfer-encoding", "Chunked")],
            ),
            req(
                V::HTTP_11,
                "GET",
                "/",
                &[("host", "a"), ("connection", "keep-alive, upgrade")],
            ),
        ];
        for r in &ok {
            assert!(check(r).is_ok(), "{r:?}");
        }
        let bad = [
            (req(V::HTTP_11, "GET", "/", &[]), 400),
            (
                req(V::HTTP_11, "GET", "/", &[("host", "a"), ("host", "b")]),
                400,
            ),
            (req(V::HTTP_11, "GET", "/", &[("host", "a b")]), 400),
            (req(V::HTTP_11, "GET", "/", &[("host", "a/b")]), 400),
            (req(V::HTTP_11, "GET", "/", &[("host", "u@a")]), 400),
            (req(V::HTTP_11, "GET", "/", &[("host", "")]), 400),
            (req(V::HTTP_11, "GET", "/", &[("host", "a:80x")]), 400),
            (req(V::HTTP_11, "GET", "*", &[("host", "a")]), 400),
            (
                req(V::HTTP_11, "CONNECT", "a:443", &[("host", "a:443")]),
                405,
            ),
            (req(V::HTTP_11, "GET", "http://u@a/", &[("host", "a")]), 400),
            (
                req(
                    V::HTTP_11,
                    "GET",
                    "/",
                    &[("host", "a"), ("connection", "close, Content-Length")],
                ),
                400,
            ),
            (
                req(
                    V::HTTP_11,
                    "GET",
                    "/",
                    &[("host", "a"), ("connection", "host")],
                ),
                400,
            ),
            (
                req(
                    V::HTTP_11,
                    "POST",
                    "/",
                    &[
                        ("host", "a"),
                        ("transfer-encoding", "chunked"),
                        ("content-length", "3"),
                    ],
                ),
                400,
            ),
            (
                req(
                    V::HTTP_11,
                    "POST",
                    "/",
                    &[("host", "a"), ("transfer-encoding", "gzip, chunked")],
                ),
                501,
            ),
            (
                req(
                    V::HTTP_11,
                    "POST",
                    "/",
                    &[
                        ("host", "a"),
                        ("transfer-encoding", "chunked"),
                        ("transfer-encoding", "chunked"),
                    ],
                ),
                400,
            ),
            (
                req(
                    V::HTTP_11,
                    "POST",
                    "/",
                    &[("host", "a"), ("transfer-encoding", "chunked, ")],
                ),
                400,
            ),
            (
                req(V::HTTP_10, "POST", "/", &[("transfer-encoding", "chunked")]),
                400,
            ),
            (req(V::HTTP_2, "GET", "http://a/", &[("x", " padded")]), 400),
            (
                req(V::HTTP_2, "GET", "http://a/", &[("x", "padded\t")]),
                400,
            ),
            (req(V::HTTP_2, "GET", "http://a/", &[("host", "b")]), 400),
            (req(V::HTTP_2, "GET", "http://u@a/", &[]), 400),
        ];
        for (r, status) in &bad {
            let got = check(r).map_err(|e| e.status.as_u16());
            assert_eq!(got, Err(*status), "{r:?}");
        }
    }

    #[test]
    fn more_fields_than_the_limit_are_refused() {
        let fields: Vec<(String, &str)> = (0..101).map(|i| (format!("x-n-{i}"), "1")).collect();
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let r = req(Version::HTTP_2, "GET", "http://a/", &fields);
        assert_eq!(field_count(&r, 101), Ok(()));
        assert_eq!(
            field_count(&r, 100).map_err(|e| e.status),
            Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn normalization_gives_one_reading() {
        let mut r = req(
            Version::HTTP_11,
            "GET",
            "http://b.example:81/x",
            &[("host", "a")],
        );
        let head = check(&r).expect("valid");
        normalize(&mut r, head, None);
        assert_eq!(r.headers()[header::HOST], "b.example:81");

        let routed = HeaderValue::from_static("catalog");
        let mut r = req(Version::HTTP_10, "GET", "/", &[]);
        let head = check(&r).expect("valid");
        normalize(&mut r, head, Some(&routed));
        assert_eq!(r.headers()[header::HOST], "catalog");

        let mut r = req(
            Version::HTTP_11,
            "POST",
            "/",
            &[("host", "a"), ("content-length", "5, 5")],
        );
        let head = check(&r).expect("valid");
        assert!(head.repeated_length);
        normalize(&mut r, head, None);
        assert_eq!(
            r.headers().get_all(header::CONTENT_LENGTH).iter().count(),
            1
        );
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "5");
    }

    #[test]
    fn framing_fields_never_travel_as_trailers() {
        let mut t = HeaderMap::new();
        t.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        t.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        t.insert("grpc-status", HeaderValue::from_static("0"));
        strip_trailers(&mut t);
        assert_eq!(t.len(), 1);
        assert!(t.contains_key("grpc-status"));
    }
}
