//! Upstream HTTP connections to one endpoint, kept and reused.
//!
//! HTTP/1.1: a stack of idle connections; a connection goes back on the stack when its
//! response body ends (see [`Checkin`]), so a request never waits behind another one.
//! HTTP/2: one multiplexed connection, redialled when it closes. The dialer decides what
//! a connection is (an HBONE stream to a peer proxy, or plain TCP to a local app), so
//! the same pool serves the outbound and inbound sides.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};

use super::body::RequestBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream to an upstream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Boxed dial error.
pub type DialError = Box<dyn std::error::Error + Send + Sync>;
/// What a dialer returns.
pub type DialFuture = Pin<Box<dyn Future<Output = Result<Box<dyn Io>, DialError>> + Send>>;
/// Opens a new byte stream to the endpoint.
pub type Dialer = Arc<dyn Fn() -> DialFuture + Send + Sync>;

/// Set on a response whose request had to open a new connection first: how long the
/// dial took. Load balancing subtracts it, so a handshake is not mistaken for a slow
/// endpoint.
#[derive(Clone, Copy, Debug)]
pub struct DialTime(pub std::time::Duration);

/// Idle HTTP/1 connections kept per endpoint.
const MAX_IDLE: usize = 64;

/// HTTP version spoken to the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (h2c inside the tunnel).
    Http2,
}

/// Why a request could not be sent upstream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be opened; the request was not sent, and comes back in
    /// `unsent` (for a retry elsewhere) when the pool had it.
    #[error("connect failed: {source}")]
    Connect {
        /// Why.
        #[source]
        source: DialError,
        /// The request, untouched.
        unsent: Option<Box<Request<RequestBody>>>,
    },
    /// The HTTP exchange failed (connection reset, protocol error).
    #[error("upstream HTTP error: {}", chain(.0))]
    Http(#[from] hyper::Error),
}

/// An error with its sources, `outer: inner: innermost`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Error {
    /// Whether the failure happened before anything reached the upstream.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. })
    }

    /// The request of a failed connect, which nothing has read: it can be sent again.
    pub fn take_unsent(&mut self) -> Option<Request<RequestBody>> {
        match self {
            Self::Connect { unsent, .. } => unsent.take().map(|b| *b),
            Self::Http(_) => None,
        }
    }

    fn connect(source: DialError) -> Self {
        Self::Connect {
            source,
            unsent: None,
        }
    }

    /// `self`, carrying `req` back if it is a connect failure.
    fn returning(self, req: Request<RequestBody>) -> Self {
        match self {
            Self::Connect { source, .. } => Self::Connect {
                source,
                unsent: Some(Box::new(req)),
            },
            other @ Self::Http(_) => other,
        }
    }
}

/// Connections to one endpoint.
pub struct Pool {
    version: Version,
    dial: Dialer,
    /// Idle HTTP/1 connections, with the requests each has carried.
    idle: Mutex<Vec<(http1::SendRequest<RequestBody>, u32)>>,
    /// The HTTP/2 connection, with the requests it has carried.
    h2: tokio::sync::Mutex<Option<(http2::SendRequest<RequestBody>, u32)>>,
    max_header_list: u32,
    /// Requests a connection carries before it is retired (`None`: no limit).
    max_requests_per_connection: Option<u32>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Returns an HTTP/1 connection to its pool once the response body has been read.
#[derive(Debug)]
pub struct Checkin {
    sender: http1::SendRequest<RequestBody>,
    /// Requests the connection has carried, this one included.
    served: u32,
    pool: Weak<Pool>,
}

impl Checkin {
    /// The response is complete: the connection may carry another request, unless it
    /// has carried its limit (then dropping it closes it).
    pub fn done(self) {
        if let Some(pool) = self.pool.upgrade() {
            let spent = pool
                .max_requests_per_connection
                .is_some_and(|max| self.served >= max);
            if !self.sender.is_closed() && !spent {
                let mut idle = pool
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if idle.len() < MAX_IDLE {
                    idle.push((self.sender, self.served));
                }
            }
        }
    }
}

impl Pool {
    /// A pool speaking `version`, opening connections with `dial`, each carrying at
    /// most `max_requests_per_connection` requests (`None`: no limit).
    pub fn new(
        version: Version,
        dial: Dialer,
        max_header_list: u32,
        max_requests_per_connection: Option<u32>,
    ) -> Arc<Self> {
        Arc::new(Self {
            version,
            dial,
            idle: Mutex::new(Vec::new()),
            h2: tokio::sync::Mutex::new(None),
            max_header_list,
            max_requests_per_connection,
        })
    }

    /// Sends `req`. For HTTP/1 the returned [`Checkin`] must be completed when the
    /// response body ends (the [`super::body::Body`] does it); it is `None` for HTTP/2
    /// and for upgrades, whose connection is handed over to the upgraded stream.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        upgrade: bool,
    ) -> Result<(Response<Incoming>, Option<Checkin>), Error> {
        match self.version {
            Version::Http1 => self.send_http1(req, upgrade).await,
            Version::Http2 => {
                let started = std::time::Instant::now();
                let (mut sender, dialled) = match self.h2_sender().await {
                    Ok(sender) => sender,
                    Err(e) => return Err(e.returning(req)),
                };
                let mut resp = sender.send_request(req).await?;
                if dialled {
                    resp.extensions_mut().insert(DialTime(started.elapsed()));
                }
                Ok((resp, None))
            }
        }
    }

    async fn send_http1(
        self: &Arc<Self>,
        mut req: Request<RequestBody>,
        upgrade: bool,
    ) -> Result<(Response<Incoming>, Option<Checkin>), Error> {
        // Reuse an idle connection; if it turns out to be closed before the request was
        // written, the request comes back and goes out on a fresh connection.
        while let Some((mut sender, served)) = self.pop_idle() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.finish(resp, sender, served + 1, upgrade)),
                Err(mut e) => match e.take_message() {
                    Some(back) => req = back,
                    None => return Err(Error::Http(e.into_error())),
                },
            }
        }
        let dial_started = std::time::Instant::now();
        let mut sender = match self.dial_http1().await {
            Ok(sender) => sender,
            Err(e) => return Err(e.returning(req)),
        };
        let dialled = DialTime(dial_started.elapsed());
        let mut resp = sender.send_request(req).await?;
        resp.extensions_mut().insert(dialled);
        Ok(self.finish(resp, sender, 1, upgrade))
    }

    fn finish(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        sender: http1::SendRequest<RequestBody>,
        served: u32,
        upgrade: bool,
    ) -> (Response<Incoming>, Option<Checkin>) {
        let checkin = (!upgrade).then(|| Checkin {
            sender,
            served,
            pool: Arc::downgrade(self),
        });
        (resp, checkin)
    }

    fn pop_idle(&self) -> Option<(http1::SendRequest<RequestBody>, u32)> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some((sender, served)) = idle.pop() {
            if !sender.is_closed() {
                return Some((sender, served));
            }
        }
        None
    }

    async fn dial_http1(&self) -> Result<http1::SendRequest<RequestBody>, Error> {
        let io = (self.dial)().await.map_err(Error::connect)?;
        let (sender, conn) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream HTTP/1 connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// The shared HTTP/2 connection, and whether it had to be dialled now. A
    /// connection that has carried its request limit is replaced; its streams in
    /// flight finish on it.
    async fn h2_sender(&self) -> Result<(http2::SendRequest<RequestBody>, bool), Error> {
        let mut slot = self.h2.lock().await;
        if let Some((sender, served)) = slot.as_mut() {
            let spent = self
                .max_requests_per_connection
                .is_some_and(|max| *served >= max);
            if !sender.is_closed() && !spent {
                *served += 1;
                return Ok((sender.clone(), false));
            }
        }
        let io = (self.dial)().await.map_err(Error::connect)?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .max_header_list_size(self.max_header_list)
            .handshake(TokioIo::new(io))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        *slot = Some((sender.clone(), 1));
        Ok((sender, true))
    }

    /// Idle HTTP/1 connections (for tests and metrics).
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}
