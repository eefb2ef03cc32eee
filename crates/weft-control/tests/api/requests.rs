//! What a request may say: parameters, paths, media types, methods, and the documented
//! examples and errors of every operation.

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;
use weft_api::resource::Kind;

use crate::harness::{client, collection, error_of, object, serve, spec, Api, JSON, YAML};

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
