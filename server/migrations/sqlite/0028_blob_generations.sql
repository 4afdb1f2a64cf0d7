-- Which copy of a blob's bytes its records read (see the server's
-- `blob::BlobKey`): each publication of bytes not there already makes a new
-- generation, and a copy is removed only once no row names it, so that a
-- removal landing late never takes bytes uploaded again since. NULL while
-- the row is only a lock taken before anything is published. The blobs
-- stored before this migration are under their digest alone: the empty
-- generation. (A server of an earlier version publishes there too: none may
-- run beside this one.)
-- A generation names a file: 16 hex digits, or none.
ALTER TABLE blobs ADD COLUMN generation TEXT
    CHECK (generation = ''
        OR (length(CAST(generation AS BLOB)) = 16
            AND generation NOT GLOB '*[^0-9a-f]*'));
UPDATE blobs SET generation = '';
