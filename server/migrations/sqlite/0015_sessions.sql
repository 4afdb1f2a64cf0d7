-- Browser sessions (the UI's sign-ins), in Depot's own table: until now
-- tower-sessions-sqlx-store kept them in `tower_sessions`, its values as
-- MessagePack. A session here is its id, its values as JSON, and when it
-- lapses (Unix seconds). Sessions of the old table end: their users sign in
-- again (API tokens are not sessions, and carry on).
CREATE TABLE sessions (
    id         TEXT    PRIMARY KEY NOT NULL,
    data       TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
DROP TABLE IF EXISTS tower_sessions;
