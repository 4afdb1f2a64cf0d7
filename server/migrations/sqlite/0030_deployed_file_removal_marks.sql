-- Which deletion's mark `removing_until` is (a number it drew at random).
-- Its renewals and its clearing match it: a deletion whose mark lapsed (its
-- database unanswered for most of a lease) then neither renews nor clears
-- the mark of a deletion that marked the deployment again since, whose
-- removal is under way.
ALTER TABLE deployments ADD COLUMN removing_by BIGINT;
