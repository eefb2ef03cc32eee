//! One request and its answer, recorded when the answer's body ends: the answer's
//! body is [`Metered`], which counts the bytes it carries, reads `grpc-status` from
//! its trailers, and records the exchange in the request metrics when it ends or is
//! dropped (the client went away), exactly once.
//!
//! Recording at the end, not at the answer's headers, is what lets the metrics carry
//! the response's size and a streamed gRPC call's status, which only its trailers
//! hold. Latency stays the time to the answer's headers (ADR 37).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::access_log::{AccessLog, Entry, ResponseFlags};
use super::labels::{GrpcStatus, Peer, RouteLabels, Shared};
use super::{Direction, Metrics};

/// The size of a request's body: known from its head (or because it was read whole),
/// or counted as it streams.
#[derive(Clone, Debug)]
pub enum RequestSize {
    /// Exactly this many bytes.
    Known(u64),
    /// The bytes read so far: the body had no length in its head.
    Counted(Arc<AtomicU64>),
}

impl RequestSize {
    /// The bytes the body has carried: all of it once it ended.
    pub fn bytes(&self) -> u64 {
        match self {
            Self::Known(n) => *n,
            Self::Counted(read) => read.load(Ordering::Relaxed),
        }
    }
}

/// An answered request, to be recorded when its answer's body ends.
#[derive(Debug)]
pub struct Record {
    /// Where it is recorded.
    pub metrics: Arc<Metrics>,
    /// Which side of the proxy.
    pub direction: Direction,
    /// Who called whom.
    pub peer: Peer,
    /// The route rule and backend (outbound, once routed).
    pub route: Option<Shared<RouteLabels>>,
    /// HTTP status of the answer.
    pub status: u16,
    /// Its gRPC status: from its headers, else from its trailers.
    pub grpc: GrpcStatus,
    /// From the request to the answer's headers.
    pub elapsed: Duration,
    /// The request body's size.
    pub request_bytes: RequestSize,
    /// Whether the request metrics count it (`telemetry.metrics.enabled`).
    pub counted: bool,
    /// Its span, when sampled.
    pub span: Option<Box<super::trace::Started>>,
    /// What its access-log line needs, when the access log is on.
    pub detail: Option<Box<Detail>>,
    /// What a tap in force wants of it.
    pub tap: Option<Box<super::tap::Tapped>>,
}

/// The parts of a request only its access-log line needs: taken at its start, only
/// when the log is on (one allocation then, none otherwise).
#[derive(Debug)]
pub struct Detail {
    log: AccessLog,
    start: SystemTime,
    started: Instant,
    method: http::Method,
    /// The request's target: a clone shares the request's bytes, no copy.
    uri: http::Uri,
    /// Its `Host` header, when the target has no authority.
    host: Option<http::HeaderValue>,
    version: http::Version,
    /// The endpoint or app address that answered.
    pub upstream: Option<SocketAddr>,
    /// Retries sent.
    pub retries: u32,
    /// What went wrong.
    pub flags: ResponseFlags,
}

impl Detail {
    /// The request's line-to-be, for `log`.
    pub fn of<B>(log: &AccessLog, req: &http::Request<B>) -> Box<Self> {
        let uri = req.uri().clone();
        let host = match uri.authority() {
            Some(_) => None,
            None => req.headers().get(http::header::HOST).cloned(),
        };
        Box::new(Self {
            log: log.clone(),
            start: SystemTime::now(),
            started: Instant::now(),
            method: req.method().clone(),
            uri,
            host,
            version: req.version(),
            upstream: None,
            retries: 0,
            flags: ResponseFlags::EMPTY,
        })
    }

    /// Writes the line of an exchange that ended.
    fn write(&self, r: &Record, response_bytes: u64, ended: bool) {
        let peer = &*r.peer.counted;
        let mut flags = self.flags;
        if !ended {
            flags.insert(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
        }
        self.log.write(&Entry {
            start: self.start,
            direction: r.direction,
            source_identity: &peer.source_identity.0,
            destination_service: &peer.destination_service.0,
            destination_workload: &peer.destination_workload.0,
            destination_identity: &peer.destination_identity.0,
            upstream: self.upstream,
            route: r.route.as_ref().map_or("", |l| &l.route.0),
            route_rule: r.route.as_ref().map(|l| l.route_rule),
            method: self.method.as_str(),
            authority: self.uri.authority().map_or_else(
                || {
                    self.host
                        .as_ref()
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("")
                },
                http::uri::Authority::as_str,
            ),
            path: self.uri.path(),
            protocol: match self.version {
                http::Version::HTTP_2 => "HTTP/2",
                http::Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            status: r.status,
            grpc_status: r.grpc.0,
            duration: self.started.elapsed(),
            request_bytes: r.request_bytes.bytes(),
            response_bytes,
            retries: self.retries,
            trace_id: r.span.as_ref().map(|s| s.trace_id),
            flags,
        });
    }
}

/// A response body that records its exchange when it ends (see the module docs).
#[derive(Debug)]
pub struct Metered<B> {
    inner: B,
    /// The exchange, until recorded.
    record: Option<Record>,
    /// Response body bytes sent so far.
    sent: u64,
    /// The body ended (rather than being dropped part-way: the client went away).
    ended: bool,
}

impl<B: HttpBody> Metered<B> {
    /// `inner`, recorded under `record` when it ends.
    pub fn new(inner: B, record: Record) -> Self {
        Self {
            // An empty body is never polled: it ended before it began.
            ended: inner.is_end_stream(),
            inner,
            record: Some(record),
            sent: 0,
        }
    }
}

impl<B> Metered<B> {
    /// `inner`, not recorded: an answer that is not one of the app's requests (a
    /// refusal before the request reached a stage that counts it).
    pub fn unrecorded(inner: B) -> Self {
        Self {
            inner,
            record: None,
            sent: 0,
            ended: false,
        }
    }

    fn finish(&mut self) {
        let Some(mut r) = self.record.take() else {
            return;
        };
        if let Some(tapped) = r.tap.take() {
            tapped.finish(r.direction, &r.peer, r.status, r.grpc.0);
        }
        let request_bytes = r.request_bytes.bytes();
        if let Some(detail) = &r.detail {
            detail.write(&r, self.sent, self.ended);
        }
        if r.counted {
            r.metrics.windows.record(
                r.direction,
                &r.peer.counted,
                r.route.as_ref(),
                r.status,
                r.elapsed,
            );
            r.metrics.request(&super::Answered {
                direction: r.direction,
                peer: &r.peer,
                route: r.route.as_ref(),
                status: r.status,
                grpc: r.grpc,
                elapsed: r.elapsed,
                request_bytes,
                response_bytes: self.sent,
                trace_id: r.span.as_ref().map(|s| s.trace_id),
            });
        }
        if let Some(span) = r.span {
            span.finish(&super::trace::Outcome {
                status: r.status,
                grpc: r.grpc.0,
                request_bytes,
                response_bytes: self.sent,
                peer: &r.peer,
                route: r.route.as_ref(),
            });
        }
    }
}

impl<B> From<B> for Metered<B> {
    fn from(body: B) -> Self {
        Self::unrecorded(body)
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for Metered<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                // hyper stops polling a body that says it has ended.
                this.ended |= this.inner.is_end_stream();
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                } else if let (Some(trailers), Some(r)) = (frame.trailers_ref(), &mut this.record) {
                    if r.grpc.0.is_none() {
                        r.grpc = GrpcStatus::of(trailers);
                    }
                }
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.finish();
            }
            Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::labels::Own;
    use http_body_util::BodyExt as _;

    fn record(metrics: &Arc<Metrics>, grpc: GrpcStatus, request_bytes: RequestSize) -> Record {
        let own = Own::new("server", "default", None);
        Record {
            metrics: metrics.clone(),
            direction: Direction::Inbound,
            peer: own.inbound(Some("spiffe://cluster.local/ns/default/sa/client")),
            route: None,
            status: 200,
            grpc,
            elapsed: Duration::from_millis(1),
            request_bytes,
            counted: true,
            span: None,
            detail: None,
            tap: None,
        }
    }

    fn sum(text: &str, metric: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(metric) && l.contains("_sum"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// An answer is counted once its body ends, with the bytes it carried and the
    /// gRPC status its trailers gave; not before.
    #[tokio::test]
    async fn an_answer_is_recorded_when_its_body_ends_with_sizes_and_trailer_status() {
        let metrics = Metrics::new();
        let read = Arc::new(AtomicU64::new(0));
        let body = http_body_util::Full::new(Bytes::from_static(b"hello, world"));
        let mut metered = Metered::new(
            body,
            record(
                &metrics,
                GrpcStatus(None),
                RequestSize::Counted(read.clone()),
            ),
        );
        read.store(4096, Ordering::Relaxed);
        let frame = metered.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.data_ref().map(Bytes::len), Some(12));
        assert!(
            !metrics.encode().contains("weft_proxy_requests_total{"),
            "not counted before the body ends"
        );
        assert!(metered.frame().await.is_none(), "the body ended");
        let text = metrics.encode();
        assert!(text.contains("weft_proxy_requests_total{"), "{text}");
        assert_eq!(sum(&text, "weft_proxy_response_size_bytes"), Some(12.0));
        assert_eq!(sum(&text, "weft_proxy_request_size_bytes"), Some(4096.0));
        drop(metered);
        let count = metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("weft_proxy_requests_total{"))
            .count();
        assert_eq!(count, 1, "counted once, not again when dropped");
    }

    /// A streamed gRPC answer's status is in its trailers (the headers said nothing);
    /// a client that went away mid-body still has its exchange counted.
    #[tokio::test]
    async fn trailers_give_the_grpc_status_and_a_dropped_body_is_still_counted() {
        let metrics = Metrics::new();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
            Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x03abc"))),
            Ok(Frame::trailers(trailers)),
            Ok(Frame::data(Bytes::from_static(b"never read"))),
        ];
        let body = http_body_util::StreamBody::new(futures::stream::iter(frames));
        let mut metered = Metered::new(
            body,
            record(&metrics, GrpcStatus(None), RequestSize::Known(5)),
        );
        metered.frame().await.expect("data").expect("ok");
        let trailers = metered.frame().await.expect("trailers").expect("ok");
        assert!(trailers.is_trailers(), "trailers pass through unchanged");
        assert!(!metrics.encode().contains("weft_proxy_requests_total{"));
        drop(metered);
        let text = metrics.encode();
        assert!(text.contains("grpc_status=\"14\""), "{text}");
        assert_eq!(sum(&text, "weft_proxy_request_size_bytes"), Some(5.0));
        assert_eq!(sum(&text, "weft_proxy_response_size_bytes"), Some(8.0));
    }
}
