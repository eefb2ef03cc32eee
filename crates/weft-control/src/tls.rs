//! TLS on the control plane's listeners (DESIGN §2: "gRPC over TLS").
//!
//! One accept loop per listener completes TLS handshakes off the accept path (a slow or
//! silent client costs a task, never the next connection) and hands finished streams to
//! tonic (gRPC: xDS and CSR signing) or axum (the HTTP API). The certificate comes
//! from the mesh CA ([`weft_tls::control`]) and can be replaced while serving.
//!
//! Each listener enforces its [`Limits`] (ADR 0023): connections past the total or
//! per-source cap are closed at accept, before any TLS work; a handshake has
//! `handshake_timeout`; an established connection that moves no bytes for
//! `idle_timeout` is closed; accept errors are logged at a bounded rate with a pause.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use weft_tls::listener::{AcceptErrors, IdleTimeout, Limits, Permit};

/// Handshaken connections waiting for the server to take them.
const BACKLOG: usize = 1024;

/// A TLS connection accepted by a control-plane listener.
pub struct TlsConn {
    inner: IdleTimeout<TlsStream<TcpStream>>,
    _permit: Permit,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
}

/// The stream of handshaken connections of one listener.
pub struct Incoming {
    rx: mpsc::Receiver<TlsConn>,
    local: io::Result<SocketAddr>,
}

/// Accepts on `listener` until `shutdown`, within `limits`, completing each handshake
/// with `config` in its own task.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    what: &'static str,
    limits: &Limits,
    shutdown: CancellationToken,
) -> Incoming {
    let (tx, rx) = mpsc::channel(BACKLOG);
    let local = listener.local_addr();
    let acceptor = TlsAcceptor::from(config);
    let guard = limits.guard();
    let handshake_timeout = limits.handshake_timeout;
    let idle_timeout = limits.idle_timeout;
    tokio::spawn(async move {
        let mut errors = AcceptErrors::new(what);
        loop {
            let (tcp, remote) = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        errors.failed(&e).await;
                        continue;
                    }
                },
            };
            let permit = match guard.admit(remote.ip()) {
                Ok(permit) => permit,
                Err(refused) => {
                    tracing::debug!(listener = what, %remote, %refused, "connection refused");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let local = tcp.local_addr().ok();
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(inner)) => {
                        let _ = tx
                            .send(TlsConn {
                                inner: IdleTimeout::new(inner, idle_timeout),
                                _permit: permit,
                                local,
                                remote: Some(remote),
                            })
                            .await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(listener = what, %remote, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::debug!(listener = what, %remote, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    Incoming { rx, local }
}

// === impl Incoming ===

impl futures::Stream for Incoming {
    type Item = io::Result<TlsConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(Ok))
    }
}

impl axum::serve::Listener for Incoming {
    type Io = TlsConn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => {
                let addr = conn
                    .remote
                    .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                (conn, addr)
            }
            // The accept loop stopped (shutdown): axum's graceful shutdown ends serving.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

// === impl TlsConn ===

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo {
            local_addr: self.local,
            remote_addr: self.remote,
        }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
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
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::time::{Duration, SystemTime};

    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpSocket;

    use super::*;

    fn server_config() -> Arc<rustls::ServerConfig> {
        let day = Duration::from_secs(86_400);
        let ca = weft_tls::ca::Authority::generate("cluster.local", day).unwrap();
        let id = weft_tls::control::identity("cluster.local").unwrap();
        let leaf = ca
            .issue_server(&id, &["127.0.0.1".into()], day, SystemTime::now())
            .unwrap();
        let cert =
            Arc::new(weft_tls::control::ServingCert::new(&leaf.chain, &leaf.key_der).unwrap());
        weft_tls::control::server_config(cert, weft_tls::control::ALPN_API).unwrap()
    }

    async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        socket.connect(to).await.unwrap()
    }

    /// Whether the server closed `tcp` within `within` (EOF or reset, no bytes).
    async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 16];
        matches!(
            tokio::time::timeout(within, tcp.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn closes_connections_past_the_per_source_cap_before_tls() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            max_connections_per_source: 2,
            ..Limits::default()
        };
        let shutdown = CancellationToken::new();
        let _incoming = incoming(listener, server_config(), "test", &limits, shutdown.clone());

        let mut held = vec![
            connect_from([127, 0, 0, 2], addr).await,
            connect_from([127, 0, 0, 2], addr).await,
        ];
        let mut third = connect_from([127, 0, 0, 2], addr).await;
        assert!(
            closed_within(&mut third, Duration::from_secs(2)).await,
            "the third connection from one source is closed at once"
        );
        let mut other = connect_from([127, 0, 0, 1], addr).await;
        assert!(
            !closed_within(&mut other, Duration::from_millis(300)).await,
            "another source is still admitted"
        );
        for tcp in &mut held {
            assert!(!closed_within(tcp, Duration::from_millis(100)).await);
        }
        // A released slot is reused.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut again = connect_from([127, 0, 0, 2], addr).await;
        assert!(!closed_within(&mut again, Duration::from_millis(300)).await);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn closes_a_stalled_handshake_at_the_handshake_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            handshake_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let shutdown = CancellationToken::new();
        let _incoming = incoming(listener, server_config(), "test", &limits, shutdown.clone());
        let mut silent = connect_from([127, 0, 0, 1], addr).await;
        assert!(closed_within(&mut silent, Duration::from_secs(3)).await);
        shutdown.cancel();
    }
}
