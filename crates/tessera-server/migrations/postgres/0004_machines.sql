-- Machines (PostgreSQL): node-locked activations and floating leases (docs/PROTOCOL.md §19).

-- A policy's machine settings, copied to each license it issues.
ALTER TABLE policies ADD COLUMN max_machines BIGINT;
ALTER TABLE policies ADD COLUMN machine_mode TEXT NOT NULL DEFAULT 'node_locked';
ALTER TABLE policies ADD COLUMN lease_ttl_secs BIGINT NOT NULL DEFAULT 900;
ALTER TABLE policies ADD COLUMN max_borrow_secs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE policies ADD COLUMN fingerprint_match TEXT NOT NULL DEFAULT 'exact';
ALTER TABLE licenses ADD COLUMN max_machines BIGINT;
ALTER TABLE licenses ADD COLUMN machine_mode TEXT NOT NULL DEFAULT 'node_locked';
ALTER TABLE licenses ADD COLUMN lease_ttl_secs BIGINT NOT NULL DEFAULT 900;
ALTER TABLE licenses ADD COLUMN max_borrow_secs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE licenses ADD COLUMN fingerprint_match TEXT NOT NULL DEFAULT 'exact';

-- One row per activation. The fingerprint itself is not kept: `mfp` is its
-- hash (what documents carry), `components` the hashes of its components.
CREATE TABLE machines (
    id                TEXT    PRIMARY KEY,
    license_id        TEXT    NOT NULL REFERENCES licenses (id),
    mfp               TEXT    NOT NULL,
    name              TEXT,
    hostname          TEXT,
    platform          TEXT,
    components        TEXT    NOT NULL DEFAULT '[]',
    state             TEXT    NOT NULL
        CHECK (state IN ('active', 'deactivated', 'released', 'expired')),
    activated_at      BIGINT  NOT NULL,
    last_heartbeat    BIGINT  NOT NULL,
    -- Floating only: the lease ends then unless renewed.
    lease_expires_at  BIGINT ,
    ended_at          BIGINT 
);
-- At most one active activation per machine and license, whatever races.
CREATE UNIQUE INDEX machines_active ON machines (license_id, mfp) WHERE state = 'active';
CREATE INDEX machines_license ON machines (license_id, state);
CREATE INDEX machines_leases ON machines (lease_expires_at) WHERE state = 'active';
