-- `name ILIKE '…'` (any pattern, case-insensitive) through a trigram index
-- instead of a scan of every image. pg_trgm is a trusted extension: the
-- database's owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX images_name_trgm ON images USING gin (name gin_trgm_ops);
