-- What a license's expiry takes away (docs/PROTOCOL.md §21): lose_access,
-- keep_versions_released_before_expiry or keep_access.
ALTER TABLE policies ADD COLUMN on_expiry TEXT NOT NULL DEFAULT 'lose_access';
