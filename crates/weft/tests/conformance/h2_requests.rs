//! The HTTP/2 request vectors: what a request may and may not carry (RFC 9113 §8:
//! pseudo-header fields, connection-specific fields, field names and values, trailers,
//! content-length), identity forgery and the header limits, each sent on stream 3 of
//! a connection whose neighbouring streams must carry on. Building blocks and verdicts
//! are in `h2_vectors.rs`.

use super::frame::{flag, Frame};
use super::hpack::Block;
use super::vectors::{
    bad, bad_body, base_then, body_is, expect_values, expect_xfcc, intact, no_forged_xfcc, ok,
    text, trailer_lacks, v, Answer, Attack, Check, Class, Reach, Req, Vector, Verdict, PATH,
    PROTOCOL, REFUSED,
};

/// The request vectors, in table order.
pub(crate) fn vectors() -> Vec<Vector> {
    use Class::*;
    vec![
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
        // A malformed field added to the dynamic table still takes its slot: stream 5
        // names it by index, so a decoder that dropped it would see index 62 past the
        // table and end the connection (COMPRESSION_ERROR) instead of resetting stream 5.
        v(
            "name-uppercase-indexed-then-referenced",
            FieldName,
            "RFC 9113 §8.2.1, RFC 7541 §2.3.2",
            Attack::Frames(vec![
                Frame::headers(
                    3,
                    Block::literals(&Req::get().fields)
                        .literal_indexed(b"X-Bad", b"v")
                        .into_bytes(),
                    flag::END_HEADERS | flag::END_STREAM,
                ),
                Frame::headers(
                    5,
                    Block::literals(&Req::get().fields).indexed(62).into_bytes(),
                    flag::END_HEADERS | flag::END_STREAM,
                ),
            ]),
            Verdict::stream(PROTOCOL, Reach::Nothing),
        ),
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
                    .split(16_000)
                    .described("70 fields x-big-N of 1000 bytes (70 KB)"),
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
            Attack::Request(
                (0..101)
                    .fold(Req::get(), |r, i| r.push(format!("x-n-{i}"), "1"))
                    .described("101 more fields x-n-N: 1 (106 in all)"),
            ),
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
            (0..90)
                .fold(Req::get(), |r, i| r.push(format!("x-n-{i}"), "1"))
                .described("90 more fields x-n-N: 1 (95 in all)"),
            intact(),
        ),
    ]
}
