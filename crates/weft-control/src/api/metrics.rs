//! `GET /metrics`: the control plane's own metrics ([`crate::metrics`]) in OpenMetrics
//! text, for Prometheus with an operator token of either role.
//!
//! A client that accepts only the older Prometheus text format (`text/plain`) gets the
//! same text under that type: its parser reads the OpenMetrics extras (`# UNIT`,
//! `# EOF`) as comments.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiState, Error};

/// The content type of the exposition.
pub(super) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The older Prometheus text format's type.
pub(super) const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn handler(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    let Some(metrics) = &state.metrics else {
        return Error::not_found(
            "this control plane keeps no metrics (an in-process API without them)",
        )
        .into_response();
    };
    match content_type(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())) {
        Ok(kind) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, kind)],
            metrics.encode(),
        )
            .into_response(),
        Err(accept) => {
            Error::not_acceptable(&accept, &["application/openmetrics-text", "text/plain"])
                .into_response()
        }
    }
}

/// The type to answer `accept` with, or `accept` itself when it allows neither.
fn content_type(accept: Option<&str>) -> Result<&'static str, String> {
    let Some(accept) = accept else {
        return Ok(OPENMETRICS);
    };
    let ranges: Vec<&str> = accept
        .split(',')
        .filter_map(|r| r.split(';').next())
        .map(str::trim)
        .collect();
    let allows = |t: &str| ranges.iter().any(|r| r.eq_ignore_ascii_case(t));
    if allows("application/openmetrics-text") || allows("*/*") || allows("application/*") {
        Ok(OPENMETRICS)
    } else if allows("text/plain") || allows("text/*") {
        Ok(TEXT)
    } else {
        Err(accept.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_and_plain_clients_get_a_type_they_accept_and_others_406() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (None, Ok(OPENMETRICS)),
            (Some(prometheus), Ok(OPENMETRICS)),
            (Some("text/plain"), Ok(TEXT)),
            (Some("text/*"), Ok(TEXT)),
            (Some("*/*"), Ok(OPENMETRICS)),
            (Some("application/json"), Err("application/json".to_owned())),
        ] {
            assert_eq!(content_type(accept), want, "{accept:?}");
        }
    }
}
