-- What an image's owner writes about it on its page: a few lines of free text.
ALTER TABLE images ADD COLUMN description TEXT NOT NULL DEFAULT '';
