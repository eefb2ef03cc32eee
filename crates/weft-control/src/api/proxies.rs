//! `/v1/proxies`: what the xDS server knows about each connected proxy, passed through
//! from the [`ProxyDirectory`](super::ProxyDirectory).

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::json;

use super::error::Error;
use super::extract::Segments;
use super::format::{Format, Reply};
use super::ApiState;

pub(super) async fn list(State(state): State<ApiState>, headers: HeaderMap) -> Reply {
    let items = state.proxies.list();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    Reply::ok(Format::of_response(&headers), &list)
}

pub(super) async fn get(
    State(state): State<ApiState>,
    Segments((namespace, name)): Segments<(String, String)>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    match state.proxies.get(&namespace, &name) {
        Some(proxy) => Ok(Reply::ok(Format::of_response(&headers), &proxy)),
        None => Err(Error::not_found(format!(
            "no proxy for workload {namespace}/{name} is connected; `weft get workloads -n {namespace}` shows registered workloads"
        ))),
    }
}
