//! A valid example of each request body, for readers of the document and for clients
//! that send the document's examples (Schemathesis' examples phase). The objects are
//! those of the path examples (`default` namespace, name [`NAME`]), so a `PUT` of the
//! example agrees with its path; a test applies each of them.

use serde_json::{json, Value};
use weft_api::resource::mesh::MESH_NAME;
use weft_api::resource::{Kind, DEFAULT_NAMESPACE};

/// The name of the example objects (but the `Mesh`, which is `default`).
pub(super) const NAME: &str = "web";

/// A valid object of `kind`.
pub(super) fn object(kind: Kind) -> Value {
    let service_ref = json!([{"kind": "Service", "name": NAME}]);
    let spec = match kind {
        Kind::Mesh => json!({"mtls": {"mode": "strict"}}),
        Kind::Service => json!({
            "selector": {"app": NAME},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "http"}]
        }),
        Kind::Workload => json!({
            "address": "10.0.0.10",
            "serviceAccount": NAME,
            "ports": [{"port": 8080, "protocol": "http"}]
        }),
        Kind::HttpRoute | Kind::GrpcRoute | Kind::TcpRoute => json!({
            "parentRefs": service_ref,
            "rules": [{"backendRefs": [{"name": NAME, "port": 80}]}]
        }),
        Kind::BackendPolicy => json!({
            "targetRefs": service_ref,
            "loadBalancer": {"type": "leastRequest"}
        }),
        Kind::RateLimit => json!({
            "targetRefs": service_ref,
            "limits": [{"requests": 100, "per": "1s"}]
        }),
        Kind::FaultInjection => json!({
            "targetRefs": service_ref,
            "abort": {"percent": 1.0, "httpStatus": 503}
        }),
        Kind::TrafficPermission => json!({
            "targetRefs": service_ref,
            "action": "allow",
            "rules": [{
                "from": [{"namespace": DEFAULT_NAMESPACE}],
                "to": [{"methods": ["GET"], "paths": [{"type": "PathPrefix", "value": "/api"}]}]
            }]
        }),
        Kind::Telemetry => json!({
            "targetRefs": service_ref,
            "tracing": {"endpoint": "http://otel-collector.observability:4317", "sampling": 5.0, "timeout": "10s"},
            "accessLog": {"format": "text", "template": "{start_time} {method} {path} {status}"},
            "metrics": {"enabled": true}
        }),
        Kind::Gateway => json!({
            "gatewayClassName": "weft",
            "listeners": [
                {"name": "http", "port": 80, "protocol": "HTTP", "hostname": "*.example.com"},
                {
                    "name": "https",
                    "port": 443,
                    "protocol": "HTTPS",
                    "hostname": "shop.example.com",
                    "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": NAME}]},
                    "allowedRoutes": {"namespaces": {"from": "All"}, "kinds": [{"kind": "HTTPRoute"}]}
                }
            ]
        }),
    };
    let metadata = if kind.namespaced() {
        json!({"name": NAME, "namespace": DEFAULT_NAMESPACE, "labels": {"app": NAME}})
    } else {
        json!({"name": MESH_NAME})
    };
    json!({
        "apiVersion": kind.api_version(),
        "kind": kind.as_str(),
        "metadata": metadata,
        "spec": spec
    })
}

/// A valid `/v1/apply` body: a service and its route.
pub(super) fn apply() -> Value {
    json!([object(Kind::Service), object(Kind::HttpRoute)])
}
