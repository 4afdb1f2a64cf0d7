-- The persistent job queue (VSS sync requests, ViCE deployments) and the
-- sync requests it works on. Job times are Unix milliseconds, the same type
-- on both backends; a running job holds a lease that a dead worker's
-- successor takes over once it has run out.

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'queued'
                 CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts     BIGINT  NOT NULL DEFAULT 0,
    max_attempts BIGINT  NOT NULL DEFAULT 3,
    run_at       BIGINT  NOT NULL,
    locked_by    TEXT,
    lease_until  BIGINT,
    last_error   TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX jobs_ready ON jobs (state, run_at, id);

CREATE TABLE sync_requests (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('VM', 'ISO')),
    status     TEXT    NOT NULL,
    task_id    TEXT    NOT NULL,
    job_id     INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    added      BIGINT  NOT NULL DEFAULT 0,
    updated    BIGINT  NOT NULL DEFAULT 0,
    deleted    BIGINT  NOT NULL DEFAULT 0,
    errors     TEXT    NOT NULL DEFAULT '[]',
    warnings   TEXT    NOT NULL DEFAULT '[]',
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
CREATE INDEX sync_requests_user ON sync_requests (user_id, created_at);
