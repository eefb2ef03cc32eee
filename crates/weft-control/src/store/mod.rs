//! The resource store: one trait, two backends (embedded SQLite, PostgreSQL for
//! several control-plane instances), versioned migrations, optimistic concurrency, and
//! a change feed every instance sees.
//!
//! Revisions: every write (create, spec update, status update, delete) takes the next
//! value of one store-wide revision counter and records a row in a change log. The
//! object's `metadata.resourceVersion` is the revision of its last write. Watchers
//! resume from a revision, so a notification that is missed (a dropped LISTEN
//! connection, a lagging receiver) costs a re-read, never a lost change.
//!
//! [`open`] picks the backend from a [`StoreSpec`] (what `--store` says): [`Sqlite`]
//! for one instance, [`Postgres`] for several. Validation of specs is not the store's
//! job: the API validates, the store keeps what it is given.
//!
//! Secrets: besides resources, the store keeps the control plane's own secrets (the
//! builtin CA key, the workload-token signing key) and the ids of revoked workload
//! tokens. They live in their own tables, outside the revision counter and the change
//! log: no watcher, API call or log line ever sees them. [`Store::create_secret`] is
//! insert-if-absent, so instances starting together on one database agree on one value.
//!
//! Operator tokens ([`OperatorToken`], ADR 0025) have their own table too: the hash of
//! each token, never the token, with its name, role and times. They are not in the
//! change feed either; each instance re-reads them (see `api::auth`).

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::broadcast;
use weft_api::resource::{Key, Kind, Object};

mod feed;
mod operator;
mod postgres;
mod record;
mod sqlite;
mod timed;

pub use operator::{OperatorToken, Revocation, Role};
pub use postgres::{Postgres, CHANNEL as POSTGRES_CHANNEL, LISTENER_APPLICATION_NAME};
pub use sqlite::{Sqlite, BUSY_TIMEOUT as SQLITE_BUSY_TIMEOUT};
pub use timed::Timed;

/// The file name of the SQLite database inside a data directory.
pub const SQLITE_FILE_NAME: &str = "weft.db";

/// Which database to use, as given on the command line (`--store`).
///
/// Parsed from `postgres://…` or `postgresql://…` (PostgreSQL), `sqlite://PATH` or
/// `sqlite:PATH` (that SQLite file), or anything else as a data directory (the SQLite
/// file `DIR/weft.db`). `Display` and `Debug` hide a PostgreSQL password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// An SQLite database file (created if missing).
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// `postgres://user:password@host:port/database?options`.
        url: String,
    },
}

/// A `--store` value that names no usable database.
#[derive(Debug, thiserror::Error)]
pub enum StoreSpecError {
    /// The value was empty.
    #[error("the store is empty: give a data directory, sqlite://FILE or postgres://…")]
    Empty,
    /// A URL scheme other than `sqlite`, `postgres` or `postgresql`.
    #[error("unsupported store {scheme}://…: use a data directory, sqlite://FILE or postgres://…")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
}

/// Tuning for both backends. `Options::default()` is what production uses.
#[derive(Clone, Debug)]
pub struct Options {
    /// How long a query waits for a free pooled connection before failing. Default 5 s.
    pub acquire_timeout: Duration,
    /// Pooled connections (PostgreSQL: per instance, plus one for LISTEN; SQLite:
    /// concurrent readers). Default 10.
    pub max_connections: u32,
    /// How often the feed re-reads the change log without being poked (covers missed
    /// notifications and writes by other processes). Default 1 s.
    pub poll_interval: Duration,
    /// Changes buffered per subscriber before it lags ([`broadcast`] capacity).
    /// Default 4096.
    pub feed_capacity: usize,
    /// How much of the change log is kept.
    pub retention: Retention,
}

/// How much of the change log is kept; older revisions answer
/// [`StoreError::Compacted`] and watchers re-list.
#[derive(Clone, Debug)]
pub struct Retention {
    /// Keep at most this many newest changes (enforced on every write). Default 100,000.
    pub max_changes: u64,
    /// Drop changes older than this. Default 1 h.
    pub max_age: Duration,
    /// How often `max_age` is enforced. Default 1 min.
    pub interval: Duration,
}

/// What a write must find to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Create or overwrite (`apply` without a resource version).
    None,
    /// The object must exist at exactly this revision (409 otherwise).
    ResourceVersion(u64),
    /// The object must not exist (409 otherwise).
    Absent,
}

/// The two lists of workload token ids kept until the tokens expire.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TokenTable {
    /// Revoked tokens.
    Revoked,
    /// Issued tokens.
    Issued,
}

impl TokenTable {
    /// The table's name (a constant, never user input).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Revoked => "revoked_tokens",
            Self::Issued => "issued_tokens",
        }
    }
}

/// What a `put` did.
#[derive(Clone, Debug, PartialEq)]
pub enum Written {
    /// A new object; returned as stored (uid, resourceVersion, generation set).
    Created(Object),
    /// The spec, labels or annotations changed.
    Configured(Object),
    /// Nothing differed; the stored object is returned and no revision was taken.
    Unchanged(Object),
}

impl Written {
    /// The object as stored.
    pub fn object(&self) -> &Object {
        match self {
            Written::Created(o) | Written::Configured(o) | Written::Unchanged(o) => o,
        }
    }
}

/// One entry of the change feed.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The revision this write took.
    pub revision: u64,
    /// What happened.
    pub op: ChangeOp,
    /// The object after the write (for deletes: as it was last stored).
    pub object: Object,
}

/// Kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeOp {
    /// Created or updated (spec or status).
    Put,
    /// Deleted.
    Delete,
}

/// Store failures. The API maps them to status codes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Optimistic-concurrency or existence precondition failed (409).
    #[error("conflict on {key}: {message}")]
    Conflict {
        /// The object.
        key: Key,
        /// What differed, e.g. "resourceVersion is 12, not 9".
        message: String,
    },
    /// The object does not exist (404).
    #[error("{0} not found")]
    NotFound(Key),
    /// The requested revision is older than the change log keeps (410, re-list).
    #[error("revision {requested} is too old; the change log starts at {oldest}")]
    Compacted {
        /// Revision asked for.
        requested: u64,
        /// Oldest revision still in the log.
        oldest: u64,
    },
    /// The database failed or is unreachable.
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    /// Write `index` of a [`Store::put_all`] failed; nothing of the batch was stored.
    #[error("object {index} of the batch: {source}")]
    InBatch {
        /// 0-based position in the batch.
        index: usize,
        /// Why that write failed.
        source: Box<StoreError>,
    },
    /// The SQLite database's directory is writable by users other than its owner, who
    /// could replace the database or its journal: refused at start.
    #[error(
        "the data directory {} has mode {mode:o}: others can write to it; run `chmod go-w {}` \
         (weft creates it with 0700) and start again",
        path.display(),
        path.display()
    )]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The filesystem that holds the store has less free space than a write may need:
    /// after a failed write, readiness returns only once this much is free again.
    #[error(
        "the filesystem of {} is full: {free} bytes free, {needed} needed before writes \
         count as recovered",
        path.display()
    )]
    LowDiskSpace {
        /// The store's directory.
        path: PathBuf,
        /// Bytes available to the store's user.
        free: u64,
        /// Bytes the probe asks for ([`WRITE_HEADROOM`]).
        needed: u64,
    },
    /// Migrations failed.
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored document could not be decoded (corruption or a newer schema).
    #[error("stored object {key} is unreadable: {message}")]
    Corrupt {
        /// Where.
        key: String,
        /// Why.
        message: String,
    },
}

/// How often, at most, `/readyz` re-tries a write while writes fail: 1 s.
pub const WRITE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The free space a store on a local filesystem must have again before a failed write
/// counts as recovered: 4 MiB. A no-op write alone can succeed on a full disk (SQLite
/// reuses its write-ahead log), while the next real apply would fail again.
pub const WRITE_HEADROOM: u64 = 4 << 20;

/// Whether the store can write, as the last write found (ADR 0024). Only database
/// failures count (a conflict is the caller's fault, not the store's); any successful
/// write, or a probe write, clears a failure.
#[derive(Default)]
pub(crate) struct WriteHealth {
    failed: Mutex<Option<Failed>>,
}

struct Failed {
    message: String,
    checked: Instant,
}

/// Opens the store `spec` names with default [`Options`]: creates the SQLite file or
/// connects to PostgreSQL, runs migrations and starts the change feed. Must be called
/// inside a tokio runtime; background tasks end when the last `Arc` is dropped.
pub async fn open(spec: &StoreSpec) -> Result<Arc<dyn Store>, StoreError> {
    open_with(spec, &Options::default()).await
}

/// [`open`] with explicit [`Options`].
pub async fn open_with(spec: &StoreSpec, options: &Options) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match spec {
        StoreSpec::Sqlite { path } => Arc::new(Sqlite::open(path, options).await?),
        StoreSpec::Postgres { url } => Arc::new(Postgres::connect(url, options).await?),
    })
}

/// What [`Store::count_workloads`] counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkloadCounts {
    /// Workloads of the identity (namespace and service account).
    pub identity: usize,
    /// Workloads of the namespace registered with the token.
    pub token: usize,
}

/// A resource store. Implementations must be safe to share between tasks and, for
/// PostgreSQL, between processes: every instance's [`Store::subscribe`] sees every
/// write made through any instance.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is (`sqlite` or `postgres`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Whether the database answers (used by `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// `None` while writes work; else why the last write failed (the database's own
    /// words). While writes fail, each call re-tries a write that changes nothing, at
    /// most once per [`WRITE_PROBE_INTERVAL`], so the answer clears when the cause (a
    /// full disk) goes away even if nobody writes (used by `/readyz`).
    async fn write_failure(&self) -> Option<String> {
        None
    }

    /// One object.
    async fn get(&self, key: &Key) -> Result<Option<Object>, StoreError>;

    /// Objects of a kind (all kinds when `None`), in one namespace or all, ordered by
    /// (kind, namespace, name); with the store revision the list is consistent at.
    async fn list(
        &self,
        kind: Option<Kind>,
        namespace: Option<&str>,
    ) -> Result<(Vec<Object>, u64), StoreError>;

    /// Creates or updates an object's metadata (labels, annotations) and spec. The
    /// stored status is kept. `Unchanged` when nothing differs (no revision taken).
    /// The object's `metadata.resourceVersion` is ignored; pass the precondition
    /// explicitly.
    async fn put(&self, object: Object, precondition: Precondition) -> Result<Written, StoreError>;

    /// [`Store::put`] of every object, in order, in one transaction: all are stored or,
    /// on the first failure ([`StoreError::InBatch`] naming it, or a failed commit),
    /// none. One revision per changed object, as with separate puts.
    async fn put_all(
        &self,
        writes: Vec<(Object, Precondition)>,
    ) -> Result<Vec<Written>, StoreError>;

    /// Replaces an object's status without touching its spec or generation. Returns
    /// `Ok(None)` when the status was already equal (no revision taken).
    async fn put_status(
        &self,
        key: &Key,
        status: serde_json::Value,
        precondition: Precondition,
    ) -> Result<Option<Object>, StoreError>;

    /// Deletes an object; returns it as it was. `NotFound` if absent.
    async fn delete(&self, key: &Key, precondition: Precondition) -> Result<Object, StoreError>;

    /// Changes after `revision`, oldest first, at most `limit`. `Compacted` if the log
    /// no longer reaches back that far.
    async fn changes_since(&self, revision: u64, limit: u32) -> Result<Vec<Change>, StoreError>;

    /// Live feed of changes made through any instance, in revision order. A receiver
    /// that lags should call [`Store::changes_since`] from its last revision.
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// The current store revision.
    async fn revision(&self) -> Result<u64, StoreError>;

    /// The secret named `name` (e.g. `ca/builtin`), if one was created.
    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `value` as secret `name` unless one exists, and returns the value stored
    /// either way: of several callers racing (on any instance), all get the first
    /// writer's value. Secrets are never updated, take no revision and are not in the
    /// change feed.
    async fn create_secret(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// Records workload token `id` as revoked until `expires_at` (when the token expires
    /// anyway; a later revocation of the same id keeps the later time). Also prunes
    /// revocations that have expired.
    async fn revoke_token(&self, id: &str, expires_at: SystemTime) -> Result<(), StoreError>;

    /// Whether workload token `id` was revoked (and the revocation not yet pruned).
    async fn is_revoked(&self, id: &str) -> Result<bool, StoreError>;

    /// The ids of every revoked token whose revocation has not expired (a short list:
    /// revocations are rare and pruned when the token would have expired anyway).
    async fn revoked_tokens(&self) -> Result<Vec<String>, StoreError>;

    /// Records workload token `id` as issued, until it expires at `expires_at`. Also
    /// prunes the records of expired tokens.
    async fn record_issued_token(&self, id: &str, expires_at: SystemTime)
        -> Result<(), StoreError>;

    /// Whether workload token `id` was issued (and has not expired).
    async fn token_issued(&self, id: &str) -> Result<bool, StoreError>;

    /// How many `Workload`s of `namespace` have `spec.serviceAccount ==
    /// service_account`, and how many of them, or of any service account there, have
    /// `status.token == token` (0 without a token): what registration quotas count.
    /// Counted by the database, without reading the objects out.
    async fn count_workloads(
        &self,
        namespace: &str,
        service_account: &str,
        token: Option<&str>,
    ) -> Result<WorkloadCounts, StoreError> {
        let (workloads, _) = self.list(Some(Kind::Workload), Some(namespace)).await?;
        let field = |part: Option<&serde_json::Value>, name: &str| {
            part.and_then(|p| p.get(name))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let identity = workloads
            .iter()
            .filter(|w| field(Some(&w.spec), "serviceAccount").as_deref() == Some(service_account))
            .count();
        let token = token.map_or(0, |t| {
            workloads
                .iter()
                .filter(|w| field(w.status.as_ref(), "token").as_deref() == Some(t))
                .count()
        });
        Ok(WorkloadCounts { identity, token })
    }

    /// Every operator token, revoked and expired ones included, ordered by name, then
    /// creation (a short list: one per operator or tool).
    async fn operator_tokens(&self) -> Result<Vec<OperatorToken>, StoreError>;

    /// Stores `token` (its `revoked_at` is ignored: a new token is unrevoked), in one
    /// transaction with what it replaces. Names are unique among unrevoked tokens: an
    /// unrevoked token of the same name that has expired is marked revoked first; with
    /// `replace`, so is one that has not. `Ok(false)` (nothing stored) when an
    /// unexpired, unrevoked token of that name exists and `replace` is false.
    async fn create_operator_token(
        &self,
        token: &OperatorToken,
        replace: bool,
    ) -> Result<bool, StoreError>;

    /// Revokes the unrevoked token named `name`, unless it is the last unrevoked,
    /// unexpired token of role [`Role::Admin`] ([`Revocation::LastAdmin`]): checked and
    /// written in one transaction, so two concurrent revocations cannot both pass.
    async fn revoke_operator_token(&self, name: &str) -> Result<Revocation, StoreError>;
}

/// Seconds since the epoch, rounded up (a revocation must not end before its token),
/// saturating; times before the epoch are 0.
fn unix_seconds_ceil(time: SystemTime) -> i64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

// === transactions ===

/// Ends a write transaction: `COMMIT` when `result` is `Ok`, else an explicit
/// `ROLLBACK` (whose own failure is only logged: the write's error is the one to
/// report, and [`release_healthy`] keeps a connection left in doubt out of the pool).
async fn finish<DB: sqlx::Database, T>(
    tx: sqlx::Transaction<'static, DB>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::debug!(%error, %rollback, "rollback after a failed write failed");
            }
            Err(error)
        }
    }
}

/// The pools' `after_release` check: a connection goes back into the pool only when no
/// transaction is open on it (else the pool closes it and opens a fresh one). A
/// connection that looks inside one is pinged first: that lets a rollback queued by a
/// dropped transaction (a cancelled request, an early return) run. Only that case
/// costs a round trip.
fn release_healthy<DB: sqlx::Database>(
    conn: &mut DB::Connection,
    _meta: sqlx::pool::PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, Result<bool, sqlx::Error>> {
    use sqlx::Connection as _;
    Box::pin(async move {
        if !conn.is_in_transaction() {
            return Ok(true);
        }
        conn.ping().await?;
        if conn.is_in_transaction() {
            tracing::warn!(
                "closing a store connection left inside a transaction after a failed write"
            );
            return Ok(false);
        }
        Ok(true)
    })
}

// === impl WriteHealth ===

impl WriteHealth {
    /// Notes a write's outcome and passes it on.
    pub(crate) fn record<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => self.set(None),
            Err(error) if error.is_database() => self.set(Some(error.to_string())),
            Err(_) => {}
        }
        result
    }

    /// See [`Store::write_failure`]; `probe` is the backend's no-op write.
    pub(crate) async fn failure<F, P>(&self, probe: P) -> Option<String>
    where
        P: FnOnce() -> F,
        F: Future<Output = Result<(), StoreError>>,
    {
        let due = match &*self.lock() {
            None => return None,
            Some(failed) => failed.checked.elapsed() >= WRITE_PROBE_INTERVAL,
        };
        if due {
            let outcome = probe().await;
            if let Err(error) = &outcome {
                tracing::warn!(%error, "the store still cannot write");
            }
            let _ = self.record(outcome);
        }
        self.lock().as_ref().map(|failed| failed.message.clone())
    }

    fn set(&self, message: Option<String>) {
        *self.lock() = message.map(|message| Failed {
            message,
            checked: Instant::now(),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failed>> {
        self.failed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// === impl StoreError ===

impl StoreError {
    /// Whether the database failed (as opposed to the request: a conflict, a missing
    /// object), in a batch or alone.
    pub fn is_database(&self) -> bool {
        match self {
            StoreError::Database(_) | StoreError::Migrate(_) | StoreError::LowDiskSpace { .. } => {
                true
            }
            StoreError::InBatch { source, .. } => source.is_database(),
            _ => false,
        }
    }
}

// === impl StoreSpec ===

impl StoreSpec {
    /// The SQLite database inside data directory `dir` (`DIR/weft.db`).
    pub fn data_dir(dir: impl Into<PathBuf>) -> Self {
        StoreSpec::Sqlite {
            path: dir.into().join(SQLITE_FILE_NAME),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreSpec::Sqlite { .. } => "sqlite",
            StoreSpec::Postgres { .. } => "postgres",
        }
    }
}

impl FromStr for StoreSpec {
    type Err = StoreSpecError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(StoreSpecError::Empty);
        }
        if let Some((scheme, _)) = text.split_once("://") {
            return match scheme.to_ascii_lowercase().as_str() {
                "postgres" | "postgresql" => Ok(StoreSpec::Postgres {
                    url: text.to_owned(),
                }),
                "sqlite" => sqlite_file(&text["sqlite://".len()..]),
                _ => Err(StoreSpecError::UnsupportedScheme {
                    scheme: scheme.to_owned(),
                }),
            };
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            return sqlite_file(path);
        }
        Ok(StoreSpec::data_dir(text))
    }
}

fn sqlite_file(path: &str) -> Result<StoreSpec, StoreSpecError> {
    if path.is_empty() {
        return Err(StoreSpecError::Empty);
    }
    Ok(StoreSpec::Sqlite { path: path.into() })
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            StoreSpec::Postgres { url } => f.write_str(&redact_password(url)),
        }
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            StoreSpec::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &redact_password(url))
                .finish(),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

// === impl Options ===

impl Default for Options {
    fn default() -> Self {
        Self {
            acquire_timeout: Duration::from_secs(5),
            max_connections: 10,
            poll_interval: Duration::from_secs(1),
            feed_capacity: 4096,
            retention: Retention::default(),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_changes: 100_000,
            max_age: Duration::from_secs(3600),
            interval: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_urls_of_both_schemes() {
        for url in ["postgres://u@db:5432/weft", "postgresql://u@db/weft"] {
            assert_eq!(
                url.parse::<StoreSpec>().expect("parses"),
                StoreSpec::Postgres { url: url.into() }
            );
        }
    }

    #[test]
    fn parses_sqlite_urls_as_the_file_and_anything_else_as_a_data_dir() {
        let file = |p: &str| StoreSpec::Sqlite { path: p.into() };
        assert_eq!(
            "sqlite:///var/lib/weft/x.db"
                .parse::<StoreSpec>()
                .expect("url"),
            file("/var/lib/weft/x.db")
        );
        assert_eq!(
            "sqlite://rel.db".parse::<StoreSpec>().expect("url"),
            file("rel.db")
        );
        assert_eq!(
            "sqlite:rel.db".parse::<StoreSpec>().expect("short"),
            file("rel.db")
        );
        assert_eq!(
            "/var/lib/weft".parse::<StoreSpec>().expect("dir"),
            file("/var/lib/weft/weft.db")
        );
    }

    #[test]
    fn rejects_empty_and_unknown_schemes() {
        assert!(matches!(
            "".parse::<StoreSpec>(),
            Err(StoreSpecError::Empty)
        ));
        assert!(matches!(
            "sqlite://".parse::<StoreSpec>(),
            Err(StoreSpecError::Empty)
        ));
        assert!(matches!(
            "mysql://db/weft".parse::<StoreSpec>(),
            Err(StoreSpecError::UnsupportedScheme { scheme }) if scheme == "mysql"
        ));
    }

    #[test]
    fn display_and_debug_hide_the_password() {
        let spec: StoreSpec = "postgres://weft:s3cret@db:5432/weft?sslmode=require"
            .parse()
            .expect("parses");
        assert_eq!(
            spec.to_string(),
            "postgres://weft:***@db:5432/weft?sslmode=require"
        );
        assert!(!format!("{spec:?}").contains("s3cret"));
        let no_password: StoreSpec = "postgres://weft@db/weft".parse().expect("parses");
        assert_eq!(no_password.to_string(), "postgres://weft@db/weft");
    }
}
