-- Products (docs/PROTOCOL.md §28): a product owns its policies and
-- licenses; documents name it and a client configured for another product
-- refuses them. Everything before this migration is the `default` product.
CREATE TABLE products (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);
INSERT INTO products (id, name, display_name, created_at)
VALUES ('prd_default', 'default', 'Default', 0);

-- NULL only for the built-in `default` policy, which serves every product.
-- (No REFERENCES: SQLite refuses one on an added column with a default.)
ALTER TABLE policies ADD COLUMN product_id TEXT;
UPDATE policies SET product_id = 'prd_default' WHERE id <> 'pol_default';
ALTER TABLE licenses ADD COLUMN product_id TEXT NOT NULL DEFAULT 'prd_default';
CREATE INDEX licenses_product ON licenses (product_id, id);
-- Free-form JSON object kept with a license (imports carry it over).
ALTER TABLE licenses ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';

-- Scoped admin keys (§29): a role, optionally products (a JSON array of
-- product names; NULL = all) and an expiry. Keys made before are `admin`.
ALTER TABLE admin_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'admin'
    CHECK (role IN ('read', 'support', 'issuer', 'admin'));
ALTER TABLE admin_keys ADD COLUMN products TEXT;
ALTER TABLE admin_keys ADD COLUMN expires_at INTEGER;
CREATE INDEX sessions_key_name ON sessions (key_name);

-- Bulk imports (§30): how far each import (named by its file's hash) got,
-- written in the transaction of each batch, so a rerun resumes there.
CREATE TABLE imports (
    id          TEXT    PRIMARY KEY,
    next_row    INTEGER NOT NULL,
    imported    INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
