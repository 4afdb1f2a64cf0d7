-- What a synced image was copied from, as the sync saw it: a personal-store
-- file's size and modification time (`file:…`), or an `.ovf`'s and each of
-- its disks' (`ovf:…`, a digest). A sync that sees the same again copies
-- nothing; the quota counts a file's copy as the file only while the file
-- still shows it. NULL for copies made before this column, and for every
-- image not synced.
ALTER TABLE images ADD COLUMN synced_from TEXT;
