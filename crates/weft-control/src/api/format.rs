//! Content negotiation: request bodies in JSON or YAML (by `Content-Type`), responses
//! in JSON or YAML (by `Accept`), bodies capped at [`MAX_BODY_BYTES`].

use axum::body::Body;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;

use super::error::Error;
use super::MAX_BODY_BYTES;

/// The serialisation of a request or response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Json,
    Yaml,
}

const YAML_TYPES: [&str; 3] = ["application/yaml", "application/x-yaml", "text/yaml"];

impl Format {
    /// The request body's format. A missing `Content-Type` is read as JSON.
    pub(super) fn of_request(headers: &HeaderMap) -> Result<Format, Error> {
        let Some(value) = headers.get(CONTENT_TYPE) else {
            return Ok(Format::Json);
        };
        let text = value.to_str().unwrap_or_default();
        let essence = text
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json" || essence.ends_with("+json") {
            Ok(Format::Json)
        } else if YAML_TYPES.contains(&essence.as_str()) {
            Ok(Format::Yaml)
        } else {
            Err(Error::unsupported_media_type(text))
        }
    }

    /// The response format the client asked for: YAML if `Accept` names a YAML type
    /// before (or without) JSON, otherwise JSON.
    pub(super) fn of_response(headers: &HeaderMap) -> Format {
        let accept = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            });
        for media in accept {
            if YAML_TYPES.contains(&media.as_str()) {
                return Format::Yaml;
            }
            if media == "application/json" {
                return Format::Json;
            }
        }
        Format::Json
    }
}

/// Reads the whole request body, at most [`MAX_BODY_BYTES`].
pub(super) async fn read_body(body: Body) -> Result<bytes::Bytes, Error> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Error::too_large(MAX_BODY_BYTES))
        }
        Err(e) => Err(Error::bad_request(format!("reading the request body: {e}"))),
    }
}

/// Reads the body as UTF-8 text.
pub(super) async fn read_text(body: Body) -> Result<String, Error> {
    let bytes = read_body(body).await?;
    String::from_utf8(bytes.to_vec())
        .map_err(|e| Error::bad_request(format!("request body is not UTF-8: {e}")))
}

/// Decodes one document in `format` into a JSON value.
pub(super) fn decode(format: Format, text: &str) -> Result<serde_json::Value, Error> {
    match format {
        Format::Json => serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("request body is not valid JSON: {e}"), vec![])),
        Format::Yaml => serde_saphyr::from_str(text)
            .map_err(|e| Error::invalid(format!("request body is not valid YAML: {e}"), vec![])),
    }
}

/// A successful response in the negotiated format.
pub(super) struct Reply {
    status: StatusCode,
    format: Format,
    body: Result<Vec<u8>, Error>,
}

impl Reply {
    /// `200` with `value`.
    pub(super) fn ok(format: Format, value: &impl Serialize) -> Reply {
        Reply::with_status(StatusCode::OK, format, value)
    }

    /// `status` with `value`.
    pub(super) fn with_status(status: StatusCode, format: Format, value: &impl Serialize) -> Reply {
        let body = match format {
            Format::Json => serde_json::to_vec(value).map_err(|e| Error::internal(&e)),
            Format::Yaml => serde_saphyr::to_string(value)
                .map(String::into_bytes)
                .map_err(|e| Error::internal(&e)),
        };
        Reply {
            status,
            format,
            body,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let content_type = match self.format {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
        };
        match self.body {
            Ok(body) => (
                self.status,
                [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
                body,
            )
                .into_response(),
            Err(e) => e.into_response(),
        }
    }
}
