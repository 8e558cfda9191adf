-- Metered quotas (docs/PROTOCOL.md §22).
-- Per license, feature and period (`2026-12-01`, `2026-12` or `total`, UTC):
-- the use counted across every instance.
CREATE TABLE quota_usage (
    license_id TEXT NOT NULL REFERENCES licenses(id),
    feature TEXT NOT NULL,
    period TEXT NOT NULL,
    used BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (license_id, feature, period)
);
-- Every report counted, by (license, instance, sequence): a report sent
-- again is recognised and not counted twice. `digest` tells a retry (the
-- same report) from a sequence number used for another report.
CREATE TABLE quota_reports (
    license_id TEXT NOT NULL REFERENCES licenses(id),
    instance_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    digest TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (license_id, instance_id, seq)
);
CREATE INDEX quota_reports_received ON quota_reports (received_at);
