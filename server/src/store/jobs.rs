//! The persistent job queue: one table, claimed under a lease. On PostgreSQL
//! several servers claim side by side (`FOR UPDATE SKIP LOCKED`); on SQLite
//! the single writer lock serializes claims. A job whose worker died is
//! taken over once its lease has run out, so no job is lost and none runs
//! twice at once.

use super::rows::from_row_by_name;
use super::{with_pool, Backend, Db};

/// A claimed job.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub attempts: i64,
    pub max_attempts: i64,
}
from_row_by_name!(JobRow {
    id,
    kind,
    payload,
    attempts,
    max_attempts
});

/// How many jobs of one kind are in one state.
#[derive(Debug, Clone)]
pub struct JobCount {
    pub kind: String,
    pub state: String,
    pub count: i64,
}
from_row_by_name!(JobCount { kind, state, count });

/// PostgreSQL's clock in Unix milliseconds, as SQL.
const PG_CLOCK_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

/// When a job queued now is due, as SQL: on the clock its lease will be
/// measured by (see [`Db::shared_clock_ms`]), else `bound`, this server's
/// time bound as an argument. By a server's own clock a minute ahead of
/// the others', its jobs would wait a minute.
pub(super) fn due_now(backend: Backend, bound: &'static str) -> &'static str {
    match backend {
        Backend::Postgres => PG_CLOCK_MS,
        Backend::Sqlite => bound,
    }
}

/// Ended jobs a user keeps whatever their age, the newest first. Each new
/// job of a user's (a deployment's, a sync's) forgets older ones, which
/// [`Db::forget_ended_jobs`] would keep two days: a script syncing in a
/// loop, or making and deleting deployments, added a row a job.
const ENDED_KEPT_PER_OWNER: i64 = 100;

/// How long an ended job is kept past its owner's newest, in milliseconds
/// (by this server's clock: a margin, not a rule).
const ENDED_KEPT_AT_LEAST_MS: i64 = 10 * 60 * 1000;

/// The most of them one new job forgets: a little more than it adds.
const ENDED_FORGOTTEN_AT_ONCE: i64 = 16;

/// As SQL: forgets the oldest ended jobs of a user (`$1`) past the newest
/// [`ENDED_KEPT_PER_OWNER`], as of `$2` (Unix milliseconds). Not a failed
/// one whose record (a sync request, a deployment) still waits: the
/// failure is written there from the job (`Core::record_failed_jobs`).
/// Run under the user's lock; rows another server is forgetting are
/// skipped.
pub(super) fn forget_owners_ended_jobs(backend: Backend) -> &'static str {
    // Built once for each database: every new job of a user's runs it.
    static STATEMENTS: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
        [" FOR UPDATE SKIP LOCKED", ""].map(|lock| {
            format!(
                "DELETE FROM jobs WHERE id IN (SELECT j.id FROM jobs j \
                 WHERE j.owner_id = $1 AND j.state IN ('done', 'failed') \
                 AND j.updated_at < $2 - {ENDED_KEPT_AT_LEAST_MS} \
                 AND j.id <= (SELECT id FROM jobs WHERE owner_id = $1 \
                 AND state IN ('done', 'failed') ORDER BY id DESC LIMIT 1 OFFSET {ENDED_KEPT_PER_OWNER}) \
                 AND NOT (j.state = 'failed' AND (EXISTS (SELECT 1 FROM sync_requests s \
                 WHERE s.job_id = j.id AND s.status IN ({WAITING_SYNC})) \
                 OR EXISTS (SELECT 1 FROM deployments d WHERE d.user_id = $1 \
                 AND d.state IN ('queued', 'running') \
                 AND j.payload = '{{\"deployment\":' || CAST(d.id AS TEXT) || '}}'))) \
                 ORDER BY j.id LIMIT {ENDED_FORGOTTEN_AT_ONCE}{lock})"
            )
        })
    });
    match backend {
        Backend::Postgres => &STATEMENTS[0],
        Backend::Sqlite => &STATEMENTS[1],
    }
}

/// The states of a sync request still waiting for its job, as SQL.
const WAITING_SYNC: &str = "'SUBMITTED', 'PENDING', 'IN_PROGRESS', 'ERROR_RETRY'";

impl Db {
    /// The database's clock in Unix milliseconds, where several servers
    /// share it (PostgreSQL), so that their leases are measured on one
    /// clock; `None` on SQLite, which one server has to itself.
    pub async fn shared_clock_ms(&self) -> Result<Option<i64>, sqlx::Error> {
        match self.pool() {
            super::Pool::Postgres(pool) => {
                sqlx::query_scalar::<_, i64>(&format!("SELECT {PG_CLOCK_MS}"))
                    .fetch_one(pool)
                    .await
                    .map(Some)
            }
            super::Pool::Sqlite(_) => Ok(None),
        }
    }

    /// Queues a job to run at `now_ms` or later; returns its id.
    #[tracing::instrument(skip(self, payload), err)]
    pub async fn enqueue_job(
        &self,
        kind: &str,
        payload: &str,
        now_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        const INSERT: &str = "INSERT INTO jobs (kind, payload, run_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $3, $3) RETURNING id";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(INSERT)
                .bind(kind)
                .bind(payload)
                .bind(now_ms)
                .fetch_one(pool)
                .await
        })
    }

    /// Takes the oldest job that is due, for `lease_ms`, of a user with no
    /// job running if there is one (one user's long queue takes every
    /// worker only while nobody else waits); a job whose lock key another
    /// running job holds waits (a unique index makes sure of it even when
    /// two servers claim at the same instant: the loser claims nothing this
    /// time).
    #[tracing::instrument(skip(self), err)]
    pub async fn claim_job(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<JobRow>, sqlx::Error> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // The oldest due job, first among those whose owner has none
        // running: each in the queue's index order, stopping at the first
        // that fits (sorting every queued job by a score read each one).
        let oldest = |idle_owner: &str| {
            format!(
                "SELECT q.id FROM jobs q WHERE q.state = 'queued' AND q.run_at <= $2 \
                 AND (q.lock_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r \
                 WHERE r.lock_key = q.lock_key AND r.state = 'running')){idle_owner} \
                 ORDER BY q.run_at, q.id LIMIT 1{lock}"
            )
        };
        let claim = format!(
            "UPDATE jobs SET state = 'running', locked_by = $1, lease_until = $2 + $3, \
             attempts = attempts + 1, updated_at = $2 \
             WHERE state = 'queued' AND id = COALESCE(({}), ({})) \
             RETURNING id, kind, payload, attempts, max_attempts",
            oldest(
                " AND (q.owner_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs o \
                 WHERE o.owner_id = q.owner_id AND o.state = 'running'))"
            ),
            oldest("")
        );
        let claimed = with_pool!(self, pool => {
            sqlx::query_as::<_, JobRow>(&claim)
                .bind(worker)
                .bind(now_ms)
                .bind(lease_ms)
                .fetch_optional(pool)
                .await
        });
        match claimed {
            Err(error) if super::is_unique_violation(&error) => Ok(None),
            other => other,
        }
    }

    /// Extends a lease; `false` when the worker no longer holds the job.
    #[tracing::instrument(skip(self), err)]
    pub async fn renew_lease(
        &self,
        id: i64,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        const RENEW: &str = "UPDATE jobs SET lease_until = $1 + $2, updated_at = $1 \
             WHERE id = $3 AND locked_by = $4 AND state = 'running'";
        with_pool!(self, pool => {
            sqlx::query(RENEW)
                .bind(now_ms)
                .bind(lease_ms)
                .bind(id)
                .bind(worker)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Marks a job done.
    #[tracing::instrument(skip(self), err)]
    pub async fn finish_job(
        &self,
        id: i64,
        worker: &str,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        const DONE: &str = "UPDATE jobs SET state = 'done', lease_until = NULL, updated_at = $1 \
             WHERE id = $2 AND locked_by = $3 AND state = 'running'";
        with_pool!(self, pool => {
            sqlx::query(DONE)
                .bind(now_ms)
                .bind(id)
                .bind(worker)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Records a failure: the job runs again at `retry_at_ms` unless it has
    /// used its attempts. Answers the job's new state (`queued` or
    /// `failed`), or `None` when this worker no longer held it.
    #[tracing::instrument(skip(self, error), err)]
    pub async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        now_ms: i64,
        retry_at_ms: i64,
        error: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        const FAIL: &str = "UPDATE jobs SET \
             state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
             run_at = $1, locked_by = NULL, lease_until = NULL, last_error = $2, updated_at = $3 \
             WHERE id = $4 AND locked_by = $5 AND state = 'running' RETURNING state";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(FAIL)
                .bind(retry_at_ms)
                .bind(error)
                .bind(now_ms)
                .bind(id)
                .bind(worker)
                .fetch_optional(pool)
                .await
        })
    }

    /// Jobs that failed for good while the record they worked on (a sync
    /// request, the deployment `deploy_kind` jobs name) still shows them
    /// waiting or running, oldest first, at most `at_most`, each with its
    /// last error. The record is written after the job: a crash, or a
    /// database out of reach, between the two left it so, and a request
    /// shown waiting takes the place of its user's next ones for good.
    #[tracing::instrument(skip(self), err)]
    pub async fn failed_jobs_unrecorded(
        &self,
        deploy_kind: &str,
        at_most: i64,
    ) -> Result<Vec<(JobRow, Option<String>)>, sqlx::Error> {
        let deployment = match self.backend() {
            Backend::Postgres => "CAST(CAST(j.payload AS jsonb) ->> 'deployment' AS BIGINT)",
            Backend::Sqlite => "CAST(json_extract(j.payload, '$.deployment') AS INTEGER)",
        };
        let select = format!(
            "SELECT j.id, j.kind, j.payload, j.attempts, j.max_attempts, j.last_error \
             FROM jobs j WHERE j.state = 'failed' AND (EXISTS (SELECT 1 FROM sync_requests s \
             WHERE s.job_id = j.id AND s.status IN ({WAITING_SYNC})) \
             OR EXISTS (SELECT 1 FROM deployments d WHERE d.state IN ('queued', 'running') \
             AND d.id = CASE WHEN j.kind = $1 THEN {deployment} END)) \
             ORDER BY j.id LIMIT $2"
        );
        with_pool!(self, pool => {
            let rows = sqlx::query(&select)
                .bind(deploy_kind)
                .bind(at_most)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    let error = sqlx::Row::try_get::<Option<String>, _>(row, "last_error")?;
                    Ok((sqlx::FromRow::from_row(row)?, error))
                })
                .collect()
        })
    }

    /// Requeues the running jobs whose lease ran out (their worker died), or
    /// fails those out of attempts; answers each job and its new state.
    #[tracing::instrument(skip(self), err)]
    pub async fn reap_jobs(&self, now_ms: i64) -> Result<Vec<(JobRow, String)>, sqlx::Error> {
        const REAP: &str = "UPDATE jobs SET \
             state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
             locked_by = NULL, lease_until = NULL, run_at = $1, \
             last_error = 'the worker stopped before finishing', updated_at = $1 \
             WHERE state = 'running' AND lease_until < $1 \
             RETURNING id, kind, payload, attempts, max_attempts, state";
        with_pool!(self, pool => {
            let rows = sqlx::query(REAP).bind(now_ms).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    let state = sqlx::Row::try_get::<String, _>(row, "state")?;
                    Ok((sqlx::FromRow::from_row(row)?, state))
                })
                .collect()
        })
    }

    /// Deletes up to `at_most` of the jobs that ended (done, or failed for
    /// good) before `ended_before_ms`, oldest first; answers how many went.
    /// What a job did is kept on the record it worked on (the sync request,
    /// the deployment); the row itself only grew the table every claim and
    /// count reads.
    #[tracing::instrument(skip(self), err)]
    pub async fn forget_ended_jobs(
        &self,
        ended_before_ms: i64,
        at_most: i64,
    ) -> Result<u64, sqlx::Error> {
        // Rows another server is forgetting are skipped, not waited for:
        // two deletes taking rows in their own order could deadlock.
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let forget = format!(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
             WHERE state IN ('done', 'failed') AND updated_at < $1 ORDER BY id LIMIT $2{lock})"
        );
        with_pool!(self, pool => {
            sqlx::query(&forget)
                .bind(ended_before_ms)
                .bind(at_most)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
    }

    /// A job's state, attempts so far and last error.
    #[tracing::instrument(skip(self), err)]
    pub async fn job_status(
        &self,
        id: i64,
    ) -> Result<Option<(String, i64, Option<String>)>, sqlx::Error> {
        const SELECT: &str = "SELECT state, attempts, last_error FROM jobs WHERE id = $1";
        with_pool!(self, pool => {
            sqlx::query_as::<_, (String, i64, Option<String>)>(SELECT)
                .bind(id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Jobs by kind and state, for an operator's metrics: every job kept.
    #[tracing::instrument(skip(self), err)]
    pub async fn job_counts(&self) -> Result<Vec<JobCount>, sqlx::Error> {
        const COUNT: &str = "SELECT kind, state, COUNT(*) AS count FROM jobs GROUP BY kind, state";
        with_pool!(self, pool => {
            sqlx::query_as::<_, JobCount>(COUNT).fetch_all(pool).await
        })
    }

    /// The queued and running jobs by kind and state, for the runtime
    /// statistics any user may ask for: read by the index on state, not
    /// over the ended jobs of the last two days.
    #[tracing::instrument(skip(self), err)]
    pub async fn unfinished_job_counts(&self) -> Result<Vec<JobCount>, sqlx::Error> {
        const COUNT: &str = "SELECT kind, state, COUNT(*) AS count FROM jobs \
             WHERE state IN ('queued', 'running') GROUP BY kind, state";
        with_pool!(self, pool => {
            sqlx::query_as::<_, JobCount>(COUNT).fetch_all(pool).await
        })
    }
}
