-- How a policy's rules apply (docs/PROTOCOL.md §24): enforce, warn or observe.
ALTER TABLE policies ADD COLUMN enforcement TEXT NOT NULL DEFAULT 'enforce';
