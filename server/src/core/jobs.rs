//! What the job queue runs, and what a job's state means for the records it
//! works on (a sync request's status).

use std::time::Duration;

use app::model::DeploymentState;
use chrono::Utc;
use serde::Deserialize;

use super::sync::SYNC_JOB;
use super::Core;
use crate::store::JobRow;

#[derive(Debug, Deserialize)]
struct SyncPayload {
    sync_request: i64,
}

#[derive(Debug, Deserialize)]
struct DeployPayload {
    deployment: i64,
}

/// Lengths of the job queue, by what the jobs do.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueStats {
    /// Personal-store syncs waiting to run.
    pub imports_pending: i64,
    /// Deployments waiting to run.
    pub exports_pending: i64,
    /// Jobs running now, of any kind.
    pub running: i64,
}

/// A job kind that panics, to test that workers survive it.
#[cfg(test)]
pub const PANICKING_JOB: &str = "test.panic";

/// The job kind of a ViCE deployment.
pub const DEPLOY_JOB: &str = "vice.deploy";

impl Core {
    /// The queue's true lengths.
    pub async fn queue_stats(&self) -> Result<QueueStats, app::error::CoreError> {
        let counts = self
            .db
            .unfinished_job_counts()
            .await
            .map_err(super::db_error)?;
        let mut stats = QueueStats::default();
        for count in counts {
            match (count.kind.as_str(), count.state.as_str()) {
                (SYNC_JOB, "queued") => stats.imports_pending += count.count,
                (DEPLOY_JOB, "queued") => stats.exports_pending += count.count,
                (_, "running") => stats.running += count.count,
                _ => {}
            }
        }
        Ok(stats)
    }

    /// How many job workers this process runs.
    pub fn job_workers(&self) -> usize {
        self.job_workers.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records how many job workers this process runs.
    pub fn set_job_workers(&self, count: usize) {
        self.job_workers
            .store(count, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs one claimed job; `Err` is a reason worth retrying for.
    pub async fn run_job(&self, job: &JobRow) -> Result<(), String> {
        match job.kind.as_str() {
            SYNC_JOB => {
                let payload: SyncPayload = serde_json::from_str(&job.payload)
                    .map_err(|error| format!("unreadable payload: {error}"))?;
                self.run_sync(payload.sync_request).await
            }
            DEPLOY_JOB => {
                let payload: DeployPayload = serde_json::from_str(&job.payload)
                    .map_err(|error| format!("unreadable payload: {error}"))?;
                self.run_deployment(payload.deployment).await
            }
            #[cfg(test)]
            PANICKING_JOB => panic!("a job that panics, for the workers' tests"),
            other => Err(format!("no worker runs jobs of kind '{other}'")),
        }
    }

    /// Shows a failure on the record the job works on.
    pub async fn job_failed(
        &self,
        job: &JobRow,
        reason: &str,
        will_retry: bool,
    ) -> Result<(), sqlx::Error> {
        if job.kind == DEPLOY_JOB {
            if let Ok(payload) = serde_json::from_str::<DeployPayload>(&job.payload) {
                let (id, now) = (payload.deployment, Utc::now());
                if will_retry {
                    let state = DeploymentState::Queued;
                    self.db
                        .requeued_deployment(id, job, state, reason, now)
                        .await?;
                } else {
                    let state = DeploymentState::Failed;
                    self.db.set_deployment_state(id, state, reason, now).await?;
                }
            }
            return Ok(());
        }
        if job.kind != SYNC_JOB {
            return Ok(());
        }
        let Some(request) = self.db.sync_request_of_job(job.id).await? else {
            return Ok(());
        };
        let outcome = crate::store::SyncOutcome {
            status: if will_retry { "ERROR_RETRY" } else { "ERROR" },
            errors: serde_json::json!([reason]).to_string(),
            warnings: "[]".into(),
            ..Default::default()
        };
        if will_retry {
            self.db
                .requeued_sync_request(request, job, &outcome, Utc::now())
                .await
                .map(|_| ())
        } else {
            self.db
                .finish_sync_request(request, &outcome, Utc::now())
                .await
        }
    }

    /// Records the failure of jobs that failed for good while what they
    /// worked on still shows them waiting or running (see
    /// [`crate::store::Db::failed_jobs_unrecorded`]); answers how many.
    /// One record that cannot be written does not stop the others'.
    pub async fn record_failed_jobs(&self) -> Result<usize, sqlx::Error> {
        const AT_ONCE: i64 = 100;
        let unrecorded = self.db.failed_jobs_unrecorded(DEPLOY_JOB, AT_ONCE).await?;
        let mut failed = Ok(unrecorded.len());
        for (job, error) in &unrecorded {
            let reason = error.as_deref().unwrap_or("the job failed");
            if let Err(error) = self.job_failed(job, reason, false).await {
                failed = Err(error);
            }
        }
        failed
    }

    /// Requeues the jobs of workers that died; their requests wait again.
    /// One job's record that cannot be written does not stop the others'.
    pub async fn reap_jobs(&self, now_ms: i64) -> Result<(), sqlx::Error> {
        let mut failed = Ok(());
        for (job, state) in self.db.reap_jobs(now_ms).await? {
            tracing::warn!(job = job.id, %state, "took back a job whose worker stopped");
            if let Err(error) = self.record_reaped(&job, &state).await {
                failed = Err(error);
            }
        }
        failed
    }

    /// What became of a job taken back from a worker that stopped, shown
    /// on what it works on.
    async fn record_reaped(&self, job: &JobRow, state: &str) -> Result<(), sqlx::Error> {
        if job.kind == DEPLOY_JOB {
            let reason = "the deployment stopped before finishing";
            return self.job_failed(job, reason, state == "queued").await;
        }
        let Some(request) = self.db.sync_request_of_job(job.id).await? else {
            return Ok(());
        };
        if state == "queued" {
            let waiting = crate::store::SyncOutcome {
                status: "PENDING",
                errors: "[]".into(),
                warnings: "[]".into(),
                ..Default::default()
            };
            self.db
                .requeued_sync_request(request, job, &waiting, Utc::now())
                .await?;
        } else {
            let outcome = crate::store::SyncOutcome {
                status: "ERROR",
                errors: serde_json::json!(["the sync stopped too often before finishing"])
                    .to_string(),
                warnings: "[]".into(),
                ..Default::default()
            };
            self.db
                .finish_sync_request(request, &outcome, Utc::now())
                .await?;
        }
        Ok(())
    }

    /// The time job leases are measured by, in Unix milliseconds: the
    /// database's clock where servers share it, or else this server's. A
    /// lease written by one server and found run out by another is read
    /// on one clock: with each server's own, a server whose clock ran a
    /// minute ahead took over every job running elsewhere, and ran it a
    /// second time.
    pub async fn job_clock_ms(&self) -> Result<i64, sqlx::Error> {
        job_clock_ms(&self.db, self.clock_skew_ms()).await
    }

    /// This server's clock, in Unix milliseconds.
    pub fn local_clock_ms(&self) -> i64 {
        Utc::now().timestamp_millis() + self.clock_skew_ms()
    }

    /// How far this server's clock is set off the system's.
    pub(super) fn clock_skew_ms(&self) -> i64 {
        self.clock_skew_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets this server's clock `by_ms` off the system's: for tests of
    /// servers whose clocks disagree.
    #[doc(hidden)]
    pub fn skew_local_clock(&self, by_ms: i64) {
        use std::sync::atomic::Ordering;
        self.clock_skew_ms.store(by_ms, Ordering::Relaxed);
    }

    /// Waits until a job is queued by this process, or `at_most`.
    pub async fn wait_for_jobs(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.jobs_waiting.notified()).await;
    }
}

/// [`Core::job_clock_ms`], for work that outlives its borrow of the core:
/// `db`'s clock where servers share it, or else this server's, set
/// `skew_ms` off the system's.
pub(super) async fn job_clock_ms(db: &crate::store::Db, skew_ms: i64) -> Result<i64, sqlx::Error> {
    match db.shared_clock_ms().await? {
        Some(shared) => Ok(shared),
        None => Ok(Utc::now().timestamp_millis() + skew_ms),
    }
}
