//! Objects of every kind: create, read, replace, apply, list with selectors, OpenAPI,
//! readiness, the proxy directory and body limits.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use weft_api::resource::Kind;
use weft_control::api;

use crate::harness::{
    client, collection, item, name_for, names, object, other_spec, serve, service, spec, Api, JSON,
    TWO_DOCUMENTS, YAML,
};

#[tokio::test]
async fn every_kind_round_trips_in_json() {
    let api = Api::new();
    for kind in Kind::ALL {
        if kind == Kind::Secret {
            // Answered without its material: see secrets.rs.
            continue;
        }
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
        if kind == Kind::Secret {
            // Answered without its material: see secrets.rs.
            continue;
        }
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
