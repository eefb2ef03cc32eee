//! The gRPC check: the standard `grpc.health.v1.Health/Check` call over HTTP/2 without
//! TLS (h2c), passing when the HTTP status is `200`, `grpc-status` is `0` and the
//! answer is `SERVING`.
//!
//! The two messages are prost types declared here (the health protocol is not among
//! `weft-api`'s protos); the gRPC framing around them — a compressed flag and a 4-byte
//! big-endian length — is written here, since one unary call needs no gRPC client.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, TE, USER_AGENT};
use http::uri::Scheme;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;

use super::{drive, Failure, USER_AGENT_VALUE};
use crate::http::pool::Io;

/// `:path` of the standard gRPC health check.
const GRPC_PATH: &str = "/grpc.health.v1.Health/Check";
/// `:authority` of a gRPC check whose [`super::Kind::Grpc::authority`] is empty.
const GRPC_DEFAULT_AUTHORITY: &str = "localhost";
/// Most response body a gRPC check reads; a `HealthCheckResponse` is a few bytes.
const MAX_GRPC_RESPONSE: usize = 4096;
/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: i32 = 1;

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct HealthCheckRequest {
    /// The service to check; `""` is the whole server.
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, Message)]
pub(super) struct HealthCheckResponse {
    /// `ServingStatus`: 0 `UNKNOWN`, 1 `SERVING`, 2 `NOT_SERVING`, 3 `SERVICE_UNKNOWN`.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// The `Check` call of a gRPC check.
pub(super) fn request(service: &str, authority: &str) -> Result<Request<Full<Bytes>>, Failure> {
    let authority = if authority.is_empty() {
        GRPC_DEFAULT_AUTHORITY
    } else {
        authority
    };
    let uri = Uri::builder()
        .scheme(Scheme::HTTP)
        .authority(authority)
        .path_and_query(GRPC_PATH)
        .build()
        .map_err(|_| Failure::InvalidRequest("gRPC authority is not a valid host[:port]"))?;
    let message = HealthCheckRequest {
        service: service.to_owned(),
    };
    let body = frame(&message.encode_to_vec())
        .ok_or(Failure::InvalidRequest("gRPC service name is too long"))?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_2;
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    Ok(request)
}

/// Sends `request` over h2c on `io` and judges the answer.
pub(super) async fn check(io: Box<dyn Io>, request: Request<Full<Bytes>>) -> Result<(), Failure> {
    let (mut send, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(Failure::Http)?;
    drive(connection, async move {
        send.ready().await.map_err(Failure::Http)?;
        let response = send.send_request(request).await.map_err(Failure::Http)?;
        verdict(response).await
    })
    .await
}

/// Passes a gRPC health response: HTTP 200, `grpc-status` 0, `SERVING`.
async fn verdict(response: Response<Incoming>) -> Result<(), Failure> {
    let (head, mut body) = response.into_parts();
    if head.status != StatusCode::OK {
        return Err(Failure::Status(head.status));
    }
    // Trailers-only: the status is in the headers and there is no message.
    if let Some(outcome) = outcome(&head.headers) {
        outcome?;
        return Err(Failure::Malformed(
            "grpc-status 0 without a response message",
        ));
    }
    let mut message = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        match frame.map_err(Failure::Http)?.into_data() {
            Ok(data) => {
                if message.len() + data.len() > MAX_GRPC_RESPONSE {
                    return Err(Failure::Malformed("response larger than 4 KiB"));
                }
                message.extend_from_slice(&data);
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    let trailers = trailers.ok_or(Failure::Malformed("response ended without trailers"))?;
    outcome(&trailers).unwrap_or(Err(Failure::Malformed("no grpc-status in trailers")))?;
    match serving_status(&message)? {
        SERVING => Ok(()),
        status => Err(Failure::NotServing(status)),
    }
}

/// The call's outcome from `grpc-status` in `headers`, or `None` when it is absent.
fn outcome(headers: &HeaderMap) -> Option<Result<(), Failure>> {
    let value = headers.get("grpc-status")?;
    let Some(code) = value.to_str().ok().and_then(|v| v.parse::<u32>().ok()) else {
        return Some(Err(Failure::Malformed("grpc-status is not a number")));
    };
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .map(|m| {
            let m = String::from_utf8_lossy(m.as_bytes());
            m.chars().take(128).collect()
        })
        .unwrap_or_default();
    Some(Err(Failure::GrpcStatus { code, message }))
}

/// `Failure::GrpcStatus` as text, with a hint for the codes a misconfiguration causes.
pub(super) fn status_text(code: u32, message: &str) -> String {
    let hint = match code {
        5 => " (NOT_FOUND: the health server does not know this service)",
        12 => " (UNIMPLEMENTED: the server has no grpc.health.v1.Health service)",
        _ => "",
    };
    if message.is_empty() {
        format!("grpc-status {code}{hint}")
    } else {
        format!("grpc-status {code}{hint}: {message}")
    }
}

/// Name of a `HealthCheckResponse.ServingStatus` value.
pub(super) fn serving_status_name(status: i32) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "an unknown status",
    }
}

// === gRPC wire format ===

/// `message` in a gRPC frame: uncompressed flag, 4-byte big-endian length, message;
/// `None` if it is longer than a frame can say.
pub(super) fn frame(message: &[u8]) -> Option<Bytes> {
    let len = u32::try_from(message.len()).ok()?;
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(len);
    frame.extend_from_slice(message);
    Some(frame.freeze())
}

/// `HealthCheckResponse.status` from a response body holding exactly one gRPC frame.
fn serving_status(body: &[u8]) -> Result<i32, Failure> {
    let Some((&flag, rest)) = body.split_first() else {
        return Err(Failure::Malformed("no response message"));
    };
    if flag != 0 {
        // We sent no `grpc-accept-encoding`, so the server may not compress.
        return Err(Failure::Malformed("compressed or unknown message flag"));
    }
    let (len, message) = rest
        .split_first_chunk::<4>()
        .ok_or(Failure::Malformed("truncated message header"))?;
    if usize::try_from(u32::from_be_bytes(*len)) != Ok(message.len()) {
        return Err(Failure::Malformed(
            "message length does not match the response body",
        ));
    }
    HealthCheckResponse::decode(message)
        .map(|response| response.status)
        .map_err(|_| Failure::Malformed("not a grpc.health.v1.HealthCheckResponse"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn whole_server_request_is_an_empty_message() {
        assert_eq!(
            frame(
                &HealthCheckRequest {
                    service: String::new()
                }
                .encode_to_vec()
            )
            .unwrap()
            .as_ref(),
            [0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn decodes_serving_status_and_skips_unknown_fields() {
        let cases: [(&[u8], i32); 5] = [
            (&[0, 0, 0, 0, 2, 0x08, 0x01], 1),
            (&[0, 0, 0, 0, 0], 0),
            // Unknown fields of each wire type around the status.
            (
                &[
                    0, 0, 0, 0, 13, 0x10, 0x05, 0x1a, 0x02, b'h', b'i', 0x08, 0x02, 0x25, 0, 0, 0,
                    0,
                ],
                2,
            ),
            (
                &[
                    0, 0, 0, 0, 16, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x08, 0x01, 0x2d, 1, 2, 3, 4,
                ],
                1,
            ),
            // The last value of a repeated field wins, as in protobuf.
            (&[0, 0, 0, 0, 4, 0x08, 0x02, 0x08, 0x01], 1),
        ];
        for (body, status) in cases {
            let decoded = serving_status(body);
            assert!(
                matches!(decoded, Ok(s) if s == status),
                "{body:?}: {decoded:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_messages() {
        let cases: [&[u8]; 12] = [
            &[],
            &[1, 0, 0, 0, 0],
            &[0, 0, 0, 0],
            &[0, 0, 0, 0, 2, 0x08],
            &[0, 0, 0, 0, 1, 0x08, 0x01],
            &[0, 0, 0, 0, 1, 0x08],
            &[0, 0, 0, 0, 2, 0x08, 0x81],
            &[0, 0, 0, 0, 2, 0x0a, 0x00],
            &[0, 0, 0, 0, 2, 0x00, 0x01],
            &[0, 0, 0, 0, 3, 0x12, 0x05, 0x00],
            &[0, 0, 0, 0, 1, 0x0b],
            &[
                0, 0, 0, 0, 12, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0x01,
            ],
        ];
        for body in cases {
            let decoded = serving_status(body);
            assert!(
                matches!(decoded, Err(Failure::Malformed(_))),
                "{body:?}: {decoded:?}"
            );
        }
        let overflow = [
            0, 0, 0, 0, 11, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        assert!(matches!(
            serving_status(&overflow),
            Err(Failure::Malformed(_))
        ));
    }
}
