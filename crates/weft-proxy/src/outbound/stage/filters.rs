//! Stage 2, filters: what the proxy changes in a routed request before it leaves —
//! identity headers a client may not assert are removed, then the rule's request
//! header edits and URL rewrite apply.
//!
//! The filters themselves (compiled from the route) are
//! [`crate::route::filters`]; this stage applies them to one request.

use http::uri::Authority;
use http::Request;

use crate::error::Error;
use crate::http::headers;
use crate::http::request_body::RequestBody;
use crate::route::Rule;
use crate::upstream::Target;

/// Applies `rule`'s request filters to `req`, going to `service`. `authority` is the
/// request's and follows a rewrite of it.
pub fn apply(
    mut req: Request<RequestBody>,
    rule: &Rule<Target>,
    service: &str,
    authority: &mut Option<Authority>,
) -> Result<Request<RequestBody>, Error> {
    headers::strip_identity(req.headers_mut());
    if let Some(edits) = &rule.request_headers {
        edits.apply(req.headers_mut());
    }
    let Some(rewrite) = &rule.rewrite else {
        return Ok(req);
    };
    let prefix = rule.matched_prefix(req.uri().path());
    let (mut parts, body) = req.into_parts();
    if let Err(e) = rewrite.apply(&mut parts, prefix) {
        tracing::warn!(%service, error = %e, "URL rewrite failed");
        return Err(if e.is_bad_request() {
            Error::BadRequest(e.to_string())
        } else {
            Error::Internal(e.to_string())
        });
    }
    let req = Request::from_parts(parts, body);
    *authority = crate::outbound::authority(&req);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Snapshot;

    const CONFIG: &str = r"
workload: { name: client, address: 10.0.0.1 }
listeners: { hbone: null }
services:
  - name: echo
    ports: [{ port: 80, targetPort: 8080, protocol: http }]
    endpoints: [{ address: 10.0.0.2 }]
routes:
  - service: echo
    rules:
      - matches: [{ path: { prefix: /shop } }]
        backends: [{ service: echo }]
        rewrite: { hostname: shop.internal, path: { prefix: /store } }
      - matches: [{ path: { prefix: / } }]
        backends: [{ service: echo }]
        requestHeaders: { set: [[x-env, prod]], remove: [x-debug] }
";

    /// Headers that must not reach the upstream.
    type Absent<'a> = &'a [(&'a str, Option<&'a str>)];

    /// Path and headers in → path, authority and headers out.
    #[test]
    fn strips_identity_then_edits_and_rewrites() {
        let config = weft_api::proxy::Config::from_yaml(CONFIG).expect("valid config");
        let snap = Snapshot::build(config, None, "v".into(), None).expect("snapshot");
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, &str, Option<&str>, Absent)> = vec![
            ("/shop/cart", "/store/cart", "shop.internal", None,
                &[("x-forwarded-client-cert", None)]),
            ("/other", "/other", "echo", Some("prod"),
                &[("x-debug", None), ("x-forwarded-client-cert", None)]),
        ];
        let table = snap.routes(&snap.target("echo.default", 80).expect("target"));
        for (path, want_path, want_authority, x_env, absent) in cases {
            let probe = Request::get(path).body(()).expect("request");
            let rule = table
                .find(&super::super::route::view(&probe, None))
                .expect("a rule");
            let req = Request::get(path)
                .header("host", "echo")
                .header("x-debug", "1")
                .header("x-forwarded-client-cert", "By=forged")
                .body(RequestBody::buffered(bytes::Bytes::new()))
                .expect("request");
            let mut authority = crate::outbound::authority(&req);
            let req = apply(req, rule, "echo.default", &mut authority).expect("filtered");
            assert_eq!(req.uri().path(), want_path, "{path}");
            assert_eq!(
                authority.as_ref().map(Authority::as_str),
                Some(want_authority),
                "{path}"
            );
            assert_eq!(
                req.headers().get("x-env").and_then(|v| v.to_str().ok()),
                x_env,
                "{path}"
            );
            for (name, value) in absent {
                assert_eq!(
                    req.headers().get(*name).and_then(|v| v.to_str().ok()),
                    *value,
                    "{path}: {name}"
                );
            }
        }
    }
}
