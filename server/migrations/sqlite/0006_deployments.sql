-- ViCE deployments: an image deployed into an environment by a job of the
-- persistent queue; the record shows the job's state and why it failed.

CREATE TABLE deployments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    image_id       INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    title          TEXT    NOT NULL DEFAULT '',
    environment_reference TEXT NOT NULL DEFAULT '',
    state          TEXT    NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'done', 'failed')),
    reason         TEXT    NOT NULL DEFAULT '',
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);
CREATE INDEX deployments_user ON deployments (user_id, id);
