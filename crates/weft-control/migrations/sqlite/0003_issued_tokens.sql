-- Workload tokens this control plane issued, by id (`jti`), kept until they expire:
-- revoking an id that was never issued is an error, not a silent success. Rows past
-- `expires_at` are pruned. Tokens issued before this table existed are not in it
-- (`weft token revoke --force` revokes such an id anyway).
CREATE TABLE issued_tokens (
    id         TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL -- seconds since the epoch
) STRICT, WITHOUT ROWID;

CREATE INDEX issued_tokens_expires_at ON issued_tokens (expires_at);
