-- A sync request by its job: what a job's failure is recorded on, looked up
-- for each failed job every minute (and for each job taken back from a
-- worker that stopped), which read every sync request without it.
CREATE INDEX sync_requests_job ON sync_requests (job_id);
