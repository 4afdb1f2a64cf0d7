-- The name's LIKE is `lower(name) LIKE lower(pattern)` (ILIKE as PostgreSQL
-- runs it in a UTF-8 database; see the query builder). A pattern's fixed
-- start (`ubu%`) is a range of this index, as on SQLite's NOCASE one: with
-- `public` in it, counting the matches of a public list never reads the table.
CREATE INDEX images_kind_public_name_lower ON images (kind, public, lower(name));
-- Any other pattern (`%ubu%`) through trigrams of the lowered name, as the
-- trigram index of 0004 served ILIKE (it still serves `~`).
CREATE INDEX images_name_lower_trgm ON images USING gin (lower(name) gin_trgm_ops);
