//! Trace context on the wire: W3C Trace Context (`traceparent`, `tracestate`) and
//! Zipkin B3, as one header (`b3`) or several (`x-b3-*`).
//!
//! Read strictly: a header that does not follow its format is ignored, as if absent
//! (the W3C rule), and a new trace starts. W3C wins over B3 when both came. Written
//! back in W3C always, and in each B3 form the request carries, so apps on either
//! convention keep their traces (a B3 request crosses the mesh with both).

use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `b3`, the single-header form.
pub const B3: HeaderName = HeaderName::from_static("b3");
const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
const B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
const B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// A `tracestate` longer than this is dropped rather than passed on (the W3C limit
/// a vendor must keep is 512 bytes).
const MAX_TRACESTATE: usize = 512;

/// How trace context came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// W3C `traceparent`.
    W3c,
    /// B3 in one `b3` header.
    B3Single,
    /// B3 in `x-b3-*` headers.
    B3Multi,
}

/// The caller's span, as its headers named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parent {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The caller's span: the parent of this hop's.
    pub span_id: [u8; 8],
    /// The caller's sampling decision; `None`: deferred to this hop.
    pub sampled: Option<bool>,
    /// How it came.
    pub format: Format,
}

/// Reads the trace context of a request, if it carries a well-formed one.
pub fn extract(headers: &HeaderMap) -> Option<Parent> {
    if let Some(parent) = only(headers, &TRACEPARENT).and_then(traceparent) {
        return Some(parent);
    }
    if let Some(parent) = only(headers, &B3).and_then(b3_single) {
        return Some(parent);
    }
    b3_multi(headers)
}

/// The value of `name` if it appears exactly once.
fn only<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a [u8]> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first.as_bytes())
}

/// `version-traceid-parentid-flags`, lowercase hex (W3C Trace Context level 1). A
/// later version may append fields after another `-`; version `ff` is invalid.
fn traceparent(v: &[u8]) -> Option<Parent> {
    if v.len() < 55 {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let trace_id = hex16(&v[3..35])?;
    let span_id = hex8(&v[36..52])?;
    let flags = hex_byte(&v[53..55])?;
    Some(Parent {
        trace_id,
        span_id,
        sampled: Some(flags & 1 == 1),
        format: Format::W3c,
    })
}

/// `traceid-spanid[-sampled[-parentspanid]]`, or a bare decision (`0`, `1`, `d`),
/// which carries no ids and so cannot be a parent: ignored.
fn b3_single(v: &[u8]) -> Option<Parent> {
    let mut parts = v.split(|&b| b == b'-');
    let trace_id = b3_trace_id(parts.next()?)?;
    let span_id = hex8(parts.next()?)?;
    let sampled = match parts.next() {
        None => None,
        Some(b"1" | b"d") => Some(true),
        Some(b"0") => Some(false),
        Some(_) => return None,
    };
    if let Some(parent) = parts.next() {
        hex8(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Parent {
        trace_id,
        span_id,
        sampled,
        format: Format::B3Single,
    })
}

/// `x-b3-traceid`, `x-b3-spanid`, and optionally `x-b3-sampled` (`1`/`0`, or the
/// legacy `true`/`false`) and `x-b3-flags: 1` (debug, which means sampled).
fn b3_multi(headers: &HeaderMap) -> Option<Parent> {
    let trace_id = b3_trace_id(only(headers, &B3_TRACE_ID)?)?;
    let span_id = hex8(only(headers, &B3_SPAN_ID)?)?;
    let debug = only(headers, &B3_FLAGS) == Some(b"1");
    let sampled = match headers.get(&B3_SAMPLED).map(HeaderValue::as_bytes) {
        _ if debug => Some(true),
        None => None,
        Some(b"1" | b"true") => Some(true),
        Some(b"0" | b"false") => Some(false),
        Some(_) => return None,
    };
    Some(Parent {
        trace_id,
        span_id,
        sampled,
        format: Format::B3Multi,
    })
}

/// A B3 trace id: 32 hex digits, or 16 (a 64-bit id, left-padded with zeros).
fn b3_trace_id(v: &[u8]) -> Option<[u8; 16]> {
    match v.len() {
        32 => hex16(v),
        16 => {
            let low = hex8(v)?;
            let mut id = [0; 16];
            id[8..].copy_from_slice(&low);
            Some(id)
        }
        _ => None,
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(v: &[u8]) -> Option<u8> {
    Some(hex_digit(v[0])? << 4 | hex_digit(v[1])?)
}

/// Lowercase hex to bytes; an all-zero id is invalid in both formats.
fn hex_bytes<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    if v.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in v.chunks_exact(2).enumerate() {
        out[i] = hex_byte(pair)?;
    }
    (out != [0; N]).then_some(out)
}

fn hex16(v: &[u8]) -> Option<[u8; 16]> {
    hex_bytes(v)
}

fn hex8(v: &[u8]) -> Option<[u8; 8]> {
    hex_bytes(v)
}

/// Writes `bytes` as lowercase hex into `out`.
pub fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0xf)];
    }
}

/// Replaces the request's trace context with this hop's span: `span_id` in
/// `trace_id`, sampled or not. W3C always; each B3 form too when the request carries
/// it. `tracestate` is kept when the parent came in W3C (`came_as`) and it is not
/// oversized.
pub fn inject(
    headers: &mut HeaderMap,
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    sampled: bool,
    came_as: Option<Format>,
) {
    let mut line = *b"00-00000000000000000000000000000000-0000000000000000-00";
    write_hex(&mut line[3..35], trace_id);
    write_hex(&mut line[36..52], span_id);
    line[54] = if sampled { b'1' } else { b'0' };
    if came_as != Some(Format::W3c)
        || headers
            .get(&TRACESTATE)
            .is_some_and(|v| v.len() > MAX_TRACESTATE)
    {
        headers.remove(&TRACESTATE);
    }
    if let Ok(value) = HeaderValue::from_bytes(&line) {
        headers.insert(TRACEPARENT, value);
    }
    if headers.contains_key(&B3) {
        let mut b3 = *b"00000000000000000000000000000000-0000000000000000-0";
        write_hex(&mut b3[..32], trace_id);
        write_hex(&mut b3[33..49], span_id);
        b3[50] = if sampled { b'1' } else { b'0' };
        if let Ok(value) = HeaderValue::from_bytes(&b3) {
            headers.insert(B3, value);
        }
    }
    if headers.contains_key(&B3_TRACE_ID) || headers.contains_key(&B3_SPAN_ID) {
        let mut id = [0u8; 32];
        write_hex(&mut id, trace_id);
        let mut span = [0u8; 16];
        write_hex(&mut span, span_id);
        if let (Ok(t), Ok(s)) = (HeaderValue::from_bytes(&id), HeaderValue::from_bytes(&span)) {
            headers.insert(B3_TRACE_ID, t);
            headers.insert(B3_SPAN_ID, s);
            headers.remove(B3_PARENT_SPAN_ID);
            headers.remove(B3_FLAGS);
            headers.insert(
                B3_SAMPLED,
                HeaderValue::from_static(if sampled { "1" } else { "0" }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn id16() -> [u8; 16] {
        hex16(TRACE.as_bytes()).expect("trace id")
    }

    fn id8() -> [u8; 8] {
        hex8(SPAN.as_bytes()).expect("span id")
    }

    /// Headers in; the trace id, sampling decision and form read from them.
    type Case<'a> = (Vec<(&'a str, &'a str)>, [u8; 16], Option<bool>, Format);

    /// Each header form that parses, and what it says.
    #[test]
    fn well_formed_w3c_and_b3_headers_name_the_parent_span() {
        let tp = format!("00-{TRACE}-{SPAN}-01");
        let b3 = format!("{TRACE}-{SPAN}-0");
        let b3_short = format!("a3ce929d0e0e4736-{SPAN}");
        let unsampled = format!("00-{TRACE}-{SPAN}-00");
        let later = format!("01-{TRACE}-{SPAN}-01-extra");
        let debug = format!("{TRACE}-{SPAN}-d-{SPAN}");
        let mut short_id = [0u8; 16];
        short_id[8..].copy_from_slice(&hex8(b"a3ce929d0e0e4736").expect("low"));
        #[rustfmt::skip]
        let cases: Vec<Case<'_>> = vec![
            (vec![("traceparent", &tp)], id16(), Some(true), Format::W3c),
            (vec![("traceparent", &unsampled)], id16(), Some(false), Format::W3c),
            // A later version may add fields; its first four are read.
            (vec![("traceparent", &later)], id16(), Some(true), Format::W3c),
            (vec![("b3", &b3)], id16(), Some(false), Format::B3Single),
            (vec![("b3", &debug)], id16(), Some(true), Format::B3Single),
            (vec![("b3", &b3_short)], short_id, None, Format::B3Single),
            (vec![("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("x-b3-sampled", "1")], id16(), Some(true), Format::B3Multi),
            (vec![("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("x-b3-flags", "1")], id16(), Some(true), Format::B3Multi),
            (vec![("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)], id16(), None, Format::B3Multi),
            // W3C wins when both came.
            (vec![("b3", &b3), ("traceparent", &tp)], id16(), Some(true), Format::W3c),
        ];
        for (pairs, trace_id, sampled, format) in cases {
            let parent = extract(&headers(&pairs)).unwrap_or_else(|| panic!("{pairs:?}"));
            assert_eq!(parent.trace_id, trace_id, "{pairs:?}");
            assert_eq!(parent.span_id, id8(), "{pairs:?}");
            assert_eq!(parent.sampled, sampled, "{pairs:?}");
            assert_eq!(parent.format, format, "{pairs:?}");
        }
    }

    /// Malformed context is ignored, as if absent: a new trace starts.
    #[test]
    fn malformed_trace_headers_are_ignored() {
        let zeros = "00000000000000000000000000000000";
        #[rustfmt::skip]
        let cases: Vec<Vec<(&str, String)>> = vec![
            vec![("traceparent", format!("00-{TRACE}-{SPAN}"))],
            vec![("traceparent", format!("00-{}-{SPAN}-01", TRACE.to_uppercase()))],
            vec![("traceparent", format!("00-{zeros}-{SPAN}-01"))],
            vec![("traceparent", format!("00-{TRACE}-0000000000000000-01"))],
            vec![("traceparent", format!("ff-{TRACE}-{SPAN}-01"))],
            vec![("traceparent", format!("00-{TRACE}-{SPAN}-01-extra"))],
            vec![("traceparent", format!("00_{TRACE}-{SPAN}-01"))],
            vec![("traceparent", format!("00-{TRACE}-{SPAN}-0g"))],
            // Twice: ambiguous.
            vec![("traceparent", format!("00-{TRACE}-{SPAN}-01")), ("traceparent", format!("00-{TRACE}-{SPAN}-01"))],
            vec![("b3", "1".into())],
            vec![("b3", format!("{TRACE}-{SPAN}-x"))],
            vec![("b3", format!("{TRACE}-{SPAN}-1-{SPAN}-more"))],
            vec![("b3", format!("{TRACE}1-{SPAN}"))],
            vec![("x-b3-traceid", TRACE.into())],
            vec![("x-b3-traceid", TRACE.into()), ("x-b3-spanid", SPAN.into()), ("x-b3-sampled", "yes".into())],
            vec![("x-b3-traceid", "xyz".into()), ("x-b3-spanid", SPAN.into())],
        ];
        for pairs in cases {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(extract(&headers(&pairs)), None, "{pairs:?}");
        }
    }

    /// What goes on: W3C always, B3 in the form it came, the tracestate kept only
    /// with a W3C parent.
    #[test]
    fn context_is_written_in_w3c_and_in_the_b3_form_it_came_in() {
        let span = [1, 2, 3, 4, 5, 6, 7, 8];
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01";

        let mut h = headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", "vendor=x"),
        ]);
        inject(&mut h, &id16(), &span, true, Some(Format::W3c));
        assert_eq!(h.get("traceparent").expect("tp"), tp);
        assert_eq!(h.get("tracestate").expect("kept"), "vendor=x");
        assert!(h.get("b3").is_none());

        let mut h = headers(&[("b3", &format!("{TRACE}-{SPAN}-1")), ("tracestate", "x=y")]);
        inject(&mut h, &id16(), &span, true, Some(Format::B3Single));
        assert_eq!(h.get("traceparent").expect("tp"), tp);
        assert_eq!(
            h.get("b3").expect("b3"),
            "4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-1"
        );
        assert!(h.get("tracestate").is_none(), "not ours to pass on");

        let mut h = headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-parentspanid", "1111111111111111"),
            ("x-b3-flags", "1"),
        ]);
        inject(&mut h, &id16(), &span, false, Some(Format::B3Multi));
        assert_eq!(h.get("x-b3-spanid").expect("span"), "0102030405060708");
        assert_eq!(h.get("x-b3-sampled").expect("sampled"), "0");
        assert!(h.get("x-b3-parentspanid").is_none() && h.get("x-b3-flags").is_none());
        assert!(h
            .get("traceparent")
            .expect("tp")
            .to_str()
            .is_ok_and(|v| v.ends_with("-00")));

        let mut h = HeaderMap::new();
        inject(&mut h, &id16(), &span, true, None);
        assert_eq!(
            extract(&h).map(|p| (p.span_id, p.format)),
            Some((span, Format::W3c))
        );
    }
}
