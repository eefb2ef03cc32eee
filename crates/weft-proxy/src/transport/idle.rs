//! Idle timeouts for opaque connections: close a copy when neither side has sent a byte
//! for a while.
//!
//! Both streams of a copy are wrapped in [`Tracked`], which stamps a shared [`Activity`]
//! on every read; [`Activity::expired`] sleeps until the last stamp plus the timeout and
//! resolves only once the connection really was quiet that long. A read costs one
//! clock read and a relaxed store; no timer is reset per read.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Copy buffer per direction. Larger than tokio's 8 KiB default so a bulk transfer into
/// an HBONE stream becomes few large DATA frames instead of many small ones.
const COPY_BUFFER: usize = 32 * 1024;

/// The last time any tracked stream read data.
#[derive(Clone, Debug)]
pub struct Activity {
    epoch: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing was read for `timeout`.
    pub async fn expired(&self, timeout: Duration) {
        loop {
            let last = self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Wraps `inner` so its reads count as activity.
    pub fn track<S>(&self, inner: S) -> Tracked<S> {
        Tracked {
            inner,
            activity: self.clone(),
            written: 0,
        }
    }
}

/// A stream whose reads stamp an [`Activity`] and whose writes are counted.
#[derive(Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Activity,
    /// Bytes the inner stream accepted.
    written: u64,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.written += n as u64;
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a copy moved, and how it ended.
#[derive(Debug)]
pub struct Copied {
    /// Bytes written to either side, counted as they were written: a copy that ends
    /// with an error (a reset, a timeout) still reports what it moved before.
    pub bytes: u64,
    /// `Ok` once both sides finished; otherwise the error that ended the copy, or
    /// `TimedOut`.
    pub result: io::Result<()>,
}

/// Copies `a` ⇄ `b` until both sides finish or nothing moves for `timeout`.
pub async fn copy_with_idle_timeout<A, B>(a: A, b: B, timeout: Duration) -> Copied
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::default();
    activity.touch();
    let mut a = activity.track(a);
    let mut b = activity.track(b);
    let result = tokio::select! {
        r = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, COPY_BUFFER, COPY_BUFFER) => r.map(|_| ()),
        () = activity.expired(timeout) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no traffic for {}", humantime::format_duration(timeout)),
        )),
    };
    Copied {
        bytes: a.written + b.written,
        result,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn quiet_copy_times_out() {
        let (a, _a_peer) = tokio::io::duplex(64);
        let (b, _b_peer) = tokio::io::duplex(64);
        let copied = copy_with_idle_timeout(a, b, Duration::from_secs(5)).await;
        let err = copied.result.expect_err("must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(copied.bytes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_keeps_the_copy_alive() {
        let (a, mut a_peer) = tokio::io::duplex(64);
        let (b, mut b_peer) = tokio::io::duplex(64);
        let copy = tokio::spawn(copy_with_idle_timeout(a, b, Duration::from_secs(5)));
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            a_peer.write_all(b"x").await.expect("write");
            let mut byte = [0u8; 1];
            b_peer.read_exact(&mut byte).await.expect("read");
        }
        assert!(
            !copy.is_finished(),
            "12 s of traffic every 3 s must not time out at 5 s"
        );
        drop(a_peer);
        drop(b_peer);
        let _ = copy.await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_copy_that_ends_in_an_error_still_counts_what_it_moved() {
        let (a, mut a_peer) = tokio::io::duplex(64);
        let (b, mut b_peer) = tokio::io::duplex(64);
        let copy = tokio::spawn(copy_with_idle_timeout(a, b, Duration::from_secs(5)));
        a_peer.write_all(b"hello").await.expect("write");
        let mut got = [0u8; 5];
        b_peer.read_exact(&mut got).await.expect("read");
        b_peer.write_all(b"hi").await.expect("write back");
        let mut back = [0u8; 2];
        a_peer.read_exact(&mut back).await.expect("read back");
        // Then nothing: the idle timeout ends the copy with an error.
        let copied = copy.await.expect("copy task");
        assert_eq!(
            copied.result.expect_err("idle").kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(copied.bytes, 7, "5 bytes one way and 2 the other");
        drop((a_peer, b_peer));
    }
}
