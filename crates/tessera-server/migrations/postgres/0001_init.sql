-- Tessera authority schema (PostgreSQL). Times are Unix seconds, UTC.
-- Tokens and admin keys are stored only as SHA-256 hashes.
-- Same tables and columns as the SQLite schema; integers are BIGINT.

CREATE TABLE admin_keys (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    key_hash    TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE policies (
    id                      TEXT    PRIMARY KEY,
    name                    TEXT    NOT NULL UNIQUE,
    duration_secs           BIGINT,
    features                TEXT    NOT NULL DEFAULT '[]',
    max_users               BIGINT,
    trial                   BOOLEAN NOT NULL DEFAULT FALSE,
    refresh_interval_secs   BIGINT  NOT NULL,
    offline_grace_secs      BIGINT  NOT NULL,
    renewal_basis           TEXT    NOT NULL CHECK (renewal_basis IN ('from_expiry', 'from_now')),
    auto_renew              BOOLEAN NOT NULL DEFAULT FALSE,
    auto_renew_period_secs  BIGINT,
    created_at              BIGINT  NOT NULL
);

INSERT INTO policies (id, name, duration_secs, features, max_users, trial,
                      refresh_interval_secs, offline_grace_secs, renewal_basis,
                      auto_renew, auto_renew_period_secs, created_at)
VALUES ('pol_default', 'default', NULL, '[]', NULL, FALSE, 3600, 604800, 'from_expiry', FALSE, NULL, 0);

CREATE TABLE customers (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    email       TEXT,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE licenses (
    id           TEXT    PRIMARY KEY,
    token_hash   TEXT    NOT NULL UNIQUE,
    token_last4  TEXT    NOT NULL,
    customer_id  TEXT    NOT NULL REFERENCES customers (id),
    policy_id    TEXT    NOT NULL REFERENCES policies (id),
    plan         TEXT    NOT NULL,
    features     TEXT    NOT NULL,
    max_users    BIGINT,
    trial        BOOLEAN NOT NULL,
    valid_from   BIGINT  NOT NULL,
    expires_at   BIGINT,
    state        TEXT    NOT NULL CHECK (state IN ('active', 'suspended', 'revoked')),
    revision     BIGINT  NOT NULL CHECK (revision >= 1),
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX licenses_customer ON licenses (customer_id);
CREATE INDEX licenses_expires_at ON licenses (expires_at);

CREATE TABLE instances (
    license_id        TEXT    NOT NULL REFERENCES licenses (id),
    instance_id       TEXT    NOT NULL,
    first_seen        BIGINT  NOT NULL,
    last_seen         BIGINT  NOT NULL,
    app_version       TEXT,
    users             BIGINT,
    held_revision     BIGINT,
    stream_connected  BOOLEAN NOT NULL DEFAULT FALSE,
    stream_replica    TEXT,
    PRIMARY KEY (license_id, instance_id)
);

-- Audit log and outbox: written in the same transaction as the change it records.
CREATE TABLE events (
    seq         BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    license_id  TEXT,
    revision    BIGINT,
    before      TEXT,
    after       TEXT
);
CREATE INDEX events_license ON events (license_id, seq);

CREATE TABLE replicas (
    id            TEXT    PRIMARY KEY,
    kid           TEXT    NOT NULL,
    started_at    BIGINT  NOT NULL,
    heartbeat_at  BIGINT  NOT NULL
);
