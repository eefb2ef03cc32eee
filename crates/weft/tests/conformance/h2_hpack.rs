//! HPACK (RFC 7541) for the raw client and the origin's tap: an encoder that writes
//! exactly the representation a vector asks for (literal without indexing by default,
//! no Huffman), and a complete decoder (dynamic table, Huffman) for what the proxy
//! sends, since hyper's encoder uses both.
//!
//! The decoder reports errors instead of guessing: a block the proxy emits that does
//! not decode is a finding, not noise.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::OnceLock;

/// A decoded field: name and value as raw bytes (they may be invalid on purpose).
pub(crate) type Field = (Vec<u8>, Vec<u8>);

/// The size a field counts for in the dynamic table (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// The default SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
pub(crate) const DEFAULT_TABLE_SIZE: usize = 4096;

/// Why a header block did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Error {
    Truncated,
    IntegerOverflow,
    BadIndex(usize),
    BadHuffman,
    SizeUpdateTooLarge(usize),
    SizeUpdateMisplaced,
}

/// A header block under construction: each method appends one representation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Block(Vec<u8>);

/// The decoding side of one connection's HPACK context.
pub(crate) struct Decoder {
    dynamic: VecDeque<Field>,
    size: usize,
    max: usize,
    /// The largest size an encoder may pick: our SETTINGS_HEADER_TABLE_SIZE.
    limit: usize,
}

// === impl Block ===

impl Block {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Literal field without indexing, new name, no Huffman (RFC 7541 §6.2.2).
    pub(crate) fn literal(mut self, name: &[u8], value: &[u8]) -> Self {
        self.0.push(0x00);
        string(&mut self.0, name, false);
        string(&mut self.0, value, false);
        self
    }

    /// Literal field with incremental indexing, new name (§6.2.1): enters the table.
    pub(crate) fn literal_indexed(mut self, name: &[u8], value: &[u8]) -> Self {
        self.0.push(0x40);
        string(&mut self.0, name, false);
        string(&mut self.0, value, false);
        self
    }

    /// Literal field never indexed, new name (§6.2.3).
    pub(crate) fn never_indexed(mut self, name: &[u8], value: &[u8]) -> Self {
        self.0.push(0x10);
        string(&mut self.0, name, false);
        string(&mut self.0, value, false);
        self
    }

    /// Literal field without indexing whose name is entry `index` of the tables.
    pub(crate) fn literal_name_ref(mut self, index: usize, value: &[u8]) -> Self {
        int(&mut self.0, 4, 0x00, index);
        string(&mut self.0, value, false);
        self
    }

    /// Literal field without indexing, both strings Huffman-coded.
    pub(crate) fn huffman(mut self, name: &[u8], value: &[u8]) -> Self {
        self.0.push(0x00);
        string(&mut self.0, name, true);
        string(&mut self.0, value, true);
        self
    }

    /// Indexed field (§6.1).
    pub(crate) fn indexed(mut self, index: usize) -> Self {
        int(&mut self.0, 7, 0x80, index);
        self
    }

    /// Dynamic table size update (§6.3).
    pub(crate) fn size_update(mut self, size: usize) -> Self {
        int(&mut self.0, 5, 0x20, size);
        self
    }

    /// Bytes as given, for representations no method writes.
    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Every field as a literal without indexing.
    pub(crate) fn literals<N: AsRef<[u8]>, V: AsRef<[u8]>>(fields: &[(N, V)]) -> Self {
        fields
            .iter()
            .fold(Self::new(), |b, (n, v)| b.literal(n.as_ref(), v.as_ref()))
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Appends `value` as an HPACK integer with an `n`-bit prefix (RFC 7541 §5.1); `flags`
/// fills the bits above the prefix.
pub(crate) fn int(out: &mut Vec<u8>, n: u32, flags: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 128 {
        out.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.push(rest as u8);
}

/// Appends a string literal (RFC 7541 §5.2).
pub(crate) fn string(out: &mut Vec<u8>, bytes: &[u8], huffman: bool) {
    if huffman {
        let coded = huffman_encode(bytes);
        int(out, 7, 0x80, coded.len());
        out.extend_from_slice(&coded);
    } else {
        int(out, 7, 0x00, bytes.len());
        out.extend_from_slice(bytes);
    }
}

/// `bytes` Huffman-coded (RFC 7541 §5.2, Appendix B), padded with ones.
pub(crate) fn huffman_encode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for &b in bytes {
        let len = u32::from(LENGTHS[usize::from(b)]);
        acc = (acc << len) | u64::from(CODES[usize::from(b)]);
        bits += len;
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
    out
}

/// The Huffman code of each symbol, by (length, code).
fn huffman_codes() -> &'static HashMap<(u32, u32), u8> {
    static CODE_MAP: OnceLock<HashMap<(u32, u32), u8>> = OnceLock::new();
    CODE_MAP.get_or_init(|| {
        (0..=255u8)
            .map(|b| {
                (
                    (u32::from(LENGTHS[usize::from(b)]), CODES[usize::from(b)]),
                    b,
                )
            })
            .collect()
    })
}

/// Decodes a Huffman string; rejects EOS inside it and padding that is longer than
/// 7 bits or not all ones (RFC 7541 §5.2).
pub(crate) fn huffman_decode(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let codes = huffman_codes();
    let mut out = Vec::with_capacity(bytes.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0u32);
    for &byte in bytes {
        for shift in (0..8).rev() {
            code = (code << 1) | u32::from((byte >> shift) & 1);
            len += 1;
            if let Some(&sym) = codes.get(&(len, code)) {
                out.push(sym);
                code = 0;
                len = 0;
            } else if len >= 30 {
                // Only EOS (30 ones) is this long; it must never appear in a string.
                return Err(Error::BadHuffman);
            }
        }
    }
    if len > 7 || code != (1 << len) - 1 {
        return Err(Error::BadHuffman);
    }
    Ok(out)
}

// === impl Decoder ===

impl Decoder {
    /// A decoder whose peer may use a table of up to `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            dynamic: VecDeque::new(),
            size: 0,
            max: limit,
            limit,
        }
    }

    /// Decodes one complete header block.
    pub(crate) fn decode(&mut self, mut src: &[u8]) -> Result<Vec<Field>, Error> {
        let mut fields = Vec::new();
        let mut can_resize = true;
        while let Some(&first) = src.first() {
            if first & 0x80 != 0 {
                let index = read_int(&mut src, 7)?;
                fields.push(self.get(index)?);
                can_resize = false;
            } else if first & 0xc0 == 0x40 {
                let field = self.read_literal(&mut src, 6)?;
                self.insert(field.clone());
                fields.push(field);
                can_resize = false;
            } else if first & 0xe0 == 0x20 {
                if !can_resize {
                    return Err(Error::SizeUpdateMisplaced);
                }
                let size = read_int(&mut src, 5)?;
                if size > self.limit {
                    return Err(Error::SizeUpdateTooLarge(size));
                }
                self.max = size;
                self.evict();
            } else {
                // 0000xxxx without indexing, 0001xxxx never indexed: both 4-bit prefixes.
                fields.push(self.read_literal(&mut src, 4)?);
                can_resize = false;
            }
        }
        Ok(fields)
    }

    fn read_literal(&self, src: &mut &[u8], prefix: u32) -> Result<Field, Error> {
        let index = read_int(src, prefix)?;
        let name = if index == 0 {
            read_string(src)?
        } else {
            self.get(index)?.0
        };
        Ok((name, read_string(src)?))
    }

    fn get(&self, index: usize) -> Result<Field, Error> {
        match index {
            0 => Err(Error::BadIndex(0)),
            1..=61 => {
                let (n, v) = STATIC[index - 1];
                Ok((n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            }
            _ => self
                .dynamic
                .get(index - 62)
                .cloned()
                .ok_or(Error::BadIndex(index)),
        }
    }

    fn insert(&mut self, field: Field) {
        self.size += field.0.len() + field.1.len() + ENTRY_OVERHEAD;
        self.dynamic.push_front(field);
        self.evict();
    }

    fn evict(&mut self) {
        while self.size > self.max {
            let Some((n, v)) = self.dynamic.pop_back() else {
                break;
            };
            self.size -= n.len() + v.len() + ENTRY_OVERHEAD;
        }
    }
}

fn read_int(src: &mut &[u8], n: u32) -> Result<usize, Error> {
    let (&first, rest) = src.split_first().ok_or(Error::Truncated)?;
    *src = rest;
    let max = (1usize << n) - 1;
    let mut value = usize::from(first) & max;
    if value < max {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let (&b, rest) = src.split_first().ok_or(Error::Truncated)?;
        *src = rest;
        if shift > 28 {
            return Err(Error::IntegerOverflow);
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

fn read_string(src: &mut &[u8]) -> Result<Vec<u8>, Error> {
    let huffman = src.first().ok_or(Error::Truncated)? & 0x80 != 0;
    let len = read_int(src, 7)?;
    if src.len() < len {
        return Err(Error::Truncated);
    }
    let (bytes, rest) = src.split_at(len);
    *src = rest;
    if huffman {
        huffman_decode(bytes)
    } else {
        Ok(bytes.to_vec())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated representation"),
            Self::IntegerOverflow => f.write_str("integer overflow"),
            Self::BadIndex(i) => write!(f, "index {i} outside the tables"),
            Self::BadHuffman => f.write_str("invalid Huffman string"),
            Self::SizeUpdateTooLarge(n) => write!(f, "table size update to {n} over the limit"),
            Self::SizeUpdateMisplaced => f.write_str("table size update after a field"),
        }
    }
}

/// RFC 7541 Appendix A.
const STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

// The Huffman code of RFC 7541 Appendix B: each symbol's code (right-aligned) and its
// length in bits. EOS (30 ones) is not a symbol a string may contain.
#[allow(clippy::unreadable_literal)] // table data, as RFC 7541 prints it
const CODES: [u32; 256] = [
    0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
    0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
    0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
    0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8,
    0x3f9, 0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18,
    0x0, 0x1, 0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb,
    0x3fc, 0x1ffa, 0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0,
    0x1ffc, 0x3ffc, 0x22, 0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75,
    0x28, 0x29, 0x2a, 0x7, 0x2b, 0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe,
    0x7fc, 0x3ffd, 0x1ffd, 0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4,
    0x3fffd5, 0x7fffd9, 0x3fffd6, 0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb,
    0x7fffdf, 0xffffec, 0xffffed, 0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3,
    0x7fffe4, 0x1fffdc, 0x3fffd8, 0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda,
    0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc, 0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd,
    0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf, 0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0,
    0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee, 0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4,
    0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1, 0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7,
    0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2, 0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf,
    0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3, 0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7,
    0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8, 0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4,
    0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6, 0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3,
    0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4, 0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb,
    0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8, 0x7ffffe9, 0x7ffffea, 0x7ffffeb,
    0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0, 0x3ffffee,
];

const LENGTHS: [u8; 256] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huffman_round_trips_and_matches_rfc_7541_c_4_1() {
        // "www.example.com" from RFC 7541 §C.4.1.
        let coded = huffman_encode(b"www.example.com");
        assert_eq!(
            coded,
            [0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]
        );
        assert_eq!(huffman_decode(&coded).unwrap(), b"www.example.com");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(huffman_decode(&huffman_encode(&all)).unwrap(), all);
    }

    #[test]
    fn bad_huffman_padding_is_an_error() {
        // 'a' is 00011 (5 bits): three padding bits of zeros instead of ones.
        assert_eq!(huffman_decode(&[0b0001_1000]), Err(Error::BadHuffman));
        // A full byte of ones as padding after a whole symbol: longer than 7 bits.
        assert_eq!(huffman_decode(&[0b0001_1111, 0xff]), Err(Error::BadHuffman));
    }

    #[test]
    fn the_dynamic_table_follows_rfc_7541_c_3() {
        // RFC 7541 §C.3: three requests without Huffman sharing one context.
        let mut d = Decoder::new(DEFAULT_TABLE_SIZE);
        let first = Block::new()
            .indexed(2)
            .indexed(6)
            .indexed(4)
            .raw(&[0x41, 0x0f])
            .raw(b"www.example.com")
            .into_bytes();
        let got = d.decode(&first).unwrap();
        assert_eq!(
            got[3],
            (b":authority".to_vec(), b"www.example.com".to_vec())
        );
        let second = Block::new()
            .indexed(2)
            .indexed(6)
            .indexed(4)
            .indexed(62)
            .literal_indexed(b"cache-control", b"no-cache")
            .into_bytes();
        let got = d.decode(&second).unwrap();
        assert_eq!(got[3].1, b"www.example.com");
        assert_eq!(d.get(62).unwrap().0, b"cache-control");
        assert_eq!(d.get(63).unwrap().0, b":authority");
        assert_eq!(
            d.decode(&[0xc6]), /* index 70 */
            Err(Error::BadIndex(70))
        );
    }

    #[test]
    fn integers_use_the_prefix_and_continuation_bytes() {
        // RFC 7541 §C.1.2: 1337 with a 5-bit prefix.
        let mut out = Vec::new();
        int(&mut out, 5, 0, 1337);
        assert_eq!(out, [31, 154, 10]);
        assert_eq!(read_int(&mut &out[..], 5), Ok(1337));
    }
}
