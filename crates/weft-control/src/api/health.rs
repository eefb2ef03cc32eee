//! `/healthz` (the process answers) and `/readyz` (the store answers too).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::ApiState;

pub(super) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub(super) async fn readyz(State(state): State<ApiState>) -> Response {
    let backend = state.store.backend();
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ok", "store": backend})).into_response(),
        Err(error) => {
            tracing::warn!(%error, backend, "readiness: store ping failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": {
                    "code": 503,
                    "reason": "NotReady",
                    "message": format!("the {backend} store does not answer: {error}"),
                }})),
            )
                .into_response()
        }
    }
}
