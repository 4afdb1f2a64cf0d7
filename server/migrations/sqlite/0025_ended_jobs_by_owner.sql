-- A user's ended jobs, newest first: each new job of theirs (a deployment's,
-- a sync's) forgets the oldest past the newest hundred, under the user's
-- lock, rather than keep every one two days.
CREATE INDEX jobs_ended_owner ON jobs (owner_id, id) WHERE state IN ('done', 'failed');
