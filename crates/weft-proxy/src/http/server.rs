//! Serving a downstream HTTP connection with Weft's limits.

use std::convert::Infallible;
use std::future::Future;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use weft_api::proxy::Settings;

use super::body::Body;
use crate::transport::listen::Drain;

/// Serves HTTP/1.1 (with upgrades) or HTTP/2 on `io` until the client leaves or the
/// drain starts, in which case in-flight requests finish and the connection closes
/// gracefully (`Connection: close` / GOAWAY).
pub async fn serve<I, F, Fut>(io: I, http2: bool, settings: &Settings, drain: &Drain, handle: F)
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static + Clone,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |req| {
        let handle = handle.clone();
        async move { Ok::<_, Infallible>(handle(req).await) }
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
