//! The control plane's HTTP API (DESIGN §2, port 5681): REST over the [`Store`], in
//! JSON or YAML, Kubernetes-shaped.
//!
//! What it is: routing, content negotiation, validation (through `weft-policy`) and the
//! mapping of store outcomes to status codes. What it is not: the store itself, the
//! compiler, or the xDS server; those sit behind [`ApiState`]. The `weft` CLI is its
//! main client.
//!
//! `/openapi.json` is the exact contract: every status each operation can answer, the
//! parameter rules the server checks, the bodies it reads and writes (see [`openapi`]).
//!
//! Endpoints (every error is a JSON [`Error`] body):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz`, `/readyz` | liveness; readiness (store ping) |
//! | GET | `/openapi.json` | OpenAPI 3.1 document of this API |
//! | GET | `/metrics` | the control plane's metrics (OpenMetrics text) |
//! | GET | `/v1/stats` | live request statistics from the proxies (`?by=service\|workload\|route\|edge&window=60s`) |
//! | GET | `/v1/tap` | a live NDJSON stream of a workload's or service's requests (admin tokens only) |
//! | GET | `/gui`, `/gui/{file}` | the GUI's static files, no data in them ([`gui`]) |
//! | GET | `/v1/{plural}` | list a kind across namespaces (`?labelSelector=`, `?watch=true`, `?resourceVersion=`, `?timeoutSeconds=`) |
//! | GET, POST | `/v1/namespaces/{ns}/{plural}` | list, create |
//! | GET, PUT, DELETE | `/v1/namespaces/{ns}/{plural}/{name}` | read, replace, delete |
//! | POST | `/v1/meshes`; GET, PUT, DELETE `/v1/meshes/{name}` | the cluster-scoped `Mesh` |
//! | POST | `/v1/apply` | create or update many documents at once, all validated first |
//! | GET | `/v1/proxies`, `/v1/proxies/{ns}/{name}` | connected proxies, from [`ProxyDirectory`] |
//! | POST | `/v1/tokens/workload`, `/v1/tokens/revoke` | issue, revoke workload tokens ([`ApiState::tokens`]) |
//! | GET, POST | `/v1/tokens/operator`; DELETE `/v1/tokens/operator/{name}` | list, create, revoke operator tokens |
//!
//! With [`ApiState::admin`] set, every path but `/healthz`, `/readyz` and the GUI's
//! static files requires an operator token (`Authorization: Bearer …`), and every
//! method but `GET` and `HEAD` an admin one (see [`auth`]).

mod apply;
pub mod auth;
pub(crate) mod directory;
mod error;
mod extract;
mod format;
pub mod gui;
mod health;
mod metrics;
mod openapi;
mod operator_tokens;
mod params;
mod proxies;
mod resources;
mod secret;
pub mod selector;
mod stats;
mod timestamp;
mod tokens;
mod watch;

use std::sync::Arc;

use axum::http::{Method, Uri};
use axum::routing::{delete, get, post};
use axum::Router;

pub use self::auth::OperatorAuth;
pub use self::error::Error;
pub use self::openapi::openapi;
pub use self::tokens::DEFAULT_TOKEN_TTL;
use crate::identity::Tokens;
use crate::store::Store;

/// Largest request body accepted: 4 MiB. Larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The resource store.
    pub store: Arc<dyn Store>,
    /// Connected proxies, as the xDS server sees them.
    pub proxies: Arc<dyn ProxyDirectory>,
    /// Issues and revokes workload tokens; `None` answers `404` on `/v1/tokens/…`.
    pub tokens: Option<Arc<Tokens>>,
    /// Checks operator tokens and their roles on every route but `/healthz` and
    /// `/readyz`; `None` leaves the API open (in-process tests and tools only).
    pub admin: Option<Arc<OperatorAuth>>,
    /// The control plane's metrics, served at `/metrics`; `None` answers `404` there.
    pub metrics: Option<Arc<crate::metrics::ControlMetrics>>,
    /// The proxies' live statistics and taps, at `/v1/stats` and `/v1/tap`; `None`
    /// answers `404` there.
    pub stats: Option<Arc<crate::stats::Stats>>,
    /// Seals and opens `Secret` material; `None` refuses Secret writes, saying how to
    /// give the control plane a key.
    pub secrets: Option<Arc<crate::seal::Keyring>>,
}

/// Read access to the proxies connected to this control plane, implemented by the xDS
/// server. Each entry is a JSON document describing one proxy: its identity and
/// connection, the config last sent, the versions it ACKed and its last NACK with the
/// error. The API passes the documents through unchanged.
pub trait ProxyDirectory: Send + Sync {
    /// Every connected proxy.
    fn list(&self) -> Vec<serde_json::Value>;
    /// One proxy by the namespace and name of its workload, if connected.
    fn get(&self, namespace: &str, name: &str) -> Option<serde_json::Value>;
}

/// A [`ProxyDirectory`] with no proxies, for a control plane without an xDS server
/// (tests, tools).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProxies;

impl ProxyDirectory for NoProxies {
    fn list(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }

    fn get(&self, _namespace: &str, _name: &str) -> Option<serde_json::Value> {
        None
    }
}

/// The checks a write through the API runs on one object on its own, before anything
/// is stored: for a `Secret`, its material (chain, key, key matches the leaf, sizes;
/// errors name the field, never the value); for every other kind,
/// [`weft_policy::validate`]. What `weft check` and the docs' examples run, so they
/// refuse what the API refuses.
pub fn validate(object: &weft_api::resource::Object) -> Result<(), weft_policy::ValidationErrors> {
    if !secret::is_secret(object) {
        return weft_policy::validate(object);
    }
    secret::check(object).map(|_| ()).map_err(|problems| {
        weft_policy::ValidationErrors(
            problems
                .into_iter()
                .map(|(path, message)| weft_policy::FieldError { path, message })
                .collect(),
        )
    })
}

/// The API's routes over `state`. Serve it with `axum::serve`.
pub fn router(state: ApiState) -> Router {
    let admin = state.admin.clone();
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::handler))
        .route("/metrics", get(metrics::handler))
        .route("/v1/apply", post(apply::handler))
        .route("/v1/proxies", get(proxies::list))
        .route("/v1/proxies/{namespace}/{name}", get(proxies::get))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/tap", get(stats::tap))
        .route("/v1/tokens/workload", post(tokens::workload))
        .route("/v1/tokens/revoke", post(tokens::revoke))
        .route(
            "/v1/tokens/operator",
            get(operator_tokens::list).post(operator_tokens::create),
        )
        .route(
            "/v1/tokens/operator/{name}",
            delete(operator_tokens::revoke),
        )
        .route(
            "/v1/{plural}",
            get(resources::list_all).post(resources::create_cluster),
        )
        .route(
            "/v1/{plural}/{name}",
            get(resources::get_cluster)
                .put(resources::replace_cluster)
                .delete(resources::delete_cluster),
        )
        .route(
            "/v1/namespaces/{namespace}/{plural}",
            get(resources::list_namespaced).post(resources::create_namespaced),
        )
        .route(
            "/v1/namespaces/{namespace}/{plural}/{name}",
            get(resources::get_namespaced)
                .put(resources::replace_namespaced)
                .delete(resources::delete_namespaced),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    let router = match admin {
        Some(admin) => router.layer(axum::middleware::from_fn_with_state(
            admin,
            auth::require_operator,
        )),
        None => router,
    };
    // The GUI's shell holds no data (the browser reads it through the routes above,
    // with a token), so it is merged after the token check.
    router
        .merge(gui::router())
        .layer(axum::middleware::from_fn(format::read_first))
}

/// Fallback for paths no route matches.
async fn not_found(uri: Uri) -> error::Error {
    no_such_path(&uri)
}

fn no_such_path(uri: &Uri) -> error::Error {
    error::Error::not_found(format!(
        "no such path {}; see /openapi.json for the API",
        uri.path()
    ))
}

/// Fallback for a routed path with a method it does not serve: `405` with the methods
/// `/openapi.json` lists for the path, or `404` when the document has no such path (a
/// route pattern like `/v1/{plural}` also matches paths that name no kind).
async fn method_not_allowed(method: Method, uri: Uri) -> error::Error {
    match openapi::methods_of(uri.path()) {
        Some(allow) => error::Error::method_not_allowed(&method, uri.path(), &allow),
        None => no_such_path(&uri),
    }
}
