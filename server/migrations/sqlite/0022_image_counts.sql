-- How many images each user owns, kept by triggers in the transaction that
-- adds or removes one, so that a record's insert can refuse one past the
-- most a user may hold (`--user-max-images`) without counting their images
-- each time. SQLite has one writer at a time: the count an insert reads is
-- exact. A user's row goes with the user (their images go too).
CREATE TABLE image_counts (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    images  INTEGER NOT NULL
);

INSERT INTO image_counts (user_id, images)
SELECT owner_id, COUNT(*) FROM images WHERE owner_id IS NOT NULL GROUP BY owner_id;

CREATE TRIGGER images_inserted_counted AFTER INSERT ON images
WHEN NEW.owner_id IS NOT NULL
BEGIN
    INSERT INTO image_counts (user_id, images) VALUES (NEW.owner_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET images = images + 1;
END;

CREATE TRIGGER images_deleted_counted AFTER DELETE ON images
WHEN OLD.owner_id IS NOT NULL
BEGIN
    UPDATE image_counts SET images = images - 1 WHERE user_id = OLD.owner_id;
END;

-- No statement changes an image's owner; one typed in the sqlite3 shell
-- is counted all the same.
CREATE TRIGGER images_given_counted AFTER UPDATE OF owner_id ON images
WHEN OLD.owner_id IS NOT NEW.owner_id
BEGIN
    UPDATE image_counts SET images = images - 1 WHERE user_id = OLD.owner_id;
    INSERT INTO image_counts (user_id, images) SELECT NEW.owner_id, 1
    WHERE NEW.owner_id IS NOT NULL
    ON CONFLICT (user_id) DO UPDATE SET images = images + 1;
END;
