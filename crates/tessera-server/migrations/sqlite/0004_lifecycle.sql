-- Lifecycle: expiry horizons, auto-renewal, webhooks, metering.

-- How long before expiry an auto-renewing license is renewed (default 7 days).
ALTER TABLE policies ADD COLUMN renew_before_secs INTEGER NOT NULL DEFAULT 604800;
-- Per-license override of the policy's auto-renew (NULL = the policy's).
ALTER TABLE licenses ADD COLUMN auto_renew INTEGER;

-- One row per (license, horizon, expiry it was reached for): the scheduler's
-- memory, so each horizon fires once per license period, across restarts.
CREATE TABLE horizons_fired (
    license_id  TEXT    NOT NULL REFERENCES licenses (id),
    horizon     TEXT    NOT NULL,
    expires_at  INTEGER NOT NULL,
    fired_at    INTEGER NOT NULL,
    PRIMARY KEY (license_id, horizon, expires_at)
);

CREATE TABLE webhooks (
    id          TEXT    PRIMARY KEY,
    url         TEXT    NOT NULL,
    -- Needed in clear to sign deliveries; never logged, shown once.
    secret      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    removed_at  INTEGER
);

-- Event kinds a webhook receives ('*' = all).
CREATE TABLE webhook_kinds (
    webhook_id  TEXT    NOT NULL REFERENCES webhooks (id),
    kind        TEXT    NOT NULL,
    PRIMARY KEY (webhook_id, kind)
);

-- The outbox: one row per (event, webhook), written in the event's transaction.
CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id   TEXT    NOT NULL REFERENCES webhooks (id),
    event_seq    INTEGER NOT NULL REFERENCES events (seq),
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_status  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (state, next_at);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);

CREATE TABLE delivery_attempts (
    delivery_id  INTEGER NOT NULL REFERENCES deliveries (id),
    at           INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT,
    millis       INTEGER NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id);

-- Metering: the highest user count each instance reported on each UTC day.
CREATE TABLE usage_daily (
    license_id   TEXT    NOT NULL REFERENCES licenses (id),
    instance_id  TEXT    NOT NULL,
    day          TEXT    NOT NULL,
    max_users    INTEGER NOT NULL,
    PRIMARY KEY (license_id, instance_id, day)
);
