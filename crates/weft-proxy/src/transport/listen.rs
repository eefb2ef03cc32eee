//! Accept loops: connection caps, TCP_NODELAY, and draining on shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_tls::listener::AcceptErrors;

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

/// Binds a TCP listener with `SO_REUSEADDR` and a deep backlog.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts on `listener` until `stop` or the drain fires, running `handle` for each
/// connection as a drain-tracked task. Past `max_connections` concurrent connections,
/// new ones are closed at once (and counted by the caller's `on_reject`).
pub async fn serve<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    drain: Drain,
    stop: CancellationToken,
    on_reject: impl Fn() + Send + 'static,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    let local = listener.local_addr().ok();
    let mut errors = AcceptErrors::new("proxy listener");
    loop {
        let accepted = tokio::select! {
            biased;
            () = drain.started() => break,
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: logged at a bounded rate, then a pause.
                errors.failed(&e).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(listener = ?local, %peer, max_connections, "connection limit reached; closing");
            on_reject();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let fut = handle(stream, peer);
        drain.spawn(async move {
            fut.await;
            drop(permit);
        });
    }
    tracing::debug!(listener = ?local, "stopped accepting");
}
