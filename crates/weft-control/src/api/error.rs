//! API errors: every failure is a JSON body
//! `{"error":{"code","reason","message","details":[{"path","message"}]}}`, whatever
//! the request's `Accept`, so clients parse one shape.
//!
//! User faults (4xx) carry a message naming the input and a hint; internal faults
//! (5xx) carry none and are logged here instead. Every status an operation can answer
//! is listed for it in `/openapi.json`.

use axum::http::header::ALLOW;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use weft_api::resource::Kind;

use crate::store::StoreError;

/// An API error response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct Error {
    code: StatusCode,
    reason: &'static str,
    message: String,
    details: Vec<Detail>,
    /// `405`: the methods the path serves, for the `Allow` header.
    allow: Option<String>,
}

/// One located problem in a request: a field path, and for `/v1/apply` the document
/// it is in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// 0-based index of the document in an apply body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// Kind of the object, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace of the object, when known and namespaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the object, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Field path, e.g. `spec.rules[1].backendRefs[0].weight`; empty for the whole
    /// document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    reason: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[Detail]>::is_empty")]
    details: &'a [Detail],
}

// === impl Error ===

impl Error {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Error {
            code,
            reason,
            message: message.into(),
            details: Vec::new(),
            allow: None,
        }
    }

    /// `400 Invalid`: the request or a document in it is wrong; `details` locate it.
    pub fn invalid(message: impl Into<String>, details: Vec<Detail>) -> Self {
        Error {
            details,
            ..Error::new(StatusCode::BAD_REQUEST, "Invalid", message)
        }
    }

    /// `400 Invalid` for one field.
    pub fn invalid_field(path: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Error::invalid(
            format!("{path}: {message}"),
            vec![Detail {
                path: path.to_owned(),
                message,
                ..Detail::default()
            }],
        )
    }

    /// `400 BadRequest`: a malformed query string or path.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// `400 BadRequest` for one parameter (`location` is `path` or `query`): the message
    /// names it; `problem` quotes the value and says what is allowed. The one detail's
    /// `path` is the parameter's name.
    pub fn invalid_parameter(location: &str, name: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Error {
            details: vec![Detail {
                path: name.to_owned(),
                message: problem.clone(),
                ..Detail::default()
            }],
            ..Error::bad_request(format!("{location} parameter {name}: {problem}"))
        }
    }

    /// `401 Unauthorized`: no credentials; the message says how to get them.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Error::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// `403 Forbidden`: credentials that grant nothing here.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Error::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// `404 NotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// `404 NotFound` for a path segment that names no kind; lists the known ones.
    pub fn unknown_kind(plural: &str) -> Self {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.plural()).collect();
        Error::not_found(format!(
            "no resource type {plural:?}; known types: {}",
            known.join(", ")
        ))
    }

    /// `409 AlreadyExists`: a create found the object.
    pub fn already_exists(message: impl Into<String>) -> Self {
        Error::new(StatusCode::CONFLICT, "AlreadyExists", message)
    }

    /// `409 Conflict`: the request contradicts the stored state; the message says how
    /// to proceed.
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// `405 MethodNotAllowed`: `path` exists but does not serve `method`; `allow` lists
    /// the methods it does (the `Allow` header), as `/openapi.json` documents them.
    pub fn method_not_allowed(method: &Method, path: &str, allow: &[&str]) -> Self {
        let allow = allow.join(", ");
        Error {
            allow: Some(allow.clone()),
            ..Error::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not supported on {path}; it serves {allow}"),
            )
        }
    }

    /// `406 NotAcceptable`: the `Accept` header names none of the types the operation
    /// answers in.
    pub fn not_acceptable(accept: &str, offered: &[&str]) -> Self {
        Error::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!(
                "Accept {accept:?} names no type this operation answers in; accept one of {}",
                offered.join(", ")
            ),
        )
    }

    /// `413 PayloadTooLarge`.
    pub fn too_large(limit: usize) -> Self {
        Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("request body exceeds {limit} bytes; split it into several requests"),
        )
    }

    /// `415 UnsupportedMediaType`.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "content type {content_type:?} is not supported; send application/json or application/yaml"
            ),
        )
    }

    /// `500 InternalError`: logged here, no detail sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "API internal error");
        Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "internal error; see the control plane's log",
        )
    }

    /// Adds details.
    #[must_use]
    pub fn with_details(mut self, details: Vec<Detail>) -> Self {
        self.details = details;
        self
    }

    /// The same error with another message.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The HTTP status.
    pub fn code(&self) -> StatusCode {
        self.code
    }

    /// The machine-readable reason, e.g. `Invalid`, `Conflict`.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The located problems (for `Invalid`).
    pub fn details(&self) -> &[Detail] {
        &self.details
    }

    /// The JSON body of this error.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(Envelope {
            error: Body {
                code: self.code.as_u16(),
                reason: self.reason,
                message: &self.message,
                details: &self.details,
            },
        })
        .unwrap_or(serde_json::Value::Null)
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => {
                Error::new(StatusCode::CONFLICT, "Conflict", error.to_string())
            }
            StoreError::NotFound(_) => Error::not_found(error.to_string()),
            StoreError::Compacted { .. } => {
                Error::new(StatusCode::GONE, "Expired", error.to_string())
            }
            StoreError::Database(_) | StoreError::Migrate(_) | StoreError::LowDiskSpace { .. } => {
                tracing::warn!(%error, "store unavailable");
                Error::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the store is unavailable; retry later",
                )
            }
            StoreError::Corrupt { .. } | StoreError::UnsafeDirectory { .. } => {
                Error::internal(&error)
            }
            StoreError::InBatch { source, .. } => Error::from(*source),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = (self.code, axum::Json(self.to_json())).into_response();
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(ALLOW, allow);
        }
        response
    }
}
