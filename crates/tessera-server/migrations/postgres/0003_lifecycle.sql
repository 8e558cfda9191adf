-- Lifecycle: expiry horizons, auto-renewal, webhooks, metering.

-- How long before expiry an auto-renewing license is renewed (default 7 days).
ALTER TABLE policies ADD COLUMN renew_before_secs BIGINT NOT NULL DEFAULT 604800;
-- Per-license override of the policy's auto-renew (NULL = the policy's).
ALTER TABLE licenses ADD COLUMN auto_renew BOOLEAN;

-- One row per (license, horizon, expiry it was reached for): the scheduler's
-- memory, so each horizon fires once per license period, across restarts.
CREATE TABLE horizons_fired (
    license_id  TEXT    NOT NULL REFERENCES licenses (id),
    horizon     TEXT    NOT NULL,
    expires_at  BIGINT NOT NULL,
    fired_at    BIGINT NOT NULL,
    PRIMARY KEY (license_id, horizon, expires_at)
);

CREATE TABLE webhooks (
    id          TEXT    PRIMARY KEY,
    url         TEXT    NOT NULL,
    -- Needed in clear to sign deliveries; never logged, shown once.
    secret      TEXT    NOT NULL,
    created_at  BIGINT NOT NULL,
    removed_at  BIGINT
);

-- Event kinds a webhook receives ('*' = all).
CREATE TABLE webhook_kinds (
    webhook_id  TEXT    NOT NULL REFERENCES webhooks (id),
    kind        TEXT    NOT NULL,
    PRIMARY KEY (webhook_id, kind)
);

-- The outbox: one row per (event, webhook), written in the event's transaction.
CREATE TABLE deliveries (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id   TEXT    NOT NULL REFERENCES webhooks (id),
    event_seq    BIGINT NOT NULL REFERENCES events (seq),
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     BIGINT NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,
    last_status  BIGINT,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (state, next_at);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);

CREATE TABLE delivery_attempts (
    delivery_id  BIGINT NOT NULL REFERENCES deliveries (id),
    at           BIGINT NOT NULL,
    status       BIGINT,
    error        TEXT,
    millis       BIGINT NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id);

-- Metering: the highest user count each instance reported on each UTC day.
CREATE TABLE usage_daily (
    license_id   TEXT    NOT NULL REFERENCES licenses (id),
    instance_id  TEXT    NOT NULL,
    day          TEXT    NOT NULL,
    max_users    BIGINT NOT NULL,
    PRIMARY KEY (license_id, instance_id, day)
);
