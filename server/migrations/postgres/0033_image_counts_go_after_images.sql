-- An account's counts of images (0026, 0032) go after its images, in every
-- database. They went by a foreign key's cascade, which PostgreSQL runs
-- beside the images' own in the order of the two constraints' internal
-- names: the images' first in a database the migrations made, the counts'
-- first in one restored by pg_dump (which makes constraints in the order of
-- their names). There, an account deleted by hand while one of its images
-- was being deleted took the rows of counts the image's deletion was about
-- to take from, then waited for that image: a deadlock.
--
-- Now a trigger removes them, after the foreign keys' cascades (triggers of
-- one event fire in the order of their names, and the cascades' begin
-- "RI_"), so the account's images and their deletions' takings come first.
-- No foreign key: a row is only made by an image's insert, whose own
-- foreign key holds the account until it commits, so none is made for an
-- account being deleted.
ALTER TABLE image_counts DROP CONSTRAINT image_counts_user_id_fkey;

CREATE FUNCTION depot_user_image_counts_gone() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    DELETE FROM image_counts WHERE user_id = OLD.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_image_counts_gone AFTER DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION depot_user_image_counts_gone();
ALTER TABLE users ENABLE ALWAYS TRIGGER users_image_counts_gone;
