-- A deployment outlives its image: deleting the image leaves the deployment
-- (its image no longer named), whose deletion removes the file it wrote and
-- lets go of its room in the quota. The image's deletion took its
-- deployments with it, and their files stayed, counted, with no deployment
-- to delete. SQLite changes a foreign key by making the table again; the
-- ids it gave stay given (a job's payload names its deployment by id).
CREATE TABLE deployments_new (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    image_id       INTEGER REFERENCES images (id) ON DELETE SET NULL,
    environment_id INTEGER NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    title          TEXT    NOT NULL DEFAULT '',
    environment_reference TEXT NOT NULL DEFAULT '',
    state          TEXT    NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'running', 'done', 'failed')),
    reason         TEXT    NOT NULL DEFAULT '',
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL,
    written_path   TEXT
);
-- Rows a database written without foreign keys left pointing nowhere are
-- made to match them (an image gone is none; a user or environment gone
-- took the deployment), so that the copy checks out.
INSERT INTO deployments_new (id, user_id, image_id, environment_id, title,
        environment_reference, state, reason, created_at, updated_at, written_path)
    SELECT d.id, d.user_id,
        CASE WHEN EXISTS (SELECT 1 FROM images i WHERE i.id = d.image_id) THEN d.image_id END,
        d.environment_id, d.title, d.environment_reference, d.state, d.reason, d.created_at,
        d.updated_at, d.written_path
    FROM deployments d
    WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = d.user_id)
        AND EXISTS (SELECT 1 FROM environments e WHERE e.id = d.environment_id);
DELETE FROM sqlite_sequence WHERE name = 'deployments_new';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'deployments_new', seq FROM sqlite_sequence WHERE name = 'deployments';
DROP TABLE deployments;
ALTER TABLE deployments_new RENAME TO deployments;
CREATE INDEX deployments_user ON deployments (user_id, id);
CREATE INDEX deployments_written_path ON deployments (user_id, written_path, id)
    WHERE written_path IS NOT NULL;
-- An image's deletion finds its deployments by these, and an environment's.
CREATE INDEX deployments_image ON deployments (image_id);
CREATE INDEX deployments_environment ON deployments (environment_id);
