-- Resumable uploads (tus 1.0 at /api/uploads): an upload's declared length,
-- what has been received so far (durable: each acknowledged chunk is a blob
-- recorded below), its owner's quota reservation, and the image it became.
CREATE TABLE resumable_uploads (
    id             TEXT    PRIMARY KEY,
    owner_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    length         BIGINT  NOT NULL,
    received       BIGINT  NOT NULL DEFAULT 0,
    metadata       TEXT    NOT NULL,
    reservation_id BIGINT,
    image_id       BIGINT,
    -- When a server began turning the complete upload into an image: one
    -- at a time, and another may take over once this is an hour old.
    completing_at  BIGINT,
    created_at     BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL
);
CREATE INDEX resumable_uploads_expires ON resumable_uploads (expires_at);

-- The chunks received, in order: bytes [start, start + size) of the upload
-- are the blob sha256 (held against collection while listed here).
CREATE TABLE resumable_chunks (
    upload_id TEXT   NOT NULL REFERENCES resumable_uploads (id) ON DELETE CASCADE,
    start     BIGINT NOT NULL,
    size      BIGINT NOT NULL,
    sha256    TEXT   NOT NULL,
    PRIMARY KEY (upload_id, start)
);
CREATE INDEX resumable_chunks_blob ON resumable_chunks (sha256);
