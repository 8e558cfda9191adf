-- Console sessions: the cookie holds a random id; only its hash is stored.
CREATE TABLE sessions (
    id_hash     TEXT    PRIMARY KEY,
    key_name    TEXT    NOT NULL,
    csrf        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX licenses_created_at ON licenses (created_at);
