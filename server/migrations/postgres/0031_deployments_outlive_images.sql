-- A deployment outlives its image: deleting the image leaves the deployment
-- (its image no longer named), whose deletion removes the file it wrote and
-- lets go of its room in the quota. The image's deletion took its
-- deployments with it, and their files stayed, counted, with no deployment
-- to delete.
ALTER TABLE deployments ALTER COLUMN image_id DROP NOT NULL;
ALTER TABLE deployments DROP CONSTRAINT deployments_image_id_fkey;
ALTER TABLE deployments ADD CONSTRAINT deployments_image_id_fkey
    FOREIGN KEY (image_id) REFERENCES images (id) ON DELETE SET NULL;
-- An image's deletion finds its deployments by these, and an environment's.
CREATE INDEX deployments_image ON deployments (image_id);
CREATE INDEX deployments_environment ON deployments (environment_id);
