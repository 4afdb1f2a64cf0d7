-- The catalog's version on SQLite: what the server needs to know whether a
-- page of images, or a count of them, that it kept still holds (see
-- server/src/store/kept.rs; PostgreSQL's is migration 0017 there).
--
-- Every change of an image, and every change of a user (a page shows its
-- images' owners by name, and a filter by owner reads them), adds one to
-- this row in the change's own transaction, whichever connection or process
-- makes it. Read in the same transaction as a page, it names the committed
-- changes the page saw: SQLite commits one transaction at a time, so two
-- reads that find the same number saw the same images. A transaction rolled
-- back takes its additions with it.
--
-- One row: SQLite has one writer at a time, so there is no lock to share
-- out. Its triggers fire once per row (SQLite has no statement triggers),
-- each a small update of a page the transaction holds already.
CREATE TABLE catalog_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    changes INTEGER NOT NULL
);

INSERT INTO catalog_version (id, changes) VALUES (1, 0);

-- A DELETE without WHERE fires these too: SQLite drops its truncate
-- shortcut for a table that has delete triggers.
CREATE TRIGGER images_inserted_catalog_changed AFTER INSERT ON images
BEGIN
    UPDATE catalog_version SET changes = changes + 1;
END;

CREATE TRIGGER images_updated_catalog_changed AFTER UPDATE ON images
BEGIN
    UPDATE catalog_version SET changes = changes + 1;
END;

CREATE TRIGGER images_deleted_catalog_changed AFTER DELETE ON images
BEGIN
    UPDATE catalog_version SET changes = changes + 1;
END;

-- Users change rarely: any change counts, whether a rename, or a row that
-- images (with foreign keys off, as in the sqlite3 shell) point to coming
-- or going.
CREATE TRIGGER users_inserted_catalog_changed AFTER INSERT ON users
BEGIN
    UPDATE catalog_version SET changes = changes + 1;
END;

CREATE TRIGGER users_renamed_catalog_changed AFTER UPDATE OF id, username ON users
BEGIN
    UPDATE catalog_version SET changes = changes + 1;
END;

CREATE TRIGGER users_deleted_catalog_changed AFTER DELETE ON users
BEGIN
    UPDATE catalog_version SET changes = changes + 1;
END;
