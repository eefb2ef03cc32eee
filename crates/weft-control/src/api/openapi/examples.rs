//! A valid example of each request body, for readers of the document and for clients
//! that send the document's examples (Schemathesis' examples phase). The objects are
//! those of the path examples (`default` namespace, name [`NAME`]), so a `PUT` of the
//! example agrees with its path; a test applies each of them.

use serde_json::{json, Value};
use weft_api::resource::mesh::MESH_NAME;
use weft_api::resource::{Kind, DEFAULT_NAMESPACE};

/// The name of the example objects (but the `Mesh`, which is `default`).
pub(super) const NAME: &str = "web";

/// The example Secret's certificate: self-signed for `shop.example.com` and
/// `*.example.com`, valid until 2125, published with its key, so a placeholder, not a
/// secret: it validates as a Secret must, and protects nothing.
pub(crate) const EXAMPLE_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIICHzCCAcWgAwIBAgIUfCjTW1zBw2DEVOTlXrbMKD3MitwwCgYIKoZIzj0EAwIw
TjEYMBYGA1UEAwwPZXhhbXBsZS5pbnZhbGlkMTIwMAYDVQQKDClXZWZ0IGRvY3Vt
ZW50YXRpb24gZXhhbXBsZSAtIG5vdCBhIHNlY3JldDAgFw0yNjEyMDgwMTA3NTVa
GA8yMTI2MTExNDAxMDc1NVowTjEYMBYGA1UEAwwPZXhhbXBsZS5pbnZhbGlkMTIw
MAYDVQQKDClXZWZ0IGRvY3VtZW50YXRpb24gZXhhbXBsZSAtIG5vdCBhIHNlY3Jl
dDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABFO9ttrF1Cp6DxZUsn8nTIi/26qX
yWue1XW82M9Upw6EazzvFq1Ev9NH8Cixhv4MCVaMik7fPQH3JsjMFQWJrd2jfzB9
MB0GA1UdDgQWBBTRBuQTBxMVqrIz91UfkCunN2s9AjAfBgNVHSMEGDAWgBTRBuQT
BxMVqrIz91UfkCunN2s9AjAPBgNVHRMBAf8EBTADAQH/MCoGA1UdEQQjMCGCEHNo
b3AuZXhhbXBsZS5jb22CDSouZXhhbXBsZS5jb20wCgYIKoZIzj0EAwIDSAAwRQIg
Qn4D3GciPBISC1utRg6BYHlBsYXRIUoQmSgInedSOP0CIQCsFjdiQ8D44Gw9IbRt
oK1RZZKc3DL94zxt1os9jl0cCA==
-----END CERTIFICATE-----
";

/// The key of [`EXAMPLE_CERTIFICATE`]: public, documentation only.
pub(crate) const EXAMPLE_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAetjft9BXKz0aIXi
e8e6naC8kkEwZ/84LaFzqxUCFiihRANCAARTvbbaxdQqeg8WVLJ/J0yIv9uql8lr
ntV1vNjPVKcOhGs87xatRL/TR/AosYb+DAlWjIpO3z0B9ybIzBUFia3d
-----END PRIVATE KEY-----
";

/// A valid object of `kind`.
pub(super) fn object(kind: Kind) -> Value {
    if kind == Kind::Secret {
        return json!({
            "apiVersion": kind.api_version(),
            "kind": kind.as_str(),
            "metadata": {"name": NAME, "namespace": DEFAULT_NAMESPACE, "labels": {"app": NAME}},
            "type": weft_api::resource::secret::TLS_TYPE,
            "stringData": {"tls.crt": EXAMPLE_CERTIFICATE, "tls.key": EXAMPLE_KEY}
        });
    }
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
        Kind::Secret => json!(null),
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
