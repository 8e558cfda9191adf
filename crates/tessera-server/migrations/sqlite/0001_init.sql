-- Tessera authority schema (SQLite). Times are Unix seconds, UTC.
-- Tokens and admin keys are stored only as SHA-256 hashes.

CREATE TABLE admin_keys (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    key_hash    TEXT    NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE policies (
    id                      TEXT    PRIMARY KEY,
    name                    TEXT    NOT NULL UNIQUE,
    duration_secs           INTEGER,
    features                TEXT    NOT NULL DEFAULT '[]',
    max_users               INTEGER,
    trial                   INTEGER NOT NULL DEFAULT 0,
    refresh_interval_secs   INTEGER NOT NULL,
    offline_grace_secs      INTEGER NOT NULL,
    renewal_basis           TEXT    NOT NULL CHECK (renewal_basis IN ('from_expiry', 'from_now')),
    auto_renew              INTEGER NOT NULL DEFAULT 0,
    auto_renew_period_secs  INTEGER,
    created_at              INTEGER NOT NULL
);

-- The policy used when a license names none: 1 h refresh, 7 d offline grace.
INSERT INTO policies (id, name, duration_secs, features, max_users, trial,
                      refresh_interval_secs, offline_grace_secs, renewal_basis,
                      auto_renew, auto_renew_period_secs, created_at)
VALUES ('pol_default', 'default', NULL, '[]', NULL, 0, 3600, 604800, 'from_expiry', 0, NULL, 0);

CREATE TABLE customers (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    email       TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE licenses (
    id           TEXT    PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,
    token_last4  TEXT    NOT NULL,
    customer_id  TEXT    NOT NULL REFERENCES customers (id),
    policy_id    TEXT    NOT NULL REFERENCES policies (id),
    plan         TEXT    NOT NULL,
    features     TEXT    NOT NULL,
    max_users    INTEGER,
    trial        INTEGER NOT NULL,
    valid_from   INTEGER NOT NULL,
    expires_at   INTEGER,
    state        TEXT    NOT NULL CHECK (state IN ('active', 'suspended', 'revoked')),
    revision     INTEGER NOT NULL CHECK (revision >= 1),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX licenses_customer ON licenses (customer_id);
CREATE INDEX licenses_expires_at ON licenses (expires_at);

CREATE TABLE instances (
    license_id        TEXT    NOT NULL REFERENCES licenses (id),
    instance_id       TEXT    NOT NULL,
    first_seen        INTEGER NOT NULL,
    last_seen         INTEGER NOT NULL,
    app_version       TEXT,
    users             INTEGER,
    held_revision     INTEGER,
    stream_connected  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (license_id, instance_id)
);

-- Audit log and outbox: written in the same transaction as the change it records.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    license_id  TEXT,
    revision    INTEGER,
    before      TEXT,
    after       TEXT
);
CREATE INDEX events_license ON events (license_id, seq);
