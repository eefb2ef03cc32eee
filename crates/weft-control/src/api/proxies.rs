//! `/v1/proxies`: what the xDS server knows about each connected proxy, passed through
//! from the [`ProxyDirectory`](super::ProxyDirectory).

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::json;

use super::error::Error;
use super::extract::Segments;
use super::format::{Format, Reply};
use super::{params, ApiState};

pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    let format = Format::of_response(&headers)?;
    let items = state.proxies.list();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    Ok(Reply::ok(format, &list))
}

pub(super) async fn get(
    State(state): State<ApiState>,
    Segments((namespace, name)): Segments<(String, String)>,
    headers: HeaderMap,
) -> Result<Reply, Error> {
    params::check_label("namespace", &namespace)?;
    params::check_label("name", &name)?;
    let format = Format::of_response(&headers)?;
    match state.proxies.get(&namespace, &name) {
        Some(proxy) => Ok(Reply::ok(format, &proxy)),
        None => Err(Error::not_found(format!(
            "no proxy for workload {namespace}/{name} is connected; `weft get workloads -n {namespace}` shows registered workloads"
        ))),
    }
}
