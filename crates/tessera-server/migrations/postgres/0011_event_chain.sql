-- The audit log's hash chain (docs/PROTOCOL.md §27): each event carries
-- the hash of the one before it and its own. Events written before this
-- migration are hashed, in order, when the authority starts.
ALTER TABLE events ADD COLUMN prev_hash TEXT;
ALTER TABLE events ADD COLUMN hash TEXT;
