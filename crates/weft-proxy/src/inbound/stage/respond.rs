//! Stage 6, respond: a refusal turned into its answer (gRPC-shaped for a gRPC
//! request), and every answer counted in the request metrics.

use std::sync::Arc;
use std::time::Instant;

use http::Response;

use crate::error::Error;
use crate::http::body::Body;
use crate::telemetry::exchange::{Metered, Record, RequestSize};
use crate::telemetry::labels::{GrpcStatus, Peer};
use crate::telemetry::{Direction, Metrics, Name};

/// The request being answered: who called (`peer`), when it arrived, and its body's
/// size.
#[derive(Debug)]
pub struct Asked<'a> {
    /// As from the caller to this workload.
    pub peer: &'a Peer,
    /// When the request arrived.
    pub started: Instant,
    /// The request body's size.
    pub request_bytes: RequestSize,
    /// The request was a gRPC call (a refusal is answered gRPC-shaped).
    pub grpc: bool,
    /// Whether the request metrics count it.
    pub counted: bool,
    /// Its span, when sampled.
    pub span: Option<Box<crate::telemetry::trace::Started>>,
    /// Its access-log line-to-be, when the log is on.
    pub detail: Option<Box<crate::telemetry::exchange::Detail>>,
    /// What a tap in force wants of it.
    pub tap: Option<Box<crate::telemetry::tap::Tapped>>,
}

/// The answer to `result`, counted when its body ends as `asked` says; a refusal is
/// recorded under the workload `service`.
pub fn respond(
    metrics: &Arc<Metrics>,
    service: &Name,
    asked: Asked<'_>,
    result: Result<Response<Body>, Error>,
) -> Response<Metered<Body>> {
    let grpc = asked.grpc;
    let mut detail = asked.detail;
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            e.record(metrics, service);
            if let Some(detail) = &mut detail {
                detail.flags.insert(e.flags());
            }
            e.into_response(grpc)
        }
    };
    let record = Record {
        metrics: metrics.clone(),
        direction: Direction::Inbound,
        peer: asked.peer.clone(),
        route: None,
        status: resp.status().as_u16(),
        grpc: GrpcStatus::of(resp.headers()),
        elapsed: asked.started.elapsed(),
        request_bytes: asked.request_bytes,
        counted: asked.counted,
        span: asked.span,
        detail,
        tap: asked.tap.map(|mut t| {
            t.answered(resp.headers());
            t
        }),
    };
    resp.map(|body| Metered::new(body, record))
}

/// Whether `req` is a gRPC call (its answers then carry `grpc-status`).
pub fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<Response<Body>, Error>;
    type Label = Option<&'static str>;

    /// Result and request kind → status, `grpc-status`, and the failure counted.
    #[test]
    fn refusals_are_answered_in_the_callers_protocol_and_counted() {
        #[rustfmt::skip]
        let cases: Vec<(Outcome, bool, u16, Label, Label)> = vec![
            (Ok(Response::new(Body::empty())), false, 200, None, None),
            (Err(Error::RateLimited { retry_after_secs: 1 }), false, 429, None, Some("rate_limited")),
            (Err(Error::RateLimited { retry_after_secs: 1 }), true, 200, Some("8"), Some("rate_limited")),
            (Err(Error::App("app at 127.0.0.1:8080: refused".into())), true, 502, None, None),
        ];
        for (result, grpc, status, grpc_status, failure) in cases {
            let name = format!("{result:?} grpc={grpc}");
            let metrics = Metrics::new();
            let label = Name(std::sync::Arc::from("server"));
            let own = crate::telemetry::labels::Own::new("server", "default", None);
            let peer = own.inbound(Some("spiffe://cluster.local/ns/default/sa/client"));
            let asked = Asked {
                peer: &peer,
                started: Instant::now(),
                request_bytes: RequestSize::Known(0),
                grpc,
                counted: true,
                span: None,
                detail: None,
                tap: None,
            };
            let resp = respond(&metrics, &label, asked, result);
            assert_eq!(resp.status().as_u16(), status, "{name}");
            assert_eq!(
                resp.headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok()),
                grpc_status,
                "{name}"
            );
            drop(resp);
            let text = metrics.encode();
            if let Some(reason) = failure {
                assert!(
                    text.contains(&format!("reason=\"{reason}\"")),
                    "{name}: {text}"
                );
            }
            assert!(
                text.contains(&format!("status=\"{status}\"")),
                "{name}: counted"
            );
        }
    }
}
