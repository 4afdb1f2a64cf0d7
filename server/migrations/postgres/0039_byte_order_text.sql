-- The text columns added after 0002 sorted and compared by the cluster's
-- locale (with en_US, "Zed" after "alice", and ILIKE folding "É" to "é"),
-- where SQLite orders text by its bytes and folds ASCII letters alone: one
-- query answered otherwise on the two databases. They sort by their bytes
-- now, as 0002 made the first columns (equality is the same either way).
-- The triggers that name `username` among their columns are made again
-- around the change, as they were (0016, 0017).
ALTER TABLE images
    ALTER COLUMN format_detail TYPE TEXT COLLATE "C",
    ALTER COLUMN volume_label TYPE TEXT COLLATE "C",
    ALTER COLUMN product TYPE TEXT COLLATE "C",
    ALTER COLUMN vendor TYPE TEXT COLLATE "C",
    ALTER COLUMN product_version TYPE TEXT COLLATE "C",
    ALTER COLUMN networks TYPE TEXT COLLATE "C",
    ALTER COLUMN description TYPE TEXT COLLATE "C";
DROP TRIGGER users_changed ON users;
DROP TRIGGER users_catalog_changed ON users;
ALTER TABLE users ALTER COLUMN username TYPE TEXT COLLATE "C";
CREATE TRIGGER users_changed
    AFTER UPDATE OF username, password_hash, email, full_name, role, disabled,
        credentials_version OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION depot_credentials_changed();
CREATE CONSTRAINT TRIGGER users_catalog_changed
    AFTER UPDATE OF username ON users
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION depot_catalog_changed();
ALTER TABLE users ENABLE ALWAYS TRIGGER users_catalog_changed;
