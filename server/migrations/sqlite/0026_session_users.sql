-- The account a session is signed in to (none for a session not signed in,
-- nor for those from before this column): an account keeps its newest 100
-- sessions, a new one ending the one that would lapse first.
ALTER TABLE sessions ADD COLUMN user_id BIGINT;
CREATE INDEX sessions_user ON sessions (user_id, expires_at) WHERE user_id IS NOT NULL;
