-- The catalog's version: what a server needs to know whether a count of
-- images it kept still holds (see server/src/store/count_cache.rs).
--
-- Every transaction that changes images (or a username, which a filter by
-- owner reads) adds one to a stripe of this table, in that same
-- transaction. The sum of the stripes, read in the same statement as a
-- count, therefore names the set of committed changes that count saw: the
-- sum only grows, and two snapshots that read the same sum saw the same
-- images. Any server sharing the database can compare it, with no notice
-- to wait for.
--
-- Sixty-four stripes, each transaction on the one its backend's pid chooses,
-- so that writers on different connections rarely wait for one another.
-- The stripe is bumped when the transaction commits (a deferred constraint
-- trigger), once per transaction: its lock is then the last one the
-- transaction takes and is held only through the commit, so it closes no
-- cycle of waits with the rows the transaction locked before.
--
-- Every page reads the whole table: a few rows, but each change leaves a
-- dead version of one that PostgreSQL can remove only once no snapshot
-- older than the change is held (a long pg_dump while images are written
-- makes every page's read of it longer).
CREATE TABLE catalog_versions (
    stripe integer PRIMARY KEY,
    version bigint NOT NULL
) WITH (fillfactor = 50);

INSERT INTO catalog_versions (stripe, version) SELECT stripe, 0 FROM generate_series(0, 63) stripe;

CREATE FUNCTION depot_catalog_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- Once per transaction: a setting local to it remembers the bump.
    IF current_setting('depot.catalog_bumped', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('depot.catalog_bumped', 'on', true);
    UPDATE catalog_versions SET version = version + 1 WHERE stripe = pg_backend_pid() % 64;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER images_catalog_changed
    AFTER INSERT OR UPDATE OR DELETE ON images
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION depot_catalog_changed();

CREATE CONSTRAINT TRIGGER users_catalog_changed
    AFTER UPDATE OF username ON users
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION depot_catalog_changed();

-- A TRUNCATE has no rows to fire for; it takes its table's lock anyway.
CREATE FUNCTION depot_catalog_truncated() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE catalog_versions SET version = version + 1 WHERE stripe = pg_backend_pid() % 64;
    RETURN NULL;
END
$$;

CREATE TRIGGER images_catalog_truncated
    AFTER TRUNCATE ON images
    FOR EACH STATEMENT EXECUTE FUNCTION depot_catalog_truncated();
CREATE TRIGGER users_catalog_truncated
    AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION depot_catalog_truncated();

-- The triggers fire for rows applied by logical replication or restored
-- with session_replication_role = replica too.
ALTER TABLE images ENABLE ALWAYS TRIGGER images_catalog_changed;
ALTER TABLE images ENABLE ALWAYS TRIGGER images_catalog_truncated;
ALTER TABLE users ENABLE ALWAYS TRIGGER users_catalog_changed;
ALTER TABLE users ENABLE ALWAYS TRIGGER users_catalog_truncated;
