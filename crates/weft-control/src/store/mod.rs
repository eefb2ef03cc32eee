//! The resource store: one trait, two backends (embedded SQLite, PostgreSQL for
//! several control-plane instances), versioned migrations, optimistic concurrency, and
//! a change feed every instance sees.
//!
//! Revisions: every write (create, spec update, status update, delete) takes the next
//! value of one store-wide revision counter and records a row in a change log. The
//! object's `metadata.resourceVersion` is the revision of its last write. Watchers
//! resume from a revision, so a notification that is missed (a dropped LISTEN
//! connection, a lagging receiver) costs a re-read, never a lost change.

use async_trait::async_trait;
use tokio::sync::broadcast;
use weft_api::resource::{Key, Kind, Object};

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

/// A resource store. Implementations must be safe to share between tasks and, for
/// PostgreSQL, between processes: every instance's [`Store::subscribe`] sees every
/// write made through any instance.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is (`sqlite` or `postgres`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;

    /// Whether the database answers (used by `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

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
}
