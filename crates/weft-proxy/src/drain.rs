//! Graceful shutdown: one signal every listener and connection watches, and a tracker
//! of the connection tasks so shutdown can wait for them (up to `settings.drainTimeout`).
//!
//! Listeners ([`crate::transport::listen`]) stop accepting when it fires; HTTP servers
//! ([`crate::http::server`]) finish their in-flight requests and close. It sits below
//! both, so neither needs the other to learn that the proxy is draining.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shared shutdown state: a signal every connection watches, and a tracker of every
/// connection task so shutdown can wait for them.
#[derive(Clone, Debug, Default)]
pub struct Drain {
    signal: CancellationToken,
    tasks: TaskTracker,
}

impl Drain {
    /// A fresh drain, not signalled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining: listeners stop accepting, HTTP connections finish their
    /// in-flight requests and close.
    pub fn start(&self) {
        self.signal.cancel();
        self.tasks.close();
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.signal.is_cancelled()
    }

    /// Resolves when draining starts.
    pub async fn started(&self) {
        self.signal.cancelled().await;
    }

    /// The signal as a token (for components that take one).
    pub fn token(&self) -> CancellationToken {
        self.signal.clone()
    }

    /// Spawns a task that shutdown waits for.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(fut);
    }

    /// Waits for every tracked task, up to `deadline`. Returns whether all finished.
    pub async fn wait(&self, deadline: Duration) -> bool {
        tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_ok()
    }

    /// Number of tracked tasks still running.
    pub fn active(&self) -> usize {
        self.tasks.len()
    }
}
