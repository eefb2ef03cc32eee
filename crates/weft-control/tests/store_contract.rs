//! The store contract: one async function per behaviour the API and the xDS server rely
//! on, each run against SQLite (a file in a temporary directory) and against a real
//! PostgreSQL server started by `weft_testkit::postgres` (skipped with a message when
//! PostgreSQL is not installed, unless `WEFT_E2E=required`).
//!
//! Most behaviours take only an `Arc<dyn Store>`; those about the database itself
//! (reopening, compaction, several instances) take the [`Fixture`].

#[path = "support/memory_store.rs"]
mod memory_store;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::broadcast;
use weft_api::resource::{Key, Kind, Object, ObjectMeta, WEFT_API_VERSION};
use weft_control::store::{
    self, Change, ChangeOp, OperatorToken, Options, Precondition, Retention, Revocation, Role,
    Store, StoreError, StoreSpec, WorkloadCounts, Written,
};

/// How long a change may take to reach a subscriber before the test fails.
const FEED_TIMEOUT: Duration = Duration::from_secs(10);

// === fixtures ===

/// A database to open stores on: kept alive (and cleaned up) by the test.
enum Fixture {
    Sqlite {
        dir: tempfile::TempDir,
    },
    Postgres {
        server: Box<weft_testkit::postgres::Postgres>,
    },
}

impl Fixture {
    fn sqlite() -> Self {
        Fixture::Sqlite {
            dir: weft_testkit::tempdir().expect("tempdir"),
        }
    }

    /// `None` (after printing why) when PostgreSQL cannot run here.
    fn postgres(test: &str) -> Option<Self> {
        if !weft_testkit::postgres::guard(test) {
            return None;
        }
        let server = weft_testkit::postgres::Postgres::start().expect("postgres starts");
        Some(Fixture::Postgres {
            server: Box::new(server),
        })
    }

    fn spec(&self) -> StoreSpec {
        match self {
            // A directory that does not exist yet: `open` creates it.
            Fixture::Sqlite { dir } => StoreSpec::data_dir(dir.path().join("data")),
            Fixture::Postgres { server } => StoreSpec::Postgres { url: server.url() },
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        self.open_with(&Options::default()).await
    }

    async fn open_with(&self, options: &Options) -> Arc<dyn Store> {
        store::open_with(&self.spec(), options)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.spec()))
    }
}

fn service(namespace: &str, name: &str, spec: serde_json::Value) -> Object {
    Object {
        api_version: WEFT_API_VERSION.into(),
        kind: "Service".into(),
        metadata: ObjectMeta {
            name: name.into(),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

fn key(kind: Kind, namespace: &str, name: &str) -> Key {
    Key {
        kind,
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn rv(object: &Object) -> u64 {
    object.resource_version().expect("resourceVersion is set")
}

async fn put(store: &Arc<dyn Store>, object: Object) -> Written {
    store.put(object, Precondition::None).await.expect("put")
}

async fn next_change(feed: &mut broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(FEED_TIMEOUT, feed.recv())
        .await
        .expect("a change arrives on the feed in time")
        .expect("the feed is open and not lagging")
}

/// Asserts nothing more arrives for a while (the feed delivers each change once).
async fn assert_feed_quiet(feed: &mut broadcast::Receiver<Change>) {
    // Longer than the default poll interval (1 s), so a re-read would have shown up.
    let extra = tokio::time::timeout(Duration::from_millis(1500), feed.recv()).await;
    assert!(
        extra.is_err(),
        "unexpected extra change on the feed: {extra:?}"
    );
}

/// An operator token named `name` as the API would create it, with a hash made from
/// `seed` (the store keeps hashes, never tokens), created now.
fn operator(name: &str, role: Role, seed: u8, expires_in: Option<i64>) -> OperatorToken {
    let now = std::time::SystemTime::now();
    let now = std::time::UNIX_EPOCH
        + Duration::from_secs(
            now.duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_secs(),
        );
    OperatorToken {
        id: format!("{seed:032x}"),
        name: name.into(),
        role,
        hash: format!("{seed:064x}"),
        created_at: now,
        expires_at: expires_in.map(|s| {
            if s >= 0 {
                now + Duration::from_secs(s.unsigned_abs())
            } else {
                now - Duration::from_secs(s.unsigned_abs())
            }
        }),
        revoked_at: None,
    }
}

// === the contract ===

mod contract {
    use super::*;

    pub(super) async fn put_all_stores_every_object_or_none(store: Arc<dyn Store>) {
        put(&store, service("shop", "taken", json!({}))).await;
        let revision = store.revision().await.expect("revision");
        let batch = vec![
            (service("shop", "a", json!({})), Precondition::None),
            (service("shop", "b", json!({})), Precondition::None),
            (
                service("shop", "taken", json!({"x": 1})),
                Precondition::Absent,
            ),
        ];
        let error = store
            .put_all(batch)
            .await
            .expect_err("the last write conflicts");
        assert!(
            matches!(&error, StoreError::InBatch { index: 2, source } if matches!(**source, StoreError::Conflict { .. })),
            "{error:?}"
        );
        let (objects, after) = store.list(None, None).await.expect("list");
        assert_eq!(objects.len(), 1, "nothing of the failed batch is stored");
        assert_eq!(after, revision, "and it took no revision");
        store
            .put(service("shop", "c", json!({})), Precondition::Absent)
            .await
            .expect("the store still writes");

        let batch = vec![
            (service("shop", "a", json!({})), Precondition::None),
            (service("shop", "taken", json!({})), Precondition::None),
        ];
        let written = store.put_all(batch).await.expect("a batch that fits");
        assert!(matches!(written[0], Written::Created(_)), "{written:?}");
        assert!(matches!(written[1], Written::Unchanged(_)), "{written:?}");
        assert_eq!(store.list(None, None).await.expect("list").0.len(), 3);
    }

    pub(super) async fn creates_and_gets_objects_with_bookkeeping_fields(store: Arc<dyn Store>) {
        let mut object = service(
            "shop",
            "web",
            json!({"ports": [{"port": 80}], "ratio": 1.5}),
        );
        object.metadata.labels = BTreeMap::from([("app".into(), "web".into())]);
        object.metadata.annotations = BTreeMap::from([("note".into(), "x".into())]);
        let Written::Created(created) = store
            .put(object.clone(), Precondition::Absent)
            .await
            .expect("create")
        else {
            panic!("expected Created")
        };
        assert_eq!(rv(&created), store.revision().await.expect("revision"));
        assert_eq!(created.metadata.generation, Some(1));
        let uid = created.metadata.uid.clone().expect("uid");
        assert_eq!(uid.len(), 36, "uuid-shaped uid: {uid}");
        let created_at = created
            .metadata
            .creation_timestamp
            .clone()
            .expect("timestamp");
        assert!(
            created_at.len() == 20
                && created_at.ends_with('Z')
                && created_at.as_bytes()[10] == b'T',
            "RFC 3339 UTC: {created_at}"
        );
        assert_eq!(created.spec, object.spec);
        assert_eq!(created.metadata.labels, object.metadata.labels);
        assert_eq!(created.metadata.annotations, object.metadata.annotations);
        assert_eq!(created.status, None);

        let got = store
            .get(&key(Kind::Service, "shop", "web"))
            .await
            .expect("get")
            .expect("found");
        assert_eq!(got, created);

        // Cluster-scoped and defaulted namespaces.
        let mesh = Object {
            kind: "Mesh".into(),
            metadata: ObjectMeta {
                name: "default".into(),
                ..ObjectMeta::default()
            },
            ..service("ignored", "x", json!({"mtls": "strict"}))
        };
        put(&store, mesh).await;
        let mesh = store
            .get(&key(Kind::Mesh, "", "default"))
            .await
            .expect("get");
        assert_eq!(mesh.expect("mesh stored").metadata.namespace, None);
        let mut unnamespaced = service("x", "api", json!({}));
        unnamespaced.metadata.namespace = None;
        put(&store, unnamespaced).await;
        let api = store
            .get(&key(Kind::Service, "default", "api"))
            .await
            .expect("get");
        assert_eq!(
            api.expect("in default").metadata.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(
            store
                .get(&key(Kind::Service, "shop", "nope"))
                .await
                .expect("get"),
            None
        );
    }

    pub(super) async fn update_bumps_generation_and_resource_version(store: Arc<dyn Store>) {
        let first = put(&store, service("default", "web", json!({"v": 1}))).await;
        let mut changed = service("default", "web", json!({"v": 2}));
        changed
            .metadata
            .labels
            .insert("tier".into(), "front".into());
        let Written::Configured(second) = put(&store, changed).await else {
            panic!("expected Configured")
        };
        assert_eq!(second.metadata.generation, Some(2));
        assert_eq!(rv(&second), rv(first.object()) + 1);
        assert_eq!(second.metadata.uid, first.object().metadata.uid);
        assert_eq!(
            second.metadata.creation_timestamp,
            first.object().metadata.creation_timestamp
        );
        assert_eq!(second.spec, json!({"v": 2}));

        let mut annotated = second.clone();
        annotated
            .metadata
            .annotations
            .insert("a".into(), "b".into());
        let third = put(&store, annotated).await;
        assert_eq!(third.object().metadata.generation, Some(3));
    }

    pub(super) async fn identical_put_is_unchanged_and_takes_no_revision(store: Arc<dyn Store>) {
        let created = put(&store, service("default", "web", json!({"v": 1}))).await;
        let before = store.revision().await.expect("revision");
        // What a client sends back after a get: bookkeeping fields filled in.
        let again = put(&store, created.object().clone()).await;
        assert_eq!(again, Written::Unchanged(created.object().clone()));
        assert_eq!(store.revision().await.expect("revision"), before);
        assert!(store
            .changes_since(before, 10)
            .await
            .expect("changes")
            .is_empty());
    }

    pub(super) async fn stale_resource_version_conflicts(store: Arc<dyn Store>) {
        let first = put(&store, service("default", "web", json!({"v": 1}))).await;
        let stale = rv(first.object());
        put(&store, service("default", "web", json!({"v": 2}))).await;
        let err = store
            .put(
                service("default", "web", json!({"v": 3})),
                Precondition::ResourceVersion(stale),
            )
            .await
            .expect_err("stale version");
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("resourceVersion is {}, not {stale}", stale + 1)),
            "{err}"
        );

        let current = Precondition::ResourceVersion(stale + 1);
        let written = store
            .put(service("default", "web", json!({"v": 3})), current)
            .await
            .expect("current version goes ahead");
        assert!(matches!(written, Written::Configured(_)));

        let missing = store
            .put(
                service("default", "nope", json!({})),
                Precondition::ResourceVersion(1),
            )
            .await
            .expect_err("absent object");
        assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
        let delete = store
            .delete(
                &key(Kind::Service, "default", "web"),
                Precondition::ResourceVersion(stale),
            )
            .await
            .expect_err("stale delete");
        assert!(matches!(delete, StoreError::Conflict { .. }), "{delete}");
    }

    pub(super) async fn absent_precondition_conflicts_when_the_object_exists(
        store: Arc<dyn Store>,
    ) {
        store
            .put(service("default", "web", json!({})), Precondition::Absent)
            .await
            .expect("first create");
        let before = store.revision().await.expect("revision");
        let err = store
            .put(
                service("default", "web", json!({"v": 2})),
                Precondition::Absent,
            )
            .await
            .expect_err("exists");
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
        assert_eq!(store.revision().await.expect("revision"), before);
        let got = store
            .get(&key(Kind::Service, "default", "web"))
            .await
            .expect("get");
        assert_eq!(got.expect("still there").spec, json!({}));
    }

    pub(super) async fn lists_by_kind_and_namespace_in_key_order(store: Arc<dyn Store>) {
        for (ns, name) in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "b"), ("A", "c")] {
            put(&store, service(ns, name, json!({}))).await;
        }
        let mut workload = service("a", "w", json!({}));
        workload.kind = "Workload".into();
        put(&store, workload).await;

        let (all, revision) = store.list(None, None).await.expect("list");
        assert_eq!(revision, store.revision().await.expect("revision"));
        let keys: Vec<Key> = all.iter().map(|o| o.key().expect("key")).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "ordered by (kind, namespace, name)");
        assert_eq!(keys.len(), 6);

        let (services, _) = store.list(Some(Kind::Service), None).await.expect("list");
        let names: Vec<(String, String)> = services
            .iter()
            .map(|o| (o.namespace().to_owned(), o.metadata.name.clone()))
            .collect();
        let expected = [("A", "c"), ("a", "b"), ("a", "y"), ("b", "a"), ("b", "z")];
        assert_eq!(
            names,
            expected.map(|(n, m)| (n.to_owned(), m.to_owned())).to_vec()
        );

        let (in_a, _) = store
            .list(Some(Kind::Service), Some("a"))
            .await
            .expect("list");
        assert_eq!(in_a.len(), 2);
        let (any_kind_in_a, _) = store.list(None, Some("a")).await.expect("list");
        assert_eq!(any_kind_in_a.len(), 3);
        let (none, _) = store.list(Some(Kind::HttpRoute), None).await.expect("list");
        assert!(none.is_empty());
    }

    pub(super) async fn status_survives_spec_updates_and_put_status_keeps_generation(
        store: Arc<dyn Store>,
    ) {
        let web = key(Kind::Service, "default", "web");
        put(&store, service("default", "web", json!({"v": 1}))).await;
        let status = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        let with_status = store
            .put_status(&web, status.clone(), Precondition::None)
            .await
            .expect("put_status")
            .expect("status changed");
        assert_eq!(with_status.status.as_ref(), Some(&status));
        assert_eq!(with_status.metadata.generation, Some(1));
        assert_eq!(with_status.spec, json!({"v": 1}));

        let before = store.revision().await.expect("revision");
        let same = store
            .put_status(&web, status.clone(), Precondition::None)
            .await
            .expect("put_status");
        assert_eq!(same, None, "equal status takes no revision");
        assert_eq!(store.revision().await.expect("revision"), before);

        let updated = put(&store, service("default", "web", json!({"v": 2}))).await;
        assert_eq!(updated.object().status.as_ref(), Some(&status));
        assert_eq!(updated.object().metadata.generation, Some(2));

        let stale = store
            .put_status(
                &web,
                json!({}),
                Precondition::ResourceVersion(rv(&with_status)),
            )
            .await
            .expect_err("stale status write");
        assert!(matches!(stale, StoreError::Conflict { .. }), "{stale}");
        let missing = store
            .put_status(
                &key(Kind::Service, "default", "nope"),
                json!({}),
                Precondition::None,
            )
            .await
            .expect_err("no object");
        assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
    }

    pub(super) async fn delete_returns_the_object_and_is_in_the_feed(store: Arc<dyn Store>) {
        let web = key(Kind::Service, "default", "web");
        put(&store, service("default", "web", json!({"v": 1}))).await;
        let stored = store.get(&web).await.expect("get").expect("stored");
        let before = store.revision().await.expect("revision");

        let deleted = store
            .delete(&web, Precondition::None)
            .await
            .expect("delete");
        assert_eq!(deleted, stored);
        assert_eq!(store.get(&web).await.expect("get"), None);
        assert_eq!(store.revision().await.expect("revision"), before + 1);

        let changes = store.changes_since(before, 10).await.expect("changes");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].revision, before + 1);
        assert_eq!(changes[0].op, ChangeOp::Delete);
        assert_eq!(changes[0].object, stored);

        let again = store
            .delete(&web, Precondition::None)
            .await
            .expect_err("gone");
        assert!(matches!(again, StoreError::NotFound(_)), "{again}");
    }

    pub(super) async fn changes_since_returns_writes_in_order(store: Arc<dyn Store>) {
        let start = store.revision().await.expect("revision");
        for v in 0..5 {
            put(&store, service("default", "web", json!({ "v": v }))).await;
        }
        let changes = store.changes_since(start, 100).await.expect("changes");
        let revisions: Vec<u64> = changes.iter().map(|c| c.revision).collect();
        assert_eq!(revisions, (start + 1..=start + 5).collect::<Vec<_>>());
        for (v, change) in changes.iter().enumerate() {
            assert_eq!(change.op, ChangeOp::Put);
            assert_eq!(change.object.spec, json!({ "v": v }));
            assert_eq!(rv(&change.object), change.revision);
        }
        let page = store.changes_since(start + 1, 2).await.expect("page");
        assert_eq!(
            page.iter().map(|c| c.revision).collect::<Vec<_>>(),
            [start + 2, start + 3]
        );
        assert!(store
            .changes_since(start + 5, 10)
            .await
            .expect("tail")
            .is_empty());
    }

    pub(super) async fn subscribers_see_writes_in_order(store: Arc<dyn Store>) {
        let mut feed = store.subscribe();
        let web = key(Kind::Service, "default", "web");
        let created = put(&store, service("default", "web", json!({"v": 1}))).await;
        put(&store, service("default", "web", json!({"v": 2}))).await;
        store
            .put_status(&web, json!({"ready": true}), Precondition::None)
            .await
            .expect("status");
        store
            .delete(&web, Precondition::None)
            .await
            .expect("delete");

        let first = rv(created.object());
        let mut seen = Vec::new();
        for _ in 0..4 {
            let change = next_change(&mut feed).await;
            seen.push((change.revision, change.op));
        }
        assert_eq!(
            seen,
            [
                (first, ChangeOp::Put),
                (first + 1, ChangeOp::Put),
                (first + 2, ChangeOp::Put),
                (first + 3, ChangeOp::Delete),
            ]
        );
    }

    pub(super) async fn concurrent_writers_get_gapless_revisions_delivered_once(
        store: Arc<dyn Store>,
    ) {
        const TASKS: usize = 20;
        const WRITES: usize = 10;
        let mut feed = store.subscribe();
        let start = store.revision().await.expect("revision");
        let writers: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut revisions = Vec::new();
                    for write in 0..WRITES {
                        let object = service("load", &format!("svc-{task}"), json!({ "w": write }));
                        let written = store.put(object, Precondition::None).await.expect("put");
                        revisions.push(rv(written.object()));
                    }
                    revisions
                })
            })
            .collect();
        let mut revisions = Vec::new();
        for writer in writers {
            revisions.extend(writer.await.expect("writer task"));
        }
        revisions.sort_unstable();
        let total = (TASKS * WRITES) as u64;
        assert_eq!(
            revisions,
            (start + 1..=start + total).collect::<Vec<_>>(),
            "gapless"
        );

        for expected in start + 1..=start + total {
            let change = next_change(&mut feed).await;
            assert_eq!(change.revision, expected, "feed in revision order, no gaps");
        }
        assert_feed_quiet(&mut feed).await;
        let logged = store.changes_since(start, 1000).await.expect("changes");
        assert_eq!(logged.len(), TASKS * WRITES);
    }

    pub(super) async fn create_secret_keeps_the_first_value_outside_the_feed(
        store: Arc<dyn Store>,
    ) {
        let mut feed = store.subscribe();
        let revision = store.revision().await.expect("revision");
        assert_eq!(store.secret("ca/builtin").await.expect("read"), None);
        let binary = [0_u8, 159, 146, 150, 255];
        let first = store
            .create_secret("ca/builtin", &binary)
            .await
            .expect("create");
        assert_eq!(first, binary);
        let second = store
            .create_secret("ca/builtin", b"another value")
            .await
            .expect("create again");
        assert_eq!(second, binary, "the first value stays");
        assert_eq!(
            store.secret("ca/builtin").await.expect("read"),
            Some(binary.to_vec())
        );
        assert_eq!(
            store.secret("tokens/signing-key").await.expect("read"),
            None
        );
        assert_eq!(
            store.revision().await.expect("revision"),
            revision,
            "secrets take no revision"
        );
        assert_feed_quiet(&mut feed).await;
    }

    pub(super) async fn concurrent_secret_creations_agree_on_one_value(store: Arc<dyn Store>) {
        const TASKS: usize = 16;
        let creators: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .create_secret("tokens/signing-key", format!("key-{task}").as_bytes())
                        .await
                        .expect("create")
                })
            })
            .collect();
        let mut values = Vec::new();
        for creator in creators {
            values.push(creator.await.expect("creator task"));
        }
        let stored = store
            .secret("tokens/signing-key")
            .await
            .expect("read")
            .expect("stored");
        assert!(
            values.iter().all(|v| *v == stored),
            "every creator got the stored value {:?}: {values:?}",
            String::from_utf8_lossy(&stored)
        );
    }

    pub(super) async fn an_api_version_only_change_is_configured_in_the_same_generation(
        store: Arc<dyn Store>,
    ) {
        let first = put(&store, service("shop", "web", json!({"a": 1})))
            .await
            .object()
            .clone();
        let mut moved = service("shop", "web", json!({"a": 1}));
        moved.api_version = "weft.dev/v1beta1".into();
        let written = store.put(moved, Precondition::None).await.expect("put");
        assert!(matches!(written, Written::Configured(_)), "{written:?}");
        let stored = written.object();
        assert_eq!(stored.api_version, "weft.dev/v1beta1");
        assert_eq!(stored.metadata.generation, first.metadata.generation);
        assert_ne!(
            stored.metadata.resource_version,
            first.metadata.resource_version
        );
    }

    pub(super) async fn workloads_are_counted_by_identity_and_by_token(store: Arc<dyn Store>) {
        // (namespace, name, service account, token in status)
        let workloads = [
            ("shop", "web-1", "web", Some("t1")),
            ("shop", "web-2", "web", Some("t1")),
            ("shop", "web-3", "web", Some("t2")),
            ("shop", "web-4", "web", None),
            ("shop", "db-1", "db", Some("t1")),
            ("other", "web-1", "web", Some("t1")),
        ];
        for (namespace, name, sa, token) in workloads {
            let mut workload = service(
                namespace,
                name,
                json!({"serviceAccount": sa, "address": "10.0.0.1"}),
            );
            workload.kind = "Workload".into();
            put(&store, workload).await;
            if let Some(token) = token {
                store
                    .put_status(
                        &key(Kind::Workload, namespace, name),
                        json!({"phase": "Healthy", "token": token}),
                        Precondition::None,
                    )
                    .await
                    .expect("status");
            }
        }
        // A Service with the same fields is not a workload.
        put(
            &store,
            service("shop", "web", json!({"serviceAccount": "web"})),
        )
        .await;
        let count = |sa: &'static str, token: Option<&'static str>| {
            let store = store.clone();
            async move {
                store
                    .count_workloads("shop", sa, token)
                    .await
                    .expect("count")
            }
        };
        assert_eq!(
            count("web", Some("t1")).await,
            WorkloadCounts {
                identity: 4,
                token: 3
            },
            "t1 registered web-1, web-2 and db-1 in shop"
        );
        assert_eq!(
            count("web", None).await,
            WorkloadCounts {
                identity: 4,
                token: 0
            }
        );
        assert_eq!(
            count("db", Some("t2")).await,
            WorkloadCounts {
                identity: 1,
                token: 1
            }
        );
        assert_eq!(count("cache", Some("t9")).await, WorkloadCounts::default());
    }

    pub(super) async fn revoked_tokens_are_reported_until_pruned(store: Arc<dyn Store>) {
        let hour = Duration::from_secs(3600);
        let now = std::time::SystemTime::now();
        assert!(!store.is_revoked("tok-1").await.expect("read"));
        store
            .revoke_token("tok-1", now + hour)
            .await
            .expect("revoke");
        assert!(store.is_revoked("tok-1").await.expect("read"));
        assert!(!store.is_revoked("tok-2").await.expect("read"));
        // Revoking again (even with an earlier time) keeps it revoked.
        store
            .revoke_token("tok-1", now)
            .await
            .expect("revoke again");
        assert!(store.is_revoked("tok-1").await.expect("read"));

        // A revocation past its token's expiry is pruned by a later revocation.
        store
            .revoke_token("tok-old", now - 2 * hour)
            .await
            .expect("revoke an expired token");
        store
            .revoke_token("tok-3", now + hour)
            .await
            .expect("revoke");
        assert!(!store.is_revoked("tok-old").await.expect("read"), "pruned");
        assert!(store.is_revoked("tok-1").await.expect("read"), "not pruned");
        assert!(store.is_revoked("tok-3").await.expect("read"));
    }

    pub(super) async fn issued_tokens_are_known_until_they_expire(store: Arc<dyn Store>) {
        let hour = Duration::from_secs(3600);
        let now = std::time::SystemTime::now();
        assert!(!store.token_issued("tok-1").await.expect("read"));
        store
            .record_issued_token("tok-1", now + hour)
            .await
            .expect("record");
        assert!(store.token_issued("tok-1").await.expect("read"));
        assert!(!store.token_issued("tok-2").await.expect("read"));
        // An expired token is not known any more, and a later record prunes it.
        store
            .record_issued_token("tok-old", now - 2 * hour)
            .await
            .expect("record an expired token");
        assert!(!store.token_issued("tok-old").await.expect("read"));
        store
            .record_issued_token("tok-3", now + hour)
            .await
            .expect("record");
        assert!(
            store.token_issued("tok-1").await.expect("read"),
            "not pruned"
        );
        assert!(store.token_issued("tok-3").await.expect("read"));
    }

    pub(super) async fn operator_tokens_are_named_revocable_and_never_lose_the_last_admin(
        store: Arc<dyn Store>,
    ) {
        assert!(store.operator_tokens().await.expect("list").is_empty());
        let ops = operator("ops", Role::Admin, 1, None);
        assert!(store
            .create_operator_token(&ops, false)
            .await
            .expect("create"));
        assert!(
            !store
                .create_operator_token(&operator("ops", Role::Admin, 2, None), false)
                .await
                .expect("create"),
            "a name is unique among unrevoked tokens"
        );
        let ci = operator("ci", Role::ReadOnly, 3, Some(3600));
        assert!(store
            .create_operator_token(&ci, false)
            .await
            .expect("create"));
        assert_eq!(
            store.operator_tokens().await.expect("list"),
            [ci.clone(), ops.clone()],
            "kept as given, ordered by name"
        );

        assert_eq!(
            store.revoke_operator_token("ops").await.expect("revoke"),
            Revocation::LastAdmin(ops.clone()),
            "the only admin token cannot be revoked"
        );
        assert_eq!(
            store.revoke_operator_token("nobody").await.expect("revoke"),
            Revocation::Unknown
        );
        let ops_2 = operator("ops-2", Role::Admin, 4, None);
        assert!(store
            .create_operator_token(&ops_2, false)
            .await
            .expect("create"));
        let Revocation::Revoked(revoked) =
            store.revoke_operator_token("ops").await.expect("revoke")
        else {
            panic!("ops is revoked once another admin token exists");
        };
        assert!(revoked.revoked_at.is_some() && revoked.hash == ops.hash);
        assert!(matches!(
            store.revoke_operator_token("ops").await.expect("revoke again"),
            Revocation::AlreadyRevoked(t) if t.id == ops.id
        ));
        // A revoked token's name can be used again; the revoked one stays listed.
        let ops_again = operator("ops", Role::Admin, 5, None);
        assert!(store
            .create_operator_token(&ops_again, false)
            .await
            .expect("create"));
        // An expired token's name too, and an expired admin token is no admin.
        let old = operator("old", Role::Admin, 6, Some(-10));
        assert!(store
            .create_operator_token(&old, false)
            .await
            .expect("create"));
        let old_again = operator("old", Role::Admin, 7, Some(-5));
        assert!(store
            .create_operator_token(&old_again, false)
            .await
            .expect("create"));
        // `replace` retires an unexpired token of the name (the recovery path).
        let ops_2_new = operator("ops-2", Role::Admin, 8, None);
        assert!(store
            .create_operator_token(&ops_2_new, true)
            .await
            .expect("replace"));
        assert!(matches!(
            store.revoke_operator_token("ops-2").await.expect("revoke"),
            Revocation::Revoked(t) if t.id == ops_2_new.id
        ));
        assert!(
            matches!(
                store.revoke_operator_token("ops").await.expect("revoke"),
                Revocation::LastAdmin(t) if t.id == ops_again.id
            ),
            "expired admin tokens do not count"
        );
        assert!(matches!(
            store.revoke_operator_token("ci").await.expect("revoke"),
            Revocation::Revoked(_)
        ));

        let listed = store.operator_tokens().await.expect("list");
        let summary: Vec<(&str, u8, bool)> = listed
            .iter()
            .map(|t| {
                let seed = u8::from_str_radix(&t.id[30..], 16).expect("hex id");
                (t.name.as_str(), seed, t.revoked_at.is_some())
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("ci", 3, true),
                ("old", 6, true),
                ("old", 7, false),
                ("ops", 1, true),
                ("ops", 5, false),
                ("ops-2", 4, true),
                ("ops-2", 8, true),
            ]
        );
    }
}

/// Behaviours that need the database, not just one store.
mod database {
    use super::*;

    pub(super) async fn data_survives_reopening(fixture: &Fixture) {
        let store = fixture.open().await;
        let created = put(&store, service("default", "web", json!({"v": 1}))).await;
        let revision = store.revision().await.expect("revision");
        drop(store);

        let reopened = fixture.open().await;
        let got = reopened
            .get(&key(Kind::Service, "default", "web"))
            .await
            .expect("get")
            .expect("still stored");
        assert_eq!(&got, created.object());
        assert_eq!(reopened.revision().await.expect("revision"), revision);
        let next = put(&reopened, service("default", "web", json!({"v": 2}))).await;
        assert_eq!(rv(next.object()), revision + 1, "the counter continues");
        assert_eq!(reopened.changes_since(0, 10).await.expect("log").len(), 2);
        reopened.ping().await.expect("ping");
    }

    pub(super) async fn secrets_and_revocations_survive_reopening_and_are_shared(
        fixture: &Fixture,
    ) {
        let a = fixture.open().await;
        let b = fixture.open().await;
        let (from_a, from_b) = tokio::join!(
            a.create_secret("ca/builtin", b"from a"),
            b.create_secret("ca/builtin", b"from b"),
        );
        let (from_a, from_b) = (from_a.expect("a creates"), from_b.expect("b creates"));
        assert_eq!(from_a, from_b, "two instances agree on one value");
        let expires = std::time::SystemTime::now() + Duration::from_secs(3600);
        a.revoke_token("tok-1", expires).await.expect("revoke");
        assert!(b.is_revoked("tok-1").await.expect("read"));
        drop((a, b));

        let reopened = fixture.open().await;
        assert_eq!(
            reopened.secret("ca/builtin").await.expect("read"),
            Some(from_a)
        );
        assert!(reopened.is_revoked("tok-1").await.expect("read"));
    }

    /// A store last opened by a version with one admin token (secret
    /// `admin/token-sha256`) gets it as the admin operator token `bootstrap`: the
    /// upgrade is replayed by undoing migration 4 and opening the store again.
    pub(super) async fn the_legacy_admin_token_becomes_the_bootstrap_operator_token(
        fixture: &Fixture,
    ) {
        let legacy = "ab".repeat(32);
        let store = fixture.open().await;
        store
            .create_secret("admin/token-sha256", format!("{legacy}\n").as_bytes())
            .await
            .expect("the secret an earlier version wrote");
        drop(store);
        let undo = [
            "DROP TABLE operator_tokens",
            "DELETE FROM _sqlx_migrations WHERE version = 4",
        ];
        match fixture.spec() {
            StoreSpec::Sqlite { path } => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .expect("connect");
                for sql in undo {
                    sqlx::query(sql).execute(&pool).await.expect(sql);
                }
                pool.close().await;
            }
            StoreSpec::Postgres { url } => {
                let pool = sqlx::PgPool::connect(&url).await.expect("connect");
                for sql in undo {
                    sqlx::query(sql).execute(&pool).await.expect(sql);
                }
                pool.close().await;
            }
        }

        let upgraded = fixture.open().await;
        let tokens = upgraded.operator_tokens().await.expect("list");
        assert_eq!(tokens.len(), 1, "{tokens:?}");
        let bootstrap = &tokens[0];
        assert_eq!(
            (
                bootstrap.name.as_str(),
                bootstrap.role,
                bootstrap.hash.as_str()
            ),
            ("bootstrap", Role::Admin, legacy.as_str())
        );
        assert_eq!(bootstrap.id.len(), 32, "{}", bootstrap.id);
        assert!(bootstrap.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!((bootstrap.expires_at, bootstrap.revoked_at), (None, None));
    }

    pub(super) async fn compacted_revisions_answer_compacted(fixture: &Fixture) {
        let options = Options {
            retention: Retention {
                max_changes: 3,
                ..Retention::default()
            },
            ..Options::default()
        };
        let store = fixture.open_with(&options).await;
        for v in 0..10 {
            put(&store, service("default", "web", json!({ "v": v }))).await;
        }
        assert_eq!(store.revision().await.expect("revision"), 10);
        let kept = store.changes_since(7, 10).await.expect("kept");
        assert_eq!(
            kept.iter().map(|c| c.revision).collect::<Vec<_>>(),
            [8, 9, 10]
        );
        for requested in [0, 6] {
            let err = store
                .changes_since(requested, 10)
                .await
                .expect_err("compacted");
            assert!(
                matches!(err, StoreError::Compacted { requested: r, oldest: 8 } if r == requested),
                "{err}"
            );
        }
    }
}

// === PostgreSQL only ===

/// The listener backends (`pg_stat_activity`) of every store instance on the server.
async fn listener_pids(admin: &sqlx::PgPool) -> Vec<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
        .bind(store::LISTENER_APPLICATION_NAME)
        .fetch_all(admin)
        .await
        .expect("pg_stat_activity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_write_through_one_instance_reaches_another_instances_feed() {
    let Some(fixture) =
        Fixture::postgres("postgres_write_through_one_instance_reaches_another_instances_feed")
    else {
        return;
    };
    let a = fixture.open().await;
    let b = fixture.open().await;
    let mut feed_a = a.subscribe();
    let mut feed_b = b.subscribe();

    let written = put(&a, service("default", "web", json!({"v": 1}))).await;
    put(&b, service("default", "web", json!({"v": 2}))).await;
    for feed in [&mut feed_a, &mut feed_b] {
        let first = next_change(feed).await;
        assert_eq!(first.object, *written.object());
        let second = next_change(feed).await;
        assert_eq!(second.revision, first.revision + 1);
        assert_feed_quiet(feed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_feed_recovers_writes_made_while_its_listen_connection_was_down() {
    let Some(fixture) = Fixture::postgres(
        "postgres_feed_recovers_writes_made_while_its_listen_connection_was_down",
    ) else {
        return;
    };
    let Fixture::Postgres { server } = &fixture else {
        unreachable!("a PostgreSQL fixture")
    };
    let admin = sqlx::PgPool::connect(&server.url())
        .await
        .expect("admin pool");
    let a = fixture.open().await;
    let before = listener_pids(&admin).await;
    // No periodic re-read on B: only the reconnect can bring the change.
    let b = fixture
        .open_with(&Options {
            poll_interval: Duration::from_secs(3600),
            ..Options::default()
        })
        .await;
    let b_listener: Vec<i32> = listener_pids(&admin)
        .await
        .into_iter()
        .filter(|pid| !before.contains(pid))
        .collect();
    assert_eq!(b_listener.len(), 1, "B has one LISTEN connection");
    let mut feed_b = b.subscribe();

    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(b_listener[0])
        .fetch_one(&admin)
        .await
        .expect("terminate");
    assert!(terminated);
    let written = put(&a, service("default", "web", json!({"v": 1}))).await;

    let change = next_change(&mut feed_b).await;
    assert_eq!(change.object, *written.object());
    // The change can arrive through the reconnect's catch-up read a moment before the
    // new connection has issued LISTEN: wait for it to show (5 s at most).
    let reopened = |pids: &[i32]| {
        pids.iter()
            .any(|pid| !before.contains(pid) && *pid != b_listener[0])
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut after = listener_pids(&admin).await;
    while !reopened(&after) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = listener_pids(&admin).await;
    }
    assert!(
        reopened(&after),
        "B re-opened its LISTEN connection: {after:?}"
    );

    // And notifications flow again on the new connection.
    let second = put(&a, service("default", "web", json!({"v": 2}))).await;
    assert_eq!(next_change(&mut feed_b).await.object, *second.object());
    assert_feed_quiet(&mut feed_b).await;
    drop((a, b));
    admin.close().await;
}

#[tokio::test]
async fn postgres_connection_failure_names_the_database() {
    // Nothing listens on port 1.
    let spec = StoreSpec::Postgres {
        url: "postgres://weft:secret@127.0.0.1:1/weftdb".into(),
    };
    let options = Options {
        acquire_timeout: Duration::from_secs(2),
        ..Options::default()
    };
    let err = match store::open_with(&spec, &options).await {
        Ok(_) => panic!("connected to nothing"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("cannot connect to PostgreSQL at 127.0.0.1:1/weftdb"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
}

#[tokio::test]
async fn sqlite_creates_a_private_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = Fixture::sqlite();
    let store = fixture.open().await;
    assert_eq!(store.backend(), "sqlite");
    let Fixture::Sqlite { dir } = &fixture else {
        unreachable!("an SQLite fixture")
    };
    let data = dir.path().join("data");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("weft.db")), 0o600);
    let journal: String = {
        let pool =
            sqlx::SqlitePool::connect(&format!("sqlite://{}", data.join("weft.db").display()))
                .await
                .expect("open");
        sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .expect("pragma")
    };
    assert_eq!(journal, "wal");
}

// === one test per behaviour and backend ===

macro_rules! contract_tests {
    (store: [$($store:ident),* $(,)?], database: [$($db:ident),* $(,)?] $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $store() {
                    let fixture = super::Fixture::sqlite();
                    super::contract::$store(fixture.open().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $db() {
                    let fixture = super::Fixture::sqlite();
                    super::database::$db(&fixture).await;
                }
            )*
        }

        // The API tests' in-memory store keeps the same rules as the real ones.
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $store() {
                    let store: std::sync::Arc<dyn weft_control::store::Store> =
                        std::sync::Arc::new(super::memory_store::MemoryStore::default());
                    super::contract::$store(store).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $store() {
                    let Some(fixture) = super::Fixture::postgres(stringify!($store)) else {
                        return;
                    };
                    super::contract::$store(fixture.open().await).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $db() {
                    let Some(fixture) = super::Fixture::postgres(stringify!($db)) else {
                        return;
                    };
                    super::database::$db(&fixture).await;
                }
            )*
        }
    };
}

contract_tests! {
    store: [
        put_all_stores_every_object_or_none,
        creates_and_gets_objects_with_bookkeeping_fields,
        update_bumps_generation_and_resource_version,
        identical_put_is_unchanged_and_takes_no_revision,
        stale_resource_version_conflicts,
        absent_precondition_conflicts_when_the_object_exists,
        lists_by_kind_and_namespace_in_key_order,
        status_survives_spec_updates_and_put_status_keeps_generation,
        delete_returns_the_object_and_is_in_the_feed,
        changes_since_returns_writes_in_order,
        subscribers_see_writes_in_order,
        concurrent_writers_get_gapless_revisions_delivered_once,
        create_secret_keeps_the_first_value_outside_the_feed,
        concurrent_secret_creations_agree_on_one_value,
        revoked_tokens_are_reported_until_pruned,
        workloads_are_counted_by_identity_and_by_token,
        an_api_version_only_change_is_configured_in_the_same_generation,
        issued_tokens_are_known_until_they_expire,
        operator_tokens_are_named_revocable_and_never_lose_the_last_admin,
    ],
    database: [
        data_survives_reopening,
        compacted_revisions_answer_compacted,
        secrets_and_revocations_survive_reopening_and_are_shared,
        the_legacy_admin_token_becomes_the_bootstrap_operator_token,
    ],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writes_and_readiness_recover_after_failed_writes() {
    let Some(fixture) =
        Fixture::postgres("postgres_writes_and_readiness_recover_after_failed_writes")
    else {
        return;
    };
    let Fixture::Postgres { server } = &fixture else {
        unreachable!("a PostgreSQL fixture")
    };
    // One pooled connection: the failed writes and the later ones share it.
    let store = fixture
        .open_with(&Options {
            max_connections: 1,
            ..Options::default()
        })
        .await;
    put(&store, service("default", "before", json!({}))).await;
    assert_eq!(store.write_failure().await, None);

    // Every write takes a revision; make that fail, as a full disk would.
    let admin = sqlx::PgPool::connect(&server.url()).await.expect("admin");
    sqlx::query(
        "ALTER TABLE store_state ADD CONSTRAINT weft_test_no_writes CHECK (revision < 0) NOT VALID",
    )
    .execute(&admin)
    .await
    .expect("constraint");
    for attempt in 0..3 {
        let error = store
            .put(
                service("default", &format!("w{attempt}"), json!({})),
                Precondition::None,
            )
            .await
            .expect_err("writes fail");
        assert!(
            error.to_string().contains("weft_test_no_writes"),
            "attempt {attempt}: the write's own failure, not a broken connection: {error}"
        );
    }
    let failure = store.write_failure().await;
    assert!(
        failure
            .as_deref()
            .is_some_and(|f| f.contains("weft_test_no_writes")),
        "{failure:?}"
    );
    tokio::time::sleep(store::WRITE_PROBE_INTERVAL + Duration::from_millis(100)).await;
    assert!(
        store.write_failure().await.is_some(),
        "the probe write fails too"
    );

    sqlx::query("ALTER TABLE store_state DROP CONSTRAINT weft_test_no_writes")
        .execute(&admin)
        .await
        .expect("drop constraint");
    tokio::time::sleep(store::WRITE_PROBE_INTERVAL + Duration::from_millis(100)).await;
    assert_eq!(
        store.write_failure().await,
        None,
        "readiness returns with no write but the probe"
    );
    put(&store, service("default", "after", json!({}))).await;
    admin.close().await;
}
