//! Sending one request upstream and shaping it for the upstream's HTTP version.

use std::sync::Arc;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version as HttpVersion};
use hyper_util::rt::TokioIo;

use super::body::{Body, RequestBody};
use super::headers;
use super::pool::{self, Pool, Version};

/// Rewrites `req` for an upstream that speaks `version`: origin-form URI for HTTP/1.1,
/// absolute URI with `authority` for HTTP/2.
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
        }
        Version::Http2 => {
            *req.version_mut() = HttpVersion::HTTP_2;
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
pub async fn forward(
    pool: &Arc<Pool>,
    mut req: Request<RequestBody>,
) -> Result<Response<Body>, pool::Error> {
    let upgrade = req.version() <= HttpVersion::HTTP_11 && headers::is_upgrade(req.headers());
    headers::strip_hop_by_hop(req.headers_mut(), upgrade);
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
