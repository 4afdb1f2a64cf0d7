-- Until when a deletion of a deployment is removing the file it wrote (the
-- job clock's Unix milliseconds, renewed while the removal runs; NULL while
-- none is). The removal runs with no lock held, so a deployment of the same
-- file by the same owner, which records the file under the owner's lock,
-- waits while a removal is under way: it would otherwise lay its file down
-- just before the removal took it, and stand done with no file.
ALTER TABLE deployments ADD COLUMN removing_until BIGINT;
