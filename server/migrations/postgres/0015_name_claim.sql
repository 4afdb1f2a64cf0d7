-- The name rule of a new image record, for the insert that carries it (see
-- INSERT_IMAGE_CLAIMING in server/src/store/insert.rs): takes the name's
-- advisory lock for the calling transaction, the same lock a rename takes
-- (the first key is "name", the second the name's hashtext), then answers
-- whether no image in the scope holds the name. A VOLATILE PL/pgSQL
-- function reads with a snapshot of its own, taken once the lock is held, so
-- it sees what a transaction that held the lock before it committed; the
-- calling statement's own snapshot, taken before the wait, would not.
CREATE FUNCTION depot_claim_image_name(wanted text, everyone boolean, reader bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1851878757, hashtext(wanted));
    RETURN NOT EXISTS (
        SELECT 1 FROM images o
        WHERE o.name = wanted AND (everyone OR o.public OR o.owner_id = reader)
    );
END
$$;
