//! The document's component schemas: answers as the server writes them (every field it
//! always sets is required, no other field is allowed) and request bodies as it reads
//! them (`{Kind}Request`: the store's bookkeeping and `status` accepted and ignored).

use serde_json::{json, Map, Value};
use weft_api::resource::mesh::MESH_NAME;
use weft_api::resource::Kind;

use crate::store::Role;

use super::super::params::LABEL_PATTERN;
use super::super::tokens::{ttl_pattern, ID_PATTERN};

/// A label or annotation key: an optional DNS prefix and `/`, then a name of at most 63
/// letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
const LABEL_KEY_PATTERN: &str = concat!(
    r"^(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*/)?",
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$",
);

/// A label value: empty, or like the name part of a key.
const LABEL_VALUE_PATTERN: &str = r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";

/// `components`: the schemas every kind shares, and the security scheme.
pub(super) fn components() -> Value {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let requests: Vec<Value> = Kind::ALL
        .iter()
        .map(|k| json!({"$ref": format!("#/components/schemas/{}Request", k.as_str())}))
        .collect();
    let object_request = json!({"$ref": "#/components/schemas/ObjectRequest"});
    json!({
        "schemas": {
            "Error": error(),
            "Health": {
                "type": "object", "additionalProperties": false, "required": ["status"],
                "properties": {"status": {"const": "ok"}}
            },
            "Ready": {
                "type": "object", "additionalProperties": false, "required": ["status", "store"],
                "properties": {
                    "status": {"const": "ok"},
                    "store": {"type": "string", "description": "the store backend, e.g. sqlite or postgres"}
                }
            },
            "ObjectMeta": metadata(true, false),
            "MeshObjectMeta": metadata(false, false),
            "ObjectMetaRequest": metadata(true, true),
            "MeshObjectMetaRequest": metadata(false, true),
            "Labels": {
                "type": "object",
                "description": "Labels, selected by Service selectors and labelSelector.",
                "propertyNames": {"pattern": LABEL_KEY_PATTERN, "maxLength": 317},
                "additionalProperties": {"type": "string", "pattern": LABEL_VALUE_PATTERN}
            },
            "Annotations": {
                "type": "object",
                "description": "Free-form values under label-shaped keys.",
                "propertyNames": {"pattern": LABEL_KEY_PATTERN, "maxLength": 317},
                "additionalProperties": {"type": "string"}
            },
            "ObjectRequest": {
                "description": "An object of any kind, as a request carries it.",
                "oneOf": requests
            },
            "ApplyRequest": {
                "description": "One object, a non-empty array of objects, or a `kind: List` with non-empty `items` (its other fields are ignored).",
                "oneOf": [
                    object_request,
                    {"type": "array", "minItems": 1, "items": object_request},
                    {
                        "type": "object",
                        "required": ["kind", "items"],
                        "properties": {
                            "kind": {"const": "List"},
                            "items": {"type": "array", "minItems": 1, "items": object_request}
                        }
                    }
                ]
            },
            "ApplyResult": {
                "type": "object", "additionalProperties": false, "required": ["results"],
                "properties": {"results": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["kind", "name", "result", "resourceVersion"],
                    "properties": {
                        "kind": {"enum": kinds},
                        "namespace": {"type": "string", "pattern": LABEL_PATTERN, "description": "absent for cluster-scoped kinds"},
                        "name": {"type": "string", "pattern": LABEL_PATTERN},
                        "result": {"enum": ["created", "configured", "unchanged"]},
                        "resourceVersion": {"type": "string", "pattern": "^[0-9]+$"}
                    }
                }}}
            },
            "WatchEvent": {
                "type": "object",
                "description": "One line of a watch stream (application/x-ndjson). ERROR carries an Error's `error` member as `object` (code 410: the revision is older than the store keeps; list again), and is the last line.",
                "additionalProperties": false,
                "required": ["type", "object"],
                "properties": {
                    "type": {"enum": ["ADDED", "MODIFIED", "DELETED", "ERROR"]},
                    "object": {"type": "object"}
                }
            },
            "ProxyList": {
                "type": "object", "additionalProperties": false,
                "required": ["apiVersion", "kind", "items"],
                "properties": {
                    "apiVersion": {"const": "v1"},
                    "kind": {"const": "List"},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Proxy"}}
                }
            },
            "Proxy": {
                "type": "object",
                "description": "What the xDS server knows about one connected proxy: its identity and connection, per resource type the config last sent, the versions it ACKed and its last NACK with the errors."
            },
            "WorkloadTokenRequest": {
                "type": "object",
                "additionalProperties": false,
                "required": ["namespace", "serviceAccount"],
                "properties": {
                    "namespace": {
                        "type": "string", "pattern": LABEL_PATTERN,
                        "not": {"const": weft_tls::control::NAMESPACE},
                        "description": "an RFC 1123 label; not Weft's own namespace"
                    },
                    "serviceAccount": {"type": "string", "pattern": LABEL_PATTERN, "description": "an RFC 1123 label"},
                    "labels": {
                        "$ref": "#/components/schemas/Labels",
                        "description": "the labels every workload registered with this token carries (what Service selectors match); a proxy cannot add to them. Default: none"
                    },
                    "ttl": {
                        "type": ["string", "null"],
                        "pattern": ttl_pattern(),
                        "description": "lifetime: a whole number and a unit s, m, h or d, from 1s to 365d (e.g. 24h, 30d); default 365d; null is the default"
                    }
                }
            },
            "WorkloadToken": {
                "type": "object",
                "additionalProperties": false,
                "required": ["token", "id", "identity", "labels", "expiresAt"],
                "properties": {
                    "token": {"type": "string", "description": "the token; the proxy sends it as `authorization: Bearer <token>`"},
                    "id": {"type": "string", "pattern": ID_PATTERN, "description": "the token id, for revocation"},
                    "identity": {"type": "string", "pattern": "^spiffe://", "description": "the SPIFFE ID the token names"},
                    "labels": {"$ref": "#/components/schemas/Labels"},
                    "expiresAt": {"type": "string", "format": "date-time"}
                }
            },
            "RevokeTokenRequest": {
                "type": "object",
                "additionalProperties": false,
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "pattern": ID_PATTERN, "description": "the id `weft token workload` printed"},
                    "expiresAt": {
                        "type": ["string", "null"],
                        "format": "date-time",
                        "description": "RFC 3339 (upper-case T and Z), when the token expires: the revocation is kept until then; a time in the past means now; default (or null): longer than any token lives"
                    },
                    "force": {"type": "boolean", "description": "revoke an id this control plane has no record of issuing (a token issued before it kept records); without it such an id is 404"}
                }
            },
            "OperatorTokenRequest": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name", "role"],
                "properties": {
                    "name": {"type": "string", "pattern": LABEL_PATTERN, "description": "an RFC 1123 label, unique among unrevoked tokens"},
                    "role": {"type": "string", "enum": Role::ALL.map(Role::as_str), "description": "admin: everything; read-only: GET and HEAD only"},
                    "ttl": {
                        "type": ["string", "null"],
                        "pattern": ttl_pattern(),
                        "description": "lifetime: a whole number and a unit s, m, h or d, from 1s to 365d (e.g. 24h, 30d); default (or null): the token does not expire"
                    }
                }
            },
            "OperatorToken": {
                "type": "object",
                "additionalProperties": false,
                "required": ["token", "id", "name", "role", "expiresAt"],
                "properties": {
                    "token": {"type": "string", "pattern": "^weft-(admin|read)-[A-Za-z0-9_-]{43}$", "description": "the token, shown only here: send it as `Authorization: Bearer <token>`"},
                    "id": {"type": "string", "pattern": ID_PATTERN},
                    "name": {"type": "string", "pattern": LABEL_PATTERN},
                    "role": {"type": "string", "enum": Role::ALL.map(Role::as_str)},
                    "expiresAt": {"type": ["string", "null"], "format": "date-time", "description": "null: never"}
                }
            },
            "OperatorTokenInfo": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name", "id", "role", "createdAt", "expiresAt", "revokedAt", "status"],
                "properties": {
                    "name": {"type": "string", "pattern": LABEL_PATTERN},
                    "id": {"type": "string", "pattern": ID_PATTERN},
                    "role": {"type": "string", "enum": Role::ALL.map(Role::as_str)},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "expiresAt": {"type": ["string", "null"], "format": "date-time", "description": "null: never"},
                    "revokedAt": {"type": ["string", "null"], "format": "date-time", "description": "null: not revoked"},
                    "status": {"type": "string", "enum": ["active", "expired", "revoked"]}
                }
            },
            "OperatorTokenList": {
                "type": "object",
                "additionalProperties": false,
                "required": ["items"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/OperatorTokenInfo"}}
                }
            },
            "RevokedToken": {
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "revokedUntil"],
                "properties": {
                    "id": {"type": "string", "pattern": ID_PATTERN},
                    "revokedUntil": {"type": "string", "format": "date-time"}
                }
            }
        },
        "securitySchemes": {"bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An operator token: `weft token admin` on the control-plane host prints the bootstrap admin token; `weft token admin create` makes others, admin or read-only."
        }}
    })
}

/// The schemas of one kind: the object as answered (`{Kind}`), as a request carries it
/// (`{Kind}Request`), its list (`{Kind}List`), and its spec's definitions
/// (`{Kind}.{Type}`).
pub(super) fn kind(kind: Kind, schemas: &mut Map<String, Value>) {
    let name = kind.as_str();
    let (spec, definitions) = spec_schema(kind);
    schemas.extend(definitions);
    let meta = if kind.namespaced() {
        "ObjectMeta"
    } else {
        "MeshObjectMeta"
    };
    let common = |required: Vec<&str>, meta: String, spec: Value, status: Value| {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": required,
            "properties": {
                "apiVersion": {"enum": kind.accepted_api_versions()},
                "kind": {"const": name},
                "metadata": {"$ref": format!("#/components/schemas/{meta}")},
                "spec": spec,
                "status": status
            },
            "x-weft-plural": kind.plural(),
            "x-weft-namespaced": kind.namespaced()
        })
    };
    schemas.insert(
        name.to_owned(),
        common(
            vec!["apiVersion", "kind", "metadata", "spec"],
            meta.to_owned(),
            spec.clone(),
            json!({"type": "object", "description": "What the control plane observed; written by it only."}),
        ),
    );
    let (required, request_spec) = if kind == Kind::Mesh {
        let spec = json!({
            "anyOf": [spec, {"type": "null"}],
            "description": "Left out or null: every default."
        });
        (vec!["apiVersion", "kind", "metadata"], spec)
    } else {
        (vec!["apiVersion", "kind", "metadata", "spec"], spec)
    };
    let mut request = common(
        required,
        format!("{meta}Request"),
        request_spec,
        json!({"description": "Ignored: the control plane writes status."}),
    );
    if kind == Kind::Secret {
        secret_request(&mut request);
    }
    schemas.insert(format!("{name}Request"), request);
    schemas.insert(
        format!("{name}List"),
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["apiVersion", "kind", "metadata", "items"],
            "properties": {
                "apiVersion": {"const": "v1"},
                "kind": {"const": "List"},
                "metadata": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["resourceVersion"],
                    "properties": {"resourceVersion": {"type": "string", "pattern": "^[0-9]+$", "description": "the store revision the list was read at"}}
                },
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}}
            }
        }),
    );
}

/// A Secret request carries its material at the top level, as on Kubernetes: `type`,
/// and `data` (base64) or `stringData` (PEM); no `spec`. Answers never carry it.
fn secret_request(request: &mut Value) {
    use weft_api::resource::secret::{KEYS, TLS_TYPE};
    let material = |description: &str| {
        json!({
            "type": "object",
            "description": description,
            "propertyNames": {"enum": KEYS},
            "additionalProperties": {"type": "string"}
        })
    };
    if let Some(properties) = request["properties"].as_object_mut() {
        properties.remove("spec");
        properties.insert("type".into(), json!({"const": TLS_TYPE}));
        properties.insert(
            "data".into(),
            material("tls.crt, tls.key and optional ca.crt, each the base64 of PEM text"),
        );
        properties.insert(
            "stringData".into(),
            material("the same keys as PEM text; merged over data"),
        );
    }
    request["required"] = json!(["apiVersion", "kind", "metadata", "type"]);
    request["description"] = json!(
        "Write-only: the material is sealed at rest and never answered; reading a Secret gives its keys and its certificate's description."
    );
}

/// Object metadata, for a namespaced kind or the `Mesh`, as answered or as a request
/// carries it.
fn metadata(namespaced: bool, request: bool) -> Value {
    let label = json!({"type": "string", "pattern": LABEL_PATTERN});
    let name = if namespaced {
        json!({"type": "string", "pattern": LABEL_PATTERN, "description": "a lower-case RFC 1123 label, unique per kind within the namespace"})
    } else {
        json!({"const": MESH_NAME, "description": "there is one Mesh"})
    };
    let optional = |schema: Value| {
        if request {
            json!({"anyOf": [schema, {"type": "null"}]})
        } else {
            schema
        }
    };
    let mut properties = json!({
        "name": name,
        "labels": {"$ref": "#/components/schemas/Labels"},
        "annotations": {"$ref": "#/components/schemas/Annotations"},
        "resourceVersion": optional(json!({
            "type": "string",
            "pattern": if request { "^[0-9]{0,18}$" } else { "^[0-9]+$" },
            "description": "the store revision of the last write; in a request, makes the write conditional on it (409 if the object moved)"
        })),
        "uid": optional(json!({"type": "string", "description": "set by the store on creation; ignored in requests"})),
        "generation": optional(json!({"type": "integer", "format": "int64", "description": "set by the store, raised when the spec or labels change; ignored in requests"})),
        "creationTimestamp": optional(json!({"type": "string", "description": "set by the store on creation (RFC 3339); ignored in requests"}))
    });
    let mut required = vec!["name"];
    if namespaced {
        properties["namespace"] = optional(label);
        if request {
            properties["namespace"]["description"] =
                json!("default: the path's (or `default` in /v1/apply); must match the path");
        } else {
            required.push("namespace");
        }
    } else if request {
        properties["namespace"] =
            json!({"type": "null", "description": "the Mesh is cluster-scoped"});
    }
    if !request {
        required.extend(["resourceVersion", "uid", "generation", "creationTimestamp"]);
    }
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties
    })
}

/// The JSON schema of a kind's spec, and the definitions it refers to, renamed
/// `<Kind>.<Type>` (two kinds may both have a `Port`) and referenced as components.
fn spec_schema(kind: Kind) -> (Value, Map<String, Value>) {
    use weft_api::resource::{
        backend, gateway, mesh, permission, route, secret, service, telemetry, traffic, workload,
    };
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
        Kind::TrafficPermission => schemars::schema_for!(permission::Spec),
        Kind::Telemetry => schemars::schema_for!(telemetry::Spec),
        Kind::Gateway => schemars::schema_for!(gateway::Spec),
        Kind::Secret => schemars::schema_for!(secret::Spec),
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
    rewrite(&mut schema, &prefix);
    for def in definitions.values_mut() {
        rewrite(def, &prefix);
    }
    (schema, definitions)
}

/// Points `#/$defs/X` references at `{prefix}X`, and spells schemars' non-standard
/// `format: ip` (an `IpAddr`) as the standard `ipv4` or `ipv6`.
fn rewrite(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            if map.get("format").and_then(Value::as_str) == Some("ip") {
                map.remove("format");
                map.insert(
                    "anyOf".into(),
                    json!([{"format": "ipv4"}, {"format": "ipv6"}]),
                );
            }
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            *target = format!("{prefix}{name}");
                        }
                    }
                    _ => rewrite(v, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, prefix)),
        _ => {}
    }
}

/// The Error body.
fn error() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "additionalProperties": false,
            "required": ["code", "reason", "message"],
            "properties": {
                "code": {"type": "integer", "minimum": 400, "maximum": 599, "description": "the HTTP status"},
                "reason": {"type": "string", "description": "machine-readable: Invalid, BadRequest, Unauthorized, NotFound, Conflict, AlreadyExists, …"},
                "message": {"type": "string", "description": "what is wrong, naming the input, and what to do"},
                "details": {"type": "array", "minItems": 1, "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["path", "message"],
                    "properties": {
                        "document": {"type": "integer", "minimum": 0, "description": "/v1/apply: the 0-based index of the document"},
                        "kind": {"type": "string"},
                        "namespace": {"type": "string"},
                        "name": {"type": "string"},
                        "path": {"type": "string", "description": "the field path (spec.rules[1].backendRefs[0].weight) or the parameter's name; empty for the whole document"},
                        "message": {"type": "string"}
                    }
                }}
            }
        }}
    })
}
