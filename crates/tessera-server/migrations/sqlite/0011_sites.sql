-- Sites (docs/PROTOCOL.md §26): an isolated network answered by a relay
-- the authority certifies in a signed bundle. `licenses` and `usage` are
-- JSON: what the site may use, and what its relay last reported.
CREATE TABLE sites (
    name TEXT PRIMARY KEY,
    relay_key TEXT NOT NULL,
    licenses TEXT NOT NULL,
    valid_for BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    last_sync_at BIGINT,
    usage TEXT
);
