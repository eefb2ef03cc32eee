-- Operator tokens (ADR 0025): named API credentials, each with a role. Only the
-- SHA-256 of a token is kept (64 lower-case hex digits), never the token. A revoked
-- token stays listed (revoked_at set), so that its holder is told it was revoked; a
-- name is unique among unrevoked tokens, so it can be used again once its token is
-- revoked. Not part of the change log: instances re-read this table (see api/auth.rs).
CREATE TABLE operator_tokens (
    id         TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,              -- admin | read-only
    hash       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,              -- seconds since the epoch
    expires_at INTEGER,                       -- seconds since the epoch; NULL: never
    revoked_at INTEGER                        -- seconds since the epoch; NULL: not revoked
) STRICT;

CREATE UNIQUE INDEX operator_tokens_unrevoked_name ON operator_tokens (name)
    WHERE revoked_at IS NULL;

-- The one admin token of earlier versions (secret admin/token-sha256, its hash in hex)
-- becomes the admin token named `bootstrap`: an existing admin-token file keeps
-- working. The secret itself is left as it was and no longer read.
INSERT INTO operator_tokens (id, name, role, hash, created_at)
SELECT lower(hex(randomblob(16))), 'bootstrap', 'admin',
       lower(trim(CAST(value AS TEXT), ' ' || char(9, 10, 13))), created_at
FROM secrets
WHERE name = 'admin/token-sha256' AND length(trim(CAST(value AS TEXT), ' ' || char(9, 10, 13))) = 64;
