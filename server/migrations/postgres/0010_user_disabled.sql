-- An administrator may disable an account: it keeps its records, but no
-- password, session, token or API key of it works until it is enabled again.
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
-- Bumped whenever an administrator resets the password or disables the
-- account: a browser session or a new token or key is good only for the
-- version its holder proved themselves against.
ALTER TABLE users ADD COLUMN credentials_version BIGINT NOT NULL DEFAULT 0;
