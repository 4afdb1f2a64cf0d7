-- How many images each user owns, kept by triggers in the statement that
-- adds or removes some, so that a record's insert can refuse one past the
-- most a user may hold (`--user-max-images`) without counting their images
-- each time. A user's row goes with the user (their images go too).
--
-- Statement triggers, one update per owner however many rows: a group of
-- records (store/writer/postgres.rs) is one statement. A statement takes
-- its owners' rows in the order of their ids, after every lock it took
-- before (names, the images a hypervisor image links to: a deletion locks
-- its image, then its owner's row); a group of several statements takes
-- all its owners' rows first, in that order (store/insert.rs,
-- LOCK_OWNER_COUNTS, LOCK_LINKED). An insert reads the count its snapshot
-- saw: records of one user written at the same moment, by one group or by
-- transactions not yet committed, may pass the limit by as many as there
-- are of them.
--
-- Servers of the old binary may be writing images while this runs: the
-- table is locked against writes until the migration commits, so that the
-- count made at its end misses none.
LOCK TABLE images IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE image_counts (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    images  BIGINT NOT NULL
);

CREATE FUNCTION depot_images_inserted_counted() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO image_counts (user_id, images)
    SELECT owner_id, COUNT(*) FROM inserted WHERE owner_id IS NOT NULL
    GROUP BY owner_id ORDER BY owner_id
    ON CONFLICT (user_id) DO UPDATE SET images = image_counts.images + EXCLUDED.images;
    RETURN NULL;
END
$$;

CREATE FUNCTION depot_images_deleted_counted() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    -- A user's deletion takes their row with their images: nothing to update.
    UPDATE image_counts c SET images = c.images - gone.images
    FROM (SELECT owner_id, COUNT(*) AS images FROM deleted WHERE owner_id IS NOT NULL
          GROUP BY owner_id) AS gone
    WHERE c.user_id = gone.owner_id;
    RETURN NULL;
END
$$;

-- No statement changes an image's owner; one typed in psql is counted all
-- the same (transition tables take no column list: every update fires it,
-- and finds no owner changed).
CREATE FUNCTION depot_images_given_counted() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM before_rows b JOIN after_rows a USING (id)
                   WHERE a.owner_id IS DISTINCT FROM b.owner_id) THEN
        RETURN NULL;
    END IF;
    UPDATE image_counts c SET images = c.images - gone.images
    FROM (SELECT b.owner_id, COUNT(*) AS images FROM before_rows b JOIN after_rows a USING (id)
          WHERE a.owner_id IS DISTINCT FROM b.owner_id AND b.owner_id IS NOT NULL
          GROUP BY b.owner_id) AS gone
    WHERE c.user_id = gone.owner_id;
    INSERT INTO image_counts (user_id, images)
    SELECT a.owner_id, COUNT(*) FROM before_rows b JOIN after_rows a USING (id)
    WHERE a.owner_id IS DISTINCT FROM b.owner_id AND a.owner_id IS NOT NULL
    GROUP BY a.owner_id ORDER BY a.owner_id
    ON CONFLICT (user_id) DO UPDATE SET images = image_counts.images + EXCLUDED.images;
    RETURN NULL;
END
$$;

CREATE TRIGGER images_inserted_counted AFTER INSERT ON images
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION depot_images_inserted_counted();
CREATE TRIGGER images_deleted_counted AFTER DELETE ON images
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION depot_images_deleted_counted();
CREATE TRIGGER images_given_counted AFTER UPDATE ON images
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
    FOR EACH STATEMENT EXECUTE FUNCTION depot_images_given_counted();

-- A TRUNCATE has no rows to fire for.
CREATE FUNCTION depot_images_truncated_counted() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM image_counts;
    RETURN NULL;
END
$$;
CREATE TRIGGER images_truncated_counted AFTER TRUNCATE ON images
    FOR EACH STATEMENT EXECUTE FUNCTION depot_images_truncated_counted();

ALTER TABLE images ENABLE ALWAYS TRIGGER images_inserted_counted;
ALTER TABLE images ENABLE ALWAYS TRIGGER images_deleted_counted;
ALTER TABLE images ENABLE ALWAYS TRIGGER images_given_counted;
ALTER TABLE images ENABLE ALWAYS TRIGGER images_truncated_counted;

INSERT INTO image_counts (user_id, images)
SELECT owner_id, COUNT(*) FROM images WHERE owner_id IS NOT NULL GROUP BY owner_id;
