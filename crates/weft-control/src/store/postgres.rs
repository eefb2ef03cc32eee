//! The shared backend: PostgreSQL, for several control-plane instances on one database.
//!
//! Every write transaction first locks the single `store_state` row, so writes are
//! serialised across instances and revisions commit in the order they were taken. The
//! write sends `NOTIFY weft_changes, '<revision>'` before committing; each instance runs
//! a listener task on its own connection that pokes its feed publisher, which re-reads
//! the log from the last revision it published. The publisher also re-reads on a
//! periodic tick and after the listener reconnects, so a dropped LISTEN connection
//! delays changes but never loses one, and every instance sees every write once, in
//! order.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use weft_api::resource::{Key, Kind, Object};

use super::feed::{ChangeLog, Feed};
use super::operator::{self, RawOperatorToken};
use super::record::{self, to_i64, to_u64, PutPlan, RawChange, RawRecord, Record};
use super::{
    finish, release_healthy, unix_seconds_ceil, Change, ChangeOp, OperatorToken, Options,
    Precondition, Revocation, Role, Store, StoreError, TokenTable, WorkloadCounts, WriteHealth,
    Written,
};

/// The notification channel writes announce their revision on.
pub const CHANNEL: &str = "weft_changes";

/// The `application_name` of the listener's connection (visible in
/// `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "weft-control-feed";

/// How long the listener waits before retrying after a failure: 1 s.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The columns of an operator token, times in seconds since the epoch.
const OPERATOR_TOKEN_COLUMNS: &str = "id, name, role, hash, \
     floor(extract(epoch FROM created_at))::bigint AS created_at, \
     floor(extract(epoch FROM expires_at))::bigint AS expires_at, \
     floor(extract(epoch FROM revoked_at))::bigint AS revoked_at";

/// An unrevoked, unexpired token.
const USABLE: &str = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())";

/// Serialises operator token writes across instances (reads go on).
const LOCK_OPERATOR_TOKENS: &str = "LOCK TABLE operator_tokens IN EXCLUSIVE MODE";

const SELECT_OBJECT: &str = "SELECT kind, namespace, name, uid, api_version, generation, \
     resource_version, \
     to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS created_at, \
     labels::text AS labels, annotations::text AS annotations, spec::text AS spec, \
     status::text AS status FROM objects";

/// The PostgreSQL store. Cheap to share behind an `Arc`; background tasks (feed
/// publisher, listener) stop when it is dropped.
pub struct Postgres {
    db: Db,
    feed: Feed,
    health: WriteHealth,
}

/// The pool and what writes need; cloned into the feed's publisher.
#[derive(Clone)]
struct Db {
    pool: PgPool,
    max_changes: i64,
}

// === impl Postgres ===

impl Postgres {
    /// Connects to `url` (`postgres://user:password@host:port/database`), runs
    /// migrations (serialised across instances by sqlx's advisory lock), starts
    /// listening for other instances' writes and starts the feed. Must be called inside
    /// a tokio runtime.
    pub async fn connect(url: &str, options: &Options) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = url.parse()?;
        let target = describe(&connect);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_release(release_healthy::<sqlx::Postgres>)
            .connect_with(connect.clone())
            .await
            .map_err(|e| connect_error(&target, &e))?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;

        // Its own pool of one, so that the LISTEN connection never competes with
        // queries and is re-opened by PgListener when it drops.
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(connect.application_name(LISTENER_APPLICATION_NAME));
        let mut listener = PgListener::connect_with(&listener_pool)
            .await
            .map_err(|e| connect_error(&target, &e))?;
        listener.listen(CHANNEL).await?;

        let db = Db {
            pool,
            max_changes: to_i64(options.retention.max_changes.max(1)),
        };
        // Read after LISTEN: a write committed in between is both in the log after
        // `start` and notified.
        let start = db.revision().await?;
        let feed = Feed::spawn(db.clone(), start, options);
        tokio::spawn(listen(listener, feed.poker(), feed.cancelled()));
        tracing::info!(database = %target, revision = start, "opened the PostgreSQL store");
        Ok(Self {
            db,
            feed,
            health: WriteHealth::default(),
        })
    }
}

impl Postgres {
    /// Keeps token `id` in `table` until `expires_at` (of two times, the later wins),
    /// and prunes the rows already past theirs.
    async fn keep_token_until(
        &self,
        table: TokenTable,
        id: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let table = table.name();
        let prune = format!("DELETE FROM {table} WHERE expires_at < now()");
        let upsert = format!(
            "INSERT INTO {table} (id, expires_at) VALUES ($1, to_timestamp($2::bigint)) \
             ON CONFLICT (id) DO UPDATE SET \
             expires_at = GREATEST({table}.expires_at, excluded.expires_at)"
        );
        let mut tx = self.db.pool.begin().await?;
        let result = async {
            sqlx::query(&prune).execute(&mut *tx).await?;
            sqlx::query(&upsert)
                .bind(id)
                .bind(unix_seconds_ceil(expires_at))
                .execute(&mut *tx)
                .await?;
            Ok(())
        }
        .await;
        self.health.record(finish(tx, result).await)
    }
}

#[async_trait]
impl Store for Postgres {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.db.pool).await?;
        Ok(())
    }

    async fn write_failure(&self) -> Option<String> {
        self.health.failure(|| self.db.probe()).await
    }

    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError> {
        let mut conn = self.db.pool.acquire().await?;
        Ok(load(&mut conn, key).await?.map(|r| r.to_object()))
    }

    async fn list(
        &self,
        kind: Option<Kind>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError> {
        // One snapshot for the objects and the revision.
        let mut tx = self
            .db
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let revision = read_revision(&mut tx).await?;
        let rows: Vec<RawRecord> = sqlx::query_as(&format!(
            "{SELECT_OBJECT} WHERE ($1::text IS NULL OR kind = $1) \
             AND ($2::text IS NULL OR namespace = $2)"
        ))
        .bind(kind.map(Kind::as_str))
        .bind(namespace)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut records = rows
            .into_iter()
            .map(RawRecord::decode)
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((records.iter().map(Record::to_object).collect(), revision))
    }

    async fn put(&self, object: Object, precondition: Precondition) -> Result<Written, StoreError> {
        let key = record::key_of(&object)?;
        let mut tx = self.db.pool.begin().await?;
        let result = self.db.put(&mut tx, key, object, precondition).await;
        let written = self.health.record(finish(tx, result).await)?;
        if !matches!(written, Written::Unchanged(_)) {
            self.feed.poke();
        }
        Ok(written)
    }

    async fn put_all(
        &self,
        writes: Vec<(Object, Precondition)>,
    ) -> Result<Vec<Written>, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let result = async {
            let mut written = Vec::with_capacity(writes.len());
            for (index, (object, precondition)) in writes.into_iter().enumerate() {
                let in_batch = |source| StoreError::InBatch {
                    index,
                    source: Box::new(source),
                };
                let key = record::key_of(&object).map_err(in_batch)?;
                let one = self.db.put(&mut tx, key, object, precondition);
                written.push(one.await.map_err(in_batch)?);
            }
            Ok(written)
        }
        .await;
        let written = self.health.record(finish(tx, result).await)?;
        if written.iter().any(|w| !matches!(w, Written::Unchanged(_))) {
            self.feed.poke();
        }
        Ok(written)
    }

    async fn put_status(
        &self,
        key: &Key,
        status: serde_json::Value,
        precondition: Precondition,
    ) -> Result<Option<Object>, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let result = async {
            lock_writes(&mut tx).await?;
            let current = load(&mut tx, key).await?;
            let Some(mut next) = record::plan_status(key, current, status, precondition)? else {
                return Ok(None);
            };
            self.db.write(&mut tx, &mut next, ChangeOp::Put).await?;
            Ok(Some(next.to_object()))
        }
        .await;
        let written = self.health.record(finish(tx, result).await)?;
        if written.is_some() {
            self.feed.poke();
        }
        Ok(written)
    }

    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<Object, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let result = async {
            lock_writes(&mut tx).await?;
            let current = load(&mut tx, key).await?;
            let mut gone = record::plan_delete(key, current, precondition)?;
            self.db.write(&mut tx, &mut gone, ChangeOp::Delete).await?;
            Ok(gone.to_object())
        }
        .await;
        let gone = self.health.record(finish(tx, result).await)?;
        self.feed.poke();
        Ok(gone)
    }

    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<Change>, StoreError> {
        self.db.read(revision, limit).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.feed.subscribe()
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        self.db.revision().await
    }

    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.db.pool)
                .await?,
        )
    }

    async fn create_secret(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        // A concurrent insert of the same name waits for the other transaction and then
        // does nothing; the SELECT (a new snapshot under READ COMMITTED) sees the winner.
        sqlx::query(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.db.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.db.pool)
                .await?,
        )
    }

    async fn revoke_token(&self, id: &str, expires_at: SystemTime) -> Result<(), StoreError> {
        self.keep_token_until(TokenTable::Revoked, id, expires_at)
            .await
    }

    async fn is_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn revoked_tokens(&self) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM revoked_tokens WHERE expires_at >= now()")
                .fetch_all(&self.db.pool)
                .await?;
        Ok(ids)
    }

    async fn record_issued_token(
        &self,
        id: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        self.keep_token_until(TokenTable::Issued, id, expires_at)
            .await
    }

    async fn token_issued(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM issued_tokens WHERE id = $1 AND expires_at >= now()")
                .bind(id)
                .fetch_optional(&self.db.pool)
                .await?;
        Ok(found.is_some())
    }

    async fn count_workloads(
        &self,
        namespace: &str,
        service_account: &str,
        token: Option<&str>,
    ) -> Result<WorkloadCounts, StoreError> {
        let (identity, by_token): (i64, i64) = sqlx::query_as(
            "SELECT \
               count(*) FILTER (WHERE spec->>'serviceAccount' = $2), \
               count(*) FILTER (WHERE $3::text IS NOT NULL AND status->>'token' = $3) \
             FROM objects WHERE kind = 'Workload' AND namespace = $1",
        )
        .bind(namespace)
        .bind(service_account)
        .bind(token)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(WorkloadCounts {
            identity: usize::try_from(identity).unwrap_or(0),
            token: usize::try_from(by_token).unwrap_or(0),
        })
    }

    async fn operator_tokens(&self) -> Result<Vec<OperatorToken>, StoreError> {
        let rows: Vec<RawOperatorToken> = sqlx::query_as(&format!(
            "SELECT {OPERATOR_TOKEN_COLUMNS} FROM operator_tokens \
             ORDER BY name, created_at, id"
        ))
        .fetch_all(&self.db.pool)
        .await?;
        rows.into_iter().map(RawOperatorToken::decode).collect()
    }

    async fn create_operator_token(
        &self,
        token: &OperatorToken,
        replace: bool,
    ) -> Result<bool, StoreError> {
        let retire = if replace {
            "UPDATE operator_tokens SET revoked_at = now() \
             WHERE name = $1 AND revoked_at IS NULL"
        } else {
            "UPDATE operator_tokens SET revoked_at = now() \
             WHERE name = $1 AND revoked_at IS NULL AND expires_at <= now()"
        };
        let mut tx = self.db.pool.begin().await?;
        let result = async {
            sqlx::query(LOCK_OPERATOR_TOKENS).execute(&mut *tx).await?;
            sqlx::query(retire)
                .bind(&token.name)
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO operator_tokens (id, name, role, hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, to_timestamp($5::bigint), to_timestamp($6::bigint)) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&token.id)
            .bind(&token.name)
            .bind(token.role.as_str())
            .bind(&token.hash)
            .bind(operator::to_seconds(token.created_at))
            .bind(token.expires_at.map(operator::to_seconds))
            .execute(&mut *tx)
            .await?;
            Ok(inserted.rows_affected() == 1)
        }
        .await;
        self.health.record(finish(tx, result).await)
    }

    async fn revoke_operator_token(&self, name: &str) -> Result<Revocation, StoreError> {
        let mut tx = self.db.pool.begin().await?;
        let result = async {
            sqlx::query(LOCK_OPERATOR_TOKENS).execute(&mut *tx).await?;
            let unrevoked: Option<RawOperatorToken> = sqlx::query_as(&format!(
                "SELECT {OPERATOR_TOKEN_COLUMNS} FROM operator_tokens \
                 WHERE name = $1 AND revoked_at IS NULL"
            ))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(token) = unrevoked.map(RawOperatorToken::decode).transpose()? else {
                let latest: Option<RawOperatorToken> = sqlx::query_as(&format!(
                    "SELECT {OPERATOR_TOKEN_COLUMNS} FROM operator_tokens \
                     WHERE name = $1 ORDER BY revoked_at DESC LIMIT 1"
                ))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
                return Ok(match latest {
                    Some(raw) => Revocation::AlreadyRevoked(raw.decode()?),
                    None => Revocation::Unknown,
                });
            };
            if token.role == Role::Admin {
                let others: i64 = sqlx::query_scalar(&format!(
                    "SELECT count(*) FROM operator_tokens WHERE role = $1 AND id <> $2 AND {USABLE}"
                ))
                .bind(Role::Admin.as_str())
                .bind(&token.id)
                .fetch_one(&mut *tx)
                .await?;
                let usable: Option<i32> = sqlx::query_scalar(&format!(
                    "SELECT 1 FROM operator_tokens WHERE id = $1 AND {USABLE}"
                ))
                .bind(&token.id)
                .fetch_optional(&mut *tx)
                .await?;
                if others == 0 && usable.is_some() {
                    return Ok(Revocation::LastAdmin(token));
                }
            }
            let revoked: RawOperatorToken = sqlx::query_as(&format!(
                "UPDATE operator_tokens SET revoked_at = now() WHERE id = $1 \
                 RETURNING {OPERATOR_TOKEN_COLUMNS}"
            ))
            .bind(&token.id)
            .fetch_one(&mut *tx)
            .await?;
            Ok(Revocation::Revoked(revoked.decode()?))
        }
        .await;
        self.health.record(finish(tx, result).await)
    }
}

// === impl Db ===

impl Db {
    /// The body of [`Store::put`], inside the caller's transaction: takes the write
    /// lock, then plans and writes.
    async fn put(
        &self,
        tx: &mut PgConnection,
        key: Key,
        object: Object,
        precondition: Precondition,
    ) -> Result<Written, StoreError> {
        lock_writes(tx).await?;
        let current = load(tx, &key).await?;
        let (mut next, created) = match record::plan_put(key, current, object, precondition)? {
            PutPlan::Unchanged(current) => return Ok(Written::Unchanged(current.to_object())),
            PutPlan::Create(next) => (next, true),
            PutPlan::Update(next) => (next, false),
        };
        self.write(tx, &mut next, ChangeOp::Put).await?;
        let object = next.to_object();
        Ok(if created {
            Written::Created(object)
        } else {
            Written::Configured(object)
        })
    }

    /// A write that changes nothing but must reach the disk: whether the store can
    /// write again after a failure (`/readyz`).
    async fn probe(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query("UPDATE store_state SET revision = revision WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map(|_| ())
            .map_err(StoreError::from);
        finish(tx, result).await
    }

    async fn revision(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        read_revision(&mut conn).await
    }

    /// Takes the next revision and records the write of `record` (for puts, with that
    /// revision as its resource version), its change and its notification, compacting
    /// the log by count. The caller holds the write lock ([`lock_writes`]).
    async fn write(
        &self,
        conn: &mut PgConnection,
        record: &mut Record,
        op: ChangeOp,
    ) -> Result<u64, StoreError> {
        let (revision, compacted): (i64, i64) = sqlx::query_as(
            "UPDATE store_state SET revision = revision + 1, \
             compacted_through = GREATEST(compacted_through, revision + 1 - $1) \
             WHERE id = 1 RETURNING revision, compacted_through",
        )
        .bind(self.max_changes)
        .fetch_one(&mut *conn)
        .await?;
        let revision = to_u64(revision, "store_state.revision")?;
        match op {
            ChangeOp::Put => {
                record.resource_version = revision;
                let e = record.encode();
                sqlx::query(
                    "INSERT INTO objects (kind, namespace, name, uid, api_version, generation, \
                     resource_version, created_at, labels, annotations, spec, status) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, $9::jsonb, \
                     $10::jsonb, $11::json, $12::json) \
                     ON CONFLICT (kind, namespace, name) DO UPDATE SET \
                     uid = excluded.uid, api_version = excluded.api_version, \
                     generation = excluded.generation, \
                     resource_version = excluded.resource_version, \
                     created_at = excluded.created_at, labels = excluded.labels, \
                     annotations = excluded.annotations, spec = excluded.spec, \
                     status = excluded.status",
                )
                .bind(e.kind)
                .bind(e.namespace)
                .bind(e.name)
                .bind(e.uid)
                .bind(e.api_version)
                .bind(e.generation)
                .bind(e.resource_version)
                .bind(e.created_at)
                .bind(e.labels)
                .bind(e.annotations)
                .bind(e.spec)
                .bind(e.status)
                .execute(&mut *conn)
                .await?;
            }
            ChangeOp::Delete => {
                sqlx::query("DELETE FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3")
                    .bind(record.key.kind.as_str())
                    .bind(&record.key.namespace)
                    .bind(&record.key.name)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        sqlx::query(
            "INSERT INTO changes (revision, kind, namespace, name, op, object) \
             VALUES ($1, $2, $3, $4, $5, $6::json)",
        )
        .bind(to_i64(revision))
        .bind(record.key.kind.as_str())
        .bind(&record.key.namespace)
        .bind(&record.key.name)
        .bind(record::op_name(op))
        .bind(record.change_json()?)
        .execute(&mut *conn)
        .await?;
        if compacted > 0 {
            sqlx::query("DELETE FROM changes WHERE revision <= $1")
                .bind(compacted)
                .execute(&mut *conn)
                .await?;
        }
        // Delivered at commit, to every instance's listener (this one's included).
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(revision.to_string())
            .execute(&mut *conn)
            .await?;
        Ok(revision)
    }
}

impl ChangeLog for Db {
    async fn read(&self, revision: u64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let compacted: i64 =
            sqlx::query_scalar("SELECT compacted_through FROM store_state WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let compacted = to_u64(compacted, "store_state.compacted_through")?;
        if revision < compacted {
            return Err(StoreError::Compacted {
                requested: revision,
                oldest: compacted + 1,
            });
        }
        let rows: Vec<RawChange> = sqlx::query_as(
            "SELECT revision, op, object::text AS object FROM changes WHERE revision > $1 \
             ORDER BY revision LIMIT $2",
        )
        .bind(to_i64(revision))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(RawChange::decode).collect()
    }

    async fn compact_older_than(&self, max_age: Duration) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_writes(&mut tx).await?;
        let through: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(revision) FROM changes \
             WHERE recorded_at < now() - make_interval(secs => $1)",
        )
        .bind(max_age.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        if let Some(through) = through {
            sqlx::query(
                "UPDATE store_state SET compacted_through = GREATEST(compacted_through, $1) \
                 WHERE id = 1",
            )
            .bind(through)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM changes WHERE revision <= $1")
                .bind(through)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

// === listener ===

/// Pokes the feed on every notification, and after every reconnect (writes made while
/// the connection was down were not notified to us, but are in the log).
async fn listen(mut listener: PgListener, poke: Arc<Notify>, cancel: CancellationToken) {
    loop {
        let next = tokio::select! {
            () = cancel.cancelled() => return,
            next = listener.try_recv() => next,
        };
        match next {
            Ok(Some(_notification)) => poke.notify_one(),
            Ok(None) => {
                tracing::info!("the store's LISTEN connection was lost and re-opened");
                poke.notify_one();
            }
            Err(error) => {
                tracing::warn!(%error, "the store's LISTEN connection failed; retrying");
                poke.notify_one();
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(RETRY_DELAY) => {}
                }
            }
        }
    }
}

// === queries ===

/// Serialises writers across instances: held until commit or rollback.
async fn lock_writes(conn: &mut PgConnection) -> Result<(), StoreError> {
    sqlx::query("SELECT revision FROM store_state WHERE id = 1 FOR UPDATE")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn load(conn: &mut PgConnection, key: &Key) -> Result<Option<Record>, StoreError> {
    let row: Option<RawRecord> = sqlx::query_as(&format!(
        "{SELECT_OBJECT} WHERE kind = $1 AND namespace = $2 AND name = $3"
    ))
    .bind(key.kind.as_str())
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(RawRecord::decode).transpose()
}

async fn read_revision(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM store_state WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    to_u64(revision, "store_state.revision")
}

/// `PostgreSQL at host:port/database`, without credentials, for errors and logs.
fn describe(connect: &PgConnectOptions) -> String {
    let database = connect
        .get_database()
        .unwrap_or_else(|| connect.get_username());
    format!(
        "PostgreSQL at {}:{}/{database}",
        connect.get_host(),
        connect.get_port()
    )
}

fn connect_error(target: &str, error: &sqlx::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
        "cannot connect to {target}: {error}"
    ))))
}
