//! `/healthz` (the process answers) and `/readyz` (the store answers and can write).
//!
//! `/readyz` is `503` while the store does not answer, and while its writes fail (a
//! full disk): the reason names the database's error and what to do. It turns `200`
//! again by itself once a write (or the store's probe write, at most once a second)
//! succeeds; no restart is needed (ADR 0024).

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
    if let Err(error) = state.store.ping().await {
        tracing::warn!(%error, backend, "readiness: store ping failed");
        return not_ready(
            "NotReady",
            &format!("the {backend} store does not answer: {error}"),
        );
    }
    if let Some(failure) = state.store.write_failure().await {
        return not_ready(
            "StoreCannotWrite",
            &format!(
                "the {backend} store cannot write: {failure}; free disk space where the store \
                 keeps its data (or fix the database): writes resume without a restart"
            ),
        );
    }
    Json(json!({"status": "ok", "store": backend})).into_response()
}

fn not_ready(reason: &str, message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": {
            "code": 503,
            "reason": reason,
            "message": message,
        }})),
    )
        .into_response()
}
