-- The resource store (see src/store/mod.rs): objects, the one store-wide revision
-- counter, and the change log every write appends to in the same transaction.

-- One row per object, keyed like weft_api::resource::Key. JSON columns hold
-- serde_json text; `status` is NULL until the control plane reports one.
CREATE TABLE objects (
    kind             TEXT    NOT NULL,
    namespace        TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    uid              TEXT    NOT NULL UNIQUE,
    api_version      TEXT    NOT NULL,
    generation       INTEGER NOT NULL CHECK (generation >= 1),
    resource_version INTEGER NOT NULL,
    created_at       TEXT    NOT NULL, -- RFC 3339, UTC, seconds
    labels           TEXT    NOT NULL,
    annotations      TEXT    NOT NULL,
    spec             TEXT    NOT NULL,
    status           TEXT,
    PRIMARY KEY (kind, namespace, name)
) STRICT, WITHOUT ROWID;

-- A single row. Every write takes `revision + 1` inside its transaction, so
-- revisions are gapless and commit in order. Changes up to `compacted_through` have
-- been removed from the log.
CREATE TABLE store_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    revision          INTEGER NOT NULL,
    compacted_through INTEGER NOT NULL
) STRICT;

INSERT INTO store_state (id, revision, compacted_through) VALUES (1, 0, 0);

-- The change feed: one row per revision; `object` is the full document after the
-- write (for deletes: as last stored).
CREATE TABLE changes (
    revision    INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    op          TEXT    NOT NULL CHECK (op IN ('put', 'delete')),
    object      TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL DEFAULT (unixepoch()) -- seconds since the epoch
) STRICT;

CREATE INDEX changes_recorded_at ON changes (recorded_at);
