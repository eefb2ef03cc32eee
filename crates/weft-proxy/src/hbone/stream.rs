//! One HBONE `CONNECT` stream as a plain byte stream.
//!
//! [`H2Stream`] wraps the two halves h2 hands out for a stream (the `SendStream` we
//! write DATA frames into and the `RecvStream` we read them from) and implements tokio's
//! `AsyncRead` and `AsyncWrite`, so the rest of the proxy copies bytes through it exactly
//! as through a `TcpStream`. Both the client ([`Pool::connect`](super::Pool::connect))
//! and the server ([`Accepted::stream`](super::Accepted)) produce one.
//!
//! Flow control is where the HTTP/2 semantics show through:
//!
//! - reading returns stream window to the peer only as the caller consumes bytes, so a
//!   slow reader slows its writer instead of growing buffers;
//! - writing waits for send capacity (stream and connection windows) before queueing
//!   DATA, and never queues more than the window allows;
//! - `poll_shutdown` ends our half with `END_STREAM` (a TCP FIN), while the other half
//!   keeps working;
//! - a peer's `RST_STREAM` surfaces as `ConnectionReset` when reading and `BrokenPipe`
//!   when writing, like a TCP RST.
//!
//! Dropping an `H2Stream` whose write half is still open resets the stream (`CANCEL`).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::client::Lease;

/// Most send capacity one write asks for. Asking for more would let a single stream
/// hold connection window that other streams on the same connection could use.
const MAX_WRITE_RESERVATION: usize = 1024 * 1024;

/// Frames at least this large are built in the stream's reusable write buffer; smaller
/// ones (HTTP heads, small bodies) in a fresh allocation, which the allocator hands
/// back cache-hot from the frame freed just before. Measured: carving small frames
/// out of one buffer cost the two-hop L7 path 3-6% (cold cache lines).
const REUSE_WRITE_BUFFER_FROM: usize = 16 * 1024;

/// A `CONNECT` stream as a byte stream: tokio `AsyncRead + AsyncWrite`, `Send`, `Unpin`.
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// The rest of the last DATA frame, not yet read by the caller.
    unread: Bytes,
    /// Where large writes are copied before h2 queues them as DATA. Each frame is split
    /// off; once h2 has sent and dropped it, the next frame reuses the allocation, so
    /// a bulk copy does not allocate (and fault in) fresh heap for every 32 KiB.
    out: BytesMut,
    /// The peer ended its half of the stream.
    read_closed: bool,
    /// We sent `END_STREAM`.
    write_closed: bool,
    /// Keeps the pooled connection's stream count while this stream lives (client side).
    _lease: Option<Lease>,
}

// === impl H2Stream ===

impl H2Stream {
    /// Wraps the two halves of an established `CONNECT` stream.
    pub fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Stream {
            send,
            recv,
            unread: Bytes::new(),
            out: BytesMut::new(),
            read_closed: false,
            write_closed: false,
            _lease: None,
        }
    }

    /// A client stream that counts against its pooled connection until dropped.
    pub(super) fn leased(send: SendStream<Bytes>, recv: RecvStream, lease: Lease) -> Self {
        H2Stream {
            _lease: Some(lease),
            ..H2Stream::new(send, recv)
        }
    }

    /// The error a write gets once the stream can no longer carry data.
    fn poll_write_closed(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        match ready!(self.send.poll_reset(cx)) {
            Ok(reason) => Poll::Ready(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("HBONE stream reset by peer ({reason})"),
            )),
            Err(err) => Poll::Ready(to_io(err, io::ErrorKind::BrokenPipe)),
        }
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.unread.is_empty() {
                let n = this.unread.len().min(buf.remaining());
                buf.put_slice(&this.unread[..n]);
                this.unread.advance(n);
                // The bytes are the caller's now; give their window back to the peer.
                // This fails only once the stream is gone, when there is no window left
                // to return.
                if let Err(err) = this.recv.flow_control().release_capacity(n) {
                    tracing::trace!(%err, "cannot release HBONE receive capacity");
                }
                return Poll::Ready(Ok(()));
            }
            if this.read_closed {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => this.unread = data,
                Some(Err(err)) => {
                    return Poll::Ready(Err(to_io(err, io::ErrorKind::ConnectionReset)))
                }
                None => this.read_closed = true,
            }
        }
    }
}

impl H2Stream {
    /// Waits for send capacity for up to `wanted` bytes, then queues what fits as one
    /// DATA frame: `fill(out, n)` appends exactly `n` bytes to the empty `out`. Returns
    /// how many bytes were queued.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        wanted: usize,
        fill: impl FnOnce(&mut BytesMut, usize),
    ) -> Poll<io::Result<usize>> {
        if wanted == 0 {
            return Poll::Ready(Ok(0));
        }
        if self.write_closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown of an HBONE stream",
            )));
        }
        loop {
            let capacity = self.send.capacity();
            if capacity > 0 {
                let n = capacity.min(wanted);
                let frame = build(&mut self.out, n, fill);
                self.send
                    .send_data(frame, false)
                    .map_err(|err| to_io(err, io::ErrorKind::BrokenPipe))?;
                return Poll::Ready(Ok(n));
            }
            self.send
                .reserve_capacity(wanted.min(MAX_WRITE_RESERVATION));
            match self.send.poll_capacity(cx) {
                // Capacity changed; loop to read how much we may send now.
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Err(to_io(err, io::ErrorKind::BrokenPipe)))
                }
                // The stream can no longer send: find out why.
                Poll::Ready(None) => return self.poll_write_closed(cx).map(Err),
                // Waiting for window: a reset must still wake us.
                Poll::Pending => {
                    return match self.poll_write_closed(cx) {
                        Poll::Ready(err) => Poll::Ready(Err(err)),
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
        }
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_send(cx, buf.len(), |out, n| out.extend_from_slice(&buf[..n]))
    }

    /// Gathers the slices into one DATA frame. Claiming vectored support matters: hyper
    /// otherwise flattens every body chunk into its own buffer first, copying each byte
    /// once more before we copy it here.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total = bufs.iter().map(|b| b.len()).sum();
        self.get_mut().poll_send(cx, total, |out, n| {
            let mut left = n;
            for b in bufs {
                let take = b.len().min(left);
                out.extend_from_slice(&b[..take]);
                left -= take;
                if left == 0 {
                    break;
                }
            }
        })
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection task writes queued frames; there is nothing to wait for here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.write_closed {
            this.send
                .send_data(Bytes::new(), true)
                .map_err(|err| to_io(err, io::ErrorKind::BrokenPipe))?;
            this.write_closed = true;
        }
        Poll::Ready(Ok(()))
    }
}

impl fmt::Debug for H2Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("H2Stream")
            .field("stream_id", &self.send.stream_id().as_u32())
            .field("unread", &self.unread.len())
            .field("read_closed", &self.read_closed)
            .field("write_closed", &self.write_closed)
            .finish_non_exhaustive()
    }
}

/// One DATA frame of `n` bytes that `fill` appends: in `out` for a large frame (in place
/// when h2 has dropped the frame split off before, else in a fresh allocation), or in
/// its own allocation for a small one.
fn build(out: &mut BytesMut, n: usize, fill: impl FnOnce(&mut BytesMut, usize)) -> Bytes {
    if n < REUSE_WRITE_BUFFER_FROM {
        let mut frame = BytesMut::with_capacity(n);
        fill(&mut frame, n);
        return frame.freeze();
    }
    out.reserve(n);
    fill(out, n);
    debug_assert_eq!(out.len(), n, "fill appends exactly n bytes");
    out.split().freeze()
}

/// Maps an h2 error to the I/O error a TCP socket would give in the same situation:
/// `reset` (ConnectionReset or BrokenPipe) for a reset stream or a closed connection.
fn to_io(err: h2::Error, reset: io::ErrorKind) -> io::Error {
    if err.is_io() {
        return err
            .into_io()
            .unwrap_or_else(|| io::Error::from(io::ErrorKind::Other));
    }
    let kind = if err.is_reset() || err.is_go_away() {
        reset
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(out: &mut BytesMut, n: usize, byte: u8) -> Bytes {
        build(out, n, |b, n| b.extend_from_slice(&vec![byte; n]))
    }

    #[test]
    fn a_sent_large_frames_buffer_is_reused_and_a_queued_one_is_never_overwritten() {
        let mut out = BytesMut::new();
        let first = frame(&mut out, 32 * 1024, 1);
        let start = first.as_ptr();
        drop(first); // h2 wrote it to the connection
        let second = frame(&mut out, 32 * 1024, 2);
        assert_eq!(second.as_ptr(), start, "the sent frame's buffer is reused");

        // Still queued in h2: the next frame must go elsewhere.
        let third = frame(&mut out, 32 * 1024, 3);
        assert_ne!(third.as_ptr(), second.as_ptr());
        assert!(second.iter().all(|&x| x == 2), "a queued frame is intact");
        assert!(third.iter().all(|&x| x == 3));
    }

    #[test]
    fn small_frames_leave_the_write_buffer_alone() {
        let mut out = BytesMut::new();
        let head = frame(&mut out, 200, 7);
        assert_eq!(head.len(), 200);
        assert!(head.iter().all(|&x| x == 7));
        assert_eq!(out.capacity(), 0, "no buffer kept for small writes");
    }
}
