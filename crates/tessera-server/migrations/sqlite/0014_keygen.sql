-- The Keygen-compatible API (docs/KEYGEN.md): a machine activated through
-- it has not "started its heartbeat" until its first heartbeat, which is
-- what Keygen's HEARTBEAT_NOT_STARTED reports. Tessera's own activations
-- count as the first heartbeat.
ALTER TABLE machines ADD COLUMN heartbeat_started INTEGER NOT NULL DEFAULT 1;
