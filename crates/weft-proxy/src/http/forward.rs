//! Sending one request upstream and shaping it for the upstream's HTTP version.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version as HttpVersion};
use http_body::Body as _;
use hyper_util::rt::TokioIo;

use super::body::Body;
use super::headers;
use super::pool::{self, Pool, Version};
use super::request_body::RequestBody;

/// Rewrites `req` for an upstream that speaks `version`, converting between versions
/// where the client spoke the other one: origin-form URI and a Host field (from
/// `authority` when the request had none, as HTTP/2 requests do) for HTTP/1.1;
/// absolute URI with `authority` and no Host field for HTTP/2 (RFC 9113 §8.3.1).
pub fn prepare<B>(req: &mut Request<B>, version: Version, authority: Option<&Authority>) {
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    match version {
        Version::Http1 => {
            *req.version_mut() = HttpVersion::HTTP_11;
            *req.uri_mut() = Uri::from(path);
            if !req.headers().contains_key(header::HOST) {
                if let Some(value) = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                {
                    req.headers_mut().insert(header::HOST, value);
                }
            }
        }
        Version::Http2 => {
            *req.version_mut() = HttpVersion::HTTP_2;
            if authority.is_some() {
                req.headers_mut().remove(header::HOST);
            }
            let mut parts = http::uri::Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = authority.cloned();
            parts.path_and_query = Some(path);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
}

/// Sends `req` through `pool` and returns the response to relay downstream. Protocol
/// upgrades (WebSocket) are spliced: once both sides agree on 101, the two upgraded
/// connections are copied into each other by a background task.
///
/// The pool is taken by value so the returned future borrows nothing (the attempt
/// loop's `send` seam returns it as is).
pub async fn forward(
    pool: Arc<Pool>,
    mut req: Request<RequestBody>,
) -> Result<Response<Body>, pool::Error> {
    let upgrade = req.version() <= HttpVersion::HTTP_11 && headers::is_upgrade(req.headers());
    headers::strip_hop_by_hop(req.headers_mut(), upgrade);
    if req.version() == HttpVersion::HTTP_11
        && !req.body().is_end_stream()
        && !req.headers().contains_key(header::CONTENT_LENGTH)
    {
        // Without a framing field hyper sends GET, HEAD and CONNECT with no body: a
        // body of unknown length (chunked, or HTTP/2 without content-length) is sent
        // chunked, never dropped.
        req.headers_mut().insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let downstream = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut resp, checkin) = pool.send(req, upgrade).await?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(downstream) = downstream {
            let upstream = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match (downstream.await, upstream.await) {
                    (Ok(down), Ok(up)) => {
                        let mut down = TokioIo::new(down);
                        let mut up = TokioIo::new(up);
                        if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
                            tracing::debug!(error = %e, "upgraded connection ended with an error");
                        }
                    }
                    (Err(e), _) | (_, Err(e)) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
        }
        headers::strip_hop_by_hop(resp.headers_mut(), true);
    } else {
        headers::strip_hop_by_hop(resp.headers_mut(), false);
    }
    let (parts, body) = resp.into_parts();
    Ok(Response::from_parts(parts, Body::upstream(body, checkin)))
}

/// A short local response (errors from the proxy itself).
pub fn local(status: StatusCode, message: &str) -> Response<Body> {
    let mut resp = Response::new(Body::text(format!("{message}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
