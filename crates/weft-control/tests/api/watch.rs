//! Watches: existing objects then each write, resuming, compaction, timeouts.

use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use weft_api::resource::Kind;

use crate::harness::{next_events, other_spec, serve, service, watch, Api, JSON};

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
