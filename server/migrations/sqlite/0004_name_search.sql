-- `name LIKE 'ubu%'` is case-insensitive: SQLite can range-scan it only on
-- an index with the NOCASE collation; with `public` in it, counting the
-- matches of a public list never reads the table.
CREATE INDEX images_kind_public_name_nocase ON images (kind, public, name COLLATE NOCASE);
