//! One path, normalised once: what routing and authorization compare, and what the
//! app receives (`docs/policies/path-normalization.md` has the whole table).
//!
//! `base` applies RFC 3986's `remove_dot_segments`, decodes the percent-encodings of
//! unreserved characters (`%41` → `A`, `%7e` → `~`) and writes every other escape
//! with upper-case hex digits; it refuses what apps read in different ways: encoded
//! slashes and backslashes (`%2F`, `%5C`), dot-segments spelled with escapes
//! (`%2e%2e`) or with path parameters (`..;`, as Java servers read them), double
//! escapes of `.`, `/`, `\` and `%` (`%252e`, for apps that decode twice), raw
//! backslashes, control bytes (`%00`), and escapes that are not UTF-8 (overlong
//! `%C0%AE`). `mergeSlashes` (the default) also merges runs of `/`, as nginx and most
//! servers do; `decodeAndMergeSlashes` decodes `%2F` and `%5C` (and raw `\`) to `/`
//! before merging, and then dot-segments spelled with escapes are dot-segments too.
//! `none` leaves the path as sent.
//!
//! A fragment never arrives: the request-target parser drops everything from `#`
//! (the `http` crate's `Uri`), so the app never sees it either.

use std::borrow::Cow;

use weft_api::proxy::PathNormalization as Mode;

/// Why a path is refused (HTTP 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `%2F` or `%5C`.
    #[error("encoded '/' or '\\' in the path (%2F, %5C)")]
    EncodedSlash,
    /// `.` or `..` spelled with escapes.
    #[error("a dot-segment spelled with escapes (%2E)")]
    EncodedDotSegment,
    /// `%252e`, `%252f`, `%255c` or `%2525`: an escape of `.`, `/`, `\` or `%`
    /// escaped again, which an app that decodes twice reads as the character.
    #[error("a double escape of '.', '/', '\\' or '%' (%252e)")]
    DoubleEscape,
    /// `.;x` or `..;x`.
    #[error("a dot-segment with parameters (..;)")]
    DotSegmentParams,
    /// A raw `\`.
    #[error("a backslash in the path")]
    Backslash,
    /// A control byte, raw or escaped (`%00`).
    #[error("a control character in the path")]
    Control,
    /// `%` not followed by two hex digits.
    #[error("a malformed escape ('%' without two hex digits)")]
    BadEscape,
    /// Escapes that do not decode to UTF-8 (overlong forms included).
    #[error("escapes that are not UTF-8")]
    NotUtf8,
    /// Not `/…` (nor `*`).
    #[error("the path does not start with '/'")]
    NotAbsolute,
}

/// `path` normalised under `mode`; borrowed when nothing changes (the common case
/// costs a scan, no allocation).
pub fn normalize(path: &str, mode: Mode) -> Result<Cow<'_, str>, Refusal> {
    if mode == Mode::None || path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    if !path.starts_with('/') {
        return Err(Refusal::NotAbsolute);
    }
    if is_normal(path, mode) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path, mode)?;
    if has_double_escape(&decoded) {
        return Err(Refusal::DoubleEscape);
    }
    let merged = if mode == Mode::Base {
        decoded
    } else {
        merge_slashes(&decoded)
    };
    Ok(Cow::Owned(remove_dot_segments(&merged)))
}

/// No escape, backslash, control byte or dot-segment (and, when merging, no `//`).
fn is_normal(path: &str, mode: Mode) -> bool {
    let bytes = path.as_bytes();
    let mut prev = 0u8;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' | b'\\' => return false,
            b if b.is_ascii_control() => return false,
            b'/' if prev == b'/' && mode != Mode::Base => return false,
            b'.' if prev == b'/' => {
                // `/.` starts a dot-segment if followed by end, `/`, `;` or `./…`.
                let rest = &bytes[i + 1..];
                let seg_end = |r: &[u8]| matches!(r.first(), None | Some(b'/' | b';'));
                if seg_end(rest) || (rest.first() == Some(&b'.') && seg_end(&rest[1..])) {
                    return false;
                }
            }
            _ => {}
        }
        prev = b;
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes what `mode` decodes, upper-cases the remaining escapes, and refuses what
/// it must; checks each segment as it ends.
fn decode(path: &str, mode: Mode) -> Result<String, Refusal> {
    let decode_slashes = mode == Mode::DecodeAndMergeSlashes;
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut seg_start = 0;
    let mut seg_escaped_dot = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let v = escape_at(bytes, i)?;
                if is_unreserved(v) {
                    seg_escaped_dot |= v == b'.';
                    out.push(char::from(v));
                    i += 3;
                } else if v == b'/' || v == b'\\' {
                    if !decode_slashes {
                        return Err(Refusal::EncodedSlash);
                    }
                    end_segment(&out[seg_start..], seg_escaped_dot, decode_slashes)?;
                    out.push('/');
                    seg_start = out.len();
                    seg_escaped_dot = false;
                    i += 3;
                } else if v.is_ascii_control() {
                    return Err(Refusal::Control);
                } else if v >= 0x80 {
                    // A run of escaped non-ASCII bytes must be UTF-8; it stays escaped.
                    let mut run = Vec::new();
                    let start = i;
                    while i < bytes.len() && bytes[i] == b'%' {
                        let v = escape_at(bytes, i)?;
                        if v < 0x80 {
                            break;
                        }
                        run.push(v);
                        i += 3;
                    }
                    if std::str::from_utf8(&run).is_err() {
                        return Err(Refusal::NotUtf8);
                    }
                    push_upper(&mut out, &path[start..i]);
                } else {
                    push_upper(&mut out, &path[i..i + 3]);
                    i += 3;
                }
            }
            b'\\' if decode_slashes => {
                end_segment(&out[seg_start..], seg_escaped_dot, decode_slashes)?;
                out.push('/');
                seg_start = out.len();
                seg_escaped_dot = false;
                i += 1;
            }
            b'\\' => return Err(Refusal::Backslash),
            b if b.is_ascii_control() => return Err(Refusal::Control),
            b'/' => {
                end_segment(&out[seg_start..], seg_escaped_dot, decode_slashes)?;
                out.push('/');
                seg_start = out.len();
                seg_escaped_dot = false;
                i += 1;
            }
            _ => {
                // Copy the run of plain characters up to the next special byte.
                let end = bytes[i..]
                    .iter()
                    .position(|&c| matches!(c, b'%' | b'\\' | b'/') || c.is_ascii_control())
                    .map_or(bytes.len(), |n| i + n);
                out.push_str(&path[i..end]);
                i = end;
            }
        }
    }
    end_segment(&out[seg_start..], seg_escaped_dot, decode_slashes)?;
    Ok(out)
}

/// Whether `decoded` holds `%25` followed by the hex of `.`, `/`, `\` or `%`: what an
/// app that decodes twice reads as that character (sent as `%252e`, or built by the
/// first decoding from `%25%32%65`).
fn has_double_escape(decoded: &str) -> bool {
    decoded.as_bytes().windows(5).any(|w| {
        w[..3] == *b"%25"
            && matches!(
                (hex(w[3]), hex(w[4])),
                (Some(h), Some(l)) if matches!(h << 4 | l, b'.' | b'/' | b'\\' | b'%')
            )
    })
}

/// The byte `%XY` at `i` stands for.
fn escape_at(bytes: &[u8], i: usize) -> Result<u8, Refusal> {
    match (
        bytes.get(i + 1).copied().and_then(hex),
        bytes.get(i + 2).copied().and_then(hex),
    ) {
        (Some(h), Some(l)) => Ok(h << 4 | l),
        _ => Err(Refusal::BadEscape),
    }
}

fn push_upper(out: &mut String, escapes: &str) {
    out.extend(escapes.chars().map(|c| c.to_ascii_uppercase()));
}

/// A finished segment: a dot-segment may not carry parameters, nor (unless escapes
/// are decoded on purpose) be spelled with escapes.
fn end_segment(segment: &str, escaped_dot: bool, decode_all: bool) -> Result<(), Refusal> {
    let base = segment.split(';').next().unwrap_or(segment);
    if base == "." || base == ".." {
        if base.len() != segment.len() {
            return Err(Refusal::DotSegmentParams);
        }
        if escaped_dot && !decode_all {
            return Err(Refusal::EncodedDotSegment);
        }
    }
    Ok(())
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    out
}

/// RFC 3986 §5.2.4 for an absolute path: `.` segments removed, `..` removes the
/// segment before it (never above the root); a path ending in a dot-segment keeps its
/// trailing `/`.
pub fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    let parts = path.strip_prefix('/').unwrap_or(path).split('/');
    for seg in parts {
        trailing = false;
        match seg {
            "." => trailing = true,
            ".." => {
                segments.pop();
                trailing = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    out
}

/// Replaces `uri`'s path with its normalised form under `mode`, the query kept as
/// sent; nothing is copied when the path is already normal.
pub fn normalize_uri(uri: &mut http::Uri, mode: Mode) -> Result<(), Refusal> {
    let normal = match normalize(uri.path(), mode)? {
        Cow::Borrowed(_) => return Ok(()),
        Cow::Owned(p) => p,
    };
    let with_query = match uri.query() {
        Some(q) => format!("{normal}?{q}"),
        None => normal,
    };
    let mut parts = uri.clone().into_parts();
    // Normalising only removes and decodes characters a path may hold, so the result
    // parses; a failure would be a bug, refused like a bad path.
    parts.path_and_query =
        Some(http::uri::PathAndQuery::try_from(with_query).map_err(|_| Refusal::NotAbsolute)?);
    *uri = http::Uri::from_parts(parts).map_err(|_| Refusal::NotAbsolute)?;
    Ok(())
}

/// `path` with every segment's `;parameters` removed, when it has any: the path as
/// servers that strip them read it (`/a;x/b` → `/a/b`).
pub fn without_params(path: &str) -> Option<String> {
    if !path.contains(';') {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(seg.split(';').next().unwrap_or(seg));
    }
    Some(out)
}

#[cfg(test)]
mod tests;
