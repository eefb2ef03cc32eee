//! Secrets through the API: write-only (no answer carries the material or its sealed
//! form), unchanged when applied again, and errors that name fields, never values.

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use weft_api::resource::{Key, Kind};
use weft_control::store::Store as _;

use super::harness::*;

fn secret_yaml(name: &str, material: &serde_json::Value) -> (String, String, String) {
    let cert = material["stringData"]["tls.crt"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = material["stringData"]["tls.key"]
        .as_str()
        .unwrap()
        .to_owned();
    let indent = |pem: &str| {
        pem.lines()
            .flat_map(|l| {
                [
                    "    ", l, "
",
                ]
            })
            .collect::<String>()
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: {name}, namespace: shop }}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(&cert),
        indent(&key)
    );
    (yaml, cert, key)
}

/// A line of base64 from inside a PEM block, long enough to be unique.
fn pem_body(pem: &str) -> String {
    pem.lines().nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn a_secret_is_answered_without_its_material_in_get_list_and_apply() {
    let api = Api::new();
    let material = tls_material(&["shop.example.com"]);
    let (yaml, cert, key) = secret_yaml("shop-cert", &material);
    let applied = api.apply(&yaml).await;
    let applied_text = applied.expect(StatusCode::OK).json().to_string();
    let one = api.get("/v1/namespaces/shop/secrets/shop-cert").await;
    let one = one.expect(StatusCode::OK).json();
    let list = api.get("/v1/secrets").await.expect(StatusCode::OK).json();
    for text in [applied_text, one.to_string(), list.to_string()] {
        assert!(!text.contains(&pem_body(&cert)), "{text}");
        assert!(!text.contains(&pem_body(&key)), "{text}");
        assert!(
            !text.contains("sealed") && !text.contains("ciphertext"),
            "{text}"
        );
    }
    assert_eq!(
        one["spec"]["keys"],
        serde_json::json!(["tls.crt", "tls.key"])
    );
    assert_eq!(
        one["spec"]["certificate"]["dnsNames"],
        serde_json::json!(["shop.example.com"])
    );
    assert_eq!(one["spec"]["type"], "kubernetes.io/tls");

    // What the store holds is sealed: neither the PEM nor its base64.
    let stored = api
        .store
        .get(&Key {
            kind: Kind::Secret,
            namespace: "shop".into(),
            name: "shop-cert".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let stored_text = stored.spec.to_string();
    assert!(
        stored.spec["sealed"]["ciphertext"].is_string(),
        "{stored_text}"
    );
    assert!(!stored_text.contains(&pem_body(&key)), "{stored_text}");
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
    assert!(!stored_text.contains(&key_b64[8..48]), "{stored_text}");
}

#[tokio::test]
async fn applying_the_same_secret_again_is_unchanged_and_new_material_configures_it() {
    let api = Api::new();
    let (yaml, _, _) = secret_yaml("shop-cert", &tls_material(&["shop.example.com"]));
    let result = |reply: &Reply| reply.json()["results"][0]["result"].clone();
    let first = api.apply(&yaml).await;
    assert_eq!(result(first.expect(StatusCode::OK)), "created");
    let again = api.apply(&yaml).await;
    assert_eq!(result(again.expect(StatusCode::OK)), "unchanged");
    let (renewed, _, _) = secret_yaml("shop-cert", &tls_material(&["shop.example.com"]));
    let renewed = api.apply(&renewed).await;
    assert_eq!(result(renewed.expect(StatusCode::OK)), "configured");
}

#[tokio::test]
async fn a_key_of_another_certificate_is_refused_naming_the_field_not_the_value() {
    let api = Api::new();
    let mut material = tls_material(&["shop.example.com"]);
    let other = tls_material(&["other.example.com"]);
    material["stringData"]["tls.key"] = other["stringData"]["tls.key"].clone();
    let (yaml, _, key) = secret_yaml("shop-cert", &material);
    let reply = api.apply(&yaml).await;
    let error = reply.expect(StatusCode::BAD_REQUEST).json();
    assert_eq!(
        error["error"]["details"][0]["path"],
        "stringData[\"tls.key\"]"
    );
    let text = error.to_string();
    assert!(text.contains("does not match the certificate"), "{text}");
    assert!(!text.contains(&pem_body(&key)), "{text}");
}

#[tokio::test]
async fn bad_base64_and_other_types_are_refused_saying_what_is_accepted() {
    let api = Api::new();
    let body = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bad", "namespace": "shop"},
        "type": "Opaque",
        "data": {"tls.crt": "not*base64", "tls.key": "c2VjcmV0LWtleS1ieXRlcw=="}
    });
    let reply = api
        .json(Method::POST, "/v1/namespaces/shop/secrets", &body)
        .await;
    let error = reply.expect(StatusCode::BAD_REQUEST).json();
    let text = error.to_string();
    assert!(text.contains("kubernetes.io/tls only"), "{text}");
    assert!(
        text.contains("data[\\\"tls.crt\\\"]") && text.contains("is not base64"),
        "{text}"
    );
    assert!(
        !text.contains("not*base64") && !text.contains("c2VjcmV0"),
        "{text}"
    );
}

#[tokio::test]
async fn a_yaml_syntax_error_in_a_secret_says_where_but_never_echoes_the_document() {
    let api = Api::new();
    let (yaml, cert, key) = secret_yaml("shop-cert", &tls_material(&["shop.example.com"]));
    // An unclosed quote on the line after the key, whose text starts with key material.
    let broken = format!("{yaml}  ca.crt: {{ \"{}\n", pem_body(&key));
    let line = yaml.lines().count() + 1;
    let where_ = format!("line {line}, column 13");
    let apply = api.apply(&broken).await;
    let post = api
        .send(
            Method::POST,
            "/v1/namespaces/shop/secrets",
            YAML,
            JSON,
            broken.clone(),
        )
        .await;
    for reply in [apply, post] {
        let text = reply.expect(StatusCode::BAD_REQUEST).json().to_string();
        assert!(
            text.contains("not valid YAML at") && text.contains(&where_),
            "{text}"
        );
        for pem in [&cert, &key] {
            for body in pem.lines().filter(|l| !l.starts_with("-----")) {
                assert!(!text.contains(body), "{body:?} echoed in {text}");
            }
        }
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }
}

#[tokio::test]
async fn a_yaml_syntax_error_elsewhere_still_quotes_the_line() {
    let api = Api::new();
    let reply = api
        .apply("apiVersion: weft.dev/v1alpha1\nkind: Service\nmetadata: { name: \"web\n")
        .await;
    let text = reply.expect(StatusCode::BAD_REQUEST).json().to_string();
    assert!(text.contains("metadata: { name:"), "{text}");
}

/// Schemathesis found a Secret with an empty label key accepted: its metadata is held
/// to the rules every other kind's is.
#[tokio::test]
async fn a_secret_with_an_invalid_label_key_is_refused_naming_the_label() {
    let api = Api::new();
    let body = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "labelled", "namespace": "shop", "labels": {"": "", "app": "web"}},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": "c2VjcmV0LWtleS1ieXRlcw==", "tls.key": "c2VjcmV0LWtleS1ieXRlcw=="}
    });
    let reply = api
        .json(Method::POST, "/v1/namespaces/shop/secrets", &body)
        .await;
    let text = reply.expect(StatusCode::BAD_REQUEST).json().to_string();
    assert!(text.contains("metadata.labels"), "{text}");
    assert!(text.contains("not a valid label key"), "{text}");
}
