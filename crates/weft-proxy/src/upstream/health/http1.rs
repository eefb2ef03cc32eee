//! The HTTP check: a `GET` of the configured path over HTTP/1.1, passing on an expected
//! status; the body is not read.

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::{drive, Failure, USER_AGENT_VALUE};
use crate::http::pool::Io;

/// The `GET` of an HTTP check.
pub(super) fn request(path: &str, host: &str) -> Result<Request<Empty<Bytes>>, Failure> {
    if !path.starts_with('/') {
        return Err(Failure::InvalidRequest("HTTP path must start with '/'"));
    }
    let uri = Uri::try_from(path)
        .map_err(|_| Failure::InvalidRequest("HTTP path is not a valid request target"))?;
    let host = HeaderValue::try_from(host)
        .map_err(|_| Failure::InvalidRequest("HTTP host is not a valid header value"))?;
    let mut request = Request::new(Empty::new());
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(HOST, host);
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(request)
}

/// Sends `request` over HTTP/1.1 on `io` and returns the response status; the body is
/// dropped unread.
pub(super) async fn status(
    io: Box<dyn Io>,
    request: Request<Empty<Bytes>>,
) -> Result<StatusCode, Failure> {
    let (mut send, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(Failure::Http)?;
    drive(connection, async move {
        send.ready().await.map_err(Failure::Http)?;
        let response = send.send_request(request).await.map_err(Failure::Http)?;
        Ok(response.status())
    })
    .await
}
