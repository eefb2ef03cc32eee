//! HTTP/2 frames as bytes (RFC 9113 §4.1, §6), written by hand so a vector can send
//! exactly what a hostile client would: wrong lengths, wrong stream ids, flags in odd
//! places. Nothing here validates; validating is the proxy's job.
//!
//! It is not an HTTP/2 implementation: no state machine, no flow control. The raw
//! client (`h2_client.rs`) and the origin's tap (`h2_origin.rs`) use it to write and
//! read frames.

use std::fmt;

/// What a client sends first (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The size of a frame header.
pub(crate) const HEADER_LEN: usize = 9;

/// The default and minimum SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2).
pub(crate) const DEFAULT_MAX_FRAME: usize = 16_384;

/// Frame types (RFC 9113 §6).
pub(crate) mod kind {
    pub(crate) const DATA: u8 = 0x0;
    pub(crate) const HEADERS: u8 = 0x1;
    pub(crate) const PRIORITY: u8 = 0x2;
    pub(crate) const RST_STREAM: u8 = 0x3;
    pub(crate) const SETTINGS: u8 = 0x4;
    pub(crate) const PUSH_PROMISE: u8 = 0x5;
    pub(crate) const PING: u8 = 0x6;
    pub(crate) const GOAWAY: u8 = 0x7;
    pub(crate) const WINDOW_UPDATE: u8 = 0x8;
    pub(crate) const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 §6); the same bit means different things per type.
pub(crate) mod flag {
    pub(crate) const END_STREAM: u8 = 0x1;
    pub(crate) const ACK: u8 = 0x1;
    pub(crate) const END_HEADERS: u8 = 0x4;
    pub(crate) const PADDED: u8 = 0x8;
    pub(crate) const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (RFC 9113 §6.5.2, RFC 8441 §3).
pub(crate) mod setting {
    pub(crate) const HEADER_TABLE_SIZE: u16 = 0x1;
    pub(crate) const ENABLE_PUSH: u16 = 0x2;
    pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub(crate) const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub(crate) const MAX_FRAME_SIZE: u16 = 0x5;
    pub(crate) const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// An HTTP/2 error code (RFC 9113 §7), shown by name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Reason(pub(crate) u32);

/// One frame: its header fields and payload. The length on the wire is the payload's.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
    pub(crate) payload: Vec<u8>,
}

// === impl Reason ===

impl Reason {
    pub(crate) const NO_ERROR: Self = Self(0x0);
    pub(crate) const PROTOCOL_ERROR: Self = Self(0x1);
    pub(crate) const INTERNAL_ERROR: Self = Self(0x2);
    pub(crate) const FLOW_CONTROL_ERROR: Self = Self(0x3);
    pub(crate) const STREAM_CLOSED: Self = Self(0x5);
    pub(crate) const FRAME_SIZE_ERROR: Self = Self(0x6);
    pub(crate) const REFUSED_STREAM: Self = Self(0x7);
    pub(crate) const CANCEL: Self = Self(0x8);
    pub(crate) const COMPRESSION_ERROR: Self = Self(0x9);
    pub(crate) const ENHANCE_YOUR_CALM: Self = Self(0xb);

    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "UNKNOWN",
        }
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "UNKNOWN" => write!(f, "0x{:x}", self.0),
            name => f.write_str(name),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

// === impl Frame ===

impl Frame {
    pub(crate) fn new(kind: u8, flags: u8, stream: u32, payload: Vec<u8>) -> Self {
        Self {
            kind,
            flags,
            stream,
            payload,
        }
    }

    pub(crate) fn data(stream: u32, bytes: &[u8], end_stream: bool) -> Self {
        let flags = if end_stream { flag::END_STREAM } else { 0 };
        Self::new(kind::DATA, flags, stream, bytes.to_vec())
    }

    /// A HEADERS frame carrying `block` (an HPACK fragment) with `flags` as given.
    pub(crate) fn headers(stream: u32, block: Vec<u8>, flags: u8) -> Self {
        Self::new(kind::HEADERS, flags, stream, block)
    }

    pub(crate) fn continuation(stream: u32, block: Vec<u8>, end_headers: bool) -> Self {
        let flags = if end_headers { flag::END_HEADERS } else { 0 };
        Self::new(kind::CONTINUATION, flags, stream, block)
    }

    pub(crate) fn settings(values: &[(u16, u32)]) -> Self {
        let mut payload = Vec::with_capacity(values.len() * 6);
        for (id, value) in values {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        Self::new(kind::SETTINGS, 0, 0, payload)
    }

    pub(crate) fn settings_ack() -> Self {
        Self::new(kind::SETTINGS, flag::ACK, 0, Vec::new())
    }

    pub(crate) fn ping(opaque: [u8; 8], ack: bool) -> Self {
        let flags = if ack { flag::ACK } else { 0 };
        Self::new(kind::PING, flags, 0, opaque.to_vec())
    }

    pub(crate) fn rst(stream: u32, reason: Reason) -> Self {
        Self::new(kind::RST_STREAM, 0, stream, reason.0.to_be_bytes().to_vec())
    }

    pub(crate) fn goaway(last_stream: u32, reason: Reason) -> Self {
        let mut payload = last_stream.to_be_bytes().to_vec();
        payload.extend_from_slice(&reason.0.to_be_bytes());
        Self::new(kind::GOAWAY, 0, 0, payload)
    }

    pub(crate) fn window_update(stream: u32, increment: u32) -> Self {
        Self::new(
            kind::WINDOW_UPDATE,
            0,
            stream,
            increment.to_be_bytes().to_vec(),
        )
    }

    pub(crate) fn priority(stream: u32, depends_on: u32, exclusive: bool, weight: u8) -> Self {
        let dep = depends_on | if exclusive { 1 << 31 } else { 0 };
        let mut payload = dep.to_be_bytes().to_vec();
        payload.push(weight);
        Self::new(kind::PRIORITY, 0, stream, payload)
    }

    /// This frame with PADDED set and `pad` bytes of padding; `pad_length` is what the
    /// Pad Length field claims (normally `pad`).
    pub(crate) fn padded(mut self, pad_length: u8, pad: usize) -> Self {
        let mut payload = vec![pad_length];
        payload.append(&mut self.payload);
        payload.resize(payload.len() + pad, 0);
        self.payload = payload;
        self.flags |= flag::PADDED;
        self
    }

    /// The frame on the wire: a 9-byte header and the payload.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.payload.len());
        self.encode_into(&mut out);
        out
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        let len = self.payload.len() as u32;
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&(self.stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// The first whole frame in `buf`, removed from it; `None` until one is complete.
    pub(crate) fn decode(buf: &mut Vec<u8>) -> Option<Self> {
        let (len, kind, flags, stream) = Self::peek_header(buf)?;
        if buf.len() < HEADER_LEN + len {
            return None;
        }
        let payload = buf[HEADER_LEN..HEADER_LEN + len].to_vec();
        buf.drain(..HEADER_LEN + len);
        Some(Self::new(kind, flags, stream, payload))
    }

    /// The header of the frame at the start of `buf`: length, type, flags, stream.
    pub(crate) fn peek_header(buf: &[u8]) -> Option<(usize, u8, u8, u32)> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
        let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
        Some((len, buf[3], buf[4], stream))
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The error code of a RST_STREAM or GOAWAY frame.
    pub(crate) fn reason(&self) -> Option<Reason> {
        let at = match self.kind {
            kind::RST_STREAM => 0,
            kind::GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(Reason(u32::from_be_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ])))
    }

    /// The last stream id of a GOAWAY frame.
    pub(crate) fn last_stream(&self) -> Option<u32> {
        let bytes = self.payload.get(..4)?;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x7fff_ffff)
    }

    /// The HPACK fragment of a HEADERS or CONTINUATION frame, without padding and
    /// priority fields.
    pub(crate) fn block(&self) -> Option<&[u8]> {
        let mut body = &self.payload[..];
        let mut pad = 0;
        if self.kind == kind::HEADERS && self.has(flag::PADDED) {
            pad = usize::from(*body.first()?);
            body = &body[1..];
        }
        if self.kind == kind::HEADERS && self.has(flag::PRIORITY) {
            body = body.get(5..)?;
        }
        body.get(..body.len().checked_sub(pad)?)
    }

    /// The payload of a DATA frame without padding.
    pub(crate) fn data_payload(&self) -> Option<&[u8]> {
        if !self.has(flag::PADDED) {
            return Some(&self.payload);
        }
        let pad = usize::from(*self.payload.first()?);
        self.payload.get(1..self.payload.len().checked_sub(pad)?)
    }

    /// The increment of a WINDOW_UPDATE frame.
    pub(crate) fn increment(&self) -> Option<u32> {
        let b = self.payload.get(..4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff)
    }

    pub(crate) fn kind_name(kind: u8) -> &'static str {
        match kind {
            kind::DATA => "DATA",
            kind::HEADERS => "HEADERS",
            kind::PRIORITY => "PRIORITY",
            kind::RST_STREAM => "RST_STREAM",
            kind::SETTINGS => "SETTINGS",
            kind::PUSH_PROMISE => "PUSH_PROMISE",
            kind::PING => "PING",
            kind::GOAWAY => "GOAWAY",
            kind::WINDOW_UPDATE => "WINDOW_UPDATE",
            kind::CONTINUATION => "CONTINUATION",
            _ => "UNKNOWN",
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}(stream={}, flags=0x{:02x}, len={}",
            Self::kind_name(self.kind),
            self.stream,
            self.flags,
            self.payload.len()
        )?;
        if let Some(reason) = self.reason() {
            write!(f, ", {reason}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_through_its_wire_form() {
        let frame = Frame::data(3, b"hello", true);
        let mut wire = frame.encode();
        assert_eq!(&wire[..9], &[0, 0, 5, 0, 1, 0, 0, 0, 3]);
        wire.extend_from_slice(&[0, 0]);
        assert_eq!(Frame::decode(&mut wire), Some(frame));
        assert_eq!(wire, [0, 0]);
        assert_eq!(Frame::decode(&mut wire), None);
    }

    #[test]
    fn padding_is_removed_when_reading_a_block() {
        let frame = Frame::headers(1, vec![1, 2, 3], flag::END_HEADERS).padded(4, 4);
        assert_eq!(frame.block(), Some(&[1, 2, 3][..]));
        let lying = Frame::headers(1, vec![1], 0).padded(9, 0);
        assert_eq!(lying.block(), None);
    }
}
