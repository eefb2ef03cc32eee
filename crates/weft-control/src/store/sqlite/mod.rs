//! The embedded backend: one SQLite file (WAL mode) for a single control-plane
//! instance, e.g. `/var/lib/weft/weft.db`.
//!
//! Writes are serialised twice over: an in-process lock (so concurrent API requests
//! queue instead of spinning on SQLite's busy handler) and `BEGIN IMMEDIATE` (so another
//! process opening the file cannot interleave). Reads run concurrently from the pool.
//! The feed is published from this process after each commit; a periodic re-read also
//! picks up writes made by another process on the same file.
//!
//! Failed writes (ADR 0024): every write transaction ends in an explicit `COMMIT` or
//! `ROLLBACK` ([`finish`]). SQLite may already have rolled back on `SQLITE_FULL` or an
//! I/O error, so that `ROLLBACK` can fail and leave sqlx counting a transaction that no
//! longer exists ("non-zero transaction depth" on every later write); such a connection
//! is closed when it returns to the pool instead of being reused ([`release_healthy`]).

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use tokio::sync::{broadcast, Mutex};
use weft_api::resource::{Key, Kind, Object};

use super::feed::{ChangeLog, Feed};
use super::operator::{self, RawOperatorToken};
use super::record::{self, to_i64, to_u64, PutPlan, RawChange, RawRecord, Record};
use super::{
    finish, release_healthy, unix_seconds_ceil, Change, ChangeOp, OperatorToken, Options,
    Precondition, Revocation, Role, Store, StoreError, TokenTable, WorkloadCounts, WriteHealth,
    Written, WRITE_HEADROOM,
};

/// How long a statement waits for another process's write lock: 5 s.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SELECT_OPERATOR_TOKEN: &str =
    "SELECT id, name, role, hash, created_at, expires_at, revoked_at FROM operator_tokens";

/// An unrevoked, unexpired token.
const USABLE: &str = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > unixepoch())";

const SELECT_OBJECT: &str = "SELECT kind, namespace, name, uid, api_version, generation, \
     resource_version, created_at, labels, annotations, spec, status FROM objects";

/// The SQLite store. Cheap to share behind an `Arc`; background tasks stop when it is
/// dropped.
pub struct Sqlite {
    db: Db,
    feed: Feed,
    health: WriteHealth,
    /// The database's directory: where free space is measured.
    dir: PathBuf,
}

/// The pool and what writes need; cloned into the feed's publisher.
#[derive(Clone)]
struct Db {
    pool: SqlitePool,
    write_lock: Arc<Mutex<()>>,
    max_changes: i64,
}

// === impl Sqlite ===

impl Sqlite {
    /// Opens (creating if missing: the directory with mode 0700, the file with 0600)
    /// the database file at `path`, runs migrations and starts the change feed. Must be
    /// called inside a tokio runtime. An existing directory that group or others can
    /// write to is refused ([`StoreError::UnsafeDirectory`]), not fixed: its mode is the
    /// operator's choice to correct, and a warning is easy to miss.
    pub async fn open(path: &Path, options: &Options) -> Result<Self, StoreError> {
        let open_error = |e: std::io::Error| {
            StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot open SQLite database at {}: {e}", path.display()),
            )))
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(open_error)?;
            }
            let mode = std::fs::metadata(dir)
                .map_err(open_error)?
                .permissions()
                .mode();
            if mode & 0o022 != 0 {
                return Err(StoreError::UnsafeDirectory {
                    path: dir.to_owned(),
                    mode: mode & 0o7777,
                });
            }
        }
        // Created here rather than by SQLite so that it is private from the start.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(open_error)?;

        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A control plane acknowledges an apply only once it is on disk.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .after_release(release_healthy::<sqlx::Sqlite>)
            .connect_with(connect)
            .await
            .map_err(|e| connect_error(path, &e))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;

        let db = Db {
            pool,
            write_lock: Arc::new(Mutex::new(())),
            max_changes: to_i64(options.retention.max_changes.max(1)),
        };
        let start = db.revision().await?;
        let feed = Feed::spawn(db.clone(), start, options);
        tracing::info!(path = %path.display(), revision = start, "opened the SQLite store");
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        Ok(Self {
            db,
            feed,
            health: WriteHealth::default(),
            dir,
        })
    }
}

impl Sqlite {
    /// Keeps token `id` in `table` until `expires_at` (of two times, the later wins),
    /// and prunes the rows already past theirs.
    async fn keep_token_until(
        &self,
        table: TokenTable,
        id: &str,
        expires_at: SystemTime,
    ) -> Result<(), StoreError> {
        let table = table.name();
        let prune = format!("DELETE FROM {table} WHERE expires_at < unixepoch()");
        let upsert = format!(
            "INSERT INTO {table} (id, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET expires_at = MAX(expires_at, excluded.expires_at)"
        );
        let _writer = self.db.write_lock.lock().await;
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
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
impl Store for Sqlite {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.db.pool).await?;
        Ok(())
    }

    async fn write_failure(&self) -> Option<String> {
        self.health
            .failure(|| async {
                headroom(self.dir.clone()).await?;
                self.db.probe().await
            })
            .await
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
        // One read transaction: WAL gives it a snapshot, so objects and revision agree.
        let mut tx = self.db.pool.begin().await?;
        let revision = read_revision(&mut tx).await?;
        let rows: Vec<RawRecord> = sqlx::query_as(&format!(
            "{SELECT_OBJECT} WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR namespace = ?2)"
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
        let _writer = self.db.write_lock.lock().await;
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
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
        let _writer = self.db.write_lock.lock().await;
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
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
        let _writer = self.db.write_lock.lock().await;
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
        let result = async {
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
        let _writer = self.db.write_lock.lock().await;
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
        let result = async {
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
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?1")
                .bind(name)
                .fetch_optional(&self.db.pool)
                .await?,
        )
    }

    async fn create_secret(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let _writer = self.db.write_lock.lock().await;
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
        let result = async {
            sqlx::query(
                "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(value)
            .execute(&mut *tx)
            .await?;
            let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            Ok(stored)
        }
        .await;
        self.health.record(finish(tx, result).await)
    }

    async fn revoke_token(&self, id: &str, expires_at: SystemTime) -> Result<(), StoreError> {
        self.keep_token_until(TokenTable::Revoked, id, expires_at)
            .await
    }

    async fn is_revoked(&self, id: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM revoked_tokens WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(found.is_some())
    }

    async fn revoked_tokens(&self) -> Result<Vec<String>, StoreError> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM revoked_tokens WHERE expires_at >= unixepoch()")
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
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM issued_tokens WHERE id = ?1 AND expires_at >= unixepoch()",
        )
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
               COALESCE(SUM(json_extract(spec, '$.serviceAccount') = ?2), 0), \
               COALESCE(SUM(?3 IS NOT NULL AND json_extract(status, '$.token') = ?3), 0) \
             FROM objects WHERE kind = 'Workload' AND namespace = ?1",
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
            "{SELECT_OPERATOR_TOKEN} ORDER BY name, created_at, id"
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
            "UPDATE operator_tokens SET revoked_at = unixepoch() \
             WHERE name = ?1 AND revoked_at IS NULL"
        } else {
            "UPDATE operator_tokens SET revoked_at = unixepoch() \
             WHERE name = ?1 AND revoked_at IS NULL AND expires_at <= unixepoch()"
        };
        let _writer = self.db.write_lock.lock().await;
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
        let result = async {
            sqlx::query(retire)
                .bind(&token.name)
                .execute(&mut *tx)
                .await?;
            let inserted = sqlx::query(
                "INSERT INTO operator_tokens (id, name, role, hash, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
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
        let _writer = self.db.write_lock.lock().await;
        let mut tx = self.db.pool.begin_with("BEGIN IMMEDIATE").await?;
        let result = async {
            let unrevoked: Option<RawOperatorToken> = sqlx::query_as(&format!(
                "{SELECT_OPERATOR_TOKEN} WHERE name = ?1 AND revoked_at IS NULL"
            ))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(token) = unrevoked.map(RawOperatorToken::decode).transpose()? else {
                let latest: Option<RawOperatorToken> = sqlx::query_as(&format!(
                    "{SELECT_OPERATOR_TOKEN} WHERE name = ?1 ORDER BY revoked_at DESC LIMIT 1"
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
                    "SELECT count(*) FROM operator_tokens WHERE role = ?1 AND id <> ?2 AND {USABLE}"
                ))
                .bind(Role::Admin.as_str())
                .bind(&token.id)
                .fetch_one(&mut *tx)
                .await?;
                let usable: Option<i64> = sqlx::query_scalar(&format!(
                    "SELECT 1 FROM operator_tokens WHERE id = ?1 AND {USABLE}"
                ))
                .bind(&token.id)
                .fetch_optional(&mut *tx)
                .await?;
                if others == 0 && usable.is_some() {
                    return Ok(Revocation::LastAdmin(token));
                }
            }
            let revoked: RawOperatorToken = sqlx::query_as(
                "UPDATE operator_tokens SET revoked_at = unixepoch() WHERE id = ?1 \
                 RETURNING id, name, role, hash, created_at, expires_at, revoked_at",
            )
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
    /// The body of [`Store::put`], inside the caller's transaction.
    async fn put(
        &self,
        tx: &mut SqliteConnection,
        key: Key,
        object: Object,
        precondition: Precondition,
    ) -> Result<Written, StoreError> {
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
        let _writer = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
    /// revision as its resource version) and its change, compacting the log by count.
    async fn write(
        &self,
        conn: &mut SqliteConnection,
        record: &mut Record,
        op: ChangeOp,
    ) -> Result<u64, StoreError> {
        let (revision, compacted): (i64, i64) = sqlx::query_as(
            "UPDATE store_state SET revision = revision + 1, \
             compacted_through = MAX(compacted_through, revision + 1 - ?1) \
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
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
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
                sqlx::query("DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3")
                    .bind(record.key.kind.as_str())
                    .bind(&record.key.namespace)
                    .bind(&record.key.name)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        sqlx::query(
            "INSERT INTO changes (revision, kind, namespace, name, op, object) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
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
            sqlx::query("DELETE FROM changes WHERE revision <= ?1")
                .bind(compacted)
                .execute(&mut *conn)
                .await?;
        }
        Ok(revision)
    }
}

impl ChangeLog for Db {
    async fn read(&self, revision: u64, limit: u32) -> Result<Vec<Change>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (_, compacted): (i64, i64) =
            sqlx::query_as("SELECT revision, compacted_through FROM store_state WHERE id = 1")
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
            "SELECT revision, op, object FROM changes WHERE revision > ?1 \
             ORDER BY revision LIMIT ?2",
        )
        .bind(to_i64(revision))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(RawChange::decode).collect()
    }

    async fn compact_older_than(&self, max_age: Duration) -> Result<(), StoreError> {
        let _writer = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let through: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(revision) FROM changes WHERE recorded_at < unixepoch() - ?1",
        )
        .bind(to_i64(max_age.as_secs()))
        .fetch_one(&mut *tx)
        .await?;
        if let Some(through) = through {
            sqlx::query(
                "UPDATE store_state SET compacted_through = MAX(compacted_through, ?1) WHERE id = 1",
            )
            .bind(through)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM changes WHERE revision <= ?1")
                .bind(through)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

// === queries ===

async fn load(conn: &mut SqliteConnection, key: &Key) -> Result<Option<Record>, StoreError> {
    let row: Option<RawRecord> = sqlx::query_as(&format!(
        "{SELECT_OBJECT} WHERE kind = ?1 AND namespace = ?2 AND name = ?3"
    ))
    .bind(key.kind.as_str())
    .bind(&key.namespace)
    .bind(&key.name)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(RawRecord::decode).transpose()
}

async fn read_revision(conn: &mut SqliteConnection) -> Result<u64, StoreError> {
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM store_state WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    to_u64(revision, "store_state.revision")
}

/// Whether the filesystem holding `dir` has [`WRITE_HEADROOM`] free for the store's
/// user: a recovered write must have room for the next apply, not only for a no-op.
async fn headroom(dir: PathBuf) -> Result<(), StoreError> {
    let measured = tokio::task::spawn_blocking(move || {
        let stat = nix::sys::statvfs::statvfs(&dir);
        (dir, stat)
    })
    .await;
    // A join error means the blocking pool is shutting down: nothing left to serve.
    let Ok((dir, stat)) = measured else {
        return Ok(());
    };
    let stat = stat.map_err(|errno| {
        StoreError::Database(sqlx::Error::Io(std::io::Error::new(
            std::io::Error::from(errno).kind(),
            format!(
                "cannot measure the free space of {}: {errno}",
                dir.display()
            ),
        )))
    })?;
    let free = stat.blocks_available().saturating_mul(stat.fragment_size());
    if free < WRITE_HEADROOM {
        return Err(StoreError::LowDiskSpace {
            path: dir,
            free,
            needed: WRITE_HEADROOM,
        });
    }
    Ok(())
}

fn connect_error(path: &Path, error: &sqlx::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
        "cannot open SQLite database at {}: {error}",
        path.display()
    ))))
}

#[cfg(test)]
mod tests;
