//! `GET /openapi.json`: an OpenAPI 3.1 description of this API, built from
//! [`Kind::ALL`] so a new kind shows up without editing this file.
//!
//! Each kind's `spec` schema is generated (schemars) from its typed spec in
//! `weft_api::resource`, so the document and the validator cannot drift apart.

use axum::http::HeaderMap;
use serde_json::{json, Map, Value};
use weft_api::resource::{Kind, ObjectMeta};

use super::format::{Format, Reply};

pub(super) async fn handler(headers: HeaderMap) -> Reply {
    // Always JSON unless YAML was asked for explicitly.
    Reply::ok(Format::of_response(&headers), &openapi())
}

/// The OpenAPI 3.1 document: every path, and a schema per kind.
pub fn openapi() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for kind in Kind::ALL {
        kind_paths(kind, &mut paths);
        let (spec, definitions) = spec_schema(kind);
        schemas.insert(kind.as_str().to_owned(), kind_schema(kind, &spec));
        schemas.extend(definitions);
    }
    paths.insert(
        "/healthz".into(),
        json!({"get": {
            "summary": "Liveness: the process answers.",
            "security": [],
            "responses": {"200": {"description": "alive"}}
        }}),
    );
    paths.insert("/readyz".into(), json!({"get": {
        "summary": "Readiness: the store answers.",
        "security": [],
        "responses": {"200": {"description": "ready"}, "503": error_response("the store does not answer")}
    }}));
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {
            "summary": "This document.",
            "responses": {"200": {"description": "OpenAPI 3.1 document"}}
        }}),
    );
    paths.insert("/v1/apply".into(), json!({"post": {
        "summary": "Create or update many objects; all are validated before any is written.",
        "requestBody": {"required": true, "content": {
            "application/yaml": {"schema": {"type": "string", "description": "one or more YAML documents separated by ---"}},
            "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Object"}, {"type": "array", "items": {"$ref": "#/components/schemas/Object"}}]}}
        }},
        "responses": {
            "200": {"description": "per object: created, configured or unchanged", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApplyResult"}}}},
            "400": error_response("a document is invalid; nothing was written"),
            "409": error_response("a resourceVersion did not match"),
            "413": error_response("the body is larger than 4 MiB")
        }
    }}));
    paths.insert(
        "/v1/proxies".into(),
        json!({"get": {
            "summary": "Connected proxies: config sent, versions ACKed, last NACK.",
            "responses": {"200": {"description": "list of proxies"}}
        }}),
    );
    paths.insert("/v1/proxies/{namespace}/{name}".into(), json!({
        "parameters": [path_param("namespace"), path_param("name")],
        "get": {
            "summary": "One connected proxy, by its workload.",
            "responses": {"200": {"description": "the proxy"}, "404": error_response("not connected")}
        }
    }));

    token_paths(&mut paths, &mut schemas);

    schemas.insert("ObjectMeta".into(), object_meta_schema());
    schemas.insert("Object".into(), json!({
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string", "enum": Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()},
            "metadata": {"$ref": "#/components/schemas/ObjectMeta"},
            "spec": {"type": "object", "description": "What the operator asks for; see the kind's documentation."},
            "status": {"type": "object", "description": "Written by the control plane; ignored in requests."}
        }
    }));
    schemas.insert("List".into(), json!({
        "type": "object",
        "properties": {
            "apiVersion": {"const": "v1"},
            "kind": {"const": "List"},
            "metadata": {"type": "object", "properties": {"resourceVersion": {"type": "string"}}},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Object"}}
        }
    }));
    schemas.insert(
        "WatchEvent".into(),
        json!({
            "type": "object",
            "description": "One line of a watch stream (application/x-ndjson).",
            "properties": {
                "type": {"enum": ["ADDED", "MODIFIED", "DELETED", "ERROR"]},
                "object": {"$ref": "#/components/schemas/Object"}
            }
        }),
    );
    schemas.insert(
        "ApplyResult".into(),
        json!({
            "type": "object",
            "properties": {"results": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "namespace": {"type": "string"},
                    "name": {"type": "string"},
                    "result": {"enum": ["created", "configured", "unchanged"]},
                    "resourceVersion": {"type": "string"}
                }
            }}}
        }),
    );
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "properties": {"error": {
                "type": "object",
                "required": ["code", "reason", "message"],
                "properties": {
                    "code": {"type": "integer"},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "details": {"type": "array", "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "properties": {
                            "document": {"type": "integer"},
                            "kind": {"type": "string"},
                            "namespace": {"type": "string"},
                            "name": {"type": "string"},
                            "path": {"type": "string"},
                            "message": {"type": "string"}
                        }
                    }}
                }
            }}
        }),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Weft control plane API",
            "version": "v1",
            "description": "Resources in JSON (application/json) or YAML (application/yaml). Errors are always JSON."
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The operator admin token: `weft token admin` on the control-plane host prints it."
            }}
        }
    })
}

fn kind_paths(kind: Kind, paths: &mut Map<String, Value>) {
    let plural = kind.plural();
    let name = kind.as_str();
    let one = json!({"$ref": format!("#/components/schemas/{name}")});
    let body = json!({"required": true, "content": {
        "application/json": {"schema": one},
        "application/yaml": {"schema": one}
    }});
    let object_response = |what: &str| json!({"description": what, "content": {"application/json": {"schema": one}, "application/yaml": {"schema": one}}});
    let list = json!({
        "summary": format!("List {name} objects"),
        "parameters": list_params(),
        "responses": {
            "200": {"description": "the list, or with watch=true a stream of WatchEvent lines", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/List"}},
                "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/WatchEvent"}}
            }},
            "400": error_response("bad label selector"),
            "410": error_response("resourceVersion too old; re-list")
        }
    });
    let create = json!({
        "summary": format!("Create a {name}"),
        "requestBody": body,
        "responses": {
            "201": object_response("created"),
            "400": error_response("invalid"),
            "409": error_response("already exists"),
            "413": error_response("body too large")
        }
    });
    let item = json!({
        "get": {
            "summary": format!("Read a {name}"),
            "responses": {"200": object_response("the object"), "404": error_response("not found")}
        },
        "put": {
            "summary": format!("Create or replace a {name} (conditional on metadata.resourceVersion when given)"),
            "requestBody": body,
            "responses": {
                "200": object_response("replaced"),
                "201": object_response("created"),
                "400": error_response("invalid, or body disagrees with the path"),
                "409": error_response("resourceVersion mismatch")
            }
        },
        "delete": {
            "summary": format!("Delete a {name}"),
            "responses": {"200": object_response("the deleted object"), "404": error_response("not found")}
        }
    });
    if kind.namespaced() {
        paths.insert(format!("/v1/{plural}"), json!({"get": list.clone()}));
        paths.insert(
            format!("/v1/namespaces/{{namespace}}/{plural}"),
            json!({"parameters": [path_param("namespace")], "get": list, "post": create}),
        );
        let mut item = item;
        item["parameters"] = json!([path_param("namespace"), path_param("name")]);
        paths.insert(
            format!("/v1/namespaces/{{namespace}}/{plural}/{{name}}"),
            item,
        );
    } else {
        paths.insert(
            format!("/v1/{plural}"),
            json!({"get": list, "post": create}),
        );
        let mut item = item;
        item["parameters"] = json!([path_param("name")]);
        paths.insert(format!("/v1/{plural}/{{name}}"), item);
    }
}

fn kind_schema(kind: Kind, spec: &Value) -> Value {
    json!({
        "allOf": [{"$ref": "#/components/schemas/Object"}],
        "properties": {
            "apiVersion": {"enum": kind.accepted_api_versions()},
            "kind": {"const": kind.as_str()},
            "spec": spec
        },
        "x-weft-plural": kind.plural(),
        "x-weft-namespaced": kind.namespaced()
    })
}

/// The JSON schema of a kind's spec, and the definitions it refers to, renamed
/// `<Kind>.<Type>` (two kinds may both have a `Port`) and referenced as components.
fn spec_schema(kind: Kind) -> (Value, Map<String, Value>) {
    use weft_api::resource::{backend, mesh, route, service, traffic, workload};
    let schema = match kind {
        Kind::Mesh => schemars::schema_for!(mesh::Spec),
        Kind::Service => schemars::schema_for!(service::Spec),
        Kind::Workload => schemars::schema_for!(workload::Spec),
        Kind::HttpRoute => schemars::schema_for!(route::HttpSpec),
        Kind::GrpcRoute => schemars::schema_for!(route::GrpcSpec),
        Kind::TcpRoute => schemars::schema_for!(route::TcpSpec),
        Kind::BackendPolicy => schemars::schema_for!(backend::Spec),
        Kind::RateLimit => schemars::schema_for!(traffic::RateLimitSpec),
        Kind::FaultInjection => schemars::schema_for!(traffic::FaultSpec),
    };
    let mut schema = serde_json::to_value(schema).unwrap_or_default();
    let mut definitions = Map::new();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
        if let Some(Value::Object(defs)) = map.remove("$defs") {
            for (name, def) in defs {
                definitions.insert(format!("{}.{name}", kind.as_str()), def);
            }
        }
    }
    let prefix = format!("#/components/schemas/{}.", kind.as_str());
    rewrite_refs(&mut schema, &prefix);
    for def in definitions.values_mut() {
        rewrite_refs(def, &prefix);
    }
    (schema, definitions)
}

/// Points `#/$defs/X` references at `{prefix}X`.
fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            *target = format!("{prefix}{name}");
                        }
                    }
                    _ => rewrite_refs(v, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, prefix)),
        _ => {}
    }
}

fn object_meta_schema() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(ObjectMeta)).unwrap_or_default();
    if let Some(map) = schema.as_object_mut() {
        map.remove("$schema");
    }
    schema
}

fn list_params() -> Value {
    json!([
        {"name": "labelSelector", "in": "query", "schema": {"type": "string"},
         "description": "comma-separated: key=value, key!=value, key, !key"},
        {"name": "watch", "in": "query", "schema": {"type": "boolean"},
         "description": "stream changes as NDJSON WatchEvent lines"},
        {"name": "resourceVersion", "in": "query", "schema": {"type": "string"},
         "description": "with watch: stream changes after this revision"}
    ])
}

/// `/v1/tokens/…`: issuing and revoking workload tokens.
fn token_paths(paths: &mut Map<String, Value>, schemas: &mut Map<String, Value>) {
    paths.insert("/v1/tokens/workload".into(), json!({"post": {
        "summary": "Issue a workload token: the credential a proxy presents to get certificates for spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WorkloadTokenRequest"}}}},
        "responses": {
            "200": {"description": "the token (Cache-Control: no-store)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WorkloadToken"}}}},
            "400": error_response("invalid namespace, service account or ttl"),
            "404": error_response("this control plane issues no tokens")
        }
    }}));
    paths.insert("/v1/tokens/revoke".into(), json!({"post": {
        "summary": "Revoke a workload token by id: the control plane signs no more certificates for it.",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RevokeTokenRequest"}}}},
        "responses": {
            "200": {"description": "revoked", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RevokedToken"}}}},
            "400": error_response("missing id or invalid expiresAt"),
            "404": error_response("this control plane issues no tokens")
        }
    }}));
    schemas.insert("WorkloadTokenRequest".into(), json!({
        "type": "object",
        "required": ["namespace", "serviceAccount"],
        "additionalProperties": false,
        "properties": {
            "namespace": {"type": "string"},
            "serviceAccount": {"type": "string"},
            "ttl": {"type": "string", "description": "lifetime, e.g. 24h or 30d; default 24h, at most 365d"}
        }
    }));
    schemas.insert("WorkloadToken".into(), json!({
        "type": "object",
        "properties": {
            "token": {"type": "string", "description": "the token; send it as `authorization: Bearer <token>`"},
            "id": {"type": "string", "description": "the token id, for revocation"},
            "identity": {"type": "string", "description": "the SPIFFE ID the token names"},
            "expiresAt": {"type": "string", "format": "date-time"}
        }
    }));
    schemas.insert("RevokeTokenRequest".into(), json!({
        "type": "object",
        "required": ["id"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string"},
            "expiresAt": {"type": "string", "format": "date-time", "description": "when the token expires; the revocation is kept until then (default: longer than any token lives)"}
        }
    }));
    schemas.insert(
        "RevokedToken".into(),
        json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "revokedUntil": {"type": "string", "format": "date-time"}
            }
        }),
    );
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn error_response(what: &str) -> Value {
    json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}
