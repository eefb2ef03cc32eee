//! The GUI's static files at `/gui`: served without a token (they hold no data), each
//! with its content type and the strict Content-Security-Policy, unknown files 404;
//! while every route the GUI reads its data from still needs a token.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use weft_control::api::gui::CONTENT_SECURITY_POLICY;

use crate::harness::{Api, ADMIN};

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: bytes::Bytes,
}

/// `method path` without a token.
async fn anonymous(api: &Api, method: Method, path: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer.headers.get(name).map_or("", |v| v.to_str().unwrap())
}

#[track_caller]
fn assert_strict_policy(answer: &Answer, path: &str) {
    let csp = header(answer, "content-security-policy");
    assert_eq!(csp, CONTENT_SECURITY_POLICY, "{path}");
    assert!(csp.starts_with("default-src 'self';"), "{path}: {csp}");
    for loose in [
        "unsafe-inline",
        "unsafe-eval",
        "*",
        "http:",
        "https:",
        "data:",
    ] {
        assert!(!csp.contains(loose), "{path}: {loose} in {csp}");
    }
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert_eq!(
        header(answer, "x-content-type-options"),
        "nosniff",
        "{path}"
    );
}

#[tokio::test]
async fn the_gui_and_its_files_are_served_without_a_token_with_their_types_and_a_strict_csp() {
    let api = Api::with_admin(ADMIN).await;
    for (path, content_type, has) in [
        (
            "/gui",
            "text/html; charset=utf-8",
            r#"<script type="module" src="/gui/main.js">"#,
        ),
        ("/gui/", "text/html; charset=utf-8", r#"id="login-form""#),
        (
            "/gui/index.html",
            "text/html; charset=utf-8",
            "<title>Weft</title>",
        ),
        (
            "/gui/main.js",
            "text/javascript; charset=utf-8",
            "from './api.js'",
        ),
        (
            "/gui/api.js",
            "text/javascript; charset=utf-8",
            "sessionStorage",
        ),
        (
            "/gui/dom.js",
            "text/javascript; charset=utf-8",
            "textContent",
        ),
        (
            "/gui/resources.js",
            "text/javascript; charset=utf-8",
            "/v1/proxies",
        ),
        ("/gui/graph.js", "text/javascript; charset=utf-8", "by=edge"),
        ("/gui/tap.js", "text/javascript; charset=utf-8", "api.tap("),
        ("/gui/style.css", "text/css; charset=utf-8", ".graph-svg"),
        ("/gui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let answer = anonymous(&api, Method::GET, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(header(&answer, "content-type"), content_type, "{path}");
        assert_strict_policy(&answer, path);
        let body = String::from_utf8_lossy(&answer.body);
        assert!(body.contains(has), "{path} lacks {has:?}");
    }
    let head = anonymous(&api, Method::HEAD, "/gui/main.js").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty(), "HEAD has no body");
    assert_strict_policy(&head, "HEAD /gui/main.js");
}

#[tokio::test]
async fn every_route_the_gui_reads_data_from_still_needs_a_token() {
    let api = Api::with_admin(ADMIN).await;
    for path in [
        "/v1/meshes",
        "/v1/services",
        "/v1/namespaces/default/services/echo",
        "/v1/workloads",
        "/v1/proxies",
        "/v1/httproutes",
        "/v1/trafficpermissions",
        "/openapi.json",
        "/api/v1/stats?by=edge&window=60s",
        "/api/v1/tap?workload=default/web",
    ] {
        let answer = anonymous(&api, Method::GET, path).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["error"]["reason"], "Unauthorized", "{path}");
    }
}

#[tokio::test]
async fn unknown_gui_files_are_404_and_other_methods_405_both_under_the_policy() {
    let api = Api::with_admin(ADMIN).await;
    for path in [
        "/gui/nothing.js",
        "/gui/../openapi.json",
        "/gui/main.js/more",
        "/gui/services/default/echo",
        "/gui/%2e%2e/openapi.json",
    ] {
        let answer = anonymous(&api, Method::GET, path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(body["error"]["reason"], "NotFound", "{path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("in the GUI"),
            "{path}: {body}"
        );
        assert_strict_policy(&answer, path);
    }
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let answer = anonymous(&api, method.clone(), "/gui/main.js").await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(header(&answer, "allow"), "GET, HEAD", "{method}");
        assert_strict_policy(&answer, "/gui/main.js");
    }
}
