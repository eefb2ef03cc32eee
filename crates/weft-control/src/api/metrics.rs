//! `GET /metrics`: the control plane's own metrics ([`crate::metrics`]) in OpenMetrics
//! text, for Prometheus with an operator token of either role.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{ApiState, Error};

/// The content type of the exposition.
pub(super) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn handler(State(state): State<ApiState>) -> Response {
    match &state.metrics {
        Some(metrics) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            metrics.encode(),
        )
            .into_response(),
        None => {
            Error::not_found("this control plane keeps no metrics (an in-process API without them)")
                .into_response()
        }
    }
}
