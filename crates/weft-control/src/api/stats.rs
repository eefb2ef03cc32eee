//! `GET /v1/stats` (live request statistics from the proxies' reports) and `GET
//! /v1/tap` (a live stream of the requests a workload's or a service's proxies see),
//! over [`crate::stats`].
//!
//! Stats need any operator token. A tap shows requests (paths, statuses, allowed
//! header values), so it needs an admin token, and each one is logged with who asked
//! and for what.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use weft_api::pb::v1 as pb;
use weft_api::resource::{Key, Kind};

use super::auth::Operator;
use super::format::{Format, Reply};
use super::{ApiState, Error};
use crate::stats::{By, ProxyKey, Stats};
use crate::store::Role;

/// Headers whose values a tap shows unless it names others.
pub(super) const DEFAULT_TAP_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "grpc-status",
    "x-request-id",
    ":authority",
];

/// What `window` may be: 1s to 300s, or 1m to 5m.
pub(super) const WINDOW_PATTERN: &str = "^(([1-9]|[1-9][0-9]|[12][0-9][0-9]|300)s|[1-5]m)$";

/// The longest a tap runs; a client that wants more starts another.
const TAP_MAX: Duration = Duration::from_secs(15 * 60);

/// The longest period a stats query may sum, seconds.
const MAX_WINDOW: Duration = crate::stats::KEEP;

fn hub(state: &ApiState) -> Result<&Arc<Stats>, Error> {
    state.stats.as_ref().ok_or_else(|| {
        Error::not_found(
            "this control plane keeps no live statistics (an in-process API without them)",
        )
    })
}

/// `GET /v1/stats?by=service|workload|route|edge&window=60s&namespace=NS`.
pub(super) async fn stats(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let format = match Format::of_response(&headers) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let hub = match hub(&state) {
        Ok(h) => h,
        Err(e) => return e.into_response(),
    };
    let by = params.get("by").map_or("service", String::as_str);
    let Some(by) = By::parse(by) else {
        return Error::invalid_parameter(
            "query",
            "by",
            format!("{by:?}: write service, workload, route or edge"),
        )
        .into_response();
    };
    let window = match params.get("window") {
        None => Duration::from_secs(60),
        Some(w) => match window(w) {
            Some(d) => d,
            None => {
                return Error::invalid_parameter(
                    "query",
                    "window",
                    format!("{w:?}: write 1s to 300s, or 1m to 5m (e.g. 60s, 5m)"),
                )
                .into_response()
            }
        },
    };
    let namespace = params.get("namespace").map(String::as_str);
    Reply::ok(format, &hub.query(by, window, namespace)).into_response()
}

/// `GET /v1/tap?workload=NS/NAME` or `?service=NAME.NS`, with `path`, `method`,
/// `status` (`503` or `5xx`), `caller`, `max_rps`, `headers` (a comma-separated
/// allow-list): NDJSON, one line per request, until the client goes away.
pub(super) async fn tap(
    State(state): State<ApiState>,
    operator: Option<Extension<Operator>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = super::format::accepts_ndjson(&headers) {
        return e.into_response();
    }
    match tap_checked(&state, operator.map(|Extension(o)| o), &params).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn tap_checked(
    state: &ApiState,
    operator: Option<Operator>,
    params: &HashMap<String, String>,
) -> Result<Response, Error> {
    if let Some(op) = &operator {
        if op.role != Role::Admin {
            return Err(Error::forbidden(format!(
                "the operator token {:?} has role {}; a tap shows requests, so it needs an \
                 admin token (`weft token admin create NAME --role admin`)",
                op.name, op.role
            )));
        }
    }
    let hub = hub(state)?.clone();
    let (proxies, service) = targets(state, params).await?;
    let (status_min, status_max) = match params.get("status").map(String::as_str) {
        None | Some("") => (0, 0),
        Some(s) => status_range(s).ok_or_else(|| {
            Error::invalid_parameter(
                "query",
                "status",
                format!("{s:?}: write a status (503) or a class (5xx)"),
            )
        })?,
    };
    let max_per_second = match params.get("max_rps") {
        None => 10,
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                Error::invalid_parameter("query", "max_rps", format!("{n:?}: write 1 to 1000"))
            })?,
    };
    let headers = params.get("headers").map_or_else(
        || {
            DEFAULT_TAP_HEADERS
                .iter()
                .map(|h| (*h).to_owned())
                .collect()
        },
        |h| {
            h.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .collect()
        },
    );
    let start = pb::TapStart {
        id: 0,
        path_prefix: params.get("path").cloned().unwrap_or_default(),
        method: params
            .get("method")
            .map(|m| m.to_ascii_uppercase())
            .unwrap_or_default(),
        status_min,
        status_max,
        caller: params.get("caller").cloned().unwrap_or_default(),
        max_per_second,
        headers,
        service: String::new(),
    };
    tracing::info!(
        operator = operator.as_ref().map_or("(open API)", |o| o.name.as_str()),
        proxies = ?proxies,
        service = ?service,
        path = %start.path_prefix,
        method = %start.method,
        "tap started"
    );
    let (id, events) = hub.start_tap(start, proxies);
    let guard = StopOnDrop { hub, id };
    let deadline = tokio::time::Instant::now() + TAP_MAX;
    // A service's tap is what its workloads serve: their own calls out are not the
    // service's requests.
    let inbound_only = service.is_some();
    let lines = futures::stream::unfold((events, guard), move |(mut events, guard)| async move {
        let event = loop {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .ok()??;
            if event.inbound || !inbound_only {
                break event;
            }
        };
        let mut line = serde_json::to_vec(&event_json(&event)).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(line), (events, guard)))
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Stops the tap when its response stream is dropped (the client went away).
struct StopOnDrop {
    hub: Arc<Stats>,
    id: u64,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.hub.stop_tap(self.id);
        tracing::info!(tap = self.id, "tap stopped");
    }
}

/// The proxies a tap covers: a workload's own, or those of the workloads a service
/// selects.
async fn targets(
    state: &ApiState,
    params: &HashMap<String, String>,
) -> Result<(Vec<ProxyKey>, Option<String>), Error> {
    match (params.get("workload"), params.get("service")) {
        (Some(w), None) => {
            let (ns, name) = w.split_once('/').unwrap_or(("default", w.as_str()));
            let key = Key {
                kind: Kind::Workload,
                namespace: ns.to_owned(),
                name: name.to_owned(),
            };
            if state
                .store
                .get(&key)
                .await
                .map_err(|e| Error::internal(&e))?
                .is_none()
            {
                return Err(Error::not_found(format!(
                    "no workload {name} in namespace {ns}: `weft get workloads -A` lists them"
                )));
            }
            Ok((vec![(ns.to_owned(), name.to_owned())], None))
        }
        (None, Some(s)) => {
            let (name, ns) = s.split_once('.').unwrap_or((s.as_str(), "default"));
            let key = Key {
                kind: Kind::Service,
                namespace: ns.to_owned(),
                name: name.to_owned(),
            };
            let service = state
                .store
                .get(&key)
                .await
                .map_err(|e| Error::internal(&e))?
                .ok_or_else(|| Error::not_found(format!("no service {name} in namespace {ns}")))?;
            let selector: std::collections::BTreeMap<String, String> = service
                .spec
                .get("selector")
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default();
            let (workloads, _) = state
                .store
                .list(Some(Kind::Workload), Some(ns))
                .await
                .map_err(|e| Error::internal(&e))?;
            let proxies = workloads
                .into_iter()
                .filter(|w| {
                    !selector.is_empty()
                        && selector
                            .iter()
                            .all(|(k, v)| w.metadata.labels.get(k) == Some(v))
                })
                .map(|w| (ns.to_owned(), w.metadata.name))
                .collect::<Vec<_>>();
            if proxies.is_empty() {
                return Err(Error::not_found(format!(
                    "service {name} in namespace {ns} selects no workloads: nothing to tap"
                )));
            }
            Ok((proxies, Some(format!("{name}.{ns}"))))
        }
        _ => Err(Error::bad_request(
            "name what to tap: ?workload=NAMESPACE/NAME or ?service=NAME.NAMESPACE (one of them)",
        )),
    }
}

/// A `window`: whole seconds (1s to 300s) or minutes (1m to 5m), as
/// [`WINDOW_PATTERN`] says.
fn window(w: &str) -> Option<Duration> {
    let (n, unit) = if let Some(n) = w.strip_suffix('s') {
        (n, 1)
    } else {
        (w.strip_suffix('m')?, 60)
    };
    if n.starts_with('0') {
        return None;
    }
    let n: u64 = n.parse().ok()?;
    Some(Duration::from_secs(n * unit))
        .filter(|d| (1..=MAX_WINDOW.as_secs()).contains(&d.as_secs()))
}

/// `503` → (503, 503); `5xx` → (500, 599).
fn status_range(s: &str) -> Option<(u32, u32)> {
    if let Some(class) = s.strip_suffix("xx") {
        let c: u32 = class.parse().ok().filter(|c| (1..=5).contains(c))?;
        return Some((c * 100, c * 100 + 99));
    }
    s.parse::<u32>()
        .ok()
        .filter(|c| (100..=599).contains(c))
        .map(|c| (c, c))
}

fn event_json(e: &pb::TapEvent) -> serde_json::Value {
    let time = std::time::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(e.time_unix_ms).unwrap_or_default());
    serde_json::json!({
        "time": humantime::format_rfc3339_millis(time).to_string(),
        "direction": if e.inbound { "inbound" } else { "outbound" },
        "method": e.method,
        "authority": e.authority,
        "path": e.path,
        "status": e.status,
        "grpc_status": e.grpc_status,
        "duration_ms": (e.duration_ms * 1000.0).round() / 1000.0,
        "source_identity": e.source_identity,
        "destination_identity": e.destination_identity,
        "destination_workload": e.destination_workload,
        "destination_service": e.destination_service,
        "request_headers": e.request_headers,
        "response_headers": e.response_headers,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// What the handler accepts is exactly what the document's pattern says.
    #[test]
    fn windows_are_what_the_documented_pattern_allows() {
        let pattern = regex::Regex::new(WINDOW_PATTERN).unwrap();
        for w in [
            "1s", "60s", "300s", "1m", "5m", "0s", "301s", "6m", "05s", "", "s", "1h", "10ms",
            "1.5s",
        ] {
            assert_eq!(window(w).is_some(), pattern.is_match(w), "{w}");
        }
        assert_eq!(window("5m"), Some(Duration::from_secs(300)));
    }

    #[test]
    fn statuses_and_classes_become_inclusive_ranges() {
        assert_eq!(status_range("503"), Some((503, 503)));
        assert_eq!(status_range("5xx"), Some((500, 599)));
        assert_eq!(status_range("2xx"), Some((200, 299)));
        for bad in ["6xx", "0xx", "99", "600", "abc", "xx"] {
            assert_eq!(status_range(bad), None, "{bad}");
        }
    }
}
