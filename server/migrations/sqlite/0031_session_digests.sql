-- Sessions are now stored under the SHA-256 of their ids (the cookies that
-- sign browsers in), as API tokens are. The sessions stored under their ids
-- end, with the tokens they issued (each issued under its session's
-- digest, which sign-out revokes): their users sign in again, once.
DELETE FROM api_tokens WHERE session_hash IS NOT NULL;
DELETE FROM sessions;
