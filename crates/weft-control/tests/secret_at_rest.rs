//! Secrets at rest, on the real stores: a Secret written through the API (over SQLite
//! in a temporary directory, and over a real PostgreSQL server started by
//! `weft_testkit::postgres`, skipped with a message when PostgreSQL is not installed,
//! unless `WEFT_E2E=required`) leaves neither its PEM, nor the PEM's base64, nor the
//! private key in any row of the objects table or the change log; and a control plane
//! with another key refuses to open it, naming both key ids.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use weft_api::resource::{Key, Kind};
use weft_control::api::{self, ApiState, NoProxies};
use weft_control::seal::Keyring;
use weft_control::store::{self, Store, StoreSpec};

/// A database to write Secrets to, kept alive by the test.
enum Database {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        server: Box<weft_testkit::postgres::Postgres>,
    },
}

impl Database {
    fn spec(&self) -> StoreSpec {
        match self {
            Database::Sqlite { dir } => StoreSpec::data_dir(dir.path().join("data")),
            Database::Postgres { server } => StoreSpec::Postgres { url: server.url() },
        }
    }

    /// Every row of the objects table and of the change log, each as one text.
    async fn raw_rows(&self) -> (Vec<String>, Vec<String>) {
        match self {
            Database::Sqlite { dir } => {
                let path = dir.path().join("data").join(store::SQLITE_FILE_NAME);
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                let objects = sqlx::query_scalar(
                    "SELECT kind || '|' || namespace || '|' || name || '|' || uid || '|' || \
                     api_version || '|' || labels || '|' || annotations || '|' || spec || '|' \
                     || COALESCE(status, '') FROM objects",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                let changes = sqlx::query_scalar(
                    "SELECT kind || '|' || namespace || '|' || name || '|' || op || '|' || \
                     object FROM changes",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                pool.close().await;
                (objects, changes)
            }
            Database::Postgres { server } => {
                let pool = sqlx::PgPool::connect(&server.url()).await.unwrap();
                let objects = sqlx::query_scalar("SELECT row_to_json(o)::text FROM objects o")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                let changes = sqlx::query_scalar("SELECT row_to_json(c)::text FROM changes c")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                (objects, changes)
            }
        }
    }
}

/// A key file of 32 random bytes, mode 0600, as an operator makes one.
fn key_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    let mut key = [0u8; weft_control::seal::KEY_LEN];
    aws_lc_rs::rand::fill(&mut key).unwrap();
    std::fs::write(&path, key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A fresh self-signed certificate for `shop.example.com` and its key, as PEM.
fn material() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["shop.example.com".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The texts that must not appear in a row: each line of the PEM bodies (the DER in
/// base64, so the private key itself), the PEM armour of the key, and the PEM texts'
/// own base64 (what `data` carries), in aligned 40-character pieces.
fn forbidden(pems: &[&str]) -> Vec<String> {
    let mut texts = vec!["PRIVATE KEY".to_owned(), "BEGIN CERTIFICATE".to_owned()];
    for pem in pems {
        texts.extend(
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                .map(str::to_owned),
        );
        let encoded = BASE64.encode(pem.as_bytes());
        texts.extend(
            encoded
                .as_bytes()
                .chunks(40)
                .filter(|c| c.len() == 40)
                .map(|c| String::from_utf8(c.to_vec()).unwrap()),
        );
    }
    texts
}

/// `POST /v1/apply` of `yaml` on `router`: the status and body.
async fn apply(router: &axum::Router, yaml: &str) -> (StatusCode, String) {
    let request = Request::post("/v1/apply")
        .header("content-type", "application/yaml")
        .header("accept", "application/json")
        .body(Body::from(yaml.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn router(store: Arc<dyn Store>, keyring: Keyring) -> axum::Router {
    api::router(ApiState {
        store,
        proxies: Arc::new(NoProxies),
        tokens: None,
        admin: None,
        metrics: None,
        stats: None,
        secrets: Some(Arc::new(keyring)),
    })
}

fn indent(pem: &str) -> String {
    pem.lines()
        .flat_map(|l| ["    ", l, "\n"])
        .collect::<String>()
}

/// The behaviour, on one database.
async fn secret_material_is_sealed_in_every_row_and_opens_only_with_its_key(database: Database) {
    let keys = tempfile::tempdir().unwrap();
    let own_key = key_file(keys.path(), "secret.key");
    let other_key = key_file(keys.path(), "other.key");
    let store = store::open(&database.spec()).await.unwrap();
    let api = router(store.clone(), Keyring::load(&own_key).unwrap());

    // One Secret as PEM text (stringData), one as base64 (data).
    let (cert, key) = material();
    let (cert2, key2) = material();
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: shop-cert, namespace: shop }}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{ name: api-cert, namespace: shop }}\n\
         type: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        indent(&cert),
        indent(&key),
        BASE64.encode(cert2.as_bytes()),
        BASE64.encode(key2.as_bytes()),
    );
    let (status, body) = apply(&api, &yaml).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (objects, changes) = database.raw_rows().await;
    let secrets = |rows: &[String]| rows.iter().filter(|r| r.contains("Secret")).count();
    assert_eq!(secrets(&objects), 2, "both Secrets are stored: {objects:?}");
    assert_eq!(secrets(&changes), 2, "and logged: {changes:?}");
    let forbidden = forbidden(&[&cert, &key, &cert2, &key2]);
    for row in objects.iter().chain(&changes) {
        assert!(row.contains("ciphertext"), "a Secret row is sealed: {row}");
        for text in &forbidden {
            assert!(!row.contains(text.as_str()), "{text:?} is in the row {row}");
        }
    }

    // The stored form opens with the key it was sealed with, to the material given…
    let stored = store
        .get(&Key {
            kind: Kind::Secret,
            namespace: "shop".into(),
            name: "shop-cert".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let own = Keyring::load(&own_key).unwrap();
    let opened = own.open_secret(&stored).unwrap();
    assert_eq!(opened.get("tls.key"), Some(key.as_bytes()));
    assert_eq!(opened.get("tls.crt"), Some(cert.as_bytes()));

    // …and a control plane started with another key refuses it, naming both ids.
    let other = Keyring::load(&other_key).unwrap();
    let refused = other.open_secret(&stored).unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains(own.key_id()) && message.contains(other.key_id()),
        "{message}"
    );
    assert!(message.contains("Secret/shop/shop-cert"), "{message}");
    assert!(message.contains("--secret-key-file"), "{message}");
    for text in &forbidden {
        assert!(!message.contains(text.as_str()), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rows_hold_no_secret_material_and_another_key_cannot_open_it() {
    let database = Database::Sqlite {
        dir: weft_testkit::tempdir().unwrap(),
    };
    secret_material_is_sealed_in_every_row_and_opens_only_with_its_key(database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_hold_no_secret_material_and_another_key_cannot_open_it() {
    let test = "postgres_rows_hold_no_secret_material_and_another_key_cannot_open_it";
    if !weft_testkit::postgres::guard(test) {
        return;
    }
    let server = weft_testkit::postgres::Postgres::start().expect("postgres starts");
    let database = Database::Postgres {
        server: Box::new(server),
    };
    secret_material_is_sealed_in_every_row_and_opens_only_with_its_key(database).await;
}
