-- A relay's state (docs/PROTOCOL.md §26). One writer: the relay process.

-- The bundle it answers with (the newest it was given), one row.
CREATE TABLE bundle (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    text TEXT NOT NULL,
    iat BIGINT NOT NULL
);

-- Places held: node-locked machines (no lease) and floating leases.
CREATE TABLE machines (
    tfp TEXT NOT NULL,
    mfp TEXT NOT NULL,
    id TEXT NOT NULL,
    activated_at BIGINT NOT NULL,
    lease_expires_at BIGINT,
    name TEXT,
    PRIMARY KEY (tfp, mfp)
);

-- The audit log: append-only (the triggers refuse changes), each event
-- carrying the hash of the one before, so an export proves its order and
-- completeness.
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    license TEXT NOT NULL,
    machine TEXT,
    detail TEXT,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- Installations seen, and the users they reported.
CREATE TABLE instances (
    tfp TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    revision BIGINT NOT NULL DEFAULT 0,
    users BIGINT,
    last_seen BIGINT NOT NULL,
    PRIMARY KEY (tfp, instance_id)
);

-- Relays below this one (a building below a site) and their shares.
CREATE TABLE children (
    site TEXT PRIMARY KEY,
    relay_key TEXT NOT NULL,
    licenses TEXT NOT NULL,
    valid_for BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    last_sync_at BIGINT,
    usage TEXT
);

-- Small facts: the clock mark (the latest time this relay has seen).
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
