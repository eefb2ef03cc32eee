//! Serving a downstream HTTP connection with Weft's limits.
//!
//! Every request head passes [`strict::check`] here, before either side of the proxy
//! sees it: a refused HTTP/1 request gets the refusal's status with
//! `connection: close`, a refused HTTP/2 request a `PROTOCOL_ERROR` stream reset
//! (RFC 9113 §8.1.1); the connection's other streams go on. Heads that pass are
//! normalised ([`strict::normalize`]) so the handler sees the one reading the checks
//! settled on.

use std::future::Future;

use futures::future::{Either, FutureExt as _};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use weft_api::proxy::Settings;

use super::body::Body;
use super::forward;
use super::request_body::RequestBody;
use super::strict::{self, Refusal};
use crate::drain::Drain;
use crate::telemetry::Metrics;

/// What one downstream connection is served with, besides its handler.
pub struct Connection<'a> {
    /// HTTP/2 (prior knowledge) rather than HTTP/1.
    pub http2: bool,
    /// Limits and timeouts.
    pub settings: &'a Settings,
    /// Ends the connection gracefully when the proxy drains.
    pub drain: &'a Drain,
    /// Counts refused requests.
    pub metrics: &'a Arc<Metrics>,
    /// The authority this connection was routed by: the Host an HTTP/1.0 request
    /// without one is forwarded with.
    pub routed_by: Option<HeaderValue>,
}

/// Answers a connection whose first bytes were refused during detection: the
/// refusal's status with `connection: close`, then the connection closes. Nothing of
/// the request is read further or forwarded.
pub async fn refuse_head<S: AsyncWrite + Unpin>(io: &mut S, refusal: Refusal, metrics: &Metrics) {
    metrics.failure(refusal.as_str());
    tracing::debug!(reason = refusal.reason, status = %refusal.status, "refused a request head during detection");
    let body = format!("weft: {}\n", refusal.reason);
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        refusal.status.as_str(),
        refusal.status.canonical_reason().unwrap_or(""),
        body.len()
    );
    let _ = io.write_all(head.as_bytes()).await;
    let _ = io.write_all(body.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// Most of a chunked body read before its head is forwarded: 64 KiB.
const READ_AHEAD_BYTES: usize = 64 * 1024;
/// Longest wait for a chunked body before its head is forwarded anyway: 1 s (or the
/// request-header timeout, if shorter).
const READ_AHEAD_WAIT: Duration = Duration::from_secs(1);

/// The rarer answers (a refusal, a chunked body read ahead), boxed so the common
/// path's future stays the handler's own.
type Refused<B> = std::pin::Pin<Box<dyn Future<Output = Result<Response<B>, h2::Error>> + Send>>;

/// An HTTP/1 chunked body is read ahead (up to [`READ_AHEAD_BYTES`], for at most
/// [`READ_AHEAD_WAIT`]) before the head is forwarded, so malformed chunk framing that
/// came with the head is refused with 400 and nothing reaches the app. Other bodies
/// are streamed as they come: their length is in the head.
async fn read_ahead(
    req: Request<Incoming>,
    header_timeout: Duration,
) -> Result<Request<RequestBody>, Refusal> {
    let (parts, body) = req.into_parts();
    let body = RequestBody::read_ahead(body, READ_AHEAD_BYTES, READ_AHEAD_WAIT.min(header_timeout))
        .await
        .map_err(|e| {
            tracing::debug!(error = %e, "refused a request whose chunked body is malformed");
            strict::BAD_CHUNKED
        })?;
    Ok(Request::from_parts(parts, body))
}

/// The answer to a request [`strict::check`] refused on HTTP/1.
fn refusal_response(refusal: Refusal) -> Response<Body> {
    let mut resp = forward::local(refusal.status, &format!("weft: {}", refusal.reason));
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Serves HTTP/1.1 (with upgrades) or HTTP/2 on `io` until the client leaves or the
/// drain starts, in which case in-flight requests finish and the connection closes
/// gracefully (`Connection: close` / GOAWAY).
///
/// The handler's answers may be any body a local [`Body`] converts into (the
/// proxies answer with a [`crate::telemetry::exchange::Metered`] one, which records
/// the exchange when it ends).
pub async fn serve<I, F, Fut, B>(io: I, conn: Connection<'_>, handle: F)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: Fn(Request<RequestBody>) -> Fut + Send + Sync + 'static + Clone,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes, Error = hyper::Error> + From<Body> + Send + 'static,
{
    let Connection {
        http2,
        settings,
        drain,
        metrics,
        routed_by,
    } = conn;
    let metrics = metrics.clone();
    let max_headers = usize::from(settings.max_headers);
    let header_timeout = settings.request_header_timeout;
    let service = service_fn(move |mut req: Request<Incoming>| {
        let checked = strict::check(&req)
            .and_then(|head| strict::field_count(&req, max_headers).map(|()| head));
        match checked {
            // The common case: no extra future around the handler's.
            Ok(head) if !head.chunked => {
                strict::normalize(&mut req, head, routed_by.as_ref());
                Either::Left(handle(req.map(RequestBody::Streamed)).map(Ok))
            }
            Ok(head) => {
                strict::normalize(&mut req, head, routed_by.as_ref());
                let (handle, metrics) = (handle.clone(), metrics.clone());
                Either::Right(Box::pin(async move {
                    match read_ahead(req, header_timeout).await {
                        Ok(req) => Ok(handle(req).await),
                        Err(refusal) => {
                            metrics.failure(refusal.as_str());
                            Ok(refusal_response(refusal).map(B::from))
                        }
                    }
                }) as Refused<B>)
            }
            Err(refusal) => {
                metrics.failure(refusal.as_str());
                tracing::debug!(reason = refusal.reason, method = %req.method(), "refused a request head");
                let answer = if req.version() == http::Version::HTTP_2 {
                    Err(h2::Error::from(h2::Reason::PROTOCOL_ERROR))
                } else {
                    Ok(refusal_response(refusal).map(B::from))
                };
                Either::Right(Box::pin(std::future::ready(answer)) as Refused<B>)
            }
        }
    });
    let io = TokioIo::new(io);
    let result = if http2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(settings.max_concurrent_streams)
            .max_header_list_size(settings.max_header_bytes)
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .max_send_buf_size(1 << 20);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        tokio::select! {
            r = &mut conn => r,
            () = drain.started() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(settings.request_header_timeout)
            .max_header_size(settings.max_header_bytes as usize)
            .max_headers(usize::from(settings.max_headers));
        let conn = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = &mut conn => r,
            () = drain.started() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "downstream connection ended with an error");
    }
}
