-- A write into a personal store moves its bytes from its quota reservation
-- into the store's files. Each move bumps the user's quota epoch and stamps
-- the reservation with it instead of deleting it at once: a count that
-- listed the files at epoch e still counts the reservations moved after e,
-- whose files its listing may have missed. Moved reservations expire soon.
ALTER TABLE users ADD COLUMN quota_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE quota_reservations ADD COLUMN moved_at_epoch BIGINT;
