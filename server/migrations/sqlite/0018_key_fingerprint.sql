-- Which secret key the database is served with, by a fingerprint derived
-- from it (never the key): a server started on it with another key (every
-- server sharing a database must share one) refuses to start, rather than
-- each server reject the others' tokens and fail to open the environment
-- passwords they sealed.
CREATE TABLE key_fingerprint (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL
);
