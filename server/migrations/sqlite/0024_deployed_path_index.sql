-- A user's done deployments by the file they wrote: a deletion asks whether
-- another keeps the file, and each new deployment's pruning keeps the
-- newest of each file (those are kept past the 1,000 newest), both under
-- the user's lock, which on SQLite is the database's write lock.
CREATE INDEX deployments_written_path ON deployments (user_id, written_path, id)
    WHERE written_path IS NOT NULL;
