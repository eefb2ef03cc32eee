//! Tests of the SQLite store that need its internals: the data directory check and
//! writes against a page limit.

use serde_json::json;
use weft_api::resource::{ObjectMeta, WEFT_API_VERSION};

use super::*;

fn service(name: &str, padding: usize) -> Object {
    Object {
        api_version: WEFT_API_VERSION.into(),
        kind: "Service".into(),
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: json!({"padding": "x".repeat(padding)}),
        status: None,
    }
}

/// `PRAGMA max_page_count` on the only pooled connection: SQLite then answers
/// `SQLITE_FULL` as it does on a full disk, without needing a small file system.
async fn limit_pages(store: &Sqlite, pages: Option<i64>) {
    let mut conn = store.db.pool.acquire().await.expect("acquire");
    let pages = match pages {
        Some(pages) => pages,
        None => sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut *conn)
            .await
            .expect("page_count"),
    };
    sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
        .execute(&mut *conn)
        .await
        .expect("max_page_count");
}

#[tokio::test]
async fn refuses_a_data_directory_others_can_write_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let Err(error) = Sqlite::open(&data.join("weft.db"), &Options::default()).await else {
        panic!("opened a world-writable data directory")
    };
    let message = error.to_string();
    assert!(message.contains(&data.display().to_string()), "{message}");
    assert!(message.contains("mode 777"), "{message}");
    assert!(message.contains("chmod go-w"), "{message}");
    assert!(!data.join("weft.db").exists(), "nothing was created in it");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    Sqlite::open(&data.join("weft.db"), &Options::default())
        .await
        .expect("opens once fixed");
}

#[tokio::test]
async fn writes_resume_after_the_database_was_full() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = Options {
        max_connections: 1,
        ..Options::default()
    };
    let store = Sqlite::open(&dir.path().join("weft.db"), &options)
        .await
        .expect("open");
    store
        .put(service("before", 10), Precondition::None)
        .await
        .expect("a write with room");

    for attempt in 0..3 {
        limit_pages(&store, None).await;
        let error = store
            .put(
                service(&format!("full-{attempt}"), 64 * 1024),
                Precondition::None,
            )
            .await
            .expect_err("a write into a full database fails");
        assert!(
            error.to_string().contains("full"),
            "attempt {attempt}: the failure is the full database, not a stuck \
             connection: {error}"
        );
    }

    let failure = store.write_failure().await;
    assert!(
        failure.as_deref().is_some_and(|f| f.contains("full")),
        "readiness sees the failing writes: {failure:?}"
    );

    limit_pages(&store, Some(1 << 30)).await;
    store
        .put(service("after", 64 * 1024), Precondition::None)
        .await
        .expect("writes resume once there is room, without a restart");
    assert_eq!(store.write_failure().await, None, "and readiness sees it");
    let stored = store
        .get(&record::key_of(&service("after", 0)).expect("key"))
        .await
        .expect("get");
    assert!(stored.is_some());
}
