-- An administrator may disable an account: it keeps its records, but no
-- password, session, token or API key of it works until it is enabled again.
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;
-- Browser sessions signed in before this moment no longer count (set when an
-- administrator resets the password or disables the account).
ALTER TABLE users ADD COLUMN sessions_valid_from TEXT;
