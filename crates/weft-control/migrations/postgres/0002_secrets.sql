-- Control-plane secrets and token revocations (see src/store/mod.rs, "Secrets").
-- Neither table is part of the change log: secrets never reach the feed or the API,
-- and writing them sends no notification.

-- Named secrets: the builtin CA's certificate and key (`ca/builtin`), the workload
-- token signing key (`tokens/signing-key`). Written once (insert if absent) and never
-- updated, so every instance uses the value the first one stored.
CREATE TABLE secrets (
    name       text COLLATE "C" PRIMARY KEY,
    value      bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Revoked workload tokens by id (`jti`), kept until the token would have expired
-- anyway; rows past `expires_at` are pruned.
CREATE TABLE revoked_tokens (
    id         text COLLATE "C" PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
