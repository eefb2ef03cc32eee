//! Stage 5, forward: the request to the app on loopback, over a pooled connection in
//! the HTTP version the app's port declares.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use weft_api::proxy::Protocol;

use crate::error::Error;
use crate::http::body::Body;
use crate::http::pool::{self, Pool};
use crate::http::request_body::RequestBody;

/// The HTTP version spoken to the app: the one its port declares (`http` is
/// HTTP/1.1, `http2` and `grpc` are HTTP/2), else the caller's (ADR 2, revised).
pub fn app_version(declared: Option<Protocol>, downstream: http::Version) -> pool::Version {
    match declared {
        Some(Protocol::Http) => pool::Version::Http1,
        Some(Protocol::Http2 | Protocol::Grpc) => pool::Version::Http2,
        _ if downstream == http::Version::HTTP_2 => pool::Version::Http2,
        _ => pool::Version::Http1,
    }
}

/// Sends `req` to the app at `app` through `pool`, shaped for `version`.
pub async fn forward(
    pool: Arc<Pool>,
    mut req: Request<RequestBody>,
    version: pool::Version,
    app: SocketAddr,
) -> Result<Response<Body>, Error> {
    let authority = crate::outbound::authority(&req);
    crate::http::forward::prepare(&mut req, version, authority.as_ref());
    crate::http::forward::forward(pool, req).await.map_err(|e| {
        tracing::warn!(%app, error = %e, "app request failed");
        Error::App(format!("app at {app}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Declared protocol and the caller's version → the version spoken to the app.
    #[test]
    fn the_app_port_declares_its_version_else_the_caller_decides() {
        use http::Version as V;
        use pool::Version::{Http1, Http2};
        #[rustfmt::skip]
        let cases = [
            (Some(Protocol::Http), V::HTTP_2, Http1),
            (Some(Protocol::Http2), V::HTTP_11, Http2),
            (Some(Protocol::Grpc), V::HTTP_11, Http2),
            (None, V::HTTP_2, Http2),
            (None, V::HTTP_11, Http1),
            (Some(Protocol::Tcp), V::HTTP_2, Http2),
        ];
        for (declared, downstream, expected) in cases {
            assert_eq!(
                app_version(declared, downstream),
                expected,
                "{declared:?} {downstream:?}"
            );
        }
    }
}
