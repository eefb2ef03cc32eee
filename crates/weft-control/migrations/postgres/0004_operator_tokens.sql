-- Operator tokens (ADR 0025): named API credentials, each with a role. Only the
-- SHA-256 of a token is kept (64 lower-case hex digits), never the token. A revoked
-- token stays listed (revoked_at set), so that its holder is told it was revoked; a
-- name is unique among unrevoked tokens, so it can be used again once its token is
-- revoked. Not part of the change log: instances re-read this table (see api/auth.rs).
CREATE TABLE operator_tokens (
    id         text COLLATE "C" PRIMARY KEY,
    name       text COLLATE "C" NOT NULL,
    role       text COLLATE "C" NOT NULL,     -- admin | read-only
    hash       text COLLATE "C" NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    expires_at timestamptz,                   -- NULL: never
    revoked_at timestamptz                    -- NULL: not revoked
);

CREATE UNIQUE INDEX operator_tokens_unrevoked_name ON operator_tokens (name)
    WHERE revoked_at IS NULL;

-- The one admin token of earlier versions (secret admin/token-sha256, its hash in hex)
-- becomes the admin token named `bootstrap`: an existing admin-token file keeps
-- working. The secret itself is left as it was and no longer read.
INSERT INTO operator_tokens (id, name, role, hash, created_at)
SELECT replace(gen_random_uuid()::text, '-', ''), 'bootstrap', 'admin',
       lower(btrim(convert_from(value, 'UTF8'), E' \t\r\n')), created_at
FROM secrets
WHERE name = 'admin/token-sha256' AND length(btrim(convert_from(value, 'UTF8'), E' \t\r\n')) = 64;
