//! VSS sync requests: a user's request to reconcile their personal store
//! with their images, and the job that does it.

use chrono::{DateTime, Utc};

use super::jobs::JobRow;
use super::rows::from_row_by_name;
use super::{with_pool, Db};

/// One sync request as stored; `errors` and `warnings` are JSON lists.
#[derive(Debug, Clone)]
pub struct SyncRow {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub kind: String,
    pub status: String,
    pub task_id: String,
    pub added: i64,
    pub updated: i64,
    pub deleted: i64,
    pub errors: String,
    pub warnings: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
from_row_by_name!(SyncRow {
    id,
    user_id,
    username,
    kind,
    status,
    task_id,
    added,
    updated,
    deleted,
    errors,
    warnings,
    created_at,
    updated_at
});

const SYNC_SELECT: &str = "SELECT s.id, s.user_id, u.username, s.kind, s.status, s.task_id, \
     s.added, s.updated, s.deleted, s.errors, s.warnings, s.created_at, s.updated_at \
     FROM sync_requests s JOIN users u ON u.id = s.user_id";

/// What a finished (or failed) sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub status: &'static str,
    pub added: i64,
    pub updated: i64,
    pub deleted: i64,
    pub errors: String,
    pub warnings: String,
}

impl Db {
    /// The request of this user and kind still waiting to run (`false`), or
    /// else a new one recorded with its job queued (`true`). Decided after
    /// the user's row is locked: requests sent side by side find one waiting
    /// request, never each their own.
    #[tracing::instrument(skip(self), err)]
    pub async fn submit_sync_request(
        &self,
        user_id: i64,
        kind: &str,
        task_id: &str,
        job_kind: &str,
        now: DateTime<Utc>,
        kept_at_most: i64,
    ) -> Result<(i64, bool), sqlx::Error> {
        let lock = self.user_lock();
        const WAITING: &str = "SELECT id FROM sync_requests WHERE user_id = $1 AND kind = $2 \
             AND status IN ('SUBMITTED', 'PENDING') ORDER BY id LIMIT 1";
        const REQUEST: &str = "INSERT INTO sync_requests \
             (user_id, kind, status, task_id, created_at, updated_at) \
             VALUES ($1, $2, 'SUBMITTED', $3, $4, $4) RETURNING id";
        // One sync per user and kind runs at a time: they share a lock key.
        let job = format!(
            "INSERT INTO jobs (kind, payload, run_at, created_at, updated_at, lock_key, \
             owner_id) VALUES ($1, $2, {}, $3, $3, $4, $5) RETURNING id",
            super::jobs::due_now(self.backend(), "$3")
        );
        const LINK: &str = "UPDATE sync_requests SET job_id = $1 WHERE id = $2";
        // Ended ones older than the newest `kept_at_most` of the user's
        // requests: a script syncing in a loop adds one a sync.
        const FORGET_OLDEST: &str = "DELETE FROM sync_requests WHERE user_id = $1 \
             AND status IN ('PROCESSED', 'ERROR') AND id <= (SELECT id FROM sync_requests \
             WHERE user_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)";
        let now_ms = now.timestamp_millis();
        let forget_jobs = super::jobs::forget_owners_ended_jobs(self.backend());
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(user_id).execute(&mut *tx).await?;
            let waiting = sqlx::query_scalar::<_, i64>(WAITING)
                .bind(user_id)
                .bind(kind)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(id) = waiting {
                return Ok((id, false));
            }
            let id = sqlx::query_scalar::<_, i64>(REQUEST)
                .bind(user_id)
                .bind(kind)
                .bind(task_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            let payload = serde_json::json!({ "sync_request": id }).to_string();
            let job = sqlx::query_scalar::<_, i64>(&job)
                .bind(job_kind)
                .bind(&payload)
                .bind(now_ms)
                .bind(format!("sync:{user_id}:{kind}"))
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(LINK).bind(job).bind(id).execute(&mut *tx).await?;
            sqlx::query(FORGET_OLDEST)
                .bind(user_id)
                .bind(kept_at_most)
                .execute(&mut *tx)
                .await?;
            sqlx::query(forget_jobs)
                .bind(user_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((id, true))
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn sync_request(&self, id: i64) -> Result<Option<SyncRow>, sqlx::Error> {
        let text = format!("{SYNC_SELECT} WHERE s.id = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, SyncRow>(&text).bind(id).fetch_optional(pool).await
        })
    }

    /// One page of a user's requests, newest first, and how many there are.
    #[tracing::instrument(skip(self), err)]
    pub async fn sync_requests_of(
        &self,
        user_id: i64,
        status: Option<&str>,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<SyncRow>, i64), sqlx::Error> {
        let text = format!(
            "{SYNC_SELECT} WHERE s.user_id = $1 AND ($2 IS NULL OR s.status = $2) \
             ORDER BY s.created_at DESC, s.id DESC LIMIT {} OFFSET {}",
            super::sql::bounded(limit),
            super::sql::bounded(offset)
        );
        const COUNT: &str = "SELECT COUNT(*) FROM sync_requests \
             WHERE user_id = $1 AND ($2 IS NULL OR status = $2)";
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, SyncRow>(&text)
                .bind(user_id)
                .bind(status)
                .fetch_all(pool)
                .await?;
            let total = sqlx::query_scalar::<_, i64>(COUNT)
                .bind(user_id)
                .bind(status)
                .fetch_one(pool)
                .await?;
            Ok((rows, total))
        })
    }

    /// Moves a request to `status` (queued again, running).
    #[tracing::instrument(skip(self), err)]
    pub async fn set_sync_status(
        &self,
        id: i64,
        status: &str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        const UPDATE: &str = "UPDATE sync_requests SET status = $1, updated_at = $2 WHERE id = $3";
        with_pool!(self, pool => {
            sqlx::query(UPDATE).bind(status).bind(now).bind(id).execute(pool).await.map(|_| ())
        })
    }

    /// Records what a sync did.
    #[tracing::instrument(skip(self, outcome), err)]
    pub async fn finish_sync_request(
        &self,
        id: i64,
        outcome: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        self.write_sync_outcome(id, None, outcome, now)
            .await
            .map(|_| ())
    }

    /// Records what became of a request whose `job` was queued again (to
    /// retry, or taken back from a worker that stopped), unless the job was
    /// claimed again since (its attempts counted on): a server that took it
    /// over may have finished it already, or failed it with its own words,
    /// and what it recorded stands (else a request left waiting for good
    /// would hold back its user's later ones). Answers whether it was
    /// recorded.
    #[tracing::instrument(skip(self, outcome), err)]
    pub async fn requeued_sync_request(
        &self,
        id: i64,
        job: &JobRow,
        outcome: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        self.write_sync_outcome(id, Some(job), outcome, now).await
    }

    async fn write_sync_outcome(
        &self,
        id: i64,
        queued_job: Option<&JobRow>,
        outcome: &SyncOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE sync_requests SET status = $1, added = $2, updated = $3, \
             deleted = $4, errors = $5, warnings = $6, updated_at = $7 WHERE id = $8 \
             AND ($9 IS NULL OR EXISTS (SELECT 1 FROM jobs \
             WHERE id = $9 AND state = 'queued' AND attempts = $10))";
        with_pool!(self, pool => {
            sqlx::query(UPDATE)
                .bind(outcome.status)
                .bind(outcome.added)
                .bind(outcome.updated)
                .bind(outcome.deleted)
                .bind(&outcome.errors)
                .bind(&outcome.warnings)
                .bind(now)
                .bind(id)
                .bind(queued_job.map(|job| job.id))
                .bind(queued_job.map(|job| job.attempts))
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// The sync request a job works on, for requests whose job was requeued.
    #[tracing::instrument(skip(self), err)]
    pub async fn sync_request_of_job(&self, job_id: i64) -> Result<Option<i64>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT id FROM sync_requests WHERE job_id = $1")
                .bind(job_id)
                .fetch_optional(pool)
                .await
        })
    }
}
