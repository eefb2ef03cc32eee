//! The HTTP/1.1 vectors: raw bytes and the verdict the strict policy gives them.
//!
//! Sources: RFC 9112 (message syntax, framing, line endings, request-target forms),
//! RFC 9110 (Host, Connection, fields), and the smuggling literature: PortSwigger's
//! CL.TE / TE.CL / TE.TE research and response-queue poisoning, the http-garden
//! project's differential findings (chunk-size overflow, bare CR/LF, chunk extensions),
//! and advisories against HAProxy, nginx, Envoy, hyper, Node (llhttp) and Go (net/http).
//! The bytes are written here from those descriptions; nothing is copied.
//!
//! Every vector's requests use `Host: app.example` unless the Host is the point. Names
//! are unique and kebab-case (`WEFT_VECTOR=name`).

use crate::h1::Class::{
    AbsoluteForm, AsteriskForm, BareCr, BareLf, Baseline, ChunkExtension, ChunkSize, ClTe, Connect,
    ConnectionHeader, ControlCharacters, IdentityForgery, InvalidContentLength, InvalidHost,
    Method, ObsFold, Pipelining, RequestLine, ResponseQueue, SizeLimit, TeObfuscation,
    UpstreamPoisoning, Version, WhitespaceBeforeColon,
};
use crate::h1::{Class, Expect, Status, Vector, Want};

/// A forged identity a client might try to pass off as the inbound proxy's.
const FORGED: &str =
    "By=spiffe://cluster.local/ns/default/sa/origin;URI=spiffe://cluster.local/ns/default/sa/admin";

fn v(name: &'static str, class: Class, bytes: &[u8], expect: Expect) -> Vector {
    Vector {
        name,
        class,
        bytes: bytes.to_vec(),
        expect,
    }
}

/// `400`, nothing forwarded.
fn bad() -> Expect {
    Expect::refused(Status::Is(400))
}

/// `501`: an unknown or extra transfer coding.
fn unsupported() -> Expect {
    Expect::refused(Status::Is(501))
}

/// A request with both Content-Length and Transfer-Encoding: chunked, read by its
/// chunked framing alone (RFC 9112 §6.1): forwarded with `body` and without the
/// Content-Length, then the connection closes, so whatever followed the chunked body
/// never becomes a request.
fn te_wins(body: &[u8]) -> Expect {
    Expect::forwarded_then_closed(vec![Want::post("/", body)])
}

/// `400` or `501`: where RFC 9112 §6.1 (unknown coding: 501) and §6.3 (chunked not
/// final: 400) both apply.
fn bad_coding() -> Expect {
    Expect::refused(Status::OneOf(&[400, 501]))
}

/// Any 4xx (size limits).
fn too_large() -> Expect {
    Expect::refused(Status::Any4xx)
}

fn fwd(wants: Vec<Want>) -> Expect {
    Expect::forwarded(wants)
}

fn get() -> Expect {
    fwd(vec![Want::get("/")])
}

fn post_hello() -> Expect {
    fwd(vec![Want::post("/", b"hello")])
}

/// `POST / HTTP/1.1`, `Host`, then `rest` (more fields, blank line, body).
fn post(rest: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: app.example\r\n{rest}").into_bytes()
}

/// A chunked POST whose body starts with `body`.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = post("Transfer-Encoding: chunked\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// A GET with `fields` (each ending in CRLF) after `Host`.
fn get_with(fields: &[u8]) -> Vec<u8> {
    let mut out = b"GET / HTTP/1.1\r\nHost: app.example\r\n".to_vec();
    out.extend_from_slice(fields);
    out.extend_from_slice(b"\r\n");
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Every HTTP/1.1 vector, in table order.
pub fn vectors() -> Vec<Vector> {
    let mut all = Vec::new();
    all.extend(baseline());
    all.extend(cl_te());
    all.extend(te_obfuscation());
    all.extend(content_length());
    all.extend(chunk_size());
    all.extend(chunk_extension());
    all.extend(line_endings());
    all.extend(fields());
    all.extend(host());
    all.extend(request_line());
    all.extend(connection());
    all.extend(targets());
    all.extend(size_limits());
    all.extend(identity());
    all.extend(pipelining());
    all.extend(poisoning());
    all
}

fn baseline() -> Vec<Vector> {
    vec![
        v(
            "get-origin-form",
            Baseline,
            b"GET /a/b?c=d HTTP/1.1\r\nHost: app.example\r\n\r\n",
            fwd(vec![Want::get("/a/b?c=d")]),
        ),
        v(
            "post-content-length",
            Baseline,
            &post("Content-Length: 5\r\n\r\nhello"),
            post_hello(),
        ),
        v(
            "post-chunked",
            Baseline,
            &chunked(b"5\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "post-chunked-several-chunks",
            Baseline,
            &chunked(b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "post-chunked-empty",
            Baseline,
            &chunked(b"0\r\n\r\n"),
            fwd(vec![Want::post("/", b"")]),
        ),
        v(
            "post-chunked-with-trailer",
            Baseline,
            &chunked(b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
            post_hello(),
        ),
        v(
            "head",
            Baseline,
            b"HEAD / HTTP/1.1\r\nHost: app.example\r\n\r\n",
            fwd(vec![Want::new("HEAD", "/")]),
        ),
        v(
            "http10-with-host",
            Baseline,
            b"GET / HTTP/1.0\r\nHost: app.example\r\n\r\n",
            get(),
        ),
        v(
            "keep-alive-explicit",
            Baseline,
            &get_with(b"Connection: keep-alive\r\n"),
            get(),
        ),
        v(
            "no-ows-after-colon",
            Baseline,
            b"GET / HTTP/1.1\r\nHost:app.example\r\nX-A:b\r\n\r\n",
            fwd(vec![Want::get("/").header("x-a", b"b")]),
        ),
        v(
            "ows-around-value-trimmed",
            Baseline,
            &get_with(b"X-A: \t b \t\r\n"),
            fwd(vec![Want::get("/").header("x-a", b"b")]),
        ),
        v(
            "field-name-case-insensitive",
            Baseline,
            b"GET / HTTP/1.1\r\nhOsT: app.example\r\n\r\n",
            get(),
        ),
        v(
            "expect-100-continue",
            Baseline,
            &post("Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"),
            post_hello(),
        ),
        v(
            "htab-in-value",
            Baseline,
            &get_with(b"X-A: a\tb\r\n"),
            fwd(vec![Want::get("/").header("x-a", b"a\tb")]),
        ),
        v(
            "obs-text-in-value",
            Baseline,
            &get_with(b"X-A: caf\xe9\r\n"),
            fwd(vec![Want::get("/").header("x-a", b"caf\xe9")]),
        ),
    ]
}

fn cl_te() -> Vec<Vector> {
    vec![
        v("cl-te-classic", ClTe, &post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"), te_wins(b"")),
        v("te-cl-classic", ClTe, &post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n"), te_wins(b"GPOST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 15\r\n\r\nx=1")),
        v("cl-zero-te-chunked", ClTe, &post("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), te_wins(b"hello")),
        v("te-chunked-cl-consistent", ClTe, &post("Transfer-Encoding: chunked\r\nContent-Length: 15\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), te_wins(b"hello")),
        v("cl-te-on-get", ClTe, b"GET / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Expect::forwarded_then_closed(vec![Want::get("/")])),
        v("cl-te-lowercase-names", ClTe, &post("content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"), te_wins(b"")),
        v("cl-te-identity", ClTe, &post("Content-Length: 5\r\nTransfer-Encoding: identity\r\n\r\nhello"), bad_coding()),
        v("cl-te-http10", ClTe, b"POST / HTTP/1.0\r\nHost: app.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", bad()),
        v("cl-te-cl-sandwich", ClTe, &post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), te_wins(b"")),
        v("te-bad-coding-and-cl", ClTe, &post("Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello"), bad_coding()),
    ]
}

fn te_obfuscation() -> Vec<Vector> {
    let body = "\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let te = |value: &str| post(&format!("Transfer-Encoding: {value}{body}"));
    vec![
        v("te-gzip-chunked", TeObfuscation, &te("gzip, chunked"), unsupported()),
        v("te-chunked-gzip", TeObfuscation, &te("chunked, gzip"), bad_coding()),
        v("te-chunked-chunked", TeObfuscation, &te("chunked, chunked"), bad()),
        v("te-duplicate-headers", TeObfuscation, &post(&format!("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked{body}")), bad_coding()),
        v("te-chunked-then-identity-header", TeObfuscation, &post(&format!("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity{body}")), bad_coding()),
        v("te-identity-then-chunked-header", TeObfuscation, &post(&format!("Transfer-Encoding: identity\r\nTransfer-Encoding: chunked{body}")), bad_coding()),
        v("te-xchunked", TeObfuscation, &te("xchunked"), bad_coding()),
        v("te-chunk", TeObfuscation, &te("chunk"), bad_coding()),
        v("te-identity", TeObfuscation, &te("identity"), bad_coding()),
        v("te-gzip-only", TeObfuscation, &te("gzip"), bad_coding()),
        v("te-chunked-with-parameter", TeObfuscation, &te("chunked;x=1"), bad_coding()),
        v("te-quoted-chunked", TeObfuscation, &te("\"chunked\""), bad_coding()),
        v("te-trailing-comma", TeObfuscation, &te("chunked,"), bad_coding()),
        v("te-leading-comma", TeObfuscation, &te(", chunked"), bad_coding()),
        v("te-empty-value", TeObfuscation, &te(""), bad_coding()),
        v("te-kelvin-sign", TeObfuscation, &cat(&[b"POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chun\xe2\x84\xaaed", body.as_bytes()]), bad_coding()),
        v("te-nul-suffix", TeObfuscation, &cat(&[b"POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\x00", body.as_bytes()]), bad()),
        v("te-vtab-prefix", TeObfuscation, &te("\x0bchunked"), bad()),
        v("te-formfeed-prefix", TeObfuscation, &te("\x0cchunked"), bad()),
        v("te-http10", TeObfuscation, format!("POST / HTTP/1.0\r\nHost: app.example\r\nTransfer-Encoding: chunked{body}").as_bytes(), bad()),
        v("te-uppercase", TeObfuscation, &te("CHUNKED"), post_hello()),
        v("te-mixed-case", TeObfuscation, &te("ChUnKeD"), post_hello()),
        v("te-tab-ows", TeObfuscation, &te("\tchunked"), post_hello()),
        v("te-trailing-ows", TeObfuscation, &te("chunked \t"), post_hello()),
        v("te-underscore-name", TeObfuscation, &post("Transfer_Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), Expect::forwarded_then_refused(vec![Want::post("/", b"")], Status::Is(400))),
        v("get-chunked-body", TeObfuscation, b"GET / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", fwd(vec![Want::get("/").body(b"hello")])),
    ]
}

fn content_length() -> Vec<Vector> {
    let cl = |value: &[u8]| {
        cat(&[
            b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: ",
            value,
            b"\r\n\r\nhello",
        ])
    };
    let five = || {
        fwd(vec![
            Want::post("/", b"hello").header("content-length", b"5")
        ])
    };
    vec![
        v("cl-plus-sign", InvalidContentLength, &cl(b"+5"), bad()),
        v("cl-hex", InvalidContentLength, &cl(b"0x5"), bad()),
        v("cl-decimal-point", InvalidContentLength, &cl(b"5.0"), bad()),
        v("cl-negative", InvalidContentLength, &cl(b"-1"), bad()),
        v("cl-empty", InvalidContentLength, &cl(b""), bad()),
        v(
            "cl-overflow-wraps-to-5",
            InvalidContentLength,
            &cl(b"18446744073709551621"),
            bad(),
        ),
        v(
            "cl-overflow-many-digits",
            InvalidContentLength,
            &cl(b"99999999999999999999999999"),
            bad(),
        ),
        v(
            "cl-duplicate-different",
            InvalidContentLength,
            &post("Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
            bad(),
        ),
        v(
            "cl-list-different",
            InvalidContentLength,
            &cl(b"5, 6"),
            bad(),
        ),
        v("cl-space-inside", InvalidContentLength, &cl(b"5 5"), bad()),
        v("cl-letter-suffix", InvalidContentLength, &cl(b"5a"), bad()),
        v("cl-underscore", InvalidContentLength, &cl(b"0_5"), bad()),
        v(
            "cl-fullwidth-digit",
            InvalidContentLength,
            &cl(b"\xef\xbc\x95"),
            bad(),
        ),
        v("cl-vtab-prefix", InvalidContentLength, &cl(b"\x0b5"), bad()),
        v("cl-comma-only", InvalidContentLength, &cl(b","), bad()),
        v("cl-trailing-comma", InvalidContentLength, &cl(b"5,"), bad()),
        v(
            "cl-duplicate-same-headers",
            InvalidContentLength,
            &post("Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
            five(),
        ),
        v(
            "cl-duplicate-same-list",
            InvalidContentLength,
            &cl(b"5, 5"),
            bad(),
        ),
        v(
            "cl-leading-zeros",
            InvalidContentLength,
            &cl(b"005"),
            post_hello(),
        ),
        v(
            "cl-trailing-ows",
            InvalidContentLength,
            &cl(b"5 \t"),
            post_hello(),
        ),
        v(
            "get-content-length-body",
            Method,
            b"GET / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello",
            fwd(vec![Want::get("/").body(b"hello")]),
        ),
    ]
}

fn chunk_size() -> Vec<Vector> {
    vec![
        v(
            "chunk-size-not-hex",
            ChunkSize,
            &chunked(b"g\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-0x-prefix",
            ChunkSize,
            &chunked(b"0x5\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-negative",
            ChunkSize,
            &chunked(b"-5\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-plus",
            ChunkSize,
            &chunked(b"+5\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-overflow-wraps-to-5",
            ChunkSize,
            &chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-overflow-all-f",
            ChunkSize,
            &chunked(b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-leading-space",
            ChunkSize,
            &chunked(b" 5\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-trailing-space",
            ChunkSize,
            &chunked(b"5 \r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-size-empty",
            ChunkSize,
            &chunked(b"\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-underscore",
            ChunkSize,
            &chunked(b"0_5\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-bare-cr",
            ChunkSize,
            &chunked(b"5\rhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-data-missing-crlf",
            ChunkSize,
            &chunked(b"5\r\nhelloXX0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-data-longer-than-size",
            ChunkSize,
            &chunked(b"3\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-data-shorter-than-size",
            ChunkSize,
            &chunked(b"6\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-data-bare-lf-terminator",
            ChunkSize,
            &chunked(b"5\r\nhello\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-data-bare-cr-terminator",
            ChunkSize,
            &chunked(b"5\r\nhello\r0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-uppercase-hex",
            ChunkSize,
            &chunked(b"A\r\n0123456789\r\n0\r\n\r\n"),
            fwd(vec![Want::post("/", b"0123456789")]),
        ),
        v(
            "chunk-size-leading-zeros",
            ChunkSize,
            &chunked(b"0005\r\nhello\r\n0000\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-size-line-bare-lf",
            ChunkSize,
            &chunked(b"5\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-last-chunk-bare-lf",
            ChunkSize,
            &chunked(b"5\r\nhello\r\n0\n\n"),
            bad(),
        ),
        v(
            "chunk-trailer-content-length",
            ChunkSize,
            &chunked(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-trailer-transfer-encoding",
            ChunkSize,
            &chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-trailer-obs-fold",
            ChunkSize,
            &chunked(b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-trailer-bare-cr",
            ChunkSize,
            &chunked(b"5\r\nhello\r\n0\r\nX-T: a\rb\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-trailer-space-before-colon",
            ChunkSize,
            &chunked(b"5\r\nhello\r\n0\r\nX-T : a\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-size-semicolon-only",
            ChunkSize,
            &chunked(b"5;\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
    ]
}

fn chunk_extension() -> Vec<Vector> {
    let mut oversized = b"5;".to_vec();
    oversized.extend(std::iter::repeat_n(b'a', 70 * 1024));
    oversized.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    vec![
        v(
            "chunk-ext-token-value",
            ChunkExtension,
            &chunked(b"5;foo=bar\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-name-only",
            ChunkExtension,
            &chunked(b"5;foo\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-quoted",
            ChunkExtension,
            &chunked(b"5;foo=\"a b;c\"\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-quoted-pair",
            ChunkExtension,
            &chunked(b"5;foo=\"a\\\"b\"\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-bws",
            ChunkExtension,
            &chunked(b"5 ; foo = bar\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-several",
            ChunkExtension,
            &chunked(b"5;a=1;b=2\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-on-last-chunk",
            ChunkExtension,
            &chunked(b"5\r\nhello\r\n0;foo=bar\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-bare-lf-in-quoted",
            ChunkExtension,
            &chunked(b"5;foo=\"a\nb\"\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-ext-bare-cr",
            ChunkExtension,
            &chunked(b"5;foo=a\rb\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "chunk-ext-nul",
            ChunkExtension,
            &chunked(b"5;foo=\x00\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-del",
            ChunkExtension,
            &chunked(b"5;foo=\x7f\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-empty-name",
            ChunkExtension,
            &chunked(b"5;=bar\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-unterminated-quote",
            ChunkExtension,
            &chunked(b"5;foo=\"bar\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-space-in-token",
            ChunkExtension,
            &chunked(b"5;foo=a b\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-obs-text-token",
            ChunkExtension,
            &chunked(b"5;foo=\xff\r\nhello\r\n0\r\n\r\n"),
            post_hello(),
        ),
        v(
            "chunk-ext-oversized",
            ChunkExtension,
            &chunked(&oversized),
            too_large(),
        ),
    ]
}

fn line_endings() -> Vec<Vector> {
    vec![
        v("bare-cr-after-request-line", BareCr, b"GET / HTTP/1.1\rHost: app.example\r\n\r\n", bad()),
        v("bare-cr-in-value", BareCr, &get_with(b"X-A: a\rb\r\n"), bad()),
        v("bare-cr-end-of-value", BareCr, &get_with(b"X-A: a\r\r\n"), bad()),
        v("bare-cr-in-name", BareCr, &get_with(b"X\r-A: b\r\n"), bad()),
        v("bare-cr-in-target", BareCr, b"GET /a\rb HTTP/1.1\r\nHost: app.example\r\n\r\n", bad()),
        v("bare-cr-in-method", BareCr, b"G\rET / HTTP/1.1\r\nHost: app.example\r\n\r\n", bad()),
        v("bare-cr-before-blank-line", BareCr, b"GET / HTTP/1.1\r\nHost: app.example\r\n\r\r\n", bad()),
        v("bare-cr-line-start", BareCr, &get_with(b"\rX-A: b\r\n"), bad()),
        v("bare-cr-in-host", BareCr, b"GET / HTTP/1.1\r\nHost: app.example\r.evil\r\n\r\n", bad()),
        v("bare-lf-then-cr", BareCr, b"GET / HTTP/1.1\n\rHost: app.example\r\n\r\n", bad()),
        v("bare-lf-all-lines", BareLf, b"GET / HTTP/1.1\nHost: app.example\n\n", get()),
        v("bare-lf-blank-line-only", BareLf, b"GET / HTTP/1.1\r\nHost: app.example\r\n\n", get()),
        v("bare-lf-request-line-only", BareLf, b"GET / HTTP/1.1\nHost: app.example\r\n\r\n", get()),
        v("bare-lf-post-content-length", BareLf, b"POST / HTTP/1.1\nHost: app.example\nContent-Length: 5\n\nhello", post_hello()),
        v("bare-lf-post-chunked", BareLf, b"POST / HTTP/1.1\nHost: app.example\nTransfer-Encoding: chunked\n\n5\nhello\r\n0\n\n", bad()),
        v("bare-lf-splits-fields", BareLf, &get_with(b"X-A: a\nX-B: b\r\n"), fwd(vec![Want::get("/").header("x-a", b"a").header("x-b", b"b")])),
        v("bare-lf-obs-fold", BareLf, &get_with(b"X-A: a\n b\r\n"), bad()),
        v("bare-lf-cl-te", BareLf, b"POST / HTTP/1.1\nHost: app.example\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\n\n", bad()),
        v("bare-lf-pipelined", BareLf, b"GET /1 HTTP/1.1\nHost: app.example\n\nGET /2 HTTP/1.1\nHost: app.example\n\n", fwd(vec![Want::get("/1"), Want::get("/2")])),
        v("obs-fold-space", ObsFold, &get_with(b"X-A: a\r\n b\r\n"), bad()),
        v("obs-fold-tab", ObsFold, &get_with(b"X-A: a\r\n\tb\r\n"), bad()),
        v("obs-fold-host", ObsFold, b"GET / HTTP/1.1\r\nHost: app.example\r\n evil.example\r\n\r\n", bad()),
        v("obs-fold-content-length", ObsFold, &post("Content-Length:\r\n 5\r\n\r\nhello"), bad()),
        v("obs-fold-transfer-encoding", ObsFold, &post("Transfer-Encoding: identity\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), bad()),
        v("obs-fold-before-first-field", ObsFold, b"GET / HTTP/1.1\r\n X-A: b\r\nHost: app.example\r\n\r\n", bad()),
        v("obs-fold-whitespace-only-line", ObsFold, &get_with(b"X-A: a\r\n \r\n"), bad()),
        v("obs-fold-te-after-host", ObsFold, b"POST / HTTP/1.1\r\nHost: app.example\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", bad()),
    ]
}

fn fields() -> Vec<Vector> {
    vec![
        v(
            "ws-colon-host",
            WhitespaceBeforeColon,
            b"GET / HTTP/1.1\r\nHost : app.example\r\n\r\n",
            bad(),
        ),
        v(
            "ws-colon-content-length",
            WhitespaceBeforeColon,
            &post("Content-Length : 5\r\n\r\nhello"),
            bad(),
        ),
        v(
            "ws-colon-transfer-encoding",
            WhitespaceBeforeColon,
            &post("Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            bad(),
        ),
        v(
            "ws-colon-te-with-cl",
            WhitespaceBeforeColon,
            &post("Content-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\nhello"),
            bad(),
        ),
        v(
            "ws-colon-tab",
            WhitespaceBeforeColon,
            &get_with(b"X-A\t: b\r\n"),
            bad(),
        ),
        v(
            "ws-colon-custom",
            WhitespaceBeforeColon,
            &get_with(b"X-A : b\r\n"),
            bad(),
        ),
        v(
            "ws-colon-several-spaces",
            WhitespaceBeforeColon,
            &get_with(b"X-A   : b\r\n"),
            bad(),
        ),
        v(
            "ctl-nul-in-value",
            ControlCharacters,
            &get_with(b"X-A: a\x00b\r\n"),
            bad(),
        ),
        v(
            "ctl-del-in-value",
            ControlCharacters,
            &get_with(b"X-A: a\x7fb\r\n"),
            bad(),
        ),
        v(
            "ctl-vtab-in-value",
            ControlCharacters,
            &get_with(b"X-A: a\x0bb\r\n"),
            bad(),
        ),
        v(
            "ctl-formfeed-in-value",
            ControlCharacters,
            &get_with(b"X-A: a\x0cb\r\n"),
            bad(),
        ),
        v(
            "ctl-escape-in-value",
            ControlCharacters,
            &get_with(b"X-A: a\x1bb\r\n"),
            bad(),
        ),
        v(
            "ctl-in-name",
            ControlCharacters,
            &get_with(b"X\x01A: b\r\n"),
            bad(),
        ),
        v(
            "ctl-nul-in-method",
            ControlCharacters,
            b"G\x00ET / HTTP/1.1\r\nHost: app.example\r\n\r\n",
            bad(),
        ),
        v(
            "ctl-in-target",
            ControlCharacters,
            b"GET /\x01 HTTP/1.1\r\nHost: app.example\r\n\r\n",
            bad(),
        ),
        v(
            "ctl-del-in-target",
            ControlCharacters,
            b"GET /\x7f HTTP/1.1\r\nHost: app.example\r\n\r\n",
            bad(),
        ),
        v(
            "ctl-nul-in-host",
            ControlCharacters,
            b"GET / HTTP/1.1\r\nHost: app\x00.example\r\n\r\n",
            bad(),
        ),
        v(
            "name-with-parenthesis",
            ControlCharacters,
            &get_with(b"X(A): b\r\n"),
            bad(),
        ),
        v(
            "name-with-quote",
            ControlCharacters,
            &get_with(b"X\"A: b\r\n"),
            bad(),
        ),
        v(
            "name-with-slash",
            ControlCharacters,
            &get_with(b"X/A: b\r\n"),
            bad(),
        ),
        v(
            "name-with-brace",
            ControlCharacters,
            &get_with(b"X{A}: b\r\n"),
            bad(),
        ),
        v(
            "name-empty",
            ControlCharacters,
            &get_with(b": b\r\n"),
            bad(),
        ),
        v(
            "name-utf8",
            ControlCharacters,
            &get_with(b"X-\xc4\xa4: b\r\n"),
            bad(),
        ),
        v(
            "line-without-colon",
            ControlCharacters,
            &get_with(b"X-A b\r\n"),
            bad(),
        ),
    ]
}

fn host() -> Vec<Vector> {
    let host = |value: &[u8]| cat(&[b"GET / HTTP/1.1\r\nHost: ", value, b"\r\n\r\n"]);
    let forwarded = |h: &str| fwd(vec![Want::get("/").host(h)]);
    vec![
        v(
            "host-missing",
            InvalidHost,
            b"GET / HTTP/1.1\r\n\r\n",
            bad(),
        ),
        v(
            "host-duplicate-same",
            InvalidHost,
            b"GET / HTTP/1.1\r\nHost: app.example\r\nHost: app.example\r\n\r\n",
            bad(),
        ),
        v(
            "host-duplicate-different",
            InvalidHost,
            b"GET / HTTP/1.1\r\nHost: app.example\r\nHost: evil.example\r\n\r\n",
            bad(),
        ),
        v("host-empty", InvalidHost, &host(b""), bad()),
        v(
            "host-space-inside",
            InvalidHost,
            &host(b"app example"),
            bad(),
        ),
        v("host-slash", InvalidHost, &host(b"app.example/evil"), bad()),
        v(
            "host-userinfo",
            InvalidHost,
            &host(b"user@app.example"),
            bad(),
        ),
        v(
            "host-list",
            InvalidHost,
            &host(b"app.example, evil.example"),
            bad(),
        ),
        v(
            "host-port-not-numeric",
            InvalidHost,
            &host(b"app.example:8o"),
            bad(),
        ),
        v(
            "host-backslash",
            InvalidHost,
            &host(b"app.example\\evil"),
            bad(),
        ),
        v(
            "host-question-mark",
            InvalidHost,
            &host(b"app.example?x"),
            bad(),
        ),
        v("host-hash", InvalidHost, &host(b"app.example#x"), bad()),
        v("host-ipv6-unbracketed", InvalidHost, &host(b"::1"), bad()),
        v("host-ipv6-unclosed", InvalidHost, &host(b"[::1"), bad()),
        v(
            "host-double-colon",
            InvalidHost,
            &host(b"app.example::80"),
            bad(),
        ),
        v(
            "host-ipv6-literal",
            InvalidHost,
            &host(b"[::1]:8080"),
            forwarded("[::1]:8080"),
        ),
        v(
            "host-ipv4-port",
            InvalidHost,
            &host(b"192.0.2.1:8080"),
            forwarded("192.0.2.1:8080"),
        ),
        v(
            "host-with-port",
            InvalidHost,
            &host(b"app.example:8080"),
            forwarded("app.example:8080"),
        ),
        v(
            "host-underscore",
            InvalidHost,
            &host(b"app_1.example"),
            forwarded("app_1.example"),
        ),
        v(
            "host-trailing-dot",
            InvalidHost,
            &host(b"app.example."),
            forwarded("app.example."),
        ),
        v(
            "http10-without-host",
            InvalidHost,
            b"GET / HTTP/1.0\r\n\r\n",
            fwd(vec![Want::get("/").routed_host()]),
        ),
    ]
}

fn request_line() -> Vec<Vector> {
    let line = |l: &[u8]| cat(&[l, b"\r\nHost: app.example\r\n\r\n"]);
    vec![
        v("rl-two-spaces-after-method", RequestLine, &line(b"GET  / HTTP/1.1"), bad()),
        v("rl-two-spaces-before-version", RequestLine, &line(b"GET /  HTTP/1.1"), bad()),
        v("rl-tab-separators", RequestLine, &line(b"GET\t/\tHTTP/1.1"), bad()),
        v("rl-trailing-space", RequestLine, &line(b"GET / HTTP/1.1 "), bad()),
        v("rl-trailing-tab", RequestLine, &line(b"GET / HTTP/1.1\t"), bad()),
        v("rl-leading-space", RequestLine, &line(b" GET / HTTP/1.1"), bad()),
        v("rl-no-version", RequestLine, b"GET /\r\n\r\n", bad()),
        v("rl-no-target", RequestLine, &line(b"GET HTTP/1.1"), bad()),
        v("rl-space-in-target", RequestLine, &line(b"GET /a b HTTP/1.1"), bad()),
        v("rl-utf8-target", RequestLine, &line(b"GET /caf\xc3\xa9 HTTP/1.1"), bad()),
        v("rl-relative-target", RequestLine, &line(b"GET a/b HTTP/1.1"), bad()),
        v("rl-leading-empty-line", RequestLine, b"\r\nGET / HTTP/1.1\r\nHost: app.example\r\n\r\n", bad()),
        // A path, not an authority; forwarded with its slashes merged (the default
        // path normalisation, docs/policies/path-normalization.md).
        v("rl-double-slash-target", RequestLine, &line(b"GET //evil.example/x HTTP/1.1"), fwd(vec![Want::get("/evil.example/x")])),
        v("version-http2", Version, &line(b"GET / HTTP/2.0"), bad()),
        v("version-http12", Version, &line(b"GET / HTTP/1.2"), bad()),
        v("version-lowercase", Version, &line(b"GET / http/1.1"), bad()),
        v("version-http3", Version, &line(b"GET / HTTP/3"), bad()),
        v("version-no-minor", Version, &line(b"GET / HTTP/1"), bad()),
        v("version-leading-zero", Version, &line(b"GET / HTTP/01.1"), bad()),
        v("version-two-digit-minor", Version, &line(b"GET / HTTP/1.10"), bad()),
        v("version-http09-explicit", Version, &line(b"GET / HTTP/0.9"), bad()),
        v("version-suffix", Version, &line(b"GET / HTTP/1.1x"), bad()),
        v("version-space-inside", Version, &line(b"GET / HTTP/ 1.1"), bad()),
        v("version-http10-keep-alive-pipelined", Version, b"GET /1 HTTP/1.0\r\nHost: app.example\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\nHost: app.example\r\n\r\n", fwd(vec![Want::get("/1"), Want::get("/2")])),
        v("method-extension", Method, &line(b"PURGE / HTTP/1.1"), fwd(vec![Want::new("PURGE", "/")])),
        v("method-lowercase", Method, &line(b"get / HTTP/1.1"), fwd(vec![Want::new("get", "/")])),
        v("method-options-origin-form", Method, &line(b"OPTIONS / HTTP/1.1"), fwd(vec![Want::new("OPTIONS", "/")])),
        v("method-delete-with-body", Method, b"DELETE /x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello", fwd(vec![Want::new("DELETE", "/x").body(b"hello")])),
        v("method-with-parenthesis", Method, &line(b"GE(T / HTTP/1.1"), bad()),
        v("method-with-slash", Method, &line(b"GET/ / HTTP/1.1"), bad()),
        v("method-utf8", Method, &line(b"G\xc3\x89T / HTTP/1.1"), bad()),
    ]
}

fn connection() -> Vec<Vector> {
    vec![
        v("conn-nominates-host", ConnectionHeader, &get_with(b"Connection: host\r\n"), bad()),
        v("conn-nominates-host-uppercase", ConnectionHeader, &get_with(b"Connection: HOST\r\n"), bad()),
        v("conn-nominates-content-length", ConnectionHeader, &post("Connection: content-length\r\nContent-Length: 5\r\n\r\nhello"), bad()),
        v("conn-nominates-content-length-no-body", ConnectionHeader, &get_with(b"Connection: Content-Length\r\n"), bad()),
        v("conn-nominates-transfer-encoding", ConnectionHeader, &post("Connection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), bad()),
        v("conn-nominates-te-in-list", ConnectionHeader, &post("Connection: keep-alive, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), bad()),
        v("conn-nominates-custom-field", ConnectionHeader, &get_with(b"Connection: x-hop\r\nX-Hop: 1\r\n"), fwd(vec![Want::get("/").absent("x-hop")])),
        v("conn-close-stops-pipeline", ConnectionHeader, b"GET /1 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: app.example\r\n\r\n", fwd(vec![Want::get("/1")])),
    ]
}

fn targets() -> Vec<Vector> {
    let line = |l: &[u8]| cat(&[l, b"\r\nHost: app.example\r\n\r\n"]);
    vec![
        v("absolute-form-other-host", AbsoluteForm, &line(b"GET http://other.example/p?q HTTP/1.1"), fwd(vec![Want::get("/p?q").host("other.example")])),
        v("absolute-form-same-host", AbsoluteForm, &line(b"GET http://app.example/p HTTP/1.1"), fwd(vec![Want::get("/p")])),
        v("absolute-form-with-port", AbsoluteForm, &line(b"GET http://other.example:8080/p HTTP/1.1"), fwd(vec![Want::get("/p").host("other.example:8080")])),
        v("absolute-form-https", AbsoluteForm, &line(b"GET https://other.example/p HTTP/1.1"), fwd(vec![Want::get("/p").host("other.example")])),
        v("absolute-form-no-path", AbsoluteForm, &line(b"GET http://other.example HTTP/1.1"), fwd(vec![Want::get("/").host("other.example")])),
        v("absolute-form-uppercase-scheme", AbsoluteForm, &line(b"GET HTTP://other.example/p HTTP/1.1"), fwd(vec![Want::get("/p").host("other.example")])),
        v("absolute-form-http10-no-host", AbsoluteForm, b"GET http://other.example/p HTTP/1.0\r\n\r\n", fwd(vec![Want::get("/p").host("other.example")])),
        v("absolute-form-userinfo", AbsoluteForm, &line(b"GET http://user@other.example/p HTTP/1.1"), bad()),
        v("absolute-form-userinfo-port-trick", AbsoluteForm, &line(b"GET http://app.example:80@evil.example/p HTTP/1.1"), bad()),
        v("absolute-form-empty-authority", AbsoluteForm, &line(b"GET http:///p HTTP/1.1"), bad()),
        v("absolute-form-without-host-field", AbsoluteForm, b"GET http://other.example/p HTTP/1.1\r\n\r\n", bad()),
        v("asterisk-options", AsteriskForm, &line(b"OPTIONS * HTTP/1.1"), fwd(vec![Want::new("OPTIONS", "*")])),
        v("asterisk-get", AsteriskForm, &line(b"GET * HTTP/1.1"), bad()),
        v("asterisk-post", AsteriskForm, b"POST * HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello", bad()),
        v("asterisk-with-suffix", AsteriskForm, &line(b"OPTIONS *x HTTP/1.1"), bad()),
        v("connect-authority-form", Connect, b"CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n", Expect::refused(Status::Is(405))),
        v("connect-then-pipelined-get", Connect, b"CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n", Expect::refused(Status::Is(405))),
        v("connect-http10", Connect, b"CONNECT app.example:443 HTTP/1.0\r\n\r\n", Expect::refused(Status::Is(405))),
        v("connect-origin-form", Connect, &line(b"CONNECT / HTTP/1.1"), Expect::refused(Status::OneOf(&[400, 405]))),
        v("connect-without-port", Connect, &line(b"CONNECT app.example HTTP/1.1"), Expect::refused(Status::OneOf(&[400, 405]))),
        v("authority-form-get", Connect, &line(b"GET app.example:80 HTTP/1.1"), bad()),
    ]
}

fn size_limits() -> Vec<Vector> {
    let long_target = |n: usize| {
        let mut out = b"GET /".to_vec();
        out.extend(std::iter::repeat_n(b'a', n));
        out.extend_from_slice(b" HTTP/1.1\r\nHost: app.example\r\n\r\n");
        out
    };
    let fields = |count: usize, size: usize| {
        let mut out = b"GET / HTTP/1.1\r\nHost: app.example\r\n".to_vec();
        for i in 0..count {
            out.extend_from_slice(format!("X-F{i}: ").as_bytes());
            out.extend(std::iter::repeat_n(b'v', size));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    };
    let mut long_method = vec![b'G'; 80 * 1024];
    long_method.extend_from_slice(b" / HTTP/1.1\r\nHost: app.example\r\n\r\n");
    vec![
        v("target-1mib", SizeLimit, &long_target(1 << 20), too_large()),
        v(
            "target-80kib",
            SizeLimit,
            &long_target(80 * 1024),
            too_large(),
        ),
        v(
            "field-value-70kib",
            SizeLimit,
            &fields(1, 70 * 1024),
            too_large(),
        ),
        v("fields-120", SizeLimit, &fields(119, 4), too_large()),
        v(
            "fields-70kib-in-30",
            SizeLimit,
            &fields(30, 2400),
            too_large(),
        ),
        v("method-80kib", SizeLimit, &long_method, too_large()),
        v("fields-exactly-100", SizeLimit, &fields(99, 4), get()),
        v("fields-60kib", SizeLimit, &fields(30, 2000), get()),
    ]
}

fn identity() -> Vec<Vector> {
    let xfcc = format!("X-Forwarded-Client-Cert: {FORGED}\r\n");
    let with = |fields: &str| get_with(fields.as_bytes());
    let inner = format!("GET /2 HTTP/1.1\r\nHost: app.example\r\n{xfcc}\r\n");
    vec![
        v("xfcc-first-request", IdentityForgery, &with(&xfcc), get()),
        v("xfcc-uppercase-name", IdentityForgery, &with(&format!("X-FORWARDED-CLIENT-CERT: {FORGED}\r\n")), get()),
        v("xfcc-twice", IdentityForgery, &with(&format!("{xfcc}x-forwarded-client-cert: URI=spiffe://cluster.local/ns/kube-system/sa/root\r\n")), get()),
        v("xfcc-empty", IdentityForgery, &with("X-Forwarded-Client-Cert:\r\n"), get()),
        v("xfcc-with-chunked-body", IdentityForgery, &post(&format!("{xfcc}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")), post_hello()),
        v("xfcc-http10", IdentityForgery, format!("GET / HTTP/1.0\r\nHost: app.example\r\n{xfcc}\r\n").as_bytes(), get()),
        v("xfcc-absolute-form", IdentityForgery, format!("GET http://other.example/ HTTP/1.1\r\nHost: app.example\r\n{xfcc}\r\n").as_bytes(), fwd(vec![Want::get("/").host("other.example")])),
        v("xfcc-connection-nominated", IdentityForgery, &with(&format!("Connection: x-forwarded-client-cert\r\n{xfcc}")), get()),
        v("xfcc-in-trailer", IdentityForgery, &chunked(format!("5\r\nhello\r\n0\r\n{xfcc}\r\n").as_bytes()), post_hello()),
        v("xfcc-underscore-name", IdentityForgery, &with(&format!("X_Forwarded_Client_Cert: {FORGED}\r\n")), fwd(vec![Want::get("/").absent("x_forwarded_client_cert")])),
        v("xfcc-malformed-request-space-before-colon", IdentityForgery, &with(&format!("{xfcc}X-A : b\r\n")), bad()),
        v("xfcc-malformed-request-bare-cr", IdentityForgery, &with(&format!("{xfcc}X-A: a\rb\r\n")), bad()),
        v("xfcc-name-space-before-colon", IdentityForgery, &with(&format!("X-Forwarded-Client-Cert : {FORGED}\r\n")), bad()),
        v("xfcc-obs-folded-in", IdentityForgery, &with(&format!("X-A: a\r\n x-forwarded-client-cert: {FORGED}\r\n")), bad()),
        v("xfcc-pipelined-second", IdentityForgery, format!("GET /1 HTTP/1.1\r\nHost: app.example\r\n\r\nGET /2 HTTP/1.1\r\nHost: app.example\r\n{xfcc}\r\n").as_bytes(), fwd(vec![Want::get("/1"), Want::get("/2")])),
        v("xfcc-pipelined-after-post", IdentityForgery, format!("POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.1\r\nHost: app.example\r\n{xfcc}\r\n").as_bytes(), fwd(vec![Want::post("/", b"hello"), Want::get("/2")])),
        v("xfcc-pipelined-after-refused", IdentityForgery, format!("GET / HTTP/1.1\r\nHost : app.example\r\n\r\nGET /2 HTTP/1.1\r\nHost: app.example\r\n{xfcc}\r\n").as_bytes(), bad()),
        v("xfcc-smuggled-in-body", IdentityForgery, format!("POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: {}\r\n\r\n{inner}", inner.len()).as_bytes(), fwd(vec![Want::post("/", inner.as_bytes())])),
    ]
}

fn pipelining() -> Vec<Vector> {
    let g = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: app.example\r\n\r\n");
    let ten: String = (1..=10).map(|i| g(&format!("/{i}"))).collect();
    vec![
        v("pipeline-two-gets", Pipelining, format!("{}{}", g("/1"), g("/2")).as_bytes(), fwd(vec![Want::get("/1"), Want::get("/2")])),
        v("pipeline-ten-gets", Pipelining, ten.as_bytes(), fwd((1..=10).map(|i| Want::get(&format!("/{i}"))).collect())),
        v("pipeline-mixed-framing", Pipelining, format!("{}POST /cl HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhelloPOST /te HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nworld\r\n0\r\n\r\n{}", g("/1"), g("/4")).as_bytes(), fwd(vec![Want::get("/1"), Want::post("/cl", b"hello"), Want::post("/te", b"world"), Want::get("/4")])),
        v("pipeline-head-then-get", Pipelining, format!("HEAD /1 HTTP/1.1\r\nHost: app.example\r\n\r\n{}", g("/2")).as_bytes(), fwd(vec![Want::new("HEAD", "/1"), Want::get("/2")])),
        v("pipeline-content-length-boundary", Pipelining, format!("POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n\r\nhel{}", g("/2")).as_bytes(), fwd(vec![Want::post("/", b"hel"), Want::get("/2")])),
        v("pipeline-second-invalid", Pipelining, format!("{}GET /2 HTTP/1.1\r\nHost : app.example\r\n\r\n", g("/1")).as_bytes(), Expect::forwarded_then_refused(vec![Want::get("/1")], Status::Is(400))),
        v("pipeline-second-cl-te", Pipelining, format!("{}POST /2 HTTP/1.1\r\nHost: app.example\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", g("/1")).as_bytes(), Expect::forwarded_then_closed(vec![Want::get("/1"), Want::post("/2", b"")])),
        v("pipeline-after-refused", Pipelining, format!("GET /1 HTTP/1.1\r\nHost: app.example\r\nContent-Length: +0\r\n\r\n{}", g("/2")).as_bytes(), bad()),
        v("pipeline-after-refused-te", Pipelining, format!("POST /1 HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{}", g("/2")).as_bytes(), unsupported()),
        v("pipeline-garbage-after-request", Pipelining, format!("{}\x16\x03\x01\x00\x05hello", g("/1")).as_bytes(), Expect::forwarded_then_refused(vec![Want::get("/1")], Status::Is(400))),
    ]
}

fn poisoning() -> Vec<Vector> {
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n";
    vec![
        v("poison-get-body-is-a-request", UpstreamPoisoning, format!("GET / HTTP/1.1\r\nHost: app.example\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len()).as_bytes(), fwd(vec![Want::get("/").body(smuggled.as_bytes())])),
        v("poison-head-with-body", UpstreamPoisoning, format!("HEAD / HTTP/1.1\r\nHost: app.example\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len()).as_bytes(), fwd(vec![Want::new("HEAD", "/").body(smuggled.as_bytes())])),
        v("poison-cl-longer-than-sent", UpstreamPoisoning, &post("Content-Length: 20\r\n\r\nhello"), Expect::abandoned(vec![])),
        v("poison-chunked-unfinished", UpstreamPoisoning, &chunked(b"5\r\nhello\r\n"), Expect::abandoned(vec![])),
        v("poison-chunked-no-final-crlf", UpstreamPoisoning, &chunked(b"5\r\nhello\r\n0\r\n"), Expect::abandoned(vec![])),
        v("poison-huge-chunk-unfinished", UpstreamPoisoning, &chunked(b"fffffff\r\nhello"), Expect::abandoned(vec![])),
        v("poison-expect-100-no-body", UpstreamPoisoning, &post("Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"), Expect::abandoned(vec![])),
        v("poison-partial-second-request", UpstreamPoisoning, b"POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.exa", Expect::abandoned(vec![Want::post("/", b"")])),
        v("poison-cl-te-prefix", UpstreamPoisoning, &post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGPOST / HTTP/1.1\r\n"), te_wins(b"")),
        v("poison-te-space-te", UpstreamPoisoning, &post("Transfer-Encoding: chunked\r\nTransfer-Encoding : identity\r\n\r\n0\r\n\r\nG"), bad()),
        v("rq-smuggled-request-cl-te", ResponseQueue, format!("POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}", 5 + smuggled.len()).as_bytes(), te_wins(b"")),
        v("rq-smuggled-request-te-cl", ResponseQueue, format!("POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len()).as_bytes(), te_wins(smuggled.as_bytes())),
        v("rq-smuggled-request-te-te", ResponseQueue, format!("POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n{smuggled}").as_bytes(), bad_coding()),
        v("rq-smuggled-request-bare-cr", ResponseQueue, format!("POST / HTTP/1.1\r\nHost: app.example\r\nX-A: a\rContent-Length: 0\r\nContent-Length: {}\r\n\r\n{smuggled}", smuggled.len()).as_bytes(), bad()),
        v("rq-h2c-upgrade-refused-by-origin", ResponseQueue, b"GET / HTTP/1.1\r\nHost: app.example\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n", get()),
        v("rq-websocket-upgrade-then-pipelined", ResponseQueue, b"GET /ws HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nGET /after HTTP/1.1\r\nHost: app.example\r\n\r\n", fwd(vec![Want::get("/ws"), Want::get("/after")])),
    ]
}
