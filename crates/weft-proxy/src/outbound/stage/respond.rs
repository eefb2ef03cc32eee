//! Stage 6, respond: the answer that goes back to the app. The route's response
//! header edits and a new affinity cookie apply to what the upstream exchange gave
//! (its response, or the answer to its failure); a refusal is answered as the
//! classification says and counted; every answer is counted in the request metrics
//! under the endpoint that answered (or the service that would have been called) and
//! the route rule that sent it.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Response};

use crate::error::Error;
use crate::http::body::Body;
use crate::route::{Edits, Rule};
use crate::telemetry::access_log::ResponseFlags;
use crate::telemetry::exchange::{Detail, Metered, Record, RequestSize};
use crate::telemetry::labels::{GrpcStatus, Peer, RouteLabels, Shared};
use crate::telemetry::tap::Tapped;
use crate::telemetry::trace::Started;
use crate::telemetry::{Direction, Metrics, Name};
use crate::upstream::{ServiceState, Target};

use super::attempt::Tried;

/// What the answer needs from the stages before it.
#[derive(Debug)]
pub struct Reply<'a> {
    metrics: &'a Arc<Metrics>,
    started: Instant,
    request_bytes: RequestSize,
    /// The service the request is counted under: the routed one until a backend is
    /// picked, then the backend.
    service: &'a Name,
    /// Who the request is counted as between: the service until an endpoint is
    /// tried, then the last endpoint tried.
    peer: Peer,
    /// The route rule and backend, once routed.
    route: Option<&'a Shared<RouteLabels>>,
    /// The rule's response header edits, once routed.
    edits: Option<&'a Edits>,
    /// `Set-Cookie` for a new affinity cookie.
    cookie: Option<HeaderValue>,
    /// Whether the request metrics count it.
    counted: bool,
    /// Its span, when sampled.
    span: Option<Box<Started>>,
    /// Its access-log line-to-be, when the log is on.
    detail: Option<Box<Detail>>,
    /// What a tap in force wants of it.
    tap: Option<Box<Tapped>>,
}

impl<'a> Reply<'a> {
    /// An answer for a request to `service` that arrived at `started`, whose body
    /// measures `request_bytes`.
    pub fn new(
        metrics: &'a Arc<Metrics>,
        service: &'a ServiceState,
        started: Instant,
        request_bytes: RequestSize,
    ) -> Self {
        Self {
            metrics,
            started,
            request_bytes,
            service: &service.label,
            peer: service.unchosen.clone(),
            route: None,
            edits: None,
            cookie: None,
            counted: true,
            span: None,
            detail: None,
            tap: None,
        }
    }

    /// The request is recorded as the snapshot's telemetry says: counted or not, in
    /// `span` when sampled, and logged with `detail` when the access log is on.
    pub fn observed(
        &mut self,
        counted: bool,
        span: Option<Box<Started>>,
        detail: Option<Box<Detail>>,
        tap: Option<Box<Tapped>>,
    ) {
        self.counted = counted;
        self.span = span;
        self.detail = detail;
        self.tap = tap;
    }

    /// The request goes to `backend` under `rule`, counted under `route`.
    pub fn forwarding(
        &mut self,
        rule: &'a Rule<Target>,
        backend: &'a ServiceState,
        route: Option<&'a Shared<RouteLabels>>,
    ) {
        self.service = &backend.label;
        self.peer = backend.unchosen.clone();
        self.route = route;
        self.edits = rule.response_headers.as_ref();
    }

    /// The rule answered itself (a redirect), counted under `route`.
    pub fn answered_by(&mut self, route: Option<&'a Shared<RouteLabels>>) {
        self.route = route;
    }

    /// The attempts are over: the answer is counted as between this workload and the
    /// last endpoint tried (on `port`), with the retries sent.
    pub fn attempted(&mut self, tried: &Tried, port: u16) {
        if let Some(endpoint) = &tried.endpoint {
            self.peer = endpoint.peer.clone();
        }
        if let Some(detail) = &mut self.detail {
            detail.upstream = tried
                .endpoint
                .as_ref()
                .map(|e| std::net::SocketAddr::new(e.address, port));
            detail.retries = tried.retries;
            if tried.exhausted {
                detail
                    .flags
                    .insert(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
            }
        }
    }

    /// The response gets a new affinity cookie.
    pub fn set_cookie(&mut self, cookie: Option<HeaderValue>) {
        self.cookie = cookie;
    }

    /// The answer to `result`, counted when its body ends.
    pub fn respond(mut self, result: Result<Response<Body>, Error>) -> Response<Metered<Body>> {
        let exchanged = result.as_ref().map_or_else(Error::is_exchange, |_| true);
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                e.record(self.metrics, self.service);
                if let Some(detail) = &mut self.detail {
                    detail.flags.insert(e.flags());
                }
                e.into_response(false)
            }
        };
        if exchanged {
            if let Some(edits) = self.edits {
                edits.apply(resp.headers_mut());
            }
            if let Some(cookie) = self.cookie {
                resp.headers_mut().append(http::header::SET_COOKIE, cookie);
            }
        }
        let record = Record {
            metrics: self.metrics.clone(),
            direction: Direction::Outbound,
            peer: self.peer,
            route: self.route.cloned(),
            status: resp.status().as_u16(),
            grpc: GrpcStatus::of(resp.headers()),
            elapsed: self.started.elapsed(),
            request_bytes: self.request_bytes,
            counted: self.counted,
            span: self.span,
            detail: self.detail,
            tap: self.tap.map(|mut t| {
                t.answered(resp.headers());
                t
            }),
        };
        resp.map(|body| Metered::new(body, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const CONFIG: &str = r"
workload: { name: client, address: 10.0.0.1 }
listeners: { hbone: null }
services:
  - name: echo
    ports: [{ port: 80, protocol: http }]
    endpoints: [{ address: 10.0.0.2 }]
routes:
  - service: echo
    rules:
      - backends: [{ service: echo }]
        responseHeaders: { set: [[x-served-by, mesh]] }
";

    /// Result → status, whether the rule's edits and the cookie applied, and the
    /// overflow metric.
    #[test]
    fn edits_apply_to_exchanges_and_refusals_are_counted() {
        let config = weft_api::proxy::Config::from_yaml(CONFIG).expect("valid config");
        let snap = crate::state::Snapshot::build(config, None, "v".into(), None).expect("snapshot");
        let target = snap.target("echo.default", 80).expect("target");
        let table = snap.routes(&target);
        let rule = &table.rules[0];
        let key: Arc<str> = Arc::from("echo.default");
        let limit = || Error::Limit {
            service: key.clone(),
            overflow: crate::upstream::limits::Overflow::Requests(1),
        };
        #[rustfmt::skip]
        let cases: Vec<(Result<Response<Body>, Error>, u16, bool)> = vec![
            (Ok(Response::new(Body::empty())), 200, true),
            (Err(Error::Connect("refused".into())), 503, true),
            (Err(Error::Timeout), 504, true),
            (Err(limit()), 503, false),
            (Err(Error::NoEndpoints(key.clone())), 503, false),
        ];
        for (result, status, edited) in cases {
            let metrics = Metrics::new();
            let name = format!("{result:?}");
            let mut reply = Reply::new(
                &metrics,
                &target.service,
                Instant::now(),
                RequestSize::Known(0),
            );
            reply.forwarding(rule, &target.service, rule.label(Some(0)));
            reply.set_cookie(Some(HeaderValue::from_static("s=1")));
            let resp = reply.respond(result);
            assert_eq!(resp.status().as_u16(), status, "{name}");
            assert_eq!(resp.headers().contains_key("x-served-by"), edited, "{name}");
            assert_eq!(resp.headers().contains_key("set-cookie"), edited, "{name}");
            // Counted when the answer's body ends (here: is dropped).
            drop(resp);
            let text = metrics.encode();
            assert!(
                text.contains(&format!("status=\"{status}\"")),
                "{name}: counted by status"
            );
        }
    }
}
