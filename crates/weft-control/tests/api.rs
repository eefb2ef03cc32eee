//! The HTTP API end to end over an in-memory store: CRUD of every kind in JSON and
//! YAML, validation and concurrency errors, apply, label selectors, watch, OpenAPI,
//! limits, the proxy directory, workload tokens, and the server's side of the
//! `/openapi.json` contract (parameters, content negotiation, `Allow`).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "support/memory_store.rs"]
mod memory_store;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use weft_api::resource::Kind;
use weft_control::api::{self, ApiState, OperatorAuth, ProxyDirectory};
use weft_control::identity::Tokens;
use weft_control::store::{OperatorToken, Role, Store};
use weft_tls::token::TokenKey;

use memory_store::MemoryStore;

const YAML: &str = "application/yaml";
const JSON: &str = "application/json";

struct Api {
    router: Router,
    store: Arc<MemoryStore>,
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

struct OneProxy;

impl ProxyDirectory for OneProxy {
    fn list(&self) -> Vec<Value> {
        vec![json!({"namespace": "default", "name": "web-1", "lastNack": null})]
    }

    fn get(&self, namespace: &str, name: &str) -> Option<Value> {
        (namespace == "default" && name == "web-1")
            .then(|| json!({"namespace": "default", "name": "web-1", "lastNack": null}))
    }
}

impl Api {
    fn new() -> Api {
        let store = Arc::new(MemoryStore::default());
        let router = api::router(ApiState {
            store: store.clone(),
            proxies: Arc::new(OneProxy),
            tokens: None,
            admin: None,
        });
        Api { router, store }
    }

    /// The API with a workload token issuer for `cluster.local`.
    fn with_tokens() -> Api {
        let store = Arc::new(MemoryStore::default());
        let tokens = Tokens::new(
            TokenKey::generate().unwrap(),
            store.clone(),
            "cluster.local",
        );
        let router = api::router(ApiState {
            store: store.clone(),
            proxies: Arc::new(OneProxy),
            tokens: Some(Arc::new(tokens)),
            admin: None,
        });
        Api { router, store }
    }

    /// The API requiring operator tokens, with `token` as its `bootstrap` admin token.
    async fn with_admin(token: &str) -> Api {
        let store = Arc::new(MemoryStore::default());
        add_operator_token(&*store, "bootstrap", Role::Admin, token, None).await;
        Api::sharing(store, api::auth::REFRESH_INTERVAL)
    }

    /// Another instance on `store`, re-reading operator tokens every `refresh`, with a
    /// workload token issuer.
    fn sharing(store: Arc<MemoryStore>, refresh: Duration) -> Api {
        let tokens = Tokens::new(
            TokenKey::generate().unwrap(),
            store.clone(),
            "cluster.local",
        );
        let router = api::router(ApiState {
            store: store.clone(),
            proxies: Arc::new(OneProxy),
            tokens: Some(Arc::new(tokens)),
            admin: Some(Arc::new(
                OperatorAuth::new(store.clone()).with_refresh(refresh),
            )),
        });
        Api { router, store }
    }

    /// `method path` with `Authorization: Bearer token` and a JSON body, if any.
    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", JSON)
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Creates operator token `name` with `role` through the API as `admin`.
    async fn create_operator_token(&self, admin: &str, name: &str, role: &str) -> Value {
        let answer = self
            .call(
                Method::POST,
                "/v1/tokens/operator",
                admin,
                Some(json!({"name": name, "role": role})),
            )
            .await;
        answer.expect(StatusCode::CREATED);
        answer.json()
    }

    /// `GET path` with `authorization` as the `Authorization` header, if any: the
    /// status, the `WWW-Authenticate` header and the body.
    async fn get_as(&self, path: &str, authorization: Option<&str>) -> (StatusCode, String, Bytes) {
        let mut request = Request::builder().uri(path).header("accept", JSON);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, challenge, body)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        accept: &str,
        body: String,
    ) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .header("accept", accept)
            .body(Body::from(body))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            body,
        }
    }

    async fn json(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.send(method, path, JSON, JSON, body.to_string()).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, JSON, JSON, String::new())
            .await
    }

    async fn apply(&self, yaml: &str) -> Reply {
        self.send(Method::POST, "/v1/apply", YAML, JSON, yaml.to_owned())
            .await
    }
}

/// An answer to [`Api::call`].
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[track_caller]
    fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// Stores operator token `name` for the plaintext `token`, as the API would.
async fn add_operator_token(
    store: &dyn Store,
    name: &str,
    role: Role,
    token: &str,
    expires_at: Option<std::time::SystemTime>,
) {
    let seed = api::auth::hash_hex(name);
    let created = store
        .create_operator_token(
            &OperatorToken {
                id: seed[..32].to_owned(),
                name: name.into(),
                role,
                hash: api::auth::hash_hex(token),
                created_at: std::time::SystemTime::now(),
                expires_at,
                revoked_at: None,
            },
            false,
        )
        .await
        .unwrap();
    assert!(created);
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn yaml(&self) -> Value {
        serde_saphyr::from_slice(&self.body).unwrap()
    }

    #[track_caller]
    fn expect(&self, status: StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// A valid spec per kind.
fn spec(kind: Kind) -> Value {
    match kind {
        Kind::Mesh => json!({"trustDomain": "weft.local", "mtls": {"mode": "strict"}}),
        Kind::Service => json!({
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "http"}]
        }),
        Kind::Workload => json!({
            "address": "127.0.0.10",
            "serviceAccount": "web",
            "ports": [{"port": 8080}]
        }),
        Kind::HttpRoute | Kind::GrpcRoute | Kind::TcpRoute => json!({
            "parentRefs": [{"kind": "Service", "name": "web"}],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]
        }),
        Kind::BackendPolicy => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "loadBalancer": {"type": "roundRobin"}
        }),
        Kind::RateLimit => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "limits": [{"requests": 10}]
        }),
        Kind::FaultInjection => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "abort": {"percent": 1.0}
        }),
    }
}

/// The same spec, changed.
fn other_spec(kind: Kind) -> Value {
    match kind {
        Kind::Mesh => json!({"trustDomain": "example.org", "mtls": {"mode": "permissive"}}),
        Kind::Service => {
            json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 81}]})
        }
        Kind::Workload => {
            json!({"address": "127.0.0.11", "serviceAccount": "web", "ports": [{"port": 8080}]})
        }
        Kind::HttpRoute | Kind::GrpcRoute | Kind::TcpRoute => json!({
            "parentRefs": [{"kind": "Service", "name": "web"}],
            "rules": [{"backendRefs": [{"name": "web", "port": 81}]}]
        }),
        Kind::BackendPolicy => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "loadBalancer": {"type": "leastRequest"}
        }),
        Kind::RateLimit => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "limits": [{"requests": 20, "per": "1m"}]
        }),
        Kind::FaultInjection => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "delay": {"percent": 5.0, "fixedDelay": "1s"}
        }),
    }
}

#[allow(clippy::needless_pass_by_value)] // reads better at the call sites
fn object(kind: Kind, name: &str, spec: Value) -> Value {
    let mut metadata = json!({"name": name, "labels": {"app": "web"}});
    if kind.namespaced() {
        metadata["namespace"] = json!("default");
    }
    json!({"apiVersion": kind.api_version(), "kind": kind.as_str(), "metadata": metadata, "spec": spec})
}

/// The name objects of `kind` get in round trips: there is one `Mesh`, `default`.
fn name_for(kind: Kind) -> &'static str {
    if kind == Kind::Mesh {
        "default"
    } else {
        "web"
    }
}

fn collection(kind: Kind) -> String {
    if kind.namespaced() {
        format!("/v1/namespaces/default/{}", kind.plural())
    } else {
        format!("/v1/{}", kind.plural())
    }
}

fn item(kind: Kind, name: &str) -> String {
    format!("{}/{name}", collection(kind))
}

fn service(name: &str, namespace: &str, labels: &Value) -> Value {
    json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec(Kind::Service)
    })
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_kind_round_trips_in_json() {
    let api = Api::new();
    for kind in Kind::ALL {
        let name = name_for(kind);
        let created = api
            .json(
                Method::POST,
                &collection(kind),
                &object(kind, name, spec(kind)),
            )
            .await;
        let created = created.expect(StatusCode::CREATED).json();
        assert_eq!(created["spec"], spec(kind), "{kind}");
        assert_eq!(created["metadata"]["generation"], 1, "{kind}");
        let version = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();

        let read = api.get(&item(kind, name)).await;
        assert_eq!(read.expect(StatusCode::OK).json(), created, "{kind}");

        let mut changed = object(kind, name, other_spec(kind));
        changed["metadata"]["resourceVersion"] = json!(version);
        let replaced = api.json(Method::PUT, &item(kind, name), &changed).await;
        let replaced = replaced.expect(StatusCode::OK).json();
        assert_eq!(replaced["spec"], other_spec(kind), "{kind}");
        assert_eq!(replaced["metadata"]["generation"], 2, "{kind}");

        let deleted = api
            .send(Method::DELETE, &item(kind, name), JSON, JSON, String::new())
            .await;
        assert_eq!(
            deleted.expect(StatusCode::OK).json()["spec"],
            other_spec(kind)
        );
        api.get(&item(kind, name))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn every_kind_round_trips_in_yaml() {
    let api = Api::new();
    for kind in Kind::ALL {
        let name = name_for(kind);
        let yaml = serde_saphyr::to_string(&object(kind, name, spec(kind))).unwrap();
        let created = api
            .send(Method::POST, &collection(kind), YAML, YAML, yaml)
            .await;
        created.expect(StatusCode::CREATED);
        assert_eq!(created.content_type, YAML);
        let created = created.yaml();
        assert_eq!(created["spec"], spec(kind), "{kind}");

        let read = api
            .send(Method::GET, &item(kind, name), YAML, YAML, String::new())
            .await;
        assert_eq!(read.expect(StatusCode::OK).yaml(), created, "{kind}");

        let mut changed = object(kind, name, other_spec(kind));
        changed["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"].clone();
        let yaml = serde_saphyr::to_string(&changed).unwrap();
        let replaced = api
            .send(
                Method::PUT,
                &item(kind, name),
                "application/x-yaml",
                YAML,
                yaml,
            )
            .await;
        assert_eq!(
            replaced.expect(StatusCode::OK).yaml()["spec"],
            other_spec(kind),
            "{kind}"
        );

        let deleted = api
            .send(Method::DELETE, &item(kind, name), YAML, YAML, String::new())
            .await;
        assert_eq!(
            deleted.expect(StatusCode::OK).yaml()["metadata"]["name"],
            name
        );
        api.get(&item(kind, name))
            .await
            .expect(StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn single_object_writes_refuse_repeated_keys_as_apply_does() {
    let api = Api::new();
    let json = r#"{"apiVersion": "weft.dev/v1alpha1", "kind": "Service",
        "metadata": {"name": "web", "name": "other"}, "spec": {}}"#;
    let yaml = "apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata:\n  name: web\n  name: other\nspec: {}\n";
    for (content_type, body) in [("application/json", json), ("application/yaml", yaml)] {
        for (method, path) in [
            (Method::POST, "/v1/namespaces/default/services"),
            (Method::PUT, "/v1/namespaces/default/services/web"),
        ] {
            let reply = api
                .send(
                    method.clone(),
                    path,
                    content_type,
                    "application/json",
                    body.to_owned(),
                )
                .await;
            let error = reply.expect(StatusCode::BAD_REQUEST).json();
            let message = error["error"]["message"].as_str().unwrap().to_lowercase();
            assert!(
                message.contains("duplicate")
                    || message.contains("repeats the key `metadata.name`"),
                "{method} {content_type}: {message}"
            );
        }
    }
    let applied = api.apply(yaml).await;
    applied.expect(StatusCode::BAD_REQUEST);
    api.get("/v1/namespaces/default/services/web")
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn post_of_an_existing_object_is_409_already_exists() {
    let api = Api::new();
    let body = object(Kind::Service, "web", spec(Kind::Service));
    api.json(Method::POST, "/v1/namespaces/default/services", &body)
        .await
        .expect(StatusCode::CREATED);
    let again = api
        .json(Method::POST, "/v1/namespaces/default/services", &body)
        .await;
    let error = again.expect(StatusCode::CONFLICT).json();
    assert_eq!(error["error"]["reason"], "AlreadyExists");
    assert_eq!(error["error"]["code"], 409);
}

#[tokio::test]
async fn put_with_a_stale_resource_version_is_409() {
    let api = Api::new();
    let path = "/v1/namespaces/default/services/web";
    let first = api
        .json(
            Method::PUT,
            path,
            &object(Kind::Service, "web", spec(Kind::Service)),
        )
        .await;
    let stale = first.expect(StatusCode::CREATED).json()["metadata"]["resourceVersion"].clone();
    api.json(
        Method::PUT,
        path,
        &object(Kind::Service, "web", other_spec(Kind::Service)),
    )
    .await
    .expect(StatusCode::OK);

    let mut late = object(Kind::Service, "web", spec(Kind::Service));
    late["metadata"]["resourceVersion"] = stale;
    let error = api
        .json(Method::PUT, path, &late)
        .await
        .expect(StatusCode::CONFLICT)
        .json();
    assert_eq!(error["error"]["reason"], "Conflict");
    let current = api.get(path).await.json();
    assert_eq!(
        current["spec"],
        other_spec(Kind::Service),
        "the stale write must not land"
    );
}

#[tokio::test]
async fn put_without_resource_version_creates_then_replaces() {
    let api = Api::new();
    let path = "/v1/meshes/default";
    api.json(
        Method::PUT,
        path,
        &object(Kind::Mesh, "default", spec(Kind::Mesh)),
    )
    .await
    .expect(StatusCode::CREATED);
    let replaced = api
        .json(
            Method::PUT,
            path,
            &object(Kind::Mesh, "default", other_spec(Kind::Mesh)),
        )
        .await;
    assert_eq!(
        replaced.expect(StatusCode::OK).json()["spec"],
        other_spec(Kind::Mesh)
    );
}

#[tokio::test]
async fn body_disagreeing_with_the_path_is_400_naming_the_field() {
    let api = Api::new();
    let body = object(Kind::Service, "web", spec(Kind::Service));
    let cases = [
        (
            Method::PUT,
            "/v1/namespaces/default/services/api",
            "metadata.name",
        ),
        (
            Method::PUT,
            "/v1/namespaces/prod/services/web",
            "metadata.namespace",
        ),
        (Method::POST, "/v1/namespaces/default/workloads", "kind"),
    ];
    for (method, path, field) in cases {
        let error = api
            .json(method, path, &body)
            .await
            .expect(StatusCode::BAD_REQUEST)
            .json();
        assert_eq!(error["error"]["reason"], "Invalid", "{path}");
        assert_eq!(error["error"]["details"][0]["path"], field, "{path}");
    }
    let mut wrong_version = body.clone();
    wrong_version["apiVersion"] = json!("gateway.networking.k8s.io/v1");
    let error = api
        .json(
            Method::POST,
            "/v1/namespaces/default/services",
            &wrong_version,
        )
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    assert_eq!(error["error"]["details"][0]["path"], "apiVersion");
}

#[tokio::test]
async fn namespace_left_out_of_the_body_is_taken_from_the_path() {
    let api = Api::new();
    let mut body = object(Kind::Service, "web", spec(Kind::Service));
    body["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let created = api
        .json(Method::POST, "/v1/namespaces/prod/services", &body)
        .await;
    assert_eq!(
        created.expect(StatusCode::CREATED).json()["metadata"]["namespace"],
        "prod"
    );
    api.get("/v1/namespaces/prod/services/web")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn status_in_a_request_body_is_ignored() {
    let api = Api::new();
    let mut body = object(Kind::Workload, "web-1", spec(Kind::Workload));
    body["status"] = json!({"phase": "Healthy"});
    let created = api
        .json(Method::POST, "/v1/namespaces/default/workloads", &body)
        .await;
    let created = created.expect(StatusCode::CREATED).json();
    assert!(created.get("status").is_none(), "{created}");
}

#[tokio::test]
async fn invalid_spec_is_400_with_the_field_path() {
    let api = Api::new();
    let mut body = object(Kind::HttpRoute, "web", spec(Kind::HttpRoute));
    body["spec"]["rules"][0]["backendRefs"][0]["wieght"] = json!(10);
    let error = api
        .json(Method::POST, "/v1/namespaces/default/httproutes", &body)
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    let details = error["error"]["details"].as_array().unwrap();
    assert!(
        details.iter().any(|d| d["path"]
            .as_str()
            .unwrap()
            .starts_with("spec.rules[0].backendRefs[0]")),
        "{error}"
    );
    api.get("/v1/namespaces/default/httproutes/web")
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_kind_is_404_listing_the_known_kinds() {
    let api = Api::new();
    for path in ["/v1/gizmos", "/v1/namespaces/default/gizmos/x"] {
        let error = api.get(path).await.expect(StatusCode::NOT_FOUND).json();
        let message = error["error"]["message"].as_str().unwrap();
        for kind in Kind::ALL {
            assert!(message.contains(kind.plural()), "{message}");
        }
    }
}

#[tokio::test]
async fn errors_are_json_for_unknown_paths_methods_and_media_types() {
    let api = Api::new();
    let missing = api.get("/nope").await;
    assert_eq!(
        missing.expect(StatusCode::NOT_FOUND).json()["error"]["code"],
        404
    );
    let patch = api
        .send(
            Method::PATCH,
            "/v1/meshes/default",
            JSON,
            JSON,
            String::new(),
        )
        .await;
    assert_eq!(
        patch.expect(StatusCode::METHOD_NOT_ALLOWED).json()["error"]["code"],
        405
    );
    let text = api
        .send(
            Method::POST,
            "/v1/namespaces/default/services",
            "text/plain",
            JSON,
            "x".into(),
        )
        .await;
    assert_eq!(
        text.expect(StatusCode::UNSUPPORTED_MEDIA_TYPE).json()["error"]["code"],
        415
    );
    let bad_query = api.get("/v1/services?labelSelector=app%20in%20(a)").await;
    assert_eq!(
        bad_query.expect(StatusCode::BAD_REQUEST).json()["error"]["code"],
        400
    );
    let cluster_path = api.get("/v1/namespaces/default/meshes").await;
    cluster_path.expect(StatusCode::NOT_FOUND).json();
}

#[tokio::test]
async fn list_filters_by_label_selector() {
    let api = Api::new();
    let objects = [
        ("web", json!({"app": "web", "tier": "fe", "env": "prod"})),
        ("db", json!({"app": "db", "tier": "db", "env": "prod"})),
        ("web-canary", json!({"app": "web", "tier": "fe"})),
    ];
    for (name, labels) in objects {
        api.json(
            Method::POST,
            "/v1/namespaces/default/services",
            &service(name, "default", &labels),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let cases = [
        ("app=web", vec!["web", "web-canary"]),
        ("tier!=db", vec!["web", "web-canary"]),
        ("env", vec!["db", "web"]),
        ("app=web,env", vec!["web"]),
        ("app%3Dweb%2C!env", vec!["web-canary"]),
    ];
    for (selector, want) in cases {
        let list = api
            .get(&format!(
                "/v1/namespaces/default/services?labelSelector={selector}"
            ))
            .await;
        assert_eq!(
            names(&list.expect(StatusCode::OK).json()),
            want,
            "{selector}"
        );
    }
}

#[tokio::test]
async fn list_is_a_versioned_envelope_across_or_within_namespaces() {
    let api = Api::new();
    for ns in ["default", "prod"] {
        api.json(
            Method::POST,
            &format!("/v1/namespaces/{ns}/services"),
            &service("web", ns, &json!({})),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let all = api.get("/v1/services").await.expect(StatusCode::OK).json();
    assert_eq!(all["apiVersion"], "v1");
    assert_eq!(all["kind"], "List");
    assert_eq!(all["metadata"]["resourceVersion"], "2");
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let prod = api.get("/v1/namespaces/prod/services").await.json();
    assert_eq!(prod["items"][0]["metadata"]["namespace"], "prod");
    assert_eq!(prod["items"].as_array().unwrap().len(), 1);
    let yaml = api
        .send(Method::GET, "/v1/services", JSON, YAML, String::new())
        .await;
    assert_eq!(yaml.yaml()["kind"], "List");
}

const TWO_DOCUMENTS: &str = "\
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - name: http
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: default
spec:
  parentRefs:
    - kind: Service
      name: web
  rules:
    - backendRefs:
        - name: web
          port: 80
";

#[tokio::test]
async fn apply_twice_reports_created_then_unchanged() {
    let api = Api::new();
    let first = api.apply(TWO_DOCUMENTS).await.expect(StatusCode::OK).json();
    let results: Vec<&str> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["created", "created"], "{first}");
    assert_eq!(first["results"][0]["kind"], "Service");
    assert_eq!(first["results"][0]["namespace"], "default");
    assert_eq!(first["results"][1]["resourceVersion"], "2");

    let second = api.apply(TWO_DOCUMENTS).await.expect(StatusCode::OK).json();
    assert_eq!(second["results"][0]["result"], "unchanged");
    assert_eq!(second["results"][1]["result"], "unchanged");

    let changed = TWO_DOCUMENTS.replace("port: 80\n---", "port: 81\n---");
    let third = api.apply(&changed).await.expect(StatusCode::OK).json();
    assert_eq!(third["results"][0]["result"], "configured");
    assert_eq!(third["results"][1]["result"], "unchanged");
}

#[tokio::test]
async fn apply_with_an_invalid_document_writes_nothing_and_lists_every_error() {
    let api = Api::new();
    let broken = format!(
        "{TWO_DOCUMENTS}---\napiVersion: weft.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: web-1\nspec:\n  adress: 127.0.0.1\n"
    );
    let error = api
        .apply(&broken)
        .await
        .expect(StatusCode::BAD_REQUEST)
        .json();
    let detail = &error["error"]["details"][0];
    assert_eq!(detail["document"], 2, "{error}");
    assert_eq!(detail["kind"], "Workload");
    assert_eq!(detail["name"], "web-1");
    assert!(
        detail["path"].as_str().unwrap().starts_with("spec"),
        "{error}"
    );
    let services = api.get("/v1/services").await.json();
    assert!(
        names(&services).is_empty(),
        "nothing may be written: {services}"
    );
}

#[tokio::test]
async fn apply_with_a_stale_resource_version_is_409() {
    let api = Api::new();
    api.apply(TWO_DOCUMENTS).await.expect(StatusCode::OK);
    let stale = TWO_DOCUMENTS.replacen(
        "  name: web\n",
        "  name: web\n  resourceVersion: \"99\"\n",
        1,
    );
    let error = api.apply(&stale).await.expect(StatusCode::CONFLICT).json();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("document 0"),
        "{error}"
    );
}

#[tokio::test]
async fn apply_accepts_json() {
    let api = Api::new();
    let body = json!([object(Kind::Mesh, "default", spec(Kind::Mesh))]).to_string();
    let reply = api.send(Method::POST, "/v1/apply", JSON, JSON, body).await;
    assert_eq!(
        reply.expect(StatusCode::OK).json()["results"][0]["result"],
        "created"
    );
}

#[tokio::test]
async fn openapi_lists_every_kinds_paths() {
    let api = Api::new();
    let document = api.get("/openapi.json").await.expect(StatusCode::OK).json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for kind in Kind::ALL {
        let plural = kind.plural();
        let expected = if kind.namespaced() {
            vec![
                format!("/v1/{plural}"),
                format!("/v1/namespaces/{{namespace}}/{plural}"),
                format!("/v1/namespaces/{{namespace}}/{plural}/{{name}}"),
            ]
        } else {
            vec![format!("/v1/{plural}"), format!("/v1/{plural}/{{name}}")]
        };
        for path in expected {
            assert!(paths.contains_key(&path), "missing {path}");
        }
        assert!(
            document["components"]["schemas"][kind.as_str()].is_object(),
            "{kind}"
        );
    }
    for path in ["/v1/apply", "/v1/proxies", "/healthz", "/readyz"] {
        assert!(paths.contains_key(path), "missing {path}");
    }
}

#[tokio::test]
async fn openapi_describes_each_spec_and_every_reference_resolves() {
    fn refs<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", serde_json::Value::String(target)) => out.push(target),
                        _ => refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let api = Api::new();
    let document = api.get("/openapi.json").await.expect(StatusCode::OK).json();
    let schemas = &document["components"]["schemas"];
    // The Service spec is typed: its fields are listed, ports refer to a definition.
    let service = &schemas["Service"]["properties"]["spec"];
    for field in ["selector", "ports", "vip"] {
        assert!(
            service["properties"][field].is_object(),
            "Service spec lacks {field}: {service}"
        );
    }
    assert!(
        service["properties"]["loadBalancer"].is_null(),
        "moved to BackendPolicy: {service}"
    );
    // exportTo: a non-empty list of `*`, `.` or namespace names, described.
    let mesh = &schemas["Mesh"]["properties"]["spec"]["properties"]["defaultExportTo"];
    for export_to in [&service["properties"]["exportTo"], mesh] {
        assert_eq!(export_to["minItems"], 1, "{export_to}");
        assert_eq!(
            export_to["items"]["pattern"],
            weft_api::resource::service::EXPORT_PATTERN,
            "{export_to}"
        );
        assert!(
            export_to["description"]
                .as_str()
                .is_some_and(|d| d.contains("namespace")),
            "{export_to}"
        );
    }
    assert!(schemas["HTTPRoute"]["properties"]["spec"]["properties"]["rules"].is_object());
    let policy = &schemas["BackendPolicy"]["properties"]["spec"]["properties"];
    for field in [
        "targetRefs",
        "loadBalancer",
        "outlierDetection",
        "healthCheck",
    ] {
        assert!(
            policy[field].is_object(),
            "BackendPolicy spec lacks {field}"
        );
    }
    let mut all = Vec::new();
    refs(&document, &mut all);
    assert!(!all.is_empty());
    for target in all {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("reference outside components: {target}"));
        assert!(schemas[name].is_object(), "dangling reference {target}");
    }
}

#[tokio::test]
async fn readyz_is_503_while_the_store_does_not_answer() {
    let api = Api::new();
    api.get("/healthz").await.expect(StatusCode::OK);
    api.get("/readyz").await.expect(StatusCode::OK);
    api.store.set_unreachable(true);
    let error = api
        .get("/readyz")
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE)
        .json();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory"),
        "{error}"
    );
    api.get("/healthz").await.expect(StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_503_naming_the_cause_while_the_store_cannot_write() {
    let api = Api::new();
    api.store
        .set_write_failure(Some("(code: 13) database or disk is full"));
    let error = api
        .get("/readyz")
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE)
        .json();
    assert_eq!(error["error"]["reason"], "StoreCannotWrite", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("disk is full"), "{message}");
    assert!(message.contains("free disk space"), "{message}");
    api.store.set_write_failure(None);
    api.get("/readyz").await.expect(StatusCode::OK);
}

#[tokio::test]
async fn proxies_come_from_the_directory_and_unknown_ones_are_404() {
    let api = Api::new();
    let list = api.get("/v1/proxies").await.expect(StatusCode::OK).json();
    assert_eq!(list["items"][0]["name"], "web-1");
    let one = api
        .get("/v1/proxies/default/web-1")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(one["namespace"], "default");
    let error = api
        .get("/v1/proxies/default/nope")
        .await
        .expect(StatusCode::NOT_FOUND)
        .json();
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("default/nope"));
}

// === over a socket ===

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Reads watch events (one JSON object per line) until `count` arrived.
async fn next_events(
    body: &mut hyper::body::Incoming,
    buffer: &mut String,
    count: usize,
) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            events.push(serde_json::from_str(&line).unwrap());
            if events.len() == count {
                return events;
            }
        }
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("watch event within 5s")
            .expect("stream open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
}

async fn watch(addr: std::net::SocketAddr, query: &str) -> hyper::body::Incoming {
    let uri = format!("http://{addr}/v1/namespaces/default/services?watch=true{query}");
    let response = client().get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    response.into_body()
}

#[tokio::test]
async fn watch_streams_existing_objects_then_each_write() {
    let api = Api::new();
    api.json(
        Method::POST,
        "/v1/namespaces/default/services",
        &service("web", "default", &json!({"app": "web"})),
    )
    .await
    .expect(StatusCode::CREATED);
    let addr = serve(api.router.clone()).await;
    let mut body = watch(addr, "&labelSelector=app%3Dweb").await;
    let mut buffer = String::new();
    let added = next_events(&mut body, &mut buffer, 1).await;
    assert_eq!(added[0]["type"], "ADDED");
    assert_eq!(added[0]["object"]["metadata"]["name"], "web");

    // Not selected: no event. Then a change, a new object and a delete of the first.
    api.json(
        Method::POST,
        "/v1/namespaces/default/services",
        &service("db", "default", &json!({"app": "db"})),
    )
    .await
    .expect(StatusCode::CREATED);
    let mut changed = service("web", "default", &json!({"app": "web"}));
    changed["spec"] = other_spec(Kind::Service);
    api.json(Method::PUT, "/v1/namespaces/default/services/web", &changed)
        .await
        .expect(StatusCode::OK);
    api.json(
        Method::POST,
        "/v1/namespaces/default/services",
        &service("web2", "default", &json!({"app": "web"})),
    )
    .await
    .expect(StatusCode::CREATED);
    api.send(
        Method::DELETE,
        "/v1/namespaces/default/services/web",
        JSON,
        JSON,
        String::new(),
    )
    .await
    .expect(StatusCode::OK);
    let events = next_events(&mut body, &mut buffer, 3).await;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["object"]["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("MODIFIED".into(), "web".into()),
            ("ADDED".into(), "web2".into()),
            ("DELETED".into(), "web".into())
        ]
    );
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version() {
    let api = Api::new();
    for name in ["a", "b", "c"] {
        api.json(
            Method::POST,
            "/v1/namespaces/default/services",
            &service(name, "default", &json!({})),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    let addr = serve(api.router.clone()).await;
    let mut body = watch(addr, "&resourceVersion=1").await;
    let mut buffer = String::new();
    let events = next_events(&mut body, &mut buffer, 2).await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c"]);
    assert!(events.iter().all(|e| e["type"] == "ADDED"));
}

#[tokio::test]
async fn watch_from_a_compacted_revision_sends_a_410_error_and_ends() {
    let api = Api::new();
    for name in ["a", "b"] {
        api.json(
            Method::POST,
            "/v1/namespaces/default/services",
            &service(name, "default", &json!({})),
        )
        .await
        .expect(StatusCode::CREATED);
    }
    api.store.compact();
    let addr = serve(api.router.clone()).await;
    let mut body = watch(addr, "&resourceVersion=1").await;
    let mut buffer = String::new();
    let error = next_events(&mut body, &mut buffer, 1).await;
    assert_eq!(error[0]["type"], "ERROR");
    assert_eq!(error[0]["object"]["code"], 410);
    let end = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap();
    assert!(end.is_none(), "the stream ends after the error");
}

#[tokio::test]
async fn body_over_4_mib_is_413() {
    let api = Api::new();
    let addr = serve(api.router.clone()).await;
    let big = vec![b' '; api::MAX_BODY_BYTES + 1];
    let request = Request::post(format!("http://{addr}/v1/apply"))
        .header("content-type", YAML)
        .body(http_body_util::Full::new(Bytes::from(big)))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["reason"], "PayloadTooLarge");
}

const ADMIN: &str = "weft-admin-right";

#[tokio::test]
async fn a_call_without_the_admin_token_is_401_with_a_bearer_challenge_and_a_hint() {
    let api = Api::with_admin(ADMIN).await;
    for path in ["/v1/services", "/openapi.json", "/v1/no-such-thing"] {
        let (status, challenge, body) = api.get_as(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(challenge, "Bearer", "{path}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], 401);
        assert_eq!(body["error"]["reason"], "Unauthorized");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("weft token admin"),
            "{body}"
        );
    }
    let (status, _, _) = api.get_as("/v1/services", Some("Basic YWRtaW4=")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a non-Bearer scheme is no token"
    );
}

#[tokio::test]
async fn a_call_with_a_wrong_admin_token_is_403() {
    let api = Api::with_admin(ADMIN).await;
    let (status, challenge, body) = api
        .get_as("/v1/services", Some("Bearer weft-admin-wrong"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(challenge, "");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["reason"], "Forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("weft token admin"));
}

#[tokio::test]
async fn a_call_with_the_admin_token_is_served() {
    let api = Api::with_admin(ADMIN).await;
    let bearer = format!("Bearer {ADMIN}");
    let (status, _, body) = api.get_as("/v1/services", Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = api.get_as("/openapi.json", Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api.get_as("/v1/no-such-thing", Some(&bearer)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "past the token, the usual errors"
    );
}

#[tokio::test]
async fn healthz_and_readyz_are_open_without_the_admin_token() {
    let api = Api::with_admin(ADMIN).await;
    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = api.get_as(path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_read_only_token_can_read_and_watch_but_every_write_is_403_naming_its_role() {
    let api = Api::with_admin(ADMIN).await;
    let created = api
        .create_operator_token(ADMIN, "viewer", "read-only")
        .await;
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("weft-read-"), "{token}");
    api.call(
        Method::POST,
        "/v1/namespaces/default/services",
        ADMIN,
        Some(service("web", "default", &json!({"app": "web"}))),
    )
    .await
    .expect(StatusCode::CREATED);

    for path in [
        "/v1/services",
        "/v1/namespaces/default/services",
        "/v1/namespaces/default/services/web",
        "/v1/namespaces/default/services?watch=true&timeoutSeconds=0.1",
        "/v1/proxies",
        "/v1/tokens/operator",
        "/openapi.json",
    ] {
        api.call(Method::GET, path, token, None)
            .await
            .expect(StatusCode::OK);
    }
    let head = api
        .call(
            Method::HEAD,
            "/v1/namespaces/default/services/web",
            token,
            None,
        )
        .await;
    head.expect(StatusCode::OK);

    let web = service("web", "default", &json!({"app": "web"}));
    let writes = [
        (Method::POST, "/v1/apply", Some(web.clone())),
        (
            Method::POST,
            "/v1/namespaces/default/services",
            Some(web.clone()),
        ),
        (
            Method::PUT,
            "/v1/namespaces/default/services/web",
            Some(web),
        ),
        (
            Method::PATCH,
            "/v1/namespaces/default/services/web",
            Some(json!({})),
        ),
        (Method::DELETE, "/v1/namespaces/default/services/web", None),
        (
            Method::POST,
            "/v1/tokens/workload",
            Some(json!({"namespace": "default", "serviceAccount": "web"})),
        ),
        (
            Method::POST,
            "/v1/tokens/operator",
            Some(json!({"name": "mine", "role": "admin"})),
        ),
        (Method::DELETE, "/v1/tokens/operator/bootstrap", None),
    ];
    for (method, path, body) in writes {
        let answer = api.call(method.clone(), path, token, body).await;
        answer.expect(StatusCode::FORBIDDEN);
        let message = answer.message();
        assert!(
            message.contains("\"viewer\" has role read-only")
                && message.contains(&format!("{method} {path}"))
                && message.contains("--role admin"),
            "{method} {path}: {message}"
        );
    }
    api.call(
        Method::GET,
        "/v1/namespaces/default/services/web",
        ADMIN,
        None,
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn creating_an_operator_token_answers_it_once_uncached_and_checks_each_field() {
    let api = Api::with_admin(ADMIN).await;
    let answer = api
        .call(
            Method::POST,
            "/v1/tokens/operator",
            ADMIN,
            Some(json!({"name": "ci", "role": "admin", "ttl": "30d"})),
        )
        .await;
    answer.expect(StatusCode::CREATED);
    assert_eq!(answer.headers["cache-control"], "no-store");
    let created = answer.json();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("weft-admin-"), "{created}");
    assert_eq!(created["name"], "ci");
    assert_eq!(created["role"], "admin");
    assert_eq!(created["id"].as_str().unwrap().len(), 32);
    let expires = humantime::parse_rfc3339(created["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(30 * 86_400 - 60), "{left:?}");
    api.call(Method::GET, "/v1/services", token, None)
        .await
        .expect(StatusCode::OK);
    let again = api
        .create_operator_token(ADMIN, "forever", "read-only")
        .await;
    assert_eq!(again["expiresAt"], Value::Null);

    let duplicate = api
        .call(
            Method::POST,
            "/v1/tokens/operator",
            ADMIN,
            Some(json!({"name": "ci", "role": "read-only"})),
        )
        .await;
    duplicate.expect(StatusCode::CONFLICT);
    assert!(
        duplicate.message().contains("revoke it first"),
        "{}",
        duplicate.message()
    );

    for (body, field, quoted) in [
        (
            json!({"name": "Bad_Name", "role": "admin"}),
            "name",
            "\"Bad_Name\"",
        ),
        (json!({"name": "ok", "role": "root"}), "role", "\"root\""),
        (
            json!({"name": "ok", "role": "admin", "ttl": "1y"}),
            "ttl",
            "\"1y\"",
        ),
    ] {
        let answer = api
            .call(Method::POST, "/v1/tokens/operator", ADMIN, Some(body))
            .await;
        answer.expect(StatusCode::BAD_REQUEST);
        let error = answer.json();
        assert_eq!(error["error"]["details"][0]["path"], field, "{error}");
        let message = answer.message();
        assert!(message.contains(quoted), "{message}");
    }
}

#[tokio::test]
async fn an_expired_operator_token_is_401_saying_it_expired_and_how_to_get_another() {
    let api = Api::with_admin(ADMIN).await;
    let expired = "weft-read-expired";
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    add_operator_token(&*api.store, "old-ci", Role::ReadOnly, expired, Some(past)).await;
    let answer = api.call(Method::GET, "/v1/services", expired, None).await;
    answer.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    let message = answer.message();
    assert!(
        message.contains("\"old-ci\" expired at") && message.contains("weft token admin create"),
        "{message}"
    );
    assert!(
        !message.contains("bootstrap"),
        "names no other token: {message}"
    );
}

#[tokio::test]
async fn a_revoked_operator_token_is_401_here_at_once_and_on_another_instance_within_its_refresh() {
    let refresh = Duration::from_millis(500);
    let here = Api::with_admin(ADMIN).await;
    let there = Api::sharing(here.store.clone(), refresh);
    let created = here.create_operator_token(ADMIN, "ci", "admin").await;
    let token = created["token"].as_str().unwrap();
    // A token made on one instance works on the other at once (a miss re-reads).
    there
        .call(Method::GET, "/v1/services", token, None)
        .await
        .expect(StatusCode::OK);
    here.call(Method::GET, "/v1/services", token, None)
        .await
        .expect(StatusCode::OK);

    let revoked = here
        .call(Method::DELETE, "/v1/tokens/operator/ci", ADMIN, None)
        .await;
    revoked.expect(StatusCode::OK);
    let revoked_at = std::time::Instant::now();
    assert_eq!(revoked.json()["status"], "revoked");
    let answer = here.call(Method::GET, "/v1/services", token, None).await;
    answer.expect(StatusCode::UNAUTHORIZED);
    assert!(
        answer.message().contains("\"ci\" was revoked at"),
        "{}",
        answer.message()
    );

    loop {
        let answer = there.call(Method::GET, "/v1/services", token, None).await;
        let waited = revoked_at.elapsed();
        if answer.status == StatusCode::UNAUTHORIZED {
            assert!(
                answer.message().contains("was revoked"),
                "{}",
                answer.message()
            );
            break;
        }
        answer.expect(StatusCode::OK);
        assert!(
            waited < refresh + Duration::from_millis(200),
            "the other instance still accepts the revoked token after {waited:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Revoking it again answers the same revocation.
    let again = here
        .call(Method::DELETE, "/v1/tokens/operator/ci", ADMIN, None)
        .await;
    again.expect(StatusCode::OK);
    assert_eq!(again.json()["revokedAt"], revoked.json()["revokedAt"]);
}

#[tokio::test]
async fn listing_operator_tokens_never_shows_a_token_or_its_hash() {
    let api = Api::with_admin(ADMIN).await;
    let created = api
        .create_operator_token(ADMIN, "viewer", "read-only")
        .await;
    let token = created["token"].as_str().unwrap().to_owned();
    api.call(Method::DELETE, "/v1/tokens/operator/viewer", ADMIN, None)
        .await
        .expect(StatusCode::OK);
    let listed = api
        .call(Method::GET, "/v1/tokens/operator", ADMIN, None)
        .await;
    listed.expect(StatusCode::OK);
    let text = String::from_utf8_lossy(&listed.body).into_owned();
    for secret in [
        ADMIN.to_owned(),
        token.clone(),
        api::auth::hash_hex(ADMIN),
        api::auth::hash_hex(&token),
    ] {
        assert!(!text.contains(&secret), "{text}");
    }
    let items = listed.json()["items"].as_array().unwrap().clone();
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["role"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("bootstrap", "admin", "active"),
            ("viewer", "read-only", "revoked")
        ]
    );
    let fields: Vec<&String> = items[1].as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "createdAt",
            "expiresAt",
            "id",
            "name",
            "revokedAt",
            "role",
            "status"
        ]
    );
}

#[tokio::test]
async fn revoking_an_unknown_operator_token_is_404_and_the_last_admin_token_409() {
    let api = Api::with_admin(ADMIN).await;
    let unknown = api
        .call(Method::DELETE, "/v1/tokens/operator/nobody", ADMIN, None)
        .await;
    unknown.expect(StatusCode::NOT_FOUND);
    assert!(
        unknown.message().contains("\"nobody\""),
        "{}",
        unknown.message()
    );
    api.call(
        Method::DELETE,
        "/v1/tokens/operator/Not_A_Name",
        ADMIN,
        None,
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    let last = api
        .call(Method::DELETE, "/v1/tokens/operator/bootstrap", ADMIN, None)
        .await;
    last.expect(StatusCode::CONFLICT);
    let message = last.message();
    assert!(
        message.contains("last usable admin token") && message.contains("--role admin"),
        "{message}"
    );
    api.call(Method::GET, "/v1/services", ADMIN, None)
        .await
        .expect(StatusCode::OK);

    // With a second admin token, the first can go.
    let second = api.create_operator_token(ADMIN, "ops", "admin").await;
    let second = second["token"].as_str().unwrap();
    api.call(
        Method::DELETE,
        "/v1/tokens/operator/bootstrap",
        second,
        None,
    )
    .await
    .expect(StatusCode::OK);
    api.call(Method::GET, "/v1/services", ADMIN, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_admin_token_of_earlier_versions_keeps_working_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let spec = weft_control::store::StoreSpec::data_dir(dir.path().join("data"));
    let legacy = "weft-admin-fromanearlierversion";
    // A store as an earlier version left it: the admin token's hash in a secret, and
    // no operator_tokens table (migration 4 undone).
    let store = weft_control::store::open(&spec).await.unwrap();
    store
        .create_secret("admin/token-sha256", api::auth::hash_hex(legacy).as_bytes())
        .await
        .unwrap();
    drop(store);
    let weft_control::store::StoreSpec::Sqlite { path } = &spec else {
        unreachable!()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for sql in [
        "DROP TABLE operator_tokens",
        "DELETE FROM _sqlx_migrations WHERE version = 4",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = weft_control::store::open(&spec).await.unwrap();
    assert_eq!(
        api::auth::create_bootstrap(store.as_ref()).await.unwrap(),
        None,
        "the upgraded store has its admin token: no new one is made"
    );
    let router = api::router(ApiState {
        store: store.clone(),
        proxies: Arc::new(OneProxy),
        tokens: None,
        admin: Some(Arc::new(OperatorAuth::new(store))),
    });
    let request = Request::builder()
        .uri("/v1/tokens/operator")
        .header("authorization", format!("Bearer {legacy}"))
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let listed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(listed["items"][0]["name"], "bootstrap");
    assert_eq!(listed["items"][0]["role"], "admin");
}

#[tokio::test]
async fn openapi_documents_the_bearer_scheme_with_open_probes() {
    let document = Api::new()
        .get("/openapi.json")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(document["security"], json!([{"bearer": []}]));
    assert_eq!(document["paths"]["/healthz"]["get"]["security"], json!([]));
    assert_eq!(document["paths"]["/readyz"]["get"]["security"], json!([]));
}

// === the server's side of /openapi.json ===

/// The `error` member of an error answer with `status`.
#[track_caller]
fn error_of(reply: &Reply, status: StatusCode) -> Value {
    reply.expect(status);
    reply.json()["error"].clone()
}

#[tokio::test]
async fn a_watch_that_is_not_a_boolean_is_400_naming_the_parameter_value_and_choices() {
    let api = Api::new();
    let error = error_of(
        &api.get("/v1/services?watch=AAA").await,
        StatusCode::BAD_REQUEST,
    );
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("query parameter watch"), "{message}");
    assert!(message.contains("\"AAA\""), "{message}");
    assert!(message.contains("watch=true or watch=false"), "{message}");
    assert_eq!(error["details"][0]["path"], "watch");
    // `1` and an empty value were read as true before; now only the documented values.
    for other in ["1", "", "True"] {
        api.get(&format!("/v1/services?watch={other}"))
            .await
            .expect(StatusCode::BAD_REQUEST);
    }
    api.get("/v1/services?watch=false")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test]
async fn list_parameters_are_checked_whether_or_not_watching() {
    let api = Api::new();
    let cases = [
        ("resourceVersion=abc", "resourceVersion"),
        ("resourceVersion=%2B5", "resourceVersion"),
        ("timeoutSeconds=0", "timeoutSeconds"),
        ("timeoutSeconds=inf", "timeoutSeconds"),
        ("labelSelector=app%20in%20(a)", "labelSelector"),
        ("labelSelector=%09app", "labelSelector"),
    ];
    for (query, parameter) in cases {
        let error = error_of(
            &api.get(&format!("/v1/namespaces/default/services?{query}"))
                .await,
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(error["details"][0]["path"], parameter, "{query}");
    }
    for query in [
        "resourceVersion=12",
        "resourceVersion=",
        "timeoutSeconds=0.5",
    ] {
        api.get(&format!("/v1/services?{query}"))
            .await
            .expect(StatusCode::OK);
    }
}

#[tokio::test]
async fn an_unknown_or_repeated_list_parameter_is_400() {
    let api = Api::new();
    for query in ["labelselector=app%3Dweb", "watch=false&watch=true"] {
        let error = error_of(
            &api.get(&format!("/v1/services?{query}")).await,
            StatusCode::BAD_REQUEST,
        );
        assert!(
            error["message"].as_str().unwrap().contains("labelSelector")
                || error["message"].as_str().unwrap().contains("watch"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_path_namespace_or_name_that_is_not_a_label_is_400_naming_it() {
    let api = Api::new();
    let cases = [
        ("/v1/namespaces/Prod/services", "namespace", "\"Prod\""),
        ("/v1/namespaces/default/services/web_1", "name", "\"web_1\""),
        ("/v1/proxies/default/-web", "name", "\"-web\""),
    ];
    for (path, parameter, value) in cases {
        let error = error_of(&api.get(path).await, StatusCode::BAD_REQUEST);
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("path parameter {parameter}")),
            "{message}"
        );
        assert!(message.contains(value), "{message}");
        assert!(
            message.contains("lowercase letters, digits and '-'"),
            "{message}"
        );
    }
    let body = object(Kind::Service, "web", spec(Kind::Service));
    api.json(Method::PUT, "/v1/namespaces/a.b/services/web", &body)
        .await
        .expect(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_mesh_without_a_spec_is_stored_and_answered_with_an_empty_one() {
    let api = Api::new();
    let mut mesh = object(Kind::Mesh, "default", json!(null));
    let created = api.json(Method::PUT, "/v1/meshes/default", &mesh).await;
    assert_eq!(
        created.expect(StatusCode::CREATED).json()["spec"],
        json!({})
    );
    mesh.as_object_mut().unwrap().remove("spec");
    let replaced = api.json(Method::PUT, "/v1/meshes/default", &mesh).await;
    assert_eq!(replaced.expect(StatusCode::OK).json()["spec"], json!({}));
    let applied = api
        .apply("apiVersion: weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n")
        .await;
    applied.expect(StatusCode::OK);
    assert_eq!(
        api.get("/v1/meshes/default").await.json()["spec"],
        json!({})
    );
}

#[tokio::test]
async fn a_struct_written_as_a_list_is_400_with_its_field_path() {
    let api = Api::new();
    let mut policy = object(Kind::BackendPolicy, "web", spec(Kind::BackendPolicy));
    policy["spec"]["retryBudget"] = json!([null, null]);
    let error = error_of(
        &api.json(
            Method::POST,
            "/v1/namespaces/default/backendpolicies",
            &policy,
        )
        .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(error["details"][0]["path"], "spec.retryBudget", "{error}");
    let mut service = object(Kind::Service, "web", spec(Kind::Service));
    service["metadata"] = json!(["web"]);
    let error = error_of(
        &api.json(Method::POST, "/v1/namespaces/default/services", &service)
            .await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(error["details"][0]["path"], "metadata", "{error}");
}

#[tokio::test]
async fn an_unserved_method_is_405_with_the_documented_methods_in_allow() {
    let api = Api::new();
    let cases = [
        (Method::PATCH, "/v1/meshes/default", "GET, PUT, DELETE"),
        (
            Method::OPTIONS,
            "/v1/namespaces/default/services",
            "GET, POST",
        ),
        (Method::DELETE, "/v1/apply", "POST"),
        // A namespaced kind is listed across namespaces there, never created.
        (Method::POST, "/v1/services", "GET"),
    ];
    for (method, path, allow) in cases {
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("content-type", JSON)
            .body(Body::from(
                object(Kind::Service, "web", spec(Kind::Service)).to_string(),
            ))
            .unwrap();
        let response = api.router.clone().oneshot(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
    }
    let gizmos = api
        .send(Method::PATCH, "/v1/gizmos", JSON, JSON, String::new())
        .await;
    gizmos.expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn accept_picks_json_or_yaml_and_anything_else_is_406() {
    let api = Api::new();
    let cases = [
        ("application/yaml, application/json", "application/yaml"),
        ("application/json;q=0.5, text/yaml", "application/yaml"),
        ("*/*", "application/json"),
        ("application/*", "application/json"),
        ("application/json;q=0, */*", "application/yaml"),
        ("", "application/json"),
    ];
    for (accept, want) in cases {
        let reply = api
            .send(Method::GET, "/v1/services", JSON, accept, String::new())
            .await;
        reply.expect(StatusCode::OK);
        assert_eq!(reply.content_type, want, "{accept}");
    }
    for accept in ["text/html", "application/json;q=0", "nonsense"] {
        let reply = api
            .send(
                Method::GET,
                "/v1/meshes/default",
                JSON,
                accept,
                String::new(),
            )
            .await;
        let error = error_of(&reply, StatusCode::NOT_ACCEPTABLE);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("application/yaml"),
            "{error}"
        );
    }
    // Negotiated before anything is written.
    let body = object(Kind::Service, "web", spec(Kind::Service)).to_string();
    api.send(
        Method::POST,
        "/v1/namespaces/default/services",
        JSON,
        "text/html",
        body,
    )
    .await
    .expect(StatusCode::NOT_ACCEPTABLE);
    api.get("/v1/namespaces/default/services/web")
        .await
        .expect(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn watch_with_timeout_seconds_ends_the_stream() {
    let api = Api::new();
    api.json(
        Method::POST,
        "/v1/namespaces/default/services",
        &service("web", "default", &json!({})),
    )
    .await
    .expect(StatusCode::CREATED);
    let addr = serve(api.router.clone()).await;
    let mut body = watch(addr, "&timeoutSeconds=0.2").await;
    let mut buffer = String::new();
    assert_eq!(
        next_events(&mut body, &mut buffer, 1).await[0]["type"],
        "ADDED"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the stream ends within 5s");
    assert!(end.is_none(), "no more events: {end:?}");
}

#[tokio::test]
async fn a_request_refused_before_its_body_is_read_still_gets_its_answer() {
    // Over a socket: an unread body used to make the server close the connection, so
    // a client still sending got a reset instead of the 400.
    let api = Api::new();
    let addr = serve(api.router.clone()).await;
    let big = format!("a: {}", "x".repeat(200_000));
    let request = Request::post(format!("http://{addr}/v1/namespaces/Bad/services"))
        .header("content-type", YAML)
        .body(http_body_util::Full::new(Bytes::from(big)))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn workload_token_fields_are_checked_as_documented() {
    let api = &Api::with_tokens();
    let issue = |body: Value| async move {
        api.send(
            Method::POST,
            "/v1/tokens/workload",
            JSON,
            JSON,
            body.to_string(),
        )
        .await
    };
    let ok = issue(json!({"namespace": "shop", "serviceAccount": "web", "ttl": "30d"})).await;
    let issued = ok.expect(StatusCode::OK).json();
    assert!(issued["id"].as_str().unwrap().len() == 32, "{issued}");
    let cases = [
        (
            json!({"namespace": "Shop", "serviceAccount": "web"}),
            "namespace",
        ),
        (
            json!({"namespace": "weft-system", "serviceAccount": "web"}),
            "namespace",
        ),
        (
            json!({"namespace": "shop", "serviceAccount": "web.1"}),
            "serviceAccount",
        ),
        (
            json!({"namespace": "shop", "serviceAccount": "web", "ttl": "366d"}),
            "ttl",
        ),
        (
            json!({"namespace": "shop", "serviceAccount": "web", "ttl": "1day"}),
            "ttl",
        ),
        (
            json!({"namespace": "shop", "serviceAccount": "web", "ttl": "0s"}),
            "ttl",
        ),
    ];
    for (body, field) in cases {
        let error = error_of(&issue(body.clone()).await, StatusCode::BAD_REQUEST);
        assert_eq!(error["details"][0]["path"], field, "{body}");
    }
    let null_ttl = issue(json!({"namespace": "shop", "serviceAccount": "web", "ttl": null})).await;
    null_ttl.expect(StatusCode::OK);
}

#[tokio::test]
async fn revoke_takes_a_token_id_and_an_rfc_3339_time_and_reads_the_past_as_now() {
    let api = &Api::with_tokens();
    let revoke = |body: Value| async move {
        api.send(
            Method::POST,
            "/v1/tokens/revoke",
            JSON,
            JSON,
            body.to_string(),
        )
        .await
    };
    let id = "0123456789abcdef0123456789abcdef";
    for (body, field) in [
        (json!({"id": "tok-1"}), "id"),
        (json!({"id": ""}), "id"),
        (
            json!({"id": id, "expiresAt": "2030-01-01 00:00:00Z"}),
            "expiresAt",
        ),
        (
            json!({"id": id, "expiresAt": "2030-02-30T00:00:00Z"}),
            "expiresAt",
        ),
    ] {
        let error = error_of(&revoke(body.clone()).await, StatusCode::BAD_REQUEST);
        assert_eq!(error["details"][0]["path"], field, "{body}");
    }
    // An id this control plane never issued is 404 and says how to revoke it anyway.
    let unknown = error_of(&revoke(json!({"id": id})).await, StatusCode::NOT_FOUND);
    assert!(
        unknown["message"].as_str().unwrap().contains("--force"),
        "{unknown}"
    );
    let later =
        revoke(json!({"id": id, "expiresAt": "2030-01-01T01:00:00+01:00", "force": true})).await;
    assert_eq!(
        later.expect(StatusCode::OK).json()["revokedUntil"],
        "2030-01-01T00:00:00Z"
    );
    let past = revoke(json!({"id": id, "expiresAt": "1900-01-01T00:00:00Z", "force": true})).await;
    let until = past.expect(StatusCode::OK).json()["revokedUntil"]
        .as_str()
        .unwrap()
        .to_owned();
    let until = humantime::parse_rfc3339(&until).unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(until)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "{until:?} is now");
}

#[tokio::test]
async fn every_documented_request_example_is_accepted() {
    let api = Api::new();
    let document = api.get("/openapi.json").await.expect(StatusCode::OK).json();
    for kind in Kind::ALL {
        let collection_path = if kind.namespaced() {
            format!("/v1/namespaces/{{namespace}}/{}", kind.plural())
        } else {
            format!("/v1/{}", kind.plural())
        };
        let example =
            &document["paths"][&collection_path]["post"]["requestBody"]["content"][JSON]["example"];
        let created = api.json(Method::POST, &collection(kind), example).await;
        created.expect(StatusCode::CREATED);
    }
    let apply = &document["paths"]["/v1/apply"]["post"]["requestBody"]["content"][JSON]["example"];
    let reply = api
        .send(Method::POST, "/v1/apply", JSON, JSON, apply.to_string())
        .await;
    reply.expect(StatusCode::OK);
}

#[tokio::test]
async fn every_operation_documents_the_errors_every_request_can_get() {
    let document = Api::new()
        .get("/openapi.json")
        .await
        .expect(StatusCode::OK)
        .json();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let responses = operation["responses"].as_object().unwrap();
            let open = operation.get("security") == Some(&json!([]));
            let mut codes = vec!["400", "405", "413"];
            if !open {
                codes.extend(["401", "403", "406", "500"]);
            }
            for code in codes {
                assert!(responses.contains_key(code), "{method} {path} lacks {code}");
            }
            if operation.get("requestBody").is_some() {
                assert!(responses.contains_key("415"), "{method} {path} lacks 415");
            }
            assert_eq!(
                responses["405"]["headers"]["Allow"]["required"], true,
                "{method} {path}"
            );
        }
    }
}
