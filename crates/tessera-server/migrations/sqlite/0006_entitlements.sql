-- Entitlements (docs/PROTOCOL.md §20): the terms a feature of a license
-- has of its own, as JSON: {"audit": {"expires_at": "2027-03-01T00:00:00Z"}}.
ALTER TABLE licenses ADD COLUMN entitlements TEXT NOT NULL DEFAULT '{}';
