-- Trials (docs/PROTOCOL.md §23): one per (trial policy, machine
-- fingerprint hash), so a reinstall gets the same trial back. The token is
-- kept sealed (like webhook secrets) to hand the same one out again.
CREATE TABLE trials (
    policy_id TEXT NOT NULL REFERENCES policies(id),
    mfp TEXT NOT NULL,
    license_id TEXT NOT NULL REFERENCES licenses(id),
    token_sealed TEXT NOT NULL,
    email TEXT,
    created_at BIGINT NOT NULL,
    converted_at BIGINT,
    converted_to TEXT,
    PRIMARY KEY (policy_id, mfp)
);
CREATE INDEX trials_email ON trials (email);
CREATE INDEX trials_license ON trials (license_id);
