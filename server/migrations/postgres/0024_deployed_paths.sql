-- The file a done deployment wrote, relative to the export root: deleting
-- the deployment removes it (unless another of its owner's deployments
-- wrote the same), and its room in the owner's quota with it.
ALTER TABLE deployments ADD COLUMN written_path TEXT;
