-- Control-plane secrets and token revocations (see src/store/mod.rs, "Secrets").
-- Neither table is part of the change log: secrets never reach the feed or the API.

-- Named secrets: the builtin CA's certificate and key (`ca/builtin`), the workload
-- token signing key (`tokens/signing-key`). Written once (insert if absent) and never
-- updated, so every instance uses the value the first one stored. The database file
-- is created with mode 0600.
CREATE TABLE secrets (
    name       TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (unixepoch()) -- seconds since the epoch
) STRICT, WITHOUT ROWID;

-- Revoked workload tokens by id (`jti`), kept until the token would have expired
-- anyway; rows past `expires_at` are pruned.
CREATE TABLE revoked_tokens (
    id         TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL -- seconds since the epoch
) STRICT, WITHOUT ROWID;

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
