-- The folders right below the export root, each kept by the first user to
-- deploy into it (or below it): no other user's deployment writes there, so
-- nobody can lay a file in the folder another user's hypervisor reads.
CREATE TABLE export_folders (
    name       TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT    NOT NULL
);
