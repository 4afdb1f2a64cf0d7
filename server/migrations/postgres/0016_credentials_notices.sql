-- Tells every server sharing the database that credentials changed, as the
-- change commits: each forgets the token owners it keeps (see
-- server/src/store/token_cache.rs). Once per statement, with no payload;
-- a delete that removed nothing says nothing, so the sweep of expired
-- tokens does not empty every cache each time it runs. A token's last use
-- (last_used_at) and a user's quota epoch are not credentials.
CREATE FUNCTION depot_credentials_changed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('depot_credentials', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION depot_credentials_deleted() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM gone) THEN
        PERFORM pg_notify('depot_credentials', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_changed
    AFTER UPDATE OF username, password_hash, email, full_name, role, disabled,
        credentials_version OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION depot_credentials_changed();
CREATE TRIGGER users_deleted
    AFTER DELETE ON users REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION depot_credentials_deleted();

CREATE TRIGGER api_tokens_changed
    AFTER UPDATE OF user_id, token_hash, expires_at OR TRUNCATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION depot_credentials_changed();
CREATE TRIGGER api_tokens_deleted
    AFTER DELETE ON api_tokens REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION depot_credentials_deleted();
