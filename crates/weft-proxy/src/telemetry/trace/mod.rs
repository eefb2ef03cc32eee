//! Spans: one per proxy hop, a client span on the outbound side and a server span on
//! the inbound side, after the OpenTelemetry HTTP semantic conventions, exported over
//! OTLP/gRPC (ADR 38).
//!
//! The request path only decides and propagates ([`Tracer::begin`]): it reads the
//! caller's context ([`context`]), keeps its sampling decision or makes one from the
//! trace id (so every hop of a trace decides alike), and passes this hop's span on.
//! A sampled request carries a [`Started`] span to the end of its answer, where it is
//! finished and queued; an exporter task batches the queue to the collector. A full
//! queue drops the span and counts it: tracing never slows a request down or holds
//! memory without bound.

pub mod context;
mod export;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;

pub use export::{Exported, QUEUE_SPANS};

use super::labels::{Peer, RouteLabels, Shared};
use super::Direction;

/// Sampling and the queue to the exporter; one per tracing config, kept across
/// snapshots while the config stays the same.
#[derive(Debug)]
pub struct Tracer {
    /// Traces whose id falls under this are sampled (the low 8 bytes of the id, as a
    /// number): the W3C "trace id ratio" rule, so every hop agrees.
    threshold: u64,
    queue: tokio::sync::mpsc::Sender<Finished>,
    dropped: Counter,
    config: weft_api::proxy::Tracing,
}

/// Which side of the hop a span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The outbound side: the request this proxy sends for the app.
    Client,
    /// The inbound side: the request this proxy receives for the app.
    Server,
}

/// A sampled request's span, from its start to the end of its answer.
#[derive(Debug)]
pub struct Started {
    tracer: Arc<Tracer>,
    /// The trace.
    pub trace_id: [u8; 16],
    /// This hop's span.
    pub span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    kind: Kind,
    start: SystemTime,
    method: http::Method,
    path: Box<str>,
    authority: Box<str>,
    version: http::Version,
}

/// A finished span, queued for export.
#[derive(Debug)]
pub struct Finished {
    started: Box<Started>,
    end: SystemTime,
    status: u16,
    grpc: Option<u8>,
    request_bytes: u64,
    response_bytes: u64,
    peer: Peer,
    route: Option<Shared<RouteLabels>>,
}

/// What the end of an answer tells its span.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// HTTP status.
    pub status: u16,
    /// gRPC status, if any.
    pub grpc: Option<u8>,
    /// Body sizes.
    pub request_bytes: u64,
    /// Body sizes.
    pub response_bytes: u64,
    /// Who called whom.
    pub peer: &'a Peer,
    /// The route rule (outbound).
    pub route: Option<&'a Shared<RouteLabels>>,
}

impl Tracer {
    /// A tracer for `config`, exporting from a task on the current runtime. `spans`
    /// counts spans by result (`exported`, `dropped` when the queue was full,
    /// `failed` when the collector refused or could not be reached); `service` and
    /// `identity` name this workload in the spans' resource.
    pub fn start(
        config: &weft_api::proxy::Tracing,
        spans: &Exported,
        service: (&str, &str),
        identity: Option<&str>,
    ) -> Result<Arc<Self>, String> {
        let queue = export::spawn(config, spans, service, identity)?;
        Ok(Arc::new(Self {
            threshold: threshold(config.sampling),
            queue,
            dropped: spans.dropped.clone(),
            config: config.clone(),
        }))
    }

    /// Whether this tracer was made for `config`.
    pub fn is_for(&self, config: &weft_api::proxy::Tracing) -> bool {
        self.config == *config
    }

    /// Whether a new trace with this id is sampled.
    fn samples(&self, trace_id: &[u8; 16]) -> bool {
        sampled(self.threshold, trace_id)
    }

    /// Starts this hop's part of a request's trace: reads the caller's context from
    /// the request, decides, and when sampled writes this hop's span as the context
    /// the next hop gets, and returns it. An unsampled request is left untouched.
    ///
    /// The first proxy decides (ADR 38). A request with context keeps its decision; one
    /// without is sampled at the configured rate, unless `peer_decided`: it came from
    /// a mesh peer's proxy, which passes context on for the requests it samples, so
    /// none means that proxy decided not to. Unsampled requests thus cost no header
    /// and no allocation.
    pub fn begin<B>(
        self: &Arc<Self>,
        kind: Kind,
        peer_decided: bool,
        req: &mut http::Request<B>,
    ) -> Option<Box<Started>> {
        let parent = context::extract(req.headers());
        let (trace_id, sampled) = match &parent {
            Some(p) => (
                p.trace_id,
                p.sampled.unwrap_or_else(|| self.samples(&p.trace_id)),
            ),
            None if peer_decided => return None,
            None => {
                let id = new_trace_id();
                (id, self.samples(&id))
            }
        };
        if !sampled {
            return None;
        }
        let (method, uri, version) = (req.method(), req.uri(), req.version());
        let span_id = new_span_id();
        let came_as = parent.as_ref().map(|p| p.format);
        let authority = super::authority_of(req);
        let started = Box::new(Started {
            tracer: self.clone(),
            trace_id,
            span_id,
            parent: parent.map(|p| p.span_id),
            kind,
            start: SystemTime::now(),
            method: method.clone(),
            path: uri.path().into(),
            authority: authority.into(),
            version,
        });
        context::inject(req.headers_mut(), &trace_id, &span_id, true, came_as);
        Some(started)
    }
}

impl Started {
    /// Finishes the span with what the answer said, and queues it; a full queue drops
    /// it and counts the drop.
    pub fn finish(self: Box<Self>, outcome: &Outcome<'_>) {
        let tracer = self.tracer.clone();
        let finished = Finished {
            started: self,
            end: SystemTime::now(),
            status: outcome.status,
            grpc: outcome.grpc,
            request_bytes: outcome.request_bytes,
            response_bytes: outcome.response_bytes,
            peer: outcome.peer.clone(),
            route: outcome.route.cloned(),
        };
        if tracer.queue.try_send(finished).is_err() {
            tracer.dropped.inc();
        }
    }

    /// Which side of the proxy the span is on.
    pub fn direction(&self) -> Direction {
        match self.kind {
            Kind::Client => Direction::Outbound,
            Kind::Server => Direction::Inbound,
        }
    }

    /// How long the span has lasted so far.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed().unwrap_or_default()
    }
}

/// The sampling threshold of `percent`: a trace is sampled when the low 8 bytes of
/// its id, as a number, are below it.
fn threshold(percent: f64) -> u64 {
    if percent >= 100.0 {
        return u64::MAX;
    }
    if percent <= 0.0 || percent.is_nan() {
        return 0;
    }
    // In range: 0 < percent < 100, so the product is below 2^64.
    (percent / 100.0 * 18_446_744_073_709_551_616.0) as u64
}

fn sampled(threshold: u64, trace_id: &[u8; 16]) -> bool {
    let mut low = [0; 8];
    low.copy_from_slice(&trace_id[8..]);
    threshold == u64::MAX || u64::from_be_bytes(low) < threshold
}

/// A random, non-zero trace id.
fn new_trace_id() -> [u8; 16] {
    loop {
        let id = fastrand::u128(..).to_be_bytes();
        if id != [0; 16] {
            return id;
        }
    }
}

/// A random, non-zero span id.
fn new_span_id() -> [u8; 8] {
    loop {
        let id = fastrand::u64(..).to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The share of sampled ids follows the rate, and the decision is a function of
    /// the trace id alone, so every hop decides alike.
    #[test]
    fn sampling_keeps_the_configured_share_and_agrees_across_hops() {
        for (percent, low, high) in [
            (0.0, 0, 0),
            (1.0, 50, 150),
            (25.0, 2300, 2700),
            (100.0, 10_000, 10_000),
        ] {
            let t = threshold(percent);
            let mut rng = fastrand::Rng::with_seed(7);
            let count = (0..10_000)
                .filter(|_| sampled(t, &rng.u128(..).to_be_bytes()))
                .count();
            assert!(
                (low..=high).contains(&count),
                "{percent}%: {count} of 10000 sampled"
            );
        }
        let id = new_trace_id();
        let t = threshold(50.0);
        assert!((0..100).all(|_| sampled(t, &id) == sampled(t, &id)));
    }
}
