//! Stage 1, route: the first rule of the service port's table that matches the
//! request, and the backend it picks by weight. A redirect rule answers here.
//!
//! Matching itself (the compiled table) is [`crate::route`]; this stage only
//! applies it to one request.

use http::uri::Authority;
use http::Request;

use crate::error::Error;
use crate::http::body::Body;
use crate::route::filters::Redirect;
use crate::route::{RequestView, Rule};
use crate::state::RouteTable;
use crate::telemetry::labels::{RouteLabels, Shared};
use crate::upstream::Target;

/// Where a request goes.
#[derive(Debug)]
pub enum Routed<'t> {
    /// To `backend`, under `rule`.
    Forward {
        /// The matched rule.
        rule: &'t Rule<Target>,
        /// The backend it picked.
        backend: &'t Target,
        /// The metric labels of requests the rule sends to that backend.
        label: Option<&'t Shared<RouteLabels>>,
    },
    /// Nowhere: the rule answers itself (a redirect), counted under its labels.
    Answer(http::Response<Body>, Option<&'t Shared<RouteLabels>>),
}

/// What route matching sees of a request.
pub fn view<'a, B>(req: &'a Request<B>, authority: Option<&'a Authority>) -> RequestView<'a> {
    RequestView {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        authority: authority.map_or("", Authority::host),
    }
}

/// Routes `req` (whose authority is `authority`) through `table`.
pub fn route<'t, B>(
    table: &'t RouteTable,
    req: &Request<B>,
    authority: Option<&Authority>,
) -> Result<Routed<'t>, Error> {
    let rule = table.find(&view(req, authority)).ok_or(Error::NoRoute)?;
    if let Some(redirect) = &rule.redirect {
        return redirected(redirect, rule, req, authority)
            .map(|resp| Routed::Answer(resp, rule.label(None)));
    }
    let i = rule.pick_index().ok_or(Error::NoBackend)?;
    Ok(Routed::Forward {
        rule,
        backend: &rule.backends[i].0,
        label: rule.label(Some(i)),
    })
}

/// The answer of a redirect rule: its status and `Location` (the request's, with the
/// redirect's parts replaced).
fn redirected<B>(
    redirect: &Redirect,
    rule: &Rule<Target>,
    req: &Request<B>,
    authority: Option<&Authority>,
) -> Result<http::Response<Body>, Error> {
    let scheme = req.uri().scheme_str().unwrap_or("http");
    let host = authority.map_or("", Authority::as_str);
    let prefix = rule.matched_prefix(req.uri().path());
    match redirect.response_location(scheme, host, req.uri(), prefix) {
        Ok(location) => {
            let status =
                http::StatusCode::from_u16(redirect.status).unwrap_or(http::StatusCode::FOUND);
            let mut resp = crate::http::forward::local(status, "");
            resp.headers_mut().insert(http::header::LOCATION, location);
            Ok(resp)
        }
        Err(e) if e.is_bad_request() => Err(Error::BadRequest(format!("redirect: {e}"))),
        Err(e) => Err(Error::Internal(format!("redirect: {e}"))),
    }
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
  - name: echo-v2
    ports: [{ port: 80, targetPort: 8080, protocol: http }]
    endpoints: [{ address: 10.0.0.3 }]
routes:
  - service: echo
    rules:
      - matches: [{ path: { prefix: /old } }]
        backends: []
        redirect: { path: { prefix: /new }, status: 301 }
      - matches: [{ path: { prefix: /v2 } }]
        backends: [{ service: echo-v2 }]
      - matches: [{ path: { prefix: /api } }]
        backends: [{ service: echo }]
";

    fn snapshot() -> Snapshot {
        let config = weft_api::proxy::Config::from_yaml(CONFIG).expect("valid config");
        Snapshot::build(config, None, "v".into(), None).expect("snapshot")
    }

    fn table(snap: &Snapshot) -> std::sync::Arc<RouteTable> {
        snap.routes(&snap.target("echo.default", 80).expect("target"))
    }

    /// Path → the backend service, or the status of the answer or refusal.
    #[test]
    fn routes_forward_answer_or_refuse_by_rule() {
        let snap = snapshot();
        let table = table(&snap);
        let cases: Vec<(&str, Result<&str, u16>)> = vec![
            ("/v2/users", Ok("echo-v2.default")),
            ("/api", Ok("echo.default")),
            ("/old/page", Err(301)),
            ("/elsewhere", Err(404)),
        ];
        for (path, expected) in cases {
            let req = Request::get(path).body(()).expect("request");
            let authority: Authority = "echo".parse().expect("authority");
            let got = match route(&table, &req, Some(&authority)) {
                Ok(Routed::Forward { backend, .. }) => Ok(backend.service.key.to_string()),
                Ok(Routed::Answer(resp, _)) => Err(resp.status().as_u16()),
                Err(e) => Err(e.status().as_u16()),
            };
            assert_eq!(got, expected.map(str::to_string), "{path}");
        }
    }

    #[test]
    fn a_redirect_keeps_the_rest_of_the_request() {
        let snap = snapshot();
        let table = table(&snap);
        let req = Request::get("/old/page?q=1").body(()).expect("request");
        let authority: Authority = "echo".parse().expect("authority");
        let Ok(Routed::Answer(resp, _)) = route(&table, &req, Some(&authority)) else {
            panic!("a redirect answers");
        };
        assert_eq!(
            resp.headers()[http::header::LOCATION],
            "http://echo/new/page?q=1"
        );
    }
}
