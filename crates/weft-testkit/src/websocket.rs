//! The few pieces of RFC 6455 that the echo server and the test client need: the
//! handshake key check and reading/writing single frames.
//!
//! Not a WebSocket library: no extensions, no reassembly of fragmented messages (the
//! echo server echoes frame by frame), payloads are limited to [`MAX_PAYLOAD`]. Public so
//! adversarial tests can send hand-made frames.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The GUID that RFC 6455 §1.3 appends to the client's key.
const HANDSHAKE_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest payload [`read_frame`] accepts (16 MiB); larger frames are an error.
pub const MAX_PAYLOAD: u64 = 16 * 1024 * 1024;

/// A frame's opcode (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// Continuation of a fragmented message.
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// Close; the payload is an optional status code and reason.
    Close,
    /// Ping; answered with a pong carrying the same payload.
    Ping,
    /// Pong.
    Pong,
}

/// One frame, unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Whether this is the final fragment of its message.
    pub fin: bool,
    /// What the frame carries.
    pub opcode: Opcode,
    /// The (unmasked) payload.
    pub payload: Vec<u8>,
}

// === impl Opcode ===

impl Opcode {
    fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }
}

// === impl Frame ===

impl Frame {
    /// A final text frame.
    pub fn text(text: &str) -> Self {
        Self {
            fin: true,
            opcode: Opcode::Text,
            payload: text.as_bytes().to_vec(),
        }
    }

    /// A close frame with status 1000 (normal closure).
    pub fn close() -> Self {
        Self {
            fin: true,
            opcode: Opcode::Close,
            payload: 1000u16.to_be_bytes().to_vec(),
        }
    }
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(HANDSHAKE_GUID.as_bytes());
    STANDARD.encode(sha1.finalize())
}

/// Reads one frame and unmasks it. Rejects unknown opcodes, reserved bits and payloads
/// over [`MAX_PAYLOAD`] with `InvalidData`; a clean EOF before the frame is
/// `UnexpectedEof`.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Frame> {
    let mut head = [0u8; 2];
    reader.read_exact(&mut head).await?;
    if head[0] & 0x70 != 0 {
        return Err(invalid("reserved bits set without an extension"));
    }
    let fin = head[0] & 0x80 != 0;
    let opcode =
        Opcode::from_bits(head[0] & 0x0F).ok_or_else(|| invalid("unknown websocket opcode"))?;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7F {
        126 => u64::from(reader.read_u16().await?),
        127 => reader.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_PAYLOAD {
        return Err(invalid("websocket payload too large"));
    }
    let mut mask = [0u8; 4];
    if masked {
        reader.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    reader.read_exact(&mut payload).await?;
    if masked {
        apply_mask(&mut payload, mask);
    }
    Ok(Frame {
        fin,
        opcode,
        payload,
    })
}

/// Writes one frame, masked with `mask` if given (clients must mask, servers must not).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame,
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(frame.payload.len() + 14);
    out.push(if frame.fin { 0x80 } else { 0 } | frame.opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = frame.payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(mask_bit | 0x7E);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(mask_bit | 0x7F);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let start = out.len();
    out.extend_from_slice(&frame.payload);
    if let Some(mask) = mask {
        out.splice(start..start, mask);
        apply_mask(&mut out[start + 4..], mask);
    }
    writer.write_all(&out).await?;
    writer.flush().await
}

fn apply_mask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

fn invalid(message: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_6455_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[tokio::test]
    async fn masked_frames_round_trip_at_every_length_encoding() {
        for len in [0usize, 5, 125, 126, 65_535, 65_536] {
            let frame = Frame {
                fin: len % 2 == 0,
                opcode: Opcode::Binary,
                payload: (0..len).map(|i| i as u8).collect(),
            };
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut wire = Vec::new();
                write_frame(&mut wire, &frame, mask).await.expect("write");
                let read = read_frame(&mut wire.as_slice()).await.expect("read");
                assert_eq!(read, frame, "len {len} mask {mask:?}");
            }
        }
    }

    #[tokio::test]
    async fn rejects_unknown_opcode() {
        let wire = [0x83u8, 0x00];
        let err = read_frame(&mut wire.as_slice())
            .await
            .expect_err("opcode 3");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }
}
