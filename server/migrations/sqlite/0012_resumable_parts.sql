-- Resumable uploads keep their bytes in the blob store's uploads area (one
-- file per upload in a local folder, one object per chunk in an object
-- store), written once, instead of one blob per chunk written again at
-- completion. An upload in progress under the old layout cannot be carried
-- over: it is dropped with its reservation (its client starts again, as
-- after an expiry), and its chunks' blobs, no longer referenced, go to the
-- collector.
DELETE FROM quota_reservations WHERE id IN (
    SELECT reservation_id FROM resumable_uploads
    WHERE image_id IS NULL AND reservation_id IS NOT NULL
);
DELETE FROM resumable_uploads WHERE image_id IS NULL;
DROP TABLE resumable_chunks;

-- The parts received, in order: bytes [start, start + size) of the upload,
-- which the blob store keeps under `name`.
CREATE TABLE resumable_parts (
    upload_id TEXT   NOT NULL REFERENCES resumable_uploads (id) ON DELETE CASCADE,
    start     BIGINT NOT NULL,
    size      BIGINT NOT NULL,
    name      TEXT   NOT NULL,
    PRIMARY KEY (upload_id, start)
);
