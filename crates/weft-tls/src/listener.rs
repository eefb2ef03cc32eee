//! Accept-side limits shared by every TLS listener Weft runs: the control plane's API
//! and xDS ports and the proxy's HBONE port (DESIGN §7, ADR 0023).
//!
//! - [`Guard`]: a cap on connections in total and per source IP; an admitted
//!   connection holds a [`Permit`] that gives its slots back when dropped.
//! - [`IdleTimeout`]: an I/O wrapper that fails reads once nothing was read or written
//!   for a while, so a connection that carries nothing is closed.
//! - [`AcceptErrors`]: `accept` failures (EMFILE and friends) logged at a bounded rate,
//!   each followed by a short pause instead of a hot loop.
//! - [`raise_fd_limit`] and [`FdLimit::connection_budget`]: the soft `RLIMIT_NOFILE`
//!   raised to the hard limit at start, and connection caps kept below it.
//!
//! What it is not: an accept loop or a TLS handshake; the listeners own those and call
//! in here. The TLS handshake and HTTP header-read timeouts are enforced by the
//! listeners, with the values of [`Limits`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// File descriptors kept out of the connection budget in any case: the store, logs,
/// outbound connections, certificate files.
pub const FD_HEADROOM_MIN: u64 = 256;

/// Limits of one listener. The defaults follow Envoy's edge recommendations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once, handshaking or established. Default: 10000,
    /// lowered below the file-descriptor limit by [`Limits::within`].
    pub max_connections: usize,
    /// Most connections open at once from one source IP address. Default: 100.
    pub max_connections_per_source: usize,
    /// Deadline for a new connection's TLS handshake. Default: 10s.
    pub handshake_timeout: Duration,
    /// Deadline for an HTTP/1 request head, from when the server starts waiting for it
    /// (also between keep-alive requests). Default: 10s.
    pub header_read_timeout: Duration,
    /// A connection that carries nothing (no bytes either way, or for HBONE no open
    /// stream) for this long is closed. Default: 5m.
    pub idle_timeout: Duration,
}

/// Tracks the connections a listener holds; cheap to clone (clones share the counts).
#[derive(Clone)]
pub struct Guard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    max_total: usize,
    max_per_source: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// One admitted connection's slots; dropping it gives them back.
#[must_use = "the connection's slots are released when the permit is dropped"]
pub struct Permit {
    guard: Arc<GuardInner>,
    addr: IpAddr,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The listener holds its maximum number of connections.
    #[error("the listener holds its maximum of {max} connections")]
    Total {
        /// The cap.
        max: usize,
    },
    /// The source address holds its maximum number of connections.
    #[error("{addr} holds its maximum of {max} connections")]
    PerSource {
        /// The source address.
        addr: IpAddr,
        /// The cap.
        max: usize,
    },
}

/// Logs `accept` errors at most once per interval (counting the ones it skipped) and
/// pauses after each, so that running out of file descriptors does not spin a core
/// or flood the log.
#[derive(Debug)]
pub struct AcceptErrors {
    listener: &'static str,
    interval: Duration,
    backoff: Duration,
    last_logged: Option<Instant>,
    suppressed: u64,
}

/// The process's open-file limit, after [`raise_fd_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit in force.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
    /// The soft limit before it was raised, if it was.
    pub raised_from: Option<u64>,
}

/// An I/O stream whose reads fail with [`io::ErrorKind::TimedOut`] once nothing was
/// read or written for the idle timeout.
pub struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

// === impl Limits ===

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_source: 100,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

impl Limits {
    /// These limits with `max_connections` lowered to `budget` if above it (and the
    /// per-source cap to the total).
    #[must_use]
    pub fn within(mut self, budget: usize) -> Self {
        self.max_connections = self.max_connections.min(budget).max(1);
        self.max_connections_per_source = self
            .max_connections_per_source
            .min(self.max_connections)
            .max(1);
        self
    }

    /// A guard enforcing these limits' connection caps.
    pub fn guard(&self) -> Guard {
        Guard::new(self.max_connections, self.max_connections_per_source)
    }
}

// === impl Guard ===

impl Guard {
    /// A guard admitting at most `max_total` connections, `max_per_source` from any one
    /// IP address (each at least 1).
    pub fn new(max_total: usize, max_per_source: usize) -> Self {
        Guard {
            inner: Arc::new(GuardInner {
                max_total: max_total.max(1),
                max_per_source: max_per_source.max(1),
                counts: Mutex::default(),
            }),
        }
    }

    /// Admits a connection from `source`, or says which cap refuses it.
    pub fn admit(&self, source: IpAddr) -> Result<Permit, Refused> {
        let mut counts = self.inner.counts();
        if counts.total >= self.inner.max_total {
            return Err(Refused::Total {
                max: self.inner.max_total,
            });
        }
        let from_source = counts.per_source.entry(source).or_insert(0);
        if *from_source >= self.inner.max_per_source {
            return Err(Refused::PerSource {
                addr: source,
                max: self.inner.max_per_source,
            });
        }
        *from_source += 1;
        counts.total += 1;
        Ok(Permit {
            guard: self.inner.clone(),
            addr: source,
        })
    }

    /// Connections admitted and not yet released.
    pub fn open(&self) -> usize {
        self.inner.counts().total
    }

    /// Connections admitted from `source` and not yet released.
    pub fn open_from(&self, source: IpAddr) -> usize {
        self.inner
            .counts()
            .per_source
            .get(&source)
            .copied()
            .unwrap_or(0)
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("max_total", &self.inner.max_total)
            .field("max_per_source", &self.inner.max_per_source)
            .field("open", &self.open())
            .finish()
    }
}

impl GuardInner {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every update is a
        // single increment or decrement.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

// === impl Permit ===

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.guard.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_source.get_mut(&self.addr) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_source.remove(&self.addr);
            }
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("source", &self.addr)
            .finish_non_exhaustive()
    }
}

// === impl AcceptErrors ===

impl AcceptErrors {
    /// Errors of the listener named `listener`: at most one log line a second, a
    /// 100 ms pause after each error.
    pub fn new(listener: &'static str) -> Self {
        AcceptErrors {
            listener,
            interval: Duration::from_secs(1),
            backoff: Duration::from_millis(100),
            last_logged: None,
            suppressed: 0,
        }
    }

    /// Records `error`, logs it unless one was logged within the interval, and pauses.
    pub async fn failed(&mut self, error: &io::Error) {
        if self.should_log(Instant::now()) {
            tracing::warn!(
                listener = self.listener,
                %error,
                suppressed = self.suppressed,
                "accept failed (e.g. out of file descriptors); pausing before the next accept"
            );
            self.suppressed = 0;
        }
        tokio::time::sleep(self.backoff).await;
    }

    /// Whether an error at `now` is logged; counts it as suppressed if not.
    fn should_log(&mut self, now: Instant) -> bool {
        match self.last_logged {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                false
            }
            _ => {
                self.last_logged = Some(now);
                true
            }
        }
    }
}

// === impl FdLimit ===

impl FdLimit {
    /// How many connections the listeners may hold in total: the soft limit less a
    /// quarter of it (at least [`FD_HEADROOM_MIN`]) for everything else.
    pub fn connection_budget(&self) -> usize {
        let headroom = (self.soft / 4).max(FD_HEADROOM_MIN);
        usize::try_from(self.soft.saturating_sub(headroom))
            .unwrap_or(usize::MAX)
            .max(1)
    }
}

/// The open-file limit in force now, without changing it (1024 if unreadable).
pub fn current_fd_limit() -> FdLimit {
    use nix::sys::resource::{getrlimit, Resource};

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    FdLimit {
        soft,
        hard,
        raised_from: None,
    }
}

/// Raises the soft open-file limit to the hard limit where the OS allows, logs the
/// result once, and returns the limit in force. On failure to read the limit, assumes
/// the common default of 1024.
pub fn raise_fd_limit() -> FdLimit {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};

    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-file limit; assuming 1024");
            return FdLimit {
                soft: 1024,
                hard: 1024,
                raised_from: None,
            };
        }
    };
    if soft >= hard {
        tracing::info!(
            limit = soft,
            "open-file limit is already at the hard limit; listener caps stay below it"
        );
        return FdLimit {
            soft,
            hard,
            raised_from: None,
        };
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::info!(
                from = soft,
                to = hard,
                "raised the open-file soft limit to the hard limit"
            );
            FdLimit {
                soft: hard,
                hard,
                raised_from: Some(soft),
            }
        }
        Err(error) => {
            tracing::warn!(
                limit = soft,
                hard,
                %error,
                "cannot raise the open-file soft limit; listener caps stay below the current one"
            );
            FdLimit {
                soft,
                hard,
                raised_from: None,
            }
        }
    }
}

// === impl IdleTimeout ===

impl<T> IdleTimeout<T> {
    /// Wraps `inner`; its reads fail once it has been idle for `timeout`.
    pub fn new(inner: T, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn touch(&mut self) {
        let next = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(next);
    }
}

impl<T: fmt::Debug> fmt::Debug for IdleTimeout<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleTimeout")
            .field("inner", &self.inner)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connection idle for {:?}", self.timeout),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.touch();
            }
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.touch();
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn refuses_a_source_past_its_cap_while_admitting_others() {
        let guard = Guard::new(10, 2);
        let _a = guard.admit(ip(2)).unwrap();
        let _b = guard.admit(ip(2)).unwrap();
        assert_eq!(
            guard.admit(ip(2)).unwrap_err(),
            Refused::PerSource {
                addr: ip(2),
                max: 2
            }
        );
        let _c = guard.admit(ip(1)).unwrap();
        assert_eq!(guard.open(), 3);
        assert_eq!(guard.open_from(ip(2)), 2);
    }

    #[test]
    fn refuses_every_source_past_the_total_cap() {
        let guard = Guard::new(3, 2);
        let held: Vec<_> = [1, 2, 3].map(|n| guard.admit(ip(n)).unwrap()).into();
        assert_eq!(guard.admit(ip(4)).unwrap_err(), Refused::Total { max: 3 });
        assert_eq!(held.len(), 3);
    }

    #[test]
    fn dropped_permits_give_their_slots_back() {
        let guard = Guard::new(2, 1);
        let a = guard.admit(ip(1)).unwrap();
        let b = guard.admit(ip(2)).unwrap();
        assert!(guard.admit(ip(3)).is_err());
        drop(a);
        assert_eq!(guard.open_from(ip(1)), 0);
        let _again = guard.admit(ip(1)).unwrap();
        drop(b);
        let _other = guard.admit(ip(2)).unwrap();
        assert_eq!(guard.open(), 2);
        let cloned = guard.clone();
        assert!(cloned.admit(ip(9)).is_err(), "clones share the counts");
    }

    #[test]
    fn limits_within_a_budget_lower_both_caps() {
        let limits = Limits::default().within(50);
        assert_eq!(limits.max_connections, 50);
        assert_eq!(limits.max_connections_per_source, 50);
        let limits = Limits::default().within(0);
        assert_eq!(limits.max_connections, 1);
    }

    #[test]
    fn connection_budget_leaves_headroom_below_the_fd_limit() {
        let fd = |soft| FdLimit {
            soft,
            hard: soft,
            raised_from: None,
        };
        assert_eq!(fd(1024).connection_budget(), 768);
        assert_eq!(fd(300).connection_budget(), 44);
        assert_eq!(fd(100).connection_budget(), 1);
        assert_eq!(fd(1 << 20).connection_budget(), 786_432);
    }

    #[test]
    fn raising_the_fd_limit_never_lowers_it() {
        let (soft_before, _) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        let limit = raise_fd_limit();
        assert!(limit.soft >= soft_before);
        assert!(limit.soft <= limit.hard);
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_are_logged_at_most_once_per_interval() {
        let mut errors = AcceptErrors::new("test");
        let start = Instant::now();
        assert!(errors.should_log(start));
        assert!(!errors.should_log(start + Duration::from_millis(500)));
        assert!(!errors.should_log(start + Duration::from_millis(999)));
        assert_eq!(errors.suppressed, 2);
        assert!(errors.should_log(start + Duration::from_secs(1)));
        let before = Instant::now();
        errors
            .failed(&io::Error::from(io::ErrorKind::OutOfMemory))
            .await;
        assert!(Instant::now() - before >= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_fails_reads_after_the_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, Duration::from_secs(5));
        let mut client = client;
        client.write_all(b"hi").await.unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        let mut buf = [0u8; 2];
        server.read_exact(&mut buf).await.unwrap();
        // Activity resets the deadline: 4 s more is still within it.
        tokio::time::advance(Duration::from_secs(4)).await;
        client.write_all(b"!").await.unwrap();
        let mut one = [0u8; 1];
        server.read_exact(&mut one).await.unwrap();
        let err = server.read(&mut one).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
