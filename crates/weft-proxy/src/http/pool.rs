//! Upstream HTTP connections to one endpoint, kept and reused.
//!
//! HTTP/1.1: a stack of idle connections; a connection goes back on the stack when its
//! response body ends (see [`Checkin`]), so a request never waits behind another one.
//! HTTP/2: multiplexed connections, each carrying at most [`H2_STREAMS_PER_CONNECTION`]
//! requests at once; another is dialled when every one is full (up to
//! [`MAX_H2_CONNECTIONS`]), so streams held open by one client never queue another
//! client's request behind the peer's stream limit. The dialer decides what a
//! connection is (an HBONE stream to a peer proxy, or plain TCP to a local app), so the
//! same pool serves the outbound and inbound sides.
//!
//! HTTP/2 flow control: a response nobody reads (a client that never opens its window)
//! holds at most one stream window here. The connection window is larger than the
//! stream windows of every stream a connection may carry, so those held responses can
//! never use it up and stall the other streams (CVE-2019-9517's shape, between
//! clients sharing a connection). Memory per connection stays bounded by that sum.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::request_body::RequestBody;
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

/// Most an upstream HTTP/1 connection's read buffer grows to (hyper's default is about
/// 400 KiB): room for a response head of the largest size the proxy accepts, and for
/// body reads of a whole HBONE DATA frame. Ten connections streaming large bodies no
/// longer hold 4 MB of read buffers (bench/RESULTS.md, 2026-12-07).
const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

/// Idle HTTP/1 connections kept per endpoint.
const MAX_IDLE: usize = 64;

/// Requests an HTTP/2 connection carries at once before another is dialled: the
/// `maxConcurrentStreams` Weft's own HTTP and HBONE servers advertise by default (a
/// peer allowing fewer queues the rest in `h2`, as before).
pub const H2_STREAMS_PER_CONNECTION: u32 = 100;

/// HTTP/2 connections per endpoint; past it, requests share the least busy one.
pub const MAX_H2_CONNECTIONS: usize = 16;

/// The receive window of each upstream HTTP/2 stream: what one unread response can
/// hold in the proxy.
const H2_STREAM_WINDOW: u32 = 256 * 1024;

/// The receive window of each upstream HTTP/2 connection: more than the stream windows
/// of the streams it may carry (see the module documentation).
const H2_CONNECTION_WINDOW: u32 = H2_STREAM_WINDOW * (H2_STREAMS_PER_CONNECTION + 28);

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
    /// The HTTP/2 connections that take new requests.
    h2: tokio::sync::Mutex<Vec<H2Connection>>,
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

/// One upstream HTTP/2 connection.
struct H2Connection {
    sender: http2::SendRequest<RequestBody>,
    /// Requests it has carried.
    served: u32,
    /// Requests on it now (their [`Checkin`]s hold a count each).
    in_flight: Arc<AtomicU32>,
}

impl H2Connection {
    fn load(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Hands a connection back once the response body has been read (or dropped).
#[derive(Debug)]
pub struct Checkin(Kind);

#[derive(Debug)]
enum Kind {
    /// An HTTP/1 connection, returned to the idle stack.
    Http1 {
        sender: http1::SendRequest<RequestBody>,
        /// Requests the connection has carried, this one included.
        served: u32,
        pool: Weak<Pool>,
    },
    /// A stream of an HTTP/2 connection, counted until dropped.
    Http2 { _slot: StreamSlot },
}

/// One of a connection's streams in use; dropping it frees the slot.
#[derive(Debug)]
struct StreamSlot(Arc<AtomicU32>);

impl StreamSlot {
    fn take(in_flight: &Arc<AtomicU32>) -> Self {
        in_flight.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(in_flight))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Checkin {
    /// The response is complete: an HTTP/1 connection may carry another request,
    /// unless it has carried its limit (then dropping it closes it); an HTTP/2 stream
    /// frees its slot.
    pub fn done(self) {
        let Kind::Http1 {
            sender,
            served,
            pool,
        } = self.0
        else {
            return;
        };
        if let Some(pool) = pool.upgrade() {
            let spent = pool
                .max_requests_per_connection
                .is_some_and(|max| served >= max);
            if !sender.is_closed() && !spent {
                let mut idle = pool
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if idle.len() < MAX_IDLE {
                    idle.push((sender, served));
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
            h2: tokio::sync::Mutex::new(Vec::new()),
            max_header_list,
            max_requests_per_connection,
        })
    }

    /// Sends `req`. The returned [`Checkin`] must be completed when the response body
    /// ends (the [`super::body::Body`] does it), or dropped if it never will; it is
    /// `None` for HTTP/1 upgrades, whose connection is handed over to the upgraded
    /// stream.
    pub async fn send(
        self: &Arc<Self>,
        req: Request<RequestBody>,
        upgrade: bool,
    ) -> Result<(Response<Incoming>, Option<Checkin>), Error> {
        match self.version {
            Version::Http1 => self.send_http1(req, upgrade).await,
            // Boxed: the HTTP/2 future (connection choice, dial, slot) would otherwise
            // grow every HTTP/1 request's future, which is moved on each poll chain.
            Version::Http2 => Box::pin(self.send_http2(req)).await,
        }
    }

    async fn send_http2(
        self: &Arc<Self>,
        req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Option<Checkin>), Error> {
        let started = std::time::Instant::now();
        let (mut sender, slot, dialled) = match self.h2_sender().await {
            Ok(sender) => sender,
            Err(e) => return Err(e.returning(req)),
        };
        let mut resp = sender.send_request(req).await?;
        if dialled {
            resp.extensions_mut().insert(DialTime(started.elapsed()));
        }
        Ok((resp, Some(Checkin(Kind::Http2 { _slot: slot }))))
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
        let checkin = (!upgrade).then(|| {
            Checkin(Kind::Http1 {
                sender,
                served,
                pool: Arc::downgrade(self),
            })
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
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(UPSTREAM_READ_BUFFER.max(self.max_header_list as usize))
            .handshake(TokioIo::new(io))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream HTTP/1 connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// A connection for one more request, the slot its stream takes, and whether the
    /// connection had to be dialled now: the first that is open, under its request
    /// limit and not full; else a new one; past [`MAX_H2_CONNECTIONS`], the least busy.
    /// A connection that has carried its request limit takes no more; its streams in
    /// flight finish on it.
    async fn h2_sender(
        &self,
    ) -> Result<(http2::SendRequest<RequestBody>, StreamSlot, bool), Error> {
        let mut conns = self.h2.lock().await;
        let limit = self.max_requests_per_connection;
        conns.retain(|c| !c.sender.is_closed() && limit.is_none_or(|max| c.served < max));
        let pick = conns
            .iter()
            .position(|c| c.load() < H2_STREAMS_PER_CONNECTION)
            .or_else(|| {
                (conns.len() >= MAX_H2_CONNECTIONS)
                    .then(|| (0..conns.len()).min_by_key(|&i| conns[i].load()))
                    .flatten()
            });
        if let Some(i) = pick {
            let conn = &mut conns[i];
            conn.served += 1;
            let slot = StreamSlot::take(&conn.in_flight);
            return Ok((conn.sender.clone(), slot, false));
        }
        let io = (self.dial)().await.map_err(Error::connect)?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .max_header_list_size(self.max_header_list)
            .handshake(TokioIo::new(io))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
            }
        });
        let in_flight = Arc::new(AtomicU32::new(0));
        let slot = StreamSlot::take(&in_flight);
        conns.push(H2Connection {
            sender: sender.clone(),
            served: 1,
            in_flight,
        });
        Ok((sender, slot, true))
    }

    /// HTTP/2 connections taking requests (for tests and metrics).
    pub async fn h2_connections(&self) -> usize {
        self.h2.lock().await.len()
    }

    /// Idle HTTP/1 connections (for tests and metrics).
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt as _, Either, Full};
    use hyper::service::service_fn;

    use super::*;

    /// A response body that never ends: a response its client holds open.
    struct Endless;

    impl http_body::Body for Endless {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            std::task::Poll::Pending
        }
    }

    /// An HTTP/2 app: `/hold` answers with a body that never ends, `/big` with 1 MiB,
    /// anything else with `ok`.
    async fn h2_app() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let service = service_fn(|req: Request<Incoming>| async move {
                    let body = match req.uri().path() {
                        "/hold" => Either::Left(Endless),
                        "/big" => Either::Right(Full::new(Bytes::from(vec![b'x'; 1 << 20]))),
                        _ => Either::Right(Full::new(Bytes::from_static(b"ok"))),
                    };
                    Ok::<_, Infallible>(Response::new(body))
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(1000)
                        .serve_connection(TokioIo::new(tcp), service),
                );
            }
        });
        addr
    }

    /// An HTTP/2 pool to `addr`, and how many connections it dialled.
    fn pool(addr: SocketAddr) -> (Arc<Pool>, Arc<AtomicUsize>) {
        let dials = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&dials);
        let dial: Dialer = Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                Ok(Box::new(tcp) as Box<dyn Io>)
            })
        });
        (Pool::new(Version::Http2, dial, 64 * 1024, None), dials)
    }

    fn get(path: &str) -> Request<RequestBody> {
        Request::get(path)
            .body(RequestBody::buffered(Bytes::new()))
            .expect("request")
    }

    /// Sends `path`, returning the response with its checkin (held by the caller).
    async fn send(pool: &Arc<Pool>, path: &str) -> (Response<Incoming>, Option<Checkin>) {
        tokio::time::timeout(Duration::from_secs(5), pool.send(get(path), false))
            .await
            .expect("answered within 5 s")
            .expect("response")
    }

    /// Sends `path` and reads the whole body, within 2 s.
    async fn fetch(pool: &Arc<Pool>, path: &str) -> Bytes {
        tokio::time::timeout(Duration::from_secs(2), async {
            let (resp, checkin) = pool.send(get(path), false).await.expect("response");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            if let Some(c) = checkin {
                c.done();
            }
            body
        })
        .await
        .expect("read within 2 s: another client's streams stalled it")
    }

    #[tokio::test]
    async fn a_request_goes_on_a_new_connection_when_every_stream_of_the_first_is_held() {
        let (pool, dials) = pool(h2_app().await);
        let mut held = Vec::new();
        for _ in 0..H2_STREAMS_PER_CONNECTION {
            held.push(send(&pool, "/hold").await);
        }
        assert_eq!(dials.load(Ordering::Relaxed), 1);
        assert_eq!(fetch(&pool, "/quick").await, "ok");
        assert_eq!(
            dials.load(Ordering::Relaxed),
            2,
            "the 101st request was queued"
        );
        assert_eq!(pool.h2_connections().await, 2);
    }

    #[tokio::test]
    async fn a_dropped_or_finished_response_frees_its_stream_for_the_next_request() {
        let (pool, dials) = pool(h2_app().await);
        let held: Vec<_> = (0..H2_STREAMS_PER_CONNECTION)
            .map(|_| send(&pool, "/hold"))
            .collect::<futures::future::JoinAll<_>>()
            .await;
        drop(held);
        for _ in 0..2 * H2_STREAMS_PER_CONNECTION {
            assert_eq!(fetch(&pool, "/quick").await, "ok");
        }
        assert_eq!(dials.load(Ordering::Relaxed), 1, "slots leaked");
    }

    #[tokio::test]
    async fn unread_responses_do_not_stall_the_other_streams_of_their_connection() {
        let (pool, dials) = pool(h2_app().await);
        // 20 MiB of responses nobody reads: five times the 4 MiB connection window
        // this pool had, which they used up, stalling every other stream.
        let mut unread = Vec::new();
        for _ in 0..20 {
            unread.push(send(&pool, "/big").await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fetch(&pool, "/big").await.len(), 1 << 20);
        assert_eq!(dials.load(Ordering::Relaxed), 1, "all on one connection");
    }

    #[tokio::test]
    async fn past_the_connection_cap_requests_share_the_connections_there_are() {
        let (pool, dials) = pool(h2_app().await);
        let mut held = Vec::new();
        let cap = u32::try_from(MAX_H2_CONNECTIONS).expect("small") * H2_STREAMS_PER_CONNECTION;
        for _ in 0..cap {
            held.push(send(&pool, "/hold").await);
        }
        assert_eq!(dials.load(Ordering::Relaxed), MAX_H2_CONNECTIONS);
        assert_eq!(fetch(&pool, "/quick").await, "ok");
        assert_eq!(dials.load(Ordering::Relaxed), MAX_H2_CONNECTIONS);
    }
}
