//! Who may call: the admin token, operator tokens with roles, expiry and revocation, and
//! workload tokens.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use weft_control::api::{self, ApiState, OperatorAuth};
use weft_control::store::Role;

use crate::harness::{add_operator_token, error_of, service, Api, OneProxy, ADMIN, JSON};

#[tokio::test]
async fn a_call_without_the_admin_token_is_401_with_a_bearer_challenge_and_a_hint() {
    let api = Api::with_admin(ADMIN).await;
    for path in ["/v1/services", "/openapi.json", "/v1/no-such-thing"] {
        let (status, challenge, body) = api.get_as(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(challenge, "Bearer", "{path}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], 401);
        assert_eq!(body["error"]["reason"], "Unauthorized");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("weft token admin"),
            "{body}"
        );
    }
    let (status, _, _) = api.get_as("/v1/services", Some("Basic YWRtaW4=")).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a non-Bearer scheme is no token"
    );
}

#[tokio::test]
async fn a_call_with_a_wrong_admin_token_is_403() {
    let api = Api::with_admin(ADMIN).await;
    let (status, challenge, body) = api
        .get_as("/v1/services", Some("Bearer weft-admin-wrong"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(challenge, "");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["reason"], "Forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("weft token admin"));
}

#[tokio::test]
async fn a_call_with_the_admin_token_is_served() {
    let api = Api::with_admin(ADMIN).await;
    let bearer = format!("Bearer {ADMIN}");
    let (status, _, body) = api.get_as("/v1/services", Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = api.get_as("/openapi.json", Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api.get_as("/v1/no-such-thing", Some(&bearer)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "past the token, the usual errors"
    );
}

#[tokio::test]
async fn healthz_and_readyz_are_open_without_the_admin_token() {
    let api = Api::with_admin(ADMIN).await;
    for path in ["/healthz", "/readyz"] {
        let (status, _, _) = api.get_as(path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_read_only_token_can_read_and_watch_but_every_write_is_403_naming_its_role() {
    let api = Api::with_admin(ADMIN).await;
    let created = api
        .create_operator_token(ADMIN, "viewer", "read-only")
        .await;
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("weft-read-"), "{token}");
    api.call(
        Method::POST,
        "/v1/namespaces/default/services",
        ADMIN,
        Some(service("web", "default", &json!({"app": "web"}))),
    )
    .await
    .expect(StatusCode::CREATED);

    for path in [
        "/v1/services",
        "/v1/namespaces/default/services",
        "/v1/namespaces/default/services/web",
        "/v1/namespaces/default/services?watch=true&timeoutSeconds=0.1",
        "/v1/proxies",
        "/v1/tokens/operator",
        "/openapi.json",
    ] {
        api.call(Method::GET, path, token, None)
            .await
            .expect(StatusCode::OK);
    }
    let head = api
        .call(
            Method::HEAD,
            "/v1/namespaces/default/services/web",
            token,
            None,
        )
        .await;
    head.expect(StatusCode::OK);

    let web = service("web", "default", &json!({"app": "web"}));
    let writes = [
        (Method::POST, "/v1/apply", Some(web.clone())),
        (
            Method::POST,
            "/v1/namespaces/default/services",
            Some(web.clone()),
        ),
        (
            Method::PUT,
            "/v1/namespaces/default/services/web",
            Some(web),
        ),
        (
            Method::PATCH,
            "/v1/namespaces/default/services/web",
            Some(json!({})),
        ),
        (Method::DELETE, "/v1/namespaces/default/services/web", None),
        (
            Method::POST,
            "/v1/tokens/workload",
            Some(json!({"namespace": "default", "serviceAccount": "web"})),
        ),
        (
            Method::POST,
            "/v1/tokens/operator",
            Some(json!({"name": "mine", "role": "admin"})),
        ),
        (Method::DELETE, "/v1/tokens/operator/bootstrap", None),
    ];
    for (method, path, body) in writes {
        let answer = api.call(method.clone(), path, token, body).await;
        answer.expect(StatusCode::FORBIDDEN);
        let message = answer.message();
        assert!(
            message.contains("\"viewer\" has role read-only")
                && message.contains(&format!("{method} {path}"))
                && message.contains("--role admin"),
            "{method} {path}: {message}"
        );
    }
    api.call(
        Method::GET,
        "/v1/namespaces/default/services/web",
        ADMIN,
        None,
    )
    .await
    .expect(StatusCode::OK);
}

#[tokio::test]
async fn creating_an_operator_token_answers_it_once_uncached_and_checks_each_field() {
    let api = Api::with_admin(ADMIN).await;
    let answer = api
        .call(
            Method::POST,
            "/v1/tokens/operator",
            ADMIN,
            Some(json!({"name": "ci", "role": "admin", "ttl": "30d"})),
        )
        .await;
    answer.expect(StatusCode::CREATED);
    assert_eq!(answer.headers["cache-control"], "no-store");
    let created = answer.json();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("weft-admin-"), "{created}");
    assert_eq!(created["name"], "ci");
    assert_eq!(created["role"], "admin");
    assert_eq!(created["id"].as_str().unwrap().len(), 32);
    let expires = humantime::parse_rfc3339(created["expiresAt"].as_str().unwrap()).unwrap();
    let left = expires
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(30 * 86_400 - 60), "{left:?}");
    api.call(Method::GET, "/v1/services", token, None)
        .await
        .expect(StatusCode::OK);
    let again = api
        .create_operator_token(ADMIN, "forever", "read-only")
        .await;
    assert_eq!(again["expiresAt"], Value::Null);

    let duplicate = api
        .call(
            Method::POST,
            "/v1/tokens/operator",
            ADMIN,
            Some(json!({"name": "ci", "role": "read-only"})),
        )
        .await;
    duplicate.expect(StatusCode::CONFLICT);
    assert!(
        duplicate.message().contains("revoke it first"),
        "{}",
        duplicate.message()
    );

    for (body, field, quoted) in [
        (
            json!({"name": "Bad_Name", "role": "admin"}),
            "name",
            "\"Bad_Name\"",
        ),
        (json!({"name": "ok", "role": "root"}), "role", "\"root\""),
        (
            json!({"name": "ok", "role": "admin", "ttl": "1y"}),
            "ttl",
            "\"1y\"",
        ),
    ] {
        let answer = api
            .call(Method::POST, "/v1/tokens/operator", ADMIN, Some(body))
            .await;
        answer.expect(StatusCode::BAD_REQUEST);
        let error = answer.json();
        assert_eq!(error["error"]["details"][0]["path"], field, "{error}");
        let message = answer.message();
        assert!(message.contains(quoted), "{message}");
    }
}

#[tokio::test]
async fn an_expired_operator_token_is_401_saying_it_expired_and_how_to_get_another() {
    let api = Api::with_admin(ADMIN).await;
    let expired = "weft-read-expired";
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    add_operator_token(&*api.store, "old-ci", Role::ReadOnly, expired, Some(past)).await;
    let answer = api.call(Method::GET, "/v1/services", expired, None).await;
    answer.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    let message = answer.message();
    assert!(
        message.contains("\"old-ci\" expired at") && message.contains("weft token admin create"),
        "{message}"
    );
    assert!(
        !message.contains("bootstrap"),
        "names no other token: {message}"
    );
}

#[tokio::test]
async fn a_revoked_operator_token_is_401_here_at_once_and_on_another_instance_within_its_refresh() {
    let refresh = Duration::from_millis(500);
    let here = Api::with_admin(ADMIN).await;
    let there = Api::sharing(here.store.clone(), refresh);
    let created = here.create_operator_token(ADMIN, "ci", "admin").await;
    let token = created["token"].as_str().unwrap();
    // A token made on one instance works on the other at once (a miss re-reads).
    there
        .call(Method::GET, "/v1/services", token, None)
        .await
        .expect(StatusCode::OK);
    here.call(Method::GET, "/v1/services", token, None)
        .await
        .expect(StatusCode::OK);

    let revoked = here
        .call(Method::DELETE, "/v1/tokens/operator/ci", ADMIN, None)
        .await;
    revoked.expect(StatusCode::OK);
    let revoked_at = std::time::Instant::now();
    assert_eq!(revoked.json()["status"], "revoked");
    let answer = here.call(Method::GET, "/v1/services", token, None).await;
    answer.expect(StatusCode::UNAUTHORIZED);
    assert!(
        answer.message().contains("\"ci\" was revoked at"),
        "{}",
        answer.message()
    );

    loop {
        let answer = there.call(Method::GET, "/v1/services", token, None).await;
        let waited = revoked_at.elapsed();
        if answer.status == StatusCode::UNAUTHORIZED {
            assert!(
                answer.message().contains("was revoked"),
                "{}",
                answer.message()
            );
            break;
        }
        answer.expect(StatusCode::OK);
        assert!(
            waited < refresh + Duration::from_millis(200),
            "the other instance still accepts the revoked token after {waited:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Revoking it again answers the same revocation.
    let again = here
        .call(Method::DELETE, "/v1/tokens/operator/ci", ADMIN, None)
        .await;
    again.expect(StatusCode::OK);
    assert_eq!(again.json()["revokedAt"], revoked.json()["revokedAt"]);
}

#[tokio::test]
async fn listing_operator_tokens_never_shows_a_token_or_its_hash() {
    let api = Api::with_admin(ADMIN).await;
    let created = api
        .create_operator_token(ADMIN, "viewer", "read-only")
        .await;
    let token = created["token"].as_str().unwrap().to_owned();
    api.call(Method::DELETE, "/v1/tokens/operator/viewer", ADMIN, None)
        .await
        .expect(StatusCode::OK);
    let listed = api
        .call(Method::GET, "/v1/tokens/operator", ADMIN, None)
        .await;
    listed.expect(StatusCode::OK);
    let text = String::from_utf8_lossy(&listed.body).into_owned();
    for secret in [
        ADMIN.to_owned(),
        token.clone(),
        api::auth::hash_hex(ADMIN),
        api::auth::hash_hex(&token),
    ] {
        assert!(!text.contains(&secret), "{text}");
    }
    let items = listed.json()["items"].as_array().unwrap().clone();
    let summary: Vec<(&str, &str, &str)> = items
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["role"].as_str().unwrap(),
                t["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("bootstrap", "admin", "active"),
            ("viewer", "read-only", "revoked")
        ]
    );
    let fields: Vec<&String> = items[1].as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "createdAt",
            "expiresAt",
            "id",
            "name",
            "revokedAt",
            "role",
            "status"
        ]
    );
}

#[tokio::test]
async fn revoking_an_unknown_operator_token_is_404_and_the_last_admin_token_409() {
    let api = Api::with_admin(ADMIN).await;
    let unknown = api
        .call(Method::DELETE, "/v1/tokens/operator/nobody", ADMIN, None)
        .await;
    unknown.expect(StatusCode::NOT_FOUND);
    assert!(
        unknown.message().contains("\"nobody\""),
        "{}",
        unknown.message()
    );
    api.call(
        Method::DELETE,
        "/v1/tokens/operator/Not_A_Name",
        ADMIN,
        None,
    )
    .await
    .expect(StatusCode::BAD_REQUEST);

    let last = api
        .call(Method::DELETE, "/v1/tokens/operator/bootstrap", ADMIN, None)
        .await;
    last.expect(StatusCode::CONFLICT);
    let message = last.message();
    assert!(
        message.contains("last usable admin token") && message.contains("--role admin"),
        "{message}"
    );
    api.call(Method::GET, "/v1/services", ADMIN, None)
        .await
        .expect(StatusCode::OK);

    // With a second admin token, the first can go.
    let second = api.create_operator_token(ADMIN, "ops", "admin").await;
    let second = second["token"].as_str().unwrap();
    api.call(
        Method::DELETE,
        "/v1/tokens/operator/bootstrap",
        second,
        None,
    )
    .await
    .expect(StatusCode::OK);
    api.call(Method::GET, "/v1/services", ADMIN, None)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_admin_token_of_earlier_versions_keeps_working_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let spec = weft_control::store::StoreSpec::data_dir(dir.path().join("data"));
    let legacy = "weft-admin-fromanearlierversion";
    // A store as an earlier version left it: the admin token's hash in a secret, and
    // no operator_tokens table (migration 4 undone).
    let store = weft_control::store::open(&spec).await.unwrap();
    store
        .create_secret("admin/token-sha256", api::auth::hash_hex(legacy).as_bytes())
        .await
        .unwrap();
    drop(store);
    let weft_control::store::StoreSpec::Sqlite { path } = &spec else {
        unreachable!()
    };
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for sql in [
        "DROP TABLE operator_tokens",
        "DELETE FROM _sqlx_migrations WHERE version = 4",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = weft_control::store::open(&spec).await.unwrap();
    assert_eq!(
        api::auth::create_bootstrap(store.as_ref()).await.unwrap(),
        None,
        "the upgraded store has its admin token: no new one is made"
    );
    let router = api::router(ApiState {
        store: store.clone(),
        proxies: Arc::new(OneProxy),
        tokens: None,
        admin: Some(Arc::new(OperatorAuth::new(store))),
        metrics: None,
        stats: None,
        secrets: Some(std::sync::Arc::new(
            weft_control::seal::Keyring::ephemeral().expect("a random key"),
        )),
    });
    let request = Request::builder()
        .uri("/v1/tokens/operator")
        .header("authorization", format!("Bearer {legacy}"))
        .body(Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let listed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(listed["items"][0]["name"], "bootstrap");
    assert_eq!(listed["items"][0]["role"], "admin");
}

#[tokio::test]
async fn openapi_documents_the_bearer_scheme_with_open_probes() {
    let document = Api::new()
        .get("/openapi.json")
        .await
        .expect(StatusCode::OK)
        .json();
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(document["security"], json!([{"bearer": []}]));
    assert_eq!(document["paths"]["/healthz"]["get"]["security"], json!([]));
    assert_eq!(document["paths"]["/readyz"]["get"]["security"], json!([]));
}

#[tokio::test]
async fn workload_token_fields_are_checked_as_documented() {
    let api = &Api::with_tokens();
    let issue = |body: Value| async move {
        api.send(
            Method::POST,
            "/v1/tokens/workload",
            JSON,
            JSON,
            body.to_string(),
        )
        .await
    };
    let ok = issue(json!({"namespace": "shop", "serviceAccount": "web", "ttl": "30d"})).await;
    let issued = ok.expect(StatusCode::OK).json();
    assert!(issued["id"].as_str().unwrap().len() == 32, "{issued}");
    let cases = [
        (
            json!({"namespace": "Shop", "serviceAccount": "web"}),
            "namespace",
        ),
        (
            json!({"namespace": "weft-system", "serviceAccount": "web"}),
            "namespace",
        ),
        (
            json!({"namespace": "shop", "serviceAccount": "web.1"}),
            "serviceAccount",
        ),
        (
            json!({"namespace": "shop", "serviceAccount": "web", "ttl": "366d"}),
            "ttl",
        ),
        (
            json!({"namespace": "shop", "serviceAccount": "web", "ttl": "1day"}),
            "ttl",
        ),
        (
            json!({"namespace": "shop", "serviceAccount": "web", "ttl": "0s"}),
            "ttl",
        ),
    ];
    for (body, field) in cases {
        let error = error_of(&issue(body.clone()).await, StatusCode::BAD_REQUEST);
        assert_eq!(error["details"][0]["path"], field, "{body}");
    }
    let null_ttl = issue(json!({"namespace": "shop", "serviceAccount": "web", "ttl": null})).await;
    null_ttl.expect(StatusCode::OK);
}

#[tokio::test]
async fn revoke_takes_a_token_id_and_an_rfc_3339_time_and_reads_the_past_as_now() {
    let api = &Api::with_tokens();
    let revoke = |body: Value| async move {
        api.send(
            Method::POST,
            "/v1/tokens/revoke",
            JSON,
            JSON,
            body.to_string(),
        )
        .await
    };
    let id = "0123456789abcdef0123456789abcdef";
    for (body, field) in [
        (json!({"id": "tok-1"}), "id"),
        (json!({"id": ""}), "id"),
        (
            json!({"id": id, "expiresAt": "2030-01-01 00:00:00Z"}),
            "expiresAt",
        ),
        (
            json!({"id": id, "expiresAt": "2030-02-30T00:00:00Z"}),
            "expiresAt",
        ),
    ] {
        let error = error_of(&revoke(body.clone()).await, StatusCode::BAD_REQUEST);
        assert_eq!(error["details"][0]["path"], field, "{body}");
    }
    // An id this control plane never issued is 404 and says how to revoke it anyway.
    let unknown = error_of(&revoke(json!({"id": id})).await, StatusCode::NOT_FOUND);
    assert!(
        unknown["message"].as_str().unwrap().contains("--force"),
        "{unknown}"
    );
    let later =
        revoke(json!({"id": id, "expiresAt": "2030-01-01T01:00:00+01:00", "force": true})).await;
    assert_eq!(
        later.expect(StatusCode::OK).json()["revokedUntil"],
        "2030-01-01T00:00:00Z"
    );
    let past = revoke(json!({"id": id, "expiresAt": "1900-01-01T00:00:00Z", "force": true})).await;
    let until = past.expect(StatusCode::OK).json()["revokedUntil"]
        .as_str()
        .unwrap()
        .to_owned();
    let until = humantime::parse_rfc3339(&until).unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(until)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "{until:?} is now");
}
