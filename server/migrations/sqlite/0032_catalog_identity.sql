-- Which catalog this database is: a random id, recorded by the first server
-- to start on it, and beside the blobs (the blob store's `catalog`). A server
-- started on another database over the same blobs (a database URL
-- forgotten, so the data folder's own SQLite opened; a staging server with
-- a database of its own on the production bucket) would take every blob it
-- has no record of for garbage and remove it: it refuses to start.
CREATE TABLE catalog_identity (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    catalog TEXT    NOT NULL
);
