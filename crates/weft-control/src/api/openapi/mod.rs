//! `GET /openapi.json`: the OpenAPI 3.1 contract of this API, built once from
//! [`Kind::ALL`] so a new kind shows up without editing this file.
//!
//! The contract is exact, and a test holds the server to it: `api_contract.rs` in
//! `crates/weft/tests` runs Schemathesis against a live control plane. So:
//!
//! - every status an operation can answer is listed, with the [`Error`](super::Error)
//!   body and the headers that come with it (`WWW-Authenticate` on 401, `Allow` on 405);
//! - each parameter carries the pattern, enum or range the server checks (the same
//!   constants, see [`params`](super::params));
//! - answers are described as the server writes them ([`schemas`]), request bodies as it
//!   reads them; each kind's `spec` schema is generated (schemars) from its typed spec in
//!   `weft_api::resource`, so the document and the validator cannot drift apart.
//!
//! A resource body can still break rules no JSON Schema states (its name must match the
//! path's, ports must be unique, …); those answer `400` with the field path. Each
//! request body has a valid example ([`examples`]).
//!
//! The `405` fallback reads the document too ([`methods_of`]), so `Allow` lists exactly
//! the methods documented for a path.

mod examples;
mod schemas;

use std::sync::LazyLock;

use axum::http::HeaderMap;
use serde_json::{json, Map, Value};
use weft_api::resource::mesh::MESH_NAME;
use weft_api::resource::Kind;

use super::error::Error;
use super::format::{Format, Reply};
use super::params::{LABEL_PATTERN, MAX_TIMEOUT_SECONDS, REVISION_PATTERN};
use super::selector;
use super::MAX_BODY_BYTES;

/// The document, built on first use.
static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// HTTP methods as they appear in a path item, with their names on the wire.
const METHODS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("trace", "TRACE"),
];

pub(super) async fn handler(headers: HeaderMap) -> Result<Reply, Error> {
    Ok(Reply::ok(Format::of_response(&headers)?, &*DOCUMENT))
}

/// The OpenAPI 3.1 document: every path, and a schema per kind.
pub fn openapi() -> Value {
    DOCUMENT.clone()
}

/// The methods the document lists for a concrete request `path`, or `None` if it has no
/// such path. A path matching several templates takes the one with the most literal
/// segments (`/v1/tokens/revoke` before a `/v1/tokens/{name}`).
pub(super) fn methods_of(path: &str) -> Option<Vec<&'static str>> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let paths = DOCUMENT["paths"].as_object()?;
    let (_, item) = paths
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, item))
        })
        .max_by_key(|(literal, _)| *literal)?;
    Some(
        METHODS
            .iter()
            .filter(|(key, _)| item.get(key).is_some())
            .map(|(_, method)| *method)
            .collect(),
    )
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut components = schemas::components();
    for kind in Kind::ALL {
        kind_paths(kind, &mut paths);
    }
    paths.insert(
        "/healthz".into(),
        json!({"get": {
            "summary": "Liveness: the process answers. Open: no token needed.",
            "security": [],
            "responses": {
                "200": {"description": "alive", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                "400": status(400, ""),
                "405": status(405, ""),
                "413": status(413, "")
            }
        }}),
    );
    paths.insert(
        "/readyz".into(),
        json!({"get": {
            "summary": "Readiness: the store answers and can write. Open: no token needed.",
            "security": [],
            "responses": {
                "200": {"description": "ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}}},
                "400": status(400, ""),
                "405": status(405, ""),
                "413": status(413, ""),
                "503": status(503, "the store does not answer (reason NotReady), or its writes fail, e.g. on a full disk (reason StoreCannotWrite)")
            }
        }}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": {
            "summary": "This document.",
            "responses": responses(
                json!({"200": {"description": "the OpenAPI 3.1 document", "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/yaml": {"schema": {"type": "object"}}
                }}}),
                &[401, 403, 405, 406, 500],
                &[],
            )
        }}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": {
            "summary": "The control plane's metrics: connected proxies, xDS pushes, ACKs and NACKs by type, store writes and their latency, certificate requests.",
            "responses": responses(
                json!({"200": {"description": "Prometheus exposition: OpenMetrics text, or the same text as text/plain for a client that accepts only that", "content": {
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                    "text/plain": {"schema": {"type": "string"}}
                }}}),
                &[401, 403, 404, 405, 406, 500],
                &[(404, "this API keeps no metrics (an in-process API without them)")],
            )
        }}),
    );
    paths.insert("/v1/apply".into(), json!({"post": {
        "summary": "Create or update many objects; all are validated before any is written.",
        "description": "One object, an array of objects or a `kind: List` with `items`, in JSON or as YAML (YAML may also be several documents separated by `---`). Every document is checked first; one invalid document fails the request with 400, listing every problem with its document index, kind, name and field path, and nothing is written. Then every object is written in order, in one transaction: all or none (conditional on its `metadata.resourceVersion` when given). Two documents naming the same object, and a mapping that repeats a key, are refused. Limits: 10,000 objects and 1,000,000 YAML nodes per request (400 naming the limit), 4 MiB per body (413).",
        "requestBody": {"required": true, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ApplyRequest"}, "example": examples::apply()},
            "application/yaml": {"schema": {"$ref": "#/components/schemas/ApplyRequest"}, "example": examples::apply()}
        }},
        "responses": responses(
            json!({"200": {"description": "per object: created, configured or unchanged", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ApplyResult"}},
                "application/yaml": {"schema": {"$ref": "#/components/schemas/ApplyResult"}}
            }}}),
            &[400, 401, 403, 405, 406, 409, 413, 415, 500, 503],
                &[],
        )
    }}));
    paths.insert(
        "/v1/proxies".into(),
        json!({"get": {
            "summary": "Connected proxies: config sent, versions ACKed, last NACK.",
            "responses": responses(
                json!({"200": {"description": "the proxies connected to this instance", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ProxyList"}},
                    "application/yaml": {"schema": {"$ref": "#/components/schemas/ProxyList"}}
                }}}),
                &[401, 403, 405, 406, 500],
                &[],
            )
        }}),
    );
    paths.insert(
        "/v1/proxies/{namespace}/{name}".into(),
        json!({
            "parameters": [namespace_param(), name_param(Kind::Workload)],
            "get": {
                "summary": "One connected proxy, by its workload.",
                "responses": responses(
                    json!({"200": {"description": "the proxy", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Proxy"}},
                        "application/yaml": {"schema": {"$ref": "#/components/schemas/Proxy"}}
                    }}}),
                    &[400, 401, 403, 404, 405, 406, 500],
                &[(404, "no proxy of this workload is connected to this instance")],
                )
            }
        }),
    );
    stats_paths(&mut paths);
    token_paths(&mut paths);
    if let Some(map) = components.get_mut("schemas").and_then(Value::as_object_mut) {
        for kind in Kind::ALL {
            schemas::kind(kind, map);
        }
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Weft control plane API",
            "version": "v1",
            "description": "Resources in JSON (application/json) or YAML (application/yaml): the `Content-Type` of a body (JSON when absent), the `Accept` header for answers (JSON when absent; 406 when it allows neither). Errors are always JSON (the Error schema): the message names the input and says what to do; `details` locate problems by field path (or parameter name). Every path but /healthz and /readyz needs an operator token; every method but GET and HEAD an admin one."
        },
        "paths": paths,
        "security": [{"bearer": []}],
        "components": components
    })
}

/// Paths and operations of one kind.
fn kind_paths(kind: Kind, paths: &mut Map<String, Value>) {
    let plural = kind.plural();
    let name = kind.as_str();
    let answer = json!({"$ref": format!("#/components/schemas/{name}")});
    let request = json!({"$ref": format!("#/components/schemas/{name}Request")});
    let example = examples::object(kind);
    let body = json!({"required": true, "content": {
        "application/json": {"schema": request, "example": example},
        "application/yaml": {"schema": request, "example": example}
    }});
    let object = |what: &str| {
        json!({"description": what, "content": {
            "application/json": {"schema": answer},
            "application/yaml": {"schema": answer}
        }})
    };
    let list_schema = json!({"$ref": format!("#/components/schemas/{name}List")});
    let list = json!({
        "summary": format!("List {name} objects, or watch them (watch=true)"),
        "parameters": list_params(),
        "responses": responses(
            json!({"200": {"description": "the list; with watch=true a stream of WatchEvent lines (one JSON object per line) that lasts until timeoutSeconds or the client goes away", "content": {
                "application/json": {"schema": list_schema},
                "application/yaml": {"schema": list_schema},
                "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/WatchEvent"}}
            }}}),
            &[400, 401, 403, 405, 406, 413, 500, 503],
                &[(400, "a query parameter is invalid (the message names it)")],
        )
    });
    let create = json!({
        "summary": format!("Create a {name}"),
        "requestBody": body,
        "responses": responses(
            json!({"201": object("created")}),
            &[400, 401, 403, 405, 406, 409, 413, 415, 500, 503],
                &[(400, "invalid: the body is not a valid object of this kind (field paths in details), or disagrees with the path"), (409, "already exists (reason AlreadyExists); PUT replaces")],
        )
    });
    let item = json!({
        "get": {
            "summary": format!("Read a {name}"),
            "responses": responses(
                json!({"200": object("the object")}),
                &[400, 401, 403, 404, 405, 406, 500, 503],
                &[(404, "no such object")],
            )
        },
        "put": {
            "summary": format!("Create or replace a {name}; conditional on metadata.resourceVersion when the body gives one"),
            "requestBody": body,
            "responses": responses(
                json!({"200": object("replaced (or unchanged)"), "201": object("created")}),
                &[400, 401, 403, 404, 405, 406, 409, 413, 415, 500, 503],
                &[(400, "invalid: the body is not a valid object of this kind (field paths in details), or disagrees with the path"), (404, "metadata.resourceVersion was given but there is no such object"), (409, "metadata.resourceVersion does not match the stored object (reason Conflict)")],
            )
        },
        "delete": {
            "summary": format!("Delete a {name}"),
            "responses": responses(
                json!({"200": object("the deleted object")}),
                &[400, 401, 403, 404, 405, 406, 500, 503],
                &[(404, "no such object")],
            )
        }
    });
    let mut item = item;
    if kind.namespaced() {
        paths.insert(format!("/v1/{plural}"), json!({"get": list.clone()}));
        paths.insert(
            format!("/v1/namespaces/{{namespace}}/{plural}"),
            json!({"parameters": [namespace_param()], "get": list, "post": create}),
        );
        item["parameters"] = json!([namespace_param(), name_param(kind)]);
        paths.insert(
            format!("/v1/namespaces/{{namespace}}/{plural}/{{name}}"),
            item,
        );
    } else {
        paths.insert(
            format!("/v1/{plural}"),
            json!({"get": list, "post": create}),
        );
        item["parameters"] = json!([name_param(kind)]);
        paths.insert(format!("/v1/{plural}/{{name}}"), item);
    }
}

fn list_params() -> Value {
    json!([
        {"name": "labelSelector", "in": "query",
         "schema": {"type": "string", "pattern": selector::PATTERN},
         "description": "Only objects whose labels satisfy every requirement: comma-separated `key=value` (or `key==value`), `key!=value`, `key` (present), `!key` (absent). Keys: letters, digits, `-`, `_`, `.`, `/`; values the same but `/`, may be empty; spaces around requirements and operators are allowed.",
         "example": "app=web,tier!=db"},
        {"name": "watch", "in": "query", "schema": {"type": "boolean"},
         "description": "`true`: instead of a list, a stream (application/x-ndjson) of WatchEvent lines: ADDED for each object listed, then each change."},
        {"name": "resourceVersion", "in": "query",
         "schema": {"type": "string", "pattern": REVISION_PATTERN},
         "description": "A revision (the `metadata.resourceVersion` of a list). With `watch=true`: stream the changes after it instead of starting with a full list (`0` or empty: start with a list; a revision older than the store keeps ends the stream with one ERROR event, code 410: list again). Without watch: the list must be at least this recent, which every list is, as it is read at the store's latest revision."},
        {"name": "timeoutSeconds", "in": "query",
         "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_SECONDS},
         "description": "With watch=true: how long the stream lasts, in seconds (fractions allowed); default: until the client goes away. A list is answered at once, well within any timeout."}
    ])
}

fn namespace_param() -> Value {
    json!({"name": "namespace", "in": "path", "required": true,
           "schema": {"type": "string", "pattern": LABEL_PATTERN},
           "description": "A namespace: a lower-case RFC 1123 label (at most 63 letters, digits and '-').",
           "example": weft_api::resource::DEFAULT_NAMESPACE})
}

fn name_param(kind: Kind) -> Value {
    if kind == Kind::Mesh {
        json!({"name": "name", "in": "path", "required": true,
               "schema": {"type": "string", "enum": [MESH_NAME]},
               "description": "There is one Mesh, named `default`.",
               "example": MESH_NAME})
    } else {
        json!({"name": "name", "in": "path", "required": true,
               "schema": {"type": "string", "pattern": LABEL_PATTERN},
               "description": "An object name: a lower-case RFC 1123 label (at most 63 letters, digits and '-').",
               "example": examples::NAME})
    }
}

/// `/v1/tokens/…`: issuing and revoking workload tokens.
fn token_paths(paths: &mut Map<String, Value>) {
    let no_issuer = (404, "this control plane issues no tokens");
    let request = |schema: &str, example: Value| {
        json!({"required": true, "content": {
            "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}, "example": example},
            "application/yaml": {"schema": {"$ref": format!("#/components/schemas/{schema}")}, "example": example}
        }})
    };
    let answer = |schema: &str, what: &str, headers: Value| {
        json!({"description": what, "headers": headers, "content": {
            "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
            "application/yaml": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}
        }})
    };
    paths.insert("/v1/tokens/workload".into(), json!({"post": {
        "summary": "Issue a workload token: the credential a proxy presents to get certificates for spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.",
        "requestBody": request("WorkloadTokenRequest", json!({"namespace": "default", "serviceAccount": "web", "labels": {"app": "web"}, "ttl": "30d"})),
        "responses": responses(
            json!({"200": answer("WorkloadToken", "the token", json!({"Cache-Control": {
                "description": "`no-store`: the answer carries a credential",
                "required": true,
                "schema": {"const": "no-store"}
            }}))}),
            &[400, 401, 403, 404, 405, 406, 413, 415, 500, 503],
                &[(400, "a field is invalid (named in details)"), no_issuer],
        )
    }}));
    paths.insert("/v1/tokens/revoke".into(), json!({"post": {
        "summary": "Revoke a workload token by id: the control plane signs no more certificates for it.",
        "requestBody": request("RevokeTokenRequest", json!({"id": "0123456789abcdef0123456789abcdef"})),
        "responses": responses(
            json!({"200": answer("RevokedToken", "revoked", json!({}))}),
            &[400, 401, 403, 404, 405, 406, 413, 415, 500, 503],
                &[(400, "a field is invalid (named in details)"), no_issuer],
        )
    }}));
    let operator = |schema: &str, what: &str| answer(schema, what, json!({}));
    paths.insert("/v1/tokens/operator".into(), json!({
        "get": {
            "summary": "List operator tokens, revoked and expired ones included: names, roles and times, never a token or its hash.",
            "responses": responses(
                json!({"200": operator("OperatorTokenList", "the tokens, by name")}),
                &[401, 403, 405, 406, 500, 503],
                &[],
            )
        },
        "post": {
            "summary": "Create an operator token: the answer is the only time the token is shown. Admin tokens only.",
            "requestBody": request("OperatorTokenRequest", json!({"name": "ci-deploy", "role": "read-only", "ttl": "30d"})),
            "responses": responses(
                json!({"201": answer("OperatorToken", "the token", json!({"Cache-Control": {
                    "description": "`no-store`: the answer carries a credential",
                    "required": true,
                    "schema": {"const": "no-store"}
                }}))}),
                &[400, 401, 403, 405, 406, 409, 413, 415, 500, 503],
                &[(400, "a field is invalid (named in details)"), (409, "an unrevoked, unexpired token has this name (reason AlreadyExists): revoke it first or pick another name")],
            )
        }
    }));
    paths.insert("/v1/tokens/operator/{name}".into(), json!({
        "parameters": [{"name": "name", "in": "path", "required": true,
            "schema": {"type": "string", "pattern": LABEL_PATTERN},
            "description": "The token's name: a lower-case RFC 1123 label.",
            "example": "ci-deploy"}],
        "delete": {
            "summary": "Revoke the operator token of this name: every instance refuses it within 2 s, this one at once. Revoking a revoked token answers it again. Admin tokens only.",
            "responses": responses(
                json!({"200": operator("OperatorTokenInfo", "the revoked token")}),
                &[400, 401, 403, 404, 405, 406, 409, 500, 503],
                &[(400, "the name is not an RFC 1123 label"), (404, "no token ever had this name"), (409, "the last usable admin token cannot be revoked (reason Conflict): create another admin token first")],
            )
        }
    }));
}

/// `success` with the Error responses of `codes`, described as `described` says, else
/// by [`status`]'s default, and 400 and 413, which any request can get.
fn responses(success: Value, codes: &[u16], described: &[(u16, &str)]) -> Value {
    let mut all = match success {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for code in codes {
        let what = described
            .iter()
            .find(|(c, _)| c == code)
            .map_or("", |(_, what)| what);
        all.insert(code.to_string(), status(*code, what));
    }
    // Every request's body is read first (see `format::read_first`): too large or
    // unreadable, whatever the operation.
    for code in [400, 413] {
        all.entry(code.to_string())
            .or_insert_with(|| status(code, ""));
    }
    Value::Object(all)
}

/// One error response: the Error body, with the headers its status comes with.
fn status(code: u16, what: &str) -> Value {
    let (default, headers) = match code {
        400 => ("the request body could not be read", json!({})),
        401 => (
            "no operator token, or an expired or revoked one (the message says which): send `Authorization: Bearer <token>` (`weft token admin` on the control-plane host prints the admin token)",
            json!({"WWW-Authenticate": {"description": "`Bearer`", "required": true, "schema": {"const": "Bearer"}}}),
        ),
        403 => ("the bearer token is no operator token, or its role does not allow this (a read-only token may only GET)", json!({})),
        404 => ("not found", json!({})),
        405 => (
            "the path does not serve this method",
            json!({"Allow": {"description": "the methods the path serves, as documented here", "required": true, "schema": {"type": "string"}}}),
        ),
        406 => ("`Accept` allows none of the types this operation answers in", json!({})),
        413 => ("the body is larger than the limit (see the message)", json!({})),
        415 => ("the body's `Content-Type` is neither JSON nor YAML", json!({})),
        500 => ("internal error; the control plane logs the cause", json!({})),
        503 => ("the store is unavailable; retry later", json!({})),
        _ => ("error", json!({})),
    };
    let what = if what.is_empty() { default } else { what };
    let what = if code == 413 {
        format!("{what} ({MAX_BODY_BYTES} bytes)")
    } else {
        what.to_owned()
    };
    json!({"description": what, "headers": headers, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
    }})
}

/// `/v1/stats` and `/v1/tap`.
fn stats_paths(paths: &mut Map<String, Value>) {
    let party = json!({"type": "object", "properties": {
        "service": {"type": "string"}, "workload": {"type": "string"},
        "namespace": {"type": "string"}, "identity": {"type": "string"}
    }});
    let row = json!({"type": "object", "required": ["destination", "requests", "successes", "rps"], "properties": {
        "source": {"oneOf": [party, {"type": "null"}]},
        "destination": party,
        "route": {"oneOf": [{"type": "object", "properties": {"name": {"type": "string"}, "rule": {"type": "integer", "minimum": 0}}}, {"type": "null"}]},
        "security": {"type": ["string", "null"], "enum": ["mutual_tls", "none", "unknown", null]},
        "requests": {"type": "integer", "minimum": 0},
        "successes": {"type": "integer", "minimum": 0},
        "success_rate": {"type": ["number", "null"]},
        "rps": {"type": "number"},
        "latency_ms": {"oneOf": [{"type": "object", "properties": {"p50": {"type": "number"}, "p95": {"type": "number"}, "p99": {"type": "number"}}}, {"type": "null"}]}
    }});
    let answer = json!({"type": "object", "required": ["window_seconds", "by", "proxies", "rows"], "properties": {
        "window_seconds": {"type": "integer"}, "by": {"type": "string"},
        "proxies": {"type": "integer", "minimum": 0}, "rows": {"type": "array", "items": row}
    }});
    let query = |name: &str, description: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema});
    paths.insert(
        "/v1/stats".into(),
        json!({"get": {
            "summary": "Live request statistics from the proxies' reports (every 5 s), summed over a window: per service, workload, route rule, or caller→callee edge.",
            "parameters": [
                query("by", "what rows are grouped by (default service)", json!({"type": "string", "enum": ["service", "workload", "route", "edge"]})),
                query("window", "the period summed, 1s to 300s or 1m to 5m (default 60s)", json!({"type": "string", "pattern": super::stats::WINDOW_PATTERN})),
                query("namespace", "only destinations in this namespace", json!({"type": "string"}))
            ],
            "responses": responses(
                json!({"200": {"description": "the rows, busiest first", "content": {
                    "application/json": {"schema": answer},
                    "application/yaml": {"schema": answer}
                }}}),
                &[400, 401, 403, 404, 405, 406, 500],
                &[(404, "this API keeps no live statistics (an in-process API without them)")],
            )
        }}),
    );
    paths.insert(
        "/v1/tap".into(),
        json!({"get": {
            "summary": "A live stream of the requests a workload's (or a service's) proxies see, one JSON object per line, until the client leaves (at most 15 minutes). Needs an admin token; header values other than those allowed are redacted.",
            "parameters": [
                query("workload", "NAMESPACE/NAME of the workload to tap (this or service)", json!({"type": "string"})),
                query("service", "NAME.NAMESPACE of a service whose workloads to tap", json!({"type": "string"})),
                query("path", "only paths with this prefix", json!({"type": "string"})),
                query("method", "only this method", json!({"type": "string"})),
                query("status", "only this status (503) or class (5xx)", json!({"type": "string", "pattern": "^([1-5]xx|[1-5][0-9][0-9])$"})),
                query("caller", "only this caller's SPIFFE ID", json!({"type": "string"})),
                query("max_rps", "at most this many requests per second and proxy, 1-1000 (default 10)", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
                query("headers", "comma-separated headers whose values are shown", json!({"type": "string"}))
            ],
            "responses": responses(
                json!({"200": {"description": "one JSON object per request, newline-delimited", "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}}
                }}}),
                &[400, 401, 403, 404, 405, 406, 500],
                &[(404, "no such workload, a service that selects none, or an API without live statistics")],
            )
        }}),
    );
}
