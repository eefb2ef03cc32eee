-- The resource store (see src/store/mod.rs): objects, the one store-wide revision
-- counter, and the change log every write appends to in the same transaction.

-- One row per object, keyed like weft_api::resource::Key (byte-order collation, as
-- Rust compares strings). `spec`, `status` and change objects are `json`, which keeps
-- the text as written; labels and annotations are `jsonb` so they can be indexed.
CREATE TABLE objects (
    kind             text COLLATE "C" NOT NULL,
    namespace        text COLLATE "C" NOT NULL,
    name             text COLLATE "C" NOT NULL,
    uid              text        NOT NULL UNIQUE,
    api_version      text        NOT NULL,
    generation       bigint      NOT NULL CHECK (generation >= 1),
    resource_version bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    labels           jsonb       NOT NULL,
    annotations      jsonb       NOT NULL,
    spec             json        NOT NULL,
    status           json,
    PRIMARY KEY (kind, namespace, name)
);

-- A single row. Every write locks it first and takes `revision + 1`, so writes are
-- serialised, revisions are gapless and they commit in order (a sequence could commit
-- out of order and make watchers skip a change). Changes up to `compacted_through`
-- have been removed from the log.
CREATE TABLE store_state (
    id                smallint PRIMARY KEY CHECK (id = 1),
    revision          bigint NOT NULL,
    compacted_through bigint NOT NULL
);

INSERT INTO store_state (id, revision, compacted_through) VALUES (1, 0, 0);

-- The change feed: one row per revision; `object` is the full document after the
-- write (for deletes: as last stored). Each write also sends
-- NOTIFY weft_changes, '<revision>'.
CREATE TABLE changes (
    revision    bigint PRIMARY KEY,
    kind        text        NOT NULL,
    namespace   text        NOT NULL,
    name        text        NOT NULL,
    op          text        NOT NULL CHECK (op IN ('put', 'delete')),
    object      json        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX changes_recorded_at ON changes (recorded_at);
