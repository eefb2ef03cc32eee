//! The API under test: a router over an in-memory store, request helpers, and valid
//! specs for every kind.

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

use crate::memory_store::MemoryStore;

pub(crate) const YAML: &str = "application/yaml";

pub(crate) const JSON: &str = "application/json";

pub(crate) struct Api {
    pub(crate) router: Router,
    pub(crate) store: Arc<MemoryStore>,
}

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) content_type: String,
    pub(crate) body: Bytes,
}

pub(crate) struct OneProxy;

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
    pub(crate) fn new() -> Api {
        let store = Arc::new(MemoryStore::default());
        let router = api::router(ApiState {
            store: store.clone(),
            proxies: Arc::new(OneProxy),
            tokens: None,
            admin: None,
            metrics: None,
            stats: None,
            secrets: Some(std::sync::Arc::new(
                weft_control::seal::Keyring::ephemeral().expect("a random key"),
            )),
        });
        Api { router, store }
    }

    /// The API with a workload token issuer for `cluster.local`.
    pub(crate) fn with_tokens() -> Api {
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
            metrics: None,
            stats: None,
            secrets: Some(std::sync::Arc::new(
                weft_control::seal::Keyring::ephemeral().expect("a random key"),
            )),
        });
        Api { router, store }
    }

    /// The API requiring operator tokens, with `token` as its `bootstrap` admin token.
    pub(crate) async fn with_admin(token: &str) -> Api {
        let store = Arc::new(MemoryStore::default());
        add_operator_token(&*store, "bootstrap", Role::Admin, token, None).await;
        Api::sharing(store, api::auth::REFRESH_INTERVAL)
    }

    /// Another instance on `store`, re-reading operator tokens every `refresh`, with a
    /// workload token issuer.
    pub(crate) fn sharing(store: Arc<MemoryStore>, refresh: Duration) -> Api {
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
            metrics: None,
            stats: None,
            secrets: Some(std::sync::Arc::new(
                weft_control::seal::Keyring::ephemeral().expect("a random key"),
            )),
        });
        Api { router, store }
    }

    /// `method path` with `Authorization: Bearer token` and a JSON body, if any.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
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
    pub(crate) async fn create_operator_token(&self, admin: &str, name: &str, role: &str) -> Value {
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
    pub(crate) async fn get_as(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, String, Bytes) {
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

    pub(crate) async fn send(
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

    pub(crate) async fn json(&self, method: Method, path: &str, body: &Value) -> Reply {
        self.send(method, path, JSON, JSON, body.to_string()).await
    }

    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, JSON, JSON, String::new())
            .await
    }

    pub(crate) async fn apply(&self, yaml: &str) -> Reply {
        self.send(Method::POST, "/v1/apply", YAML, JSON, yaml.to_owned())
            .await
    }
}

/// An answer to [`Api::call`].
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[track_caller]
    pub(crate) fn expect(&self, status: StatusCode) -> &Self {
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
pub(crate) async fn add_operator_token(
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
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn yaml(&self) -> Value {
        serde_saphyr::from_slice(&self.body).unwrap()
    }

    #[track_caller]
    pub(crate) fn expect(&self, status: StatusCode) -> &Self {
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
pub(crate) fn spec(kind: Kind) -> Value {
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
        Kind::TrafficPermission => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "rules": [{"from": [{"namespace": "default"}]}]
        }),
        Kind::Telemetry => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "tracing": {"endpoint": "http://127.0.0.1:4317"}
        }),
        Kind::Gateway => json!({
            "gatewayClassName": "weft",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]
        }),
        Kind::Secret => tls_material(&["web.example.com"]),
    }
}

/// A Secret's material as the API reads it (lifted under `spec`): a fresh self-signed
/// certificate for `names` and its key, as PEM.
pub(crate) fn tls_material(names: &[&str]) -> Value {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    json!({
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": cert.pem(), "tls.key": key.serialize_pem()}
    })
}

/// The same spec, changed.
pub(crate) fn other_spec(kind: Kind) -> Value {
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
        Kind::TrafficPermission => json!({
            "targetRefs": [{"kind": "Service", "name": "web"}],
            "action": "deny",
            "rules": [{"to": [{"paths": [{"type": "PathPrefix", "value": "/admin"}]}]}]
        }),
        Kind::Telemetry => json!({
            "targetRefs": [{"kind": "Namespace"}],
            "metrics": {"enabled": false}
        }),
        Kind::Gateway => json!({
            "gatewayClassName": "weft",
            "listeners": [{"name": "db", "port": 5432, "protocol": "TCP"}]
        }),
        Kind::Secret => tls_material(&["other.example.com"]),
    }
}

#[allow(clippy::needless_pass_by_value)] // reads better at the call sites
pub(crate) fn object(kind: Kind, name: &str, spec: Value) -> Value {
    let mut metadata = json!({"name": name, "labels": {"app": "web"}});
    if kind.namespaced() {
        metadata["namespace"] = json!("default");
    }
    json!({"apiVersion": kind.api_version(), "kind": kind.as_str(), "metadata": metadata, "spec": spec})
}

/// The name objects of `kind` get in round trips: there is one `Mesh`, `default`.
pub(crate) fn name_for(kind: Kind) -> &'static str {
    if kind == Kind::Mesh {
        "default"
    } else {
        "web"
    }
}

pub(crate) fn collection(kind: Kind) -> String {
    if kind.namespaced() {
        format!("/v1/namespaces/default/{}", kind.plural())
    } else {
        format!("/v1/{}", kind.plural())
    }
}

pub(crate) fn item(kind: Kind, name: &str) -> String {
    format!("{}/{name}", collection(kind))
}

pub(crate) fn service(name: &str, namespace: &str, labels: &Value) -> Value {
    json!({
        "apiVersion": "weft.dev/v1alpha1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec(Kind::Service)
    })
}

pub(crate) fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) const TWO_DOCUMENTS: &str = "\
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

// === over a socket ===

pub(crate) async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

pub(crate) fn client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// Reads watch events (one JSON object per line) until `count` arrived.
pub(crate) async fn next_events(
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

pub(crate) async fn watch(addr: std::net::SocketAddr, query: &str) -> hyper::body::Incoming {
    let uri = format!("http://{addr}/v1/namespaces/default/services?watch=true{query}");
    let response = client().get(uri.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    response.into_body()
}

pub(crate) const ADMIN: &str = "weft-admin-right";

// === the server's side of /openapi.json ===

/// The `error` member of an error answer with `status`.
#[track_caller]
pub(crate) fn error_of(reply: &Reply, status: StatusCode) -> Value {
    reply.expect(status);
    reply.json()["error"].clone()
}
