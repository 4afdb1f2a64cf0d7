-- Hardening: token life cycle, blob locks, quota reservations, one running
-- job per lock key, and the files deployments wrote.

-- When a token was last used (updated at most once a minute), and a digest
-- of the browser session that issued it, so that signing out revokes it.
ALTER TABLE api_tokens ADD COLUMN last_used_at TEXT;
ALTER TABLE api_tokens ADD COLUMN session_hash TEXT;
CREATE INDEX api_tokens_session ON api_tokens (session_hash);
CREATE INDEX api_tokens_expires ON api_tokens (expires_at);

-- One row per stored blob. Attaching a record to a blob and deleting a blob
-- both hold this row's lock, so a blob is never removed while a record is
-- being attached to it.
CREATE TABLE blobs (
    sha256     TEXT   PRIMARY KEY,
    created_at BIGINT NOT NULL
);
INSERT INTO blobs (sha256, created_at)
    SELECT DISTINCT sha256, 0 FROM images WHERE sha256 IS NOT NULL;

-- Bytes promised to uploads in flight, counted against the quota until the
-- upload lands or fails; a crashed server's reservations expire.
CREATE TABLE quota_reservations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bytes      BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
CREATE INDEX quota_reservations_user ON quota_reservations (user_id, expires_at);

-- Jobs that must not run side by side (one sync per user and kind) share a
-- lock key; at most one job per key is running.
ALTER TABLE jobs ADD COLUMN lock_key TEXT;
CREATE UNIQUE INDEX jobs_one_running_per_key ON jobs (lock_key) WHERE state = 'running';

-- The files deployments wrote under the export root, by path relative to
-- it: a deployment overwrites only a file Depot wrote for the same owner,
-- and their bytes count against that owner's quota.
CREATE TABLE deployed_files (
    path       TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    size       BIGINT  NOT NULL DEFAULT 0,
    updated_at TEXT    NOT NULL
);
CREATE INDEX deployed_files_user ON deployed_files (user_id);
