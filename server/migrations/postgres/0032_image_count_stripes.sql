-- Each user's count of images (migration 0026) kept in stripes, as the
-- catalog's version is (0017): a transaction adds to the stripe its
-- backend's pid chooses (a deletion takes from that stripe's row, or
-- another of the user's), and the count is their sum. With one
-- row a user, every transaction that made or deleted one of their images
-- held that row locked until it committed, so one user's writes took turns
-- commit by commit, on every server sharing the database: 4 clients
-- creating one user's records with the insert Depot sends (pgbench, by
-- turns) made 1,827-2,020 a second with one row, 2,242-2,657 with stripes,
-- and 2,572-3,052 with no count at all.
--
-- A stripe's count may be below zero (a deletion taken from a stripe that
-- saw fewer inserts); the sum is the count. An insert reads the sum its
-- snapshot saw, as it read the one row before: records of one user written
-- at the same moment may pass the limit by as many as there are of them.
--
-- Servers of the previous binary read one row a user. Until they are
-- replaced, beside this schema their inserts of a user with rows on two
-- stripes fail, their groups of several statements fail and are stored a
-- record at a time (with a warning each), and their check before an
-- upload reads one stripe of the count.
ALTER TABLE image_counts ADD COLUMN stripe integer NOT NULL DEFAULT 0;
ALTER TABLE image_counts DROP CONSTRAINT image_counts_pkey;
ALTER TABLE image_counts ADD PRIMARY KEY (user_id, stripe);
ALTER TABLE image_counts ALTER COLUMN stripe DROP DEFAULT;

CREATE OR REPLACE FUNCTION depot_images_inserted_counted() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO image_counts (user_id, stripe, images)
    SELECT owner_id, pg_backend_pid() % 64, COUNT(*) FROM inserted WHERE owner_id IS NOT NULL
    GROUP BY owner_id ORDER BY owner_id
    ON CONFLICT (user_id, stripe) DO UPDATE SET images = image_counts.images + EXCLUDED.images;
    RETURN NULL;
END
$$;

-- Takes from the owners' counts: the row on this connection's stripe where
-- they have one, else another of theirs. It never makes a row: a new row's
-- foreign key checks the owner's account, which a deletion of that account
-- holds while it waits for the images this statement deleted (a deadlock).
-- Their images counted, an owner has a row somewhere. A deletion of the
-- account (Depot only disables accounts: one typed by hand) takes its images
-- before its rows of counts, as long as the images' foreign key is the older
-- of the two, as the migrations make them; a database restored by pg_dump,
-- which makes them in the order of their names, takes the rows first, and
-- an image's deletion at that moment can deadlock with it, as it could with
-- 0026's one row.
CREATE FUNCTION depot_images_uncounted(owners bigint[], gone bigint[]) RETURNS void
LANGUAGE sql
AS $$
    UPDATE image_counts c SET images = c.images - o.images
    FROM UNNEST(owners, gone) AS o (owner, images)
    WHERE c.user_id = o.owner
      AND c.stripe = (SELECT s.stripe FROM image_counts s WHERE s.user_id = o.owner
                      ORDER BY s.stripe = pg_backend_pid() % 64 DESC, s.stripe LIMIT 1);
$$;

CREATE OR REPLACE FUNCTION depot_images_deleted_counted() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM depot_images_uncounted(ARRAY_AGG(owner_id), ARRAY_AGG(images))
    FROM (SELECT owner_id, COUNT(*) AS images FROM deleted WHERE owner_id IS NOT NULL
          GROUP BY owner_id) AS gone
    HAVING COUNT(*) > 0;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION depot_images_given_counted() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM before_rows b JOIN after_rows a USING (id)
                   WHERE a.owner_id IS DISTINCT FROM b.owner_id) THEN
        RETURN NULL;
    END IF;
    PERFORM depot_images_uncounted(ARRAY_AGG(owner_id), ARRAY_AGG(images))
    FROM (SELECT b.owner_id, COUNT(*) AS images FROM before_rows b JOIN after_rows a USING (id)
          WHERE a.owner_id IS DISTINCT FROM b.owner_id AND b.owner_id IS NOT NULL
          GROUP BY b.owner_id) AS gone
    HAVING COUNT(*) > 0;
    INSERT INTO image_counts (user_id, stripe, images)
    SELECT a.owner_id, pg_backend_pid() % 64, COUNT(*) FROM before_rows b JOIN after_rows a USING (id)
    WHERE a.owner_id IS DISTINCT FROM b.owner_id AND a.owner_id IS NOT NULL
    GROUP BY a.owner_id ORDER BY a.owner_id
    ON CONFLICT (user_id, stripe) DO UPDATE SET images = image_counts.images + EXCLUDED.images;
    RETURN NULL;
END
$$;
