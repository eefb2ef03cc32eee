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

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::client::Lease;

/// Most send capacity one write asks for. Asking for more would let a single stream
/// hold connection window that other streams on the same connection could use.
const MAX_WRITE_RESERVATION: usize = 1024 * 1024;

/// A `CONNECT` stream as a byte stream: tokio `AsyncRead + AsyncWrite`, `Send`, `Unpin`.
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// The rest of the last DATA frame, not yet read by the caller.
    unread: Bytes,
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
    /// DATA frame built by `fill(n)`. Returns how many bytes were queued.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        wanted: usize,
        fill: impl FnOnce(usize) -> Bytes,
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
                self.send
                    .send_data(fill(n), false)
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
            .poll_send(cx, buf.len(), |n| Bytes::copy_from_slice(&buf[..n]))
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
        self.get_mut().poll_send(cx, total, |n| {
            let mut out = bytes::BytesMut::with_capacity(n);
            for b in bufs {
                let take = b.len().min(n - out.len());
                out.extend_from_slice(&b[..take]);
                if out.len() == n {
                    break;
                }
            }
            out.freeze()
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
