//! The request body Weft sends upstream: streamed from downstream once, or held in
//! memory so a retry can send it again.
//!
//! It sits below [`super::pool`], which sends it; the response body is
//! [`super::body`].

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;

use super::strict::strip_frame_trailers;

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
}

/// What was read of a body ahead of forwarding, and the rest of it.
#[derive(Debug)]
pub struct Held {
    data: Option<Bytes>,
    trailers: Option<http::HeaderMap>,
    rest: Option<Incoming>,
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
        })))
    }
}

impl Held {
    fn poll_frame(
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
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streamed(inner) => inner.is_end_stream(),
            Self::Buffered(full) => full.is_end_stream(),
            Self::Held(held) => held.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streamed(inner) => inner.size_hint(),
            Self::Buffered(full) => full.size_hint(),
            Self::Held(held) => held.size_hint(),
        }
    }
}
