-- When the server completing an upload last said it still works on it: a
-- completion of a large upload (read back, copied, hashed, on an object
-- store) can outlast its lease, and is taken over only once its server has
-- stopped renewing it.
ALTER TABLE resumable_uploads ADD COLUMN completion_renewed_at BIGINT;
