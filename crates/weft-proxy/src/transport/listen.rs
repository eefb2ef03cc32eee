//! Accept loops: connection caps, TCP_NODELAY, and draining on shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use weft_tls::listener::AcceptErrors;

use crate::drain::Drain;

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
