//! Connection limits of one destination service, per calling proxy (a
//! `BackendPolicy`'s `connectionLimits`): requests in flight, upstream connections
//! open, and requests waiting for a connection.
//!
//! A request past `maxRequests` is refused at once (the caller answers 503) rather
//! than queued: a service that is already saturated is not helped by more waiting
//! work. A new connection past `maxConnections` waits for one to close, but only while
//! fewer than `maxPendingRequests` are already waiting and only as long as a connect
//! may take. The counters are atomics; the limits can change with every config
//! snapshot while the counts carry over, because the [`Limiter`] is kept per service
//! across reloads.
//!
//! It is not a rate limit (that is the `RateLimit` policy, on the inbound side) and it
//! does not limit what a single endpoint receives.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use weft_api::proxy::Limits;

pub use crate::error::Overflow;

/// The counters and current limits of one service.
#[derive(Debug)]
pub struct Limiter {
    requests: AtomicUsize,
    max_requests: AtomicUsize,
    connections: AtomicUsize,
    max_connections: AtomicUsize,
    pending: AtomicUsize,
    max_pending: AtomicUsize,
    /// Woken when a connection closes.
    closed: Notify,
}

impl Limiter {
    /// Counters at zero with `limits`.
    pub fn new(limits: &Limits) -> Arc<Self> {
        let limiter = Arc::new(Self {
            requests: AtomicUsize::new(0),
            max_requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            max_connections: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            max_pending: AtomicUsize::new(0),
            closed: Notify::new(),
        });
        limiter.set(limits);
        limiter
    }

    /// Applies new limits; counts carry over. Waiters are woken in case the
    /// connection limit grew.
    pub fn set(&self, limits: &Limits) {
        let widen = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        self.max_requests
            .store(widen(limits.max_requests), Ordering::Relaxed);
        self.max_connections
            .store(widen(limits.max_connections), Ordering::Relaxed);
        self.max_pending
            .store(widen(limits.max_pending_requests), Ordering::Relaxed);
        self.closed.notify_waiters();
    }

    /// Counts a request in flight until the guard drops, or refuses it.
    pub fn request(self: &Arc<Self>) -> Result<RequestGuard, Overflow> {
        let max = self.max_requests.load(Ordering::Relaxed);
        if take(&self.requests, max) {
            Ok(RequestGuard {
                limiter: self.clone(),
            })
        } else {
            Err(Overflow::Requests(max))
        }
    }

    /// A slot for one new upstream connection, waiting up to `wait` for one to free
    /// up when all are taken (as one of at most `maxPendingRequests` waiters).
    pub async fn connection(self: &Arc<Self>, wait: Duration) -> Result<ConnectionSlot, Overflow> {
        if let Some(slot) = self.try_connection() {
            return Ok(slot);
        }
        let max_pending = self.max_pending.load(Ordering::Relaxed);
        if !take(&self.pending, max_pending) {
            return Err(Overflow::Pending(max_pending));
        }
        let _pending = Decrement(&self.pending);
        let waited = tokio::time::timeout(wait, async {
            loop {
                let closed = self.closed.notified();
                tokio::pin!(closed);
                // Registered before the check, so a close in between is not missed.
                closed.as_mut().enable();
                if let Some(slot) = self.try_connection() {
                    return slot;
                }
                closed.await;
            }
        })
        .await;
        waited.map_err(|_| Overflow::Connections(self.max_connections.load(Ordering::Relaxed)))
    }

    fn try_connection(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let max = self.max_connections.load(Ordering::Relaxed);
        take(&self.connections, max).then(|| ConnectionSlot {
            limiter: self.clone(),
        })
    }

    /// Requests in flight now.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Connections open now (counted ones: those opened through [`Self::connection`]).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Increments `counter` unless it is already at `max`.
fn take(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request in flight; dropping it frees its place.
#[derive(Debug)]
pub struct RequestGuard {
    limiter: Arc<Limiter>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.limiter.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One open upstream connection's place; dropping it (with the connection) wakes one
/// waiter.
#[derive(Debug)]
pub struct ConnectionSlot {
    limiter: Arc<Limiter>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.limiter.connections.fetch_sub(1, Ordering::AcqRel);
        self.limiter.closed.notify_one();
    }
}

/// A byte stream that holds its connection slot for as long as it lives.
#[derive(Debug)]
pub struct Counted<T> {
    io: T,
    _slot: ConnectionSlot,
}

impl<T> Counted<T> {
    /// `io`, counted against `slot`'s limit until dropped.
    pub fn new(io: T, slot: ConnectionSlot) -> Self {
        Self { io, _slot: slot }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(requests: u32, connections: u32, pending: u32) -> Limits {
        Limits {
            max_connections: connections,
            max_pending_requests: pending,
            max_requests: requests,
            max_requests_per_connection: None,
        }
    }

    #[test]
    fn requests_past_the_limit_are_refused_until_one_finishes() {
        let limiter = Limiter::new(&limits(2, 10, 10));
        let a = limiter.request().expect("first");
        let _b = limiter.request().expect("second");
        assert_eq!(limiter.request().expect_err("third"), Overflow::Requests(2));
        drop(a);
        assert!(
            limiter.request().is_ok(),
            "a finished request frees its place"
        );
    }

    #[tokio::test]
    async fn a_connection_past_the_limit_waits_for_one_to_close() {
        let limiter = Limiter::new(&limits(10, 1, 10));
        let first = limiter
            .connection(Duration::from_millis(10))
            .await
            .expect("first");
        let waiting = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.connection(Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the second connection must wait");
        drop(first);
        let second = waiting.await.expect("task").expect("slot after a close");
        assert_eq!(limiter.connections(), 1);
        drop(second);
        assert_eq!(limiter.connections(), 0);
    }

    #[tokio::test]
    async fn waiting_is_bounded_by_time_and_by_the_pending_limit() {
        let limiter = Limiter::new(&limits(10, 1, 1));
        let _held = limiter
            .connection(Duration::from_millis(10))
            .await
            .expect("first");
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.connection(Duration::from_millis(200)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            limiter
                .connection(Duration::from_secs(5))
                .await
                .expect_err("a second waiter is one too many"),
            Overflow::Pending(1)
        );
        assert_eq!(
            waiter
                .await
                .expect("task")
                .expect_err("no connection closed"),
            Overflow::Connections(1)
        );
    }

    #[tokio::test]
    async fn raising_the_limit_lets_a_waiter_through() {
        let limiter = Limiter::new(&limits(10, 1, 10));
        let _held = limiter
            .connection(Duration::from_millis(10))
            .await
            .expect("first");
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.connection(Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        limiter.set(&limits(10, 2, 10));
        assert!(waiter.await.expect("task").is_ok());
    }
}
