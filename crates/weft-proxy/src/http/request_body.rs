//! The request body Weft sends upstream: streamed from downstream once, or held in
//! memory so a retry can send it again.
//!
//! It sits below [`super::pool`], which sends it; the response body is
//! [`super::body`].

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use super::strict::strip_frame_trailers;
use crate::telemetry::exchange::RequestSize;

/// A request body sent upstream: streamed from downstream once, or held in memory so
/// a retry can send it again.
#[derive(Debug)]
pub enum RequestBody {
    /// Streamed from the downstream connection (sent at most once).
    Streamed(Incoming),
    /// Buffered (empty bodies too); each attempt sends a cheap copy.
    Buffered(Full<Bytes>),
    /// Partly read before the head was forwarded (so its framing was checked first),
    /// then streamed.
    Held(Box<Held>),
    /// Streamed, with no length in its head: the bytes it carries are counted for the
    /// request metrics ([`RequestBody::measure`]).
    Counted(Incoming, Arc<AtomicU64>),
}

/// What was read of a body ahead of forwarding, and the rest of it.
#[derive(Debug)]
pub struct Held {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
    rest: Option<Incoming>,
    /// Counts the data it yields, once measured with no known length.
    read: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// A buffered body with `bytes`.
    pub fn buffered(bytes: Bytes) -> Self {
        Self::Buffered(Full::new(bytes))
    }

    /// Reads `body` ahead until it ends, `max_bytes` are held, or `wait` passes, so a
    /// framing error in what the client sent with the head is found before anything is
    /// forwarded. The error is the client's: the request must be refused.
    pub async fn read_ahead(
        mut body: Incoming,
        max_bytes: usize,
        wait: std::time::Duration,
    ) -> Result<Self, hyper::Error> {
        use http_body_util::BodyExt as _;
        let deadline = tokio::time::Instant::now() + wait;
        let mut data = bytes::BytesMut::new();
        let mut trailers = None;
        let mut ended = body.is_end_stream();
        while !ended && data.len() < max_bytes {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => break,
                Ok(None) => ended = true,
                Ok(Some(frame)) => match frame?.into_data() {
                    Ok(chunk) => data.extend_from_slice(&chunk),
                    Err(frame) => {
                        trailers = frame.into_trailers().ok();
                        ended = true;
                    }
                },
            }
            ended |= body.is_end_stream();
        }
        if ended && trailers.is_none() {
            return Ok(Self::buffered(data.freeze()));
        }
        Ok(Self::Held(Box::new(Held {
            data: (!data.is_empty()).then(|| data.freeze()),
            trailers,
            rest: (!ended).then_some(body),
            read: None,
        })))
    }

    /// The body's size for the request metrics: exact when its head or its buffer
    /// says it; otherwise the body is made to count the bytes it carries from now on
    /// (one shared counter, only for bodies of unknown length).
    pub fn measure(&mut self) -> RequestSize {
        if let Some(n) = self.size_hint().exact() {
            return RequestSize::Known(n);
        }
        let (body, read) = match std::mem::replace(self, Self::buffered(Bytes::new())) {
            Self::Streamed(inner) => {
                let read = Arc::new(AtomicU64::new(0));
                (Self::Counted(inner, read.clone()), read)
            }
            Self::Held(mut held) => {
                let read = held
                    .read
                    .get_or_insert_with(|| Arc::new(AtomicU64::new(0)))
                    .clone();
                (Self::Held(held), read)
            }
            Self::Counted(inner, read) => (Self::Counted(inner, read.clone()), read),
            // A buffer's size is always exact (above).
            buffered @ Self::Buffered(_) => (buffered, Arc::new(AtomicU64::new(0))),
        };
        *self = body;
        RequestSize::Counted(read)
    }
}

/// Adds a data frame's length to `read`.
fn count(
    polled: Poll<Option<Result<Frame<Bytes>, hyper::Error>>>,
    read: Option<&AtomicU64>,
) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
    if let (Poll::Ready(Some(Ok(frame))), Some(read)) = (&polled, read) {
        if let Some(data) = frame.data_ref() {
            read.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
    polled
}

impl Held {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = self.poll_next(cx);
        count(polled, self.read.as_deref())
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if let Some(rest) = &mut self.rest {
            match Pin::new(rest).poll_frame(cx).map(strip_frame_trailers) {
                Poll::Ready(None) => self.rest = None,
                other => return other,
            }
        }
        Poll::Ready(self.trailers.take().map(|mut t| {
            super::strict::strip_trailers(&mut t);
            Ok(Frame::trailers(t))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.data.as_ref().map_or(0, |d| d.len() as u64);
        match &self.rest {
            None => SizeHint::with_exact(held),
            Some(rest) => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + held);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + held);
                }
                hint
            }
        }
    }
}

impl HttpBody for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Streamed(inner) => Pin::new(inner).poll_frame(cx).map(strip_frame_trailers),
            Self::Buffered(full) => Pin::new(full)
                .poll_frame(cx)
                .map_err(|never| match never {}),
            Self::Held(held) => held.poll_frame(cx),
            Self::Counted(inner, read) => count(
                Pin::new(inner).poll_frame(cx).map(strip_frame_trailers),
                Some(read),
            ),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streamed(inner) | Self::Counted(inner, _) => inner.is_end_stream(),
            Self::Buffered(full) => full.is_end_stream(),
            Self::Held(held) => held.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streamed(inner) | Self::Counted(inner, _) => inner.size_hint(),
            Self::Buffered(full) => full.size_hint(),
            Self::Held(held) => held.size_hint(),
        }
    }
}
