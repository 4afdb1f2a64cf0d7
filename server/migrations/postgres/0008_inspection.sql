-- What inspecting an image's bytes found: the format in detail, an ISO's
-- volume label, and what an OVF descriptor says about the appliance (its
-- guest OS goes to os_type). Real columns, so that dialects filter on them.
ALTER TABLE images ADD COLUMN format_detail TEXT;
ALTER TABLE images ADD COLUMN volume_label TEXT;
ALTER TABLE images ADD COLUMN cpus BIGINT;
ALTER TABLE images ADD COLUMN memory_mib BIGINT;
ALTER TABLE images ADD COLUMN product TEXT;
ALTER TABLE images ADD COLUMN vendor TEXT;
ALTER TABLE images ADD COLUMN product_version TEXT;
-- A JSON list of the descriptor's network names.
ALTER TABLE images ADD COLUMN networks TEXT;
