-- The user a job works for (a deployment's, a sync's): a job of a user with
-- none running is taken before the older jobs of one who has, so that one
-- user's queue of long copies does not hold back everyone else's.
ALTER TABLE jobs ADD COLUMN owner_id BIGINT;
CREATE INDEX jobs_running_owner ON jobs (owner_id) WHERE state = 'running';
