//! ViCE deployments and the job that carries each out.

use app::error::CoreError;
use app::model::{Deployment, DeploymentState};
use chrono::{DateTime, Utc};

use super::jobs::JobRow;
use super::rows::from_row_by_name;
use super::{count_reaches, with_pool, Db};

/// How long a deletion's mark on the file it is removing holds back other
/// deployments of that file ([`Db::deployment_writes`]), in milliseconds of
/// the job clock. The deletion renews it while its removal runs, so a mark
/// lapses only when its server stopped midway, or the database went
/// unanswered for most of a lease (then a removal that goes on may still
/// take a file written after the lapse). Until it lapses, the deletion
/// asked again is refused; after, it ends the work, under a mark of its own
/// that the lapsed deletion neither renews nor clears.
pub const REMOVAL_LEASE_MS: i64 = 60_000;

/// SQL: deployment `$d` (an alias) holds the file at its `written_path`
/// for its owner `$owner` (an SQL expression): it is done, or, whatever its
/// state, a counted claim of the owner's stands there (a file kept for it
/// as an earlier deployment of it was deleted; a claim a crash left at size
/// 0 says nothing of whose file stands there). Its deletion removes that
/// file ([`Db::delete_deployment`]); until then its environment, and its
/// record among the oldest, are kept.
macro_rules! holds_its_file {
    ($d:literal, $owner:literal) => {
        concat!(
            "(",
            $d,
            ".state = 'done' OR EXISTS (SELECT 1 FROM deployed_files f \
             WHERE f.path = ",
            $d,
            ".written_path AND f.user_id = ",
            $owner,
            " AND f.size > 0))"
        )
    };
}
pub(super) use holds_its_file;

/// One deployment with the name of its image (none once the image is
/// deleted: the deployment outlives it) and the title of its environment
/// (deleted with it).
#[derive(Debug, Clone)]
pub struct DeploymentRow {
    pub id: i64,
    pub user_id: i64,
    pub owner: String,
    pub image_id: Option<i64>,
    pub image_name: String,
    pub environment_id: i64,
    pub environment_title: String,
    pub title: String,
    pub environment_reference: String,
    pub state: String,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
from_row_by_name!(DeploymentRow {
    id,
    user_id,
    owner,
    image_id,
    image_name,
    environment_id,
    environment_title,
    title,
    environment_reference,
    state,
    reason,
    created_at,
    updated_at
});

impl TryFrom<DeploymentRow> for Deployment {
    type Error = CoreError;

    fn try_from(row: DeploymentRow) -> Result<Self, CoreError> {
        let state = DeploymentState::parse(&row.state).ok_or_else(|| {
            tracing::error!(deployment = row.id, "unreadable state in deployments");
            CoreError::Internal
        })?;
        Ok(Deployment {
            id: row.id,
            user_id: row.user_id,
            owner: row.owner,
            image_id: row.image_id,
            image_name: row.image_name,
            environment_id: row.environment_id,
            environment_title: row.environment_title,
            title: row.title,
            environment_reference: row.environment_reference,
            state,
            reason: row.reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const SELECT: &str = "SELECT d.id, d.user_id, \
     (SELECT username FROM users WHERE users.id = d.user_id) AS owner, d.image_id, \
     COALESCE(i.name, '') AS image_name, \
     d.environment_id, e.title AS environment_title, d.title, d.environment_reference, \
     d.state, d.reason, d.created_at, d.updated_at FROM deployments d \
     LEFT JOIN images i ON i.id = d.image_id JOIN environments e ON e.id = d.environment_id";

/// The payload of deployment `id`'s job.
fn job_payload(id: i64) -> String {
    serde_json::json!({ "deployment": id }).to_string()
}

/// A deployment to record.
#[derive(Debug)]
pub struct NewDeployment<'a> {
    pub user_id: i64,
    pub image_id: i64,
    pub environment_id: i64,
    pub title: &'a str,
    pub environment_reference: &'a str,
    /// How many unfinished deployments the user may have, this one included.
    pub unfinished_at_most: i64,
    /// The most deployments the user keeps: finished ones older than the
    /// newest this many go as this one is added (each list of them carries
    /// them all).
    pub kept_at_most: i64,
}

impl Db {
    /// Records a deployment and queues its job, in one transaction; `None`
    /// when its user has as many unfinished (queued or running) already as
    /// they may.
    #[tracing::instrument(skip(self), err)]
    pub async fn insert_deployment(
        &self,
        new: NewDeployment<'_>,
        job_kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, sqlx::Error> {
        // Counted in the transaction that inserts, after the user's row is
        // locked (as quota reservations are): no two inserts of one user's
        // see the same count.
        let lock = self.user_lock();
        const UNFINISHED: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM deployments \
             WHERE user_id = $1 AND state IN ('queued', 'running') LIMIT $2) AS waiting";
        const INSERT: &str = "INSERT INTO deployments (user_id, image_id, environment_id, \
             title, environment_reference, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id";
        let job = format!(
            "INSERT INTO jobs (kind, payload, run_at, created_at, updated_at, owner_id) \
             VALUES ($1, $2, {}, $3, $3, $4)",
            super::jobs::due_now(self.backend(), "$3")
        );
        // Finished ones older than the newest `kept_at_most` of the user's
        // deployments (by the index on user and id).
        // Not the newest finished deployment holding a file: deleting it is
        // how its file is removed, and its room in the quota let go. (A
        // newer one still to run may yet write another path.)
        const FORGET_OLDEST: &str = concat!(
            "DELETE FROM deployments WHERE user_id = $1 \
             AND state IN ('done', 'failed') AND id <= (SELECT id FROM deployments \
             WHERE user_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2) \
             AND NOT (written_path IS NOT NULL AND ",
            holds_its_file!("deployments", "$1"),
            " AND NOT EXISTS (SELECT 1 FROM deployments n WHERE n.user_id = $1 \
             AND n.written_path = deployments.written_path AND n.id > deployments.id \
             AND n.state IN ('done', 'failed') AND ",
            holds_its_file!("n", "$1"),
            "))"
        );
        let forget_jobs = super::jobs::forget_owners_ended_jobs(self.backend());
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(new.user_id).execute(&mut *tx).await?;
            if count_reaches!(tx, UNFINISHED, new.user_id, new.unfinished_at_most)? {
                return Ok(None);
            }
            let id = sqlx::query_scalar::<_, i64>(INSERT)
                .bind(new.user_id)
                .bind(new.image_id)
                .bind(new.environment_id)
                .bind(new.title)
                .bind(new.environment_reference)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(&job)
                .bind(job_kind)
                .bind(job_payload(id))
                .bind(now.timestamp_millis())
                .bind(new.user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(FORGET_OLDEST)
                .bind(new.user_id)
                .bind(new.kept_at_most)
                .execute(&mut *tx)
                .await?;
            sqlx::query(forget_jobs)
                .bind(new.user_id)
                .bind(now.timestamp_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(id))
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn deployment(&self, id: i64) -> Result<Option<DeploymentRow>, sqlx::Error> {
        let text = format!("{SELECT} WHERE d.id = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, DeploymentRow>(&text).bind(id).fetch_optional(pool).await
        })
    }

    /// One page of a user's deployments (everyone's for `None`), newest
    /// first, and how many there are.
    #[tracing::instrument(skip(self), err)]
    pub async fn deployments_page(
        &self,
        user_id: Option<i64>,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<DeploymentRow>, i64), sqlx::Error> {
        let text = format!(
            "{SELECT} WHERE ($1 IS NULL OR d.user_id = $1) ORDER BY d.id DESC LIMIT {} OFFSET {}",
            super::sql::bounded(limit),
            super::sql::bounded(offset)
        );
        const COUNT: &str = "SELECT COUNT(*) FROM deployments WHERE ($1 IS NULL OR user_id = $1)";
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, DeploymentRow>(&text).bind(user_id).fetch_all(pool).await?;
            let total = sqlx::query_scalar::<_, i64>(COUNT).bind(user_id).fetch_one(pool).await?;
            Ok((rows, total))
        })
    }

    /// A user's deployments (everyone's for `None`), oldest first.
    #[tracing::instrument(skip(self), err)]
    pub async fn deployments(
        &self,
        user_id: Option<i64>,
    ) -> Result<Vec<DeploymentRow>, sqlx::Error> {
        let text = format!("{SELECT} WHERE ($1 IS NULL OR d.user_id = $1) ORDER BY d.id");
        with_pool!(self, pool => {
            sqlx::query_as::<_, DeploymentRow>(&text).bind(user_id).fetch_all(pool).await
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn set_deployment_state(
        &self,
        id: i64,
        state: DeploymentState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        self.write_deployment_state(id, None, state, reason, now)
            .await
            .map(|_| ())
    }

    /// Shows a deployment whose `job` was queued again (to retry, or taken
    /// back from a worker that stopped) as `state`, unless the job was
    /// claimed again since (its attempts counted on): a server that took it
    /// over may have done it already, and a deployment shown queued for
    /// good would hold one of its user's places. Answers whether it was
    /// shown.
    #[tracing::instrument(skip(self), err)]
    pub async fn requeued_deployment(
        &self,
        id: i64,
        job: &JobRow,
        state: DeploymentState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        self.write_deployment_state(id, Some(job), state, reason, now)
            .await
    }

    async fn write_deployment_state(
        &self,
        id: i64,
        queued_job: Option<&JobRow>,
        state: DeploymentState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE deployments SET state = $1, reason = $2, updated_at = $3 \
             WHERE id = $4 AND ($5 IS NULL OR \
             EXISTS (SELECT 1 FROM jobs WHERE id = $5 AND state = 'queued' AND attempts = $6))";
        with_pool!(self, pool => {
            sqlx::query(UPDATE)
                .bind(state.as_str())
                .bind(reason)
                .bind(now)
                .bind(id)
                .bind(queued_job.map(|job| job.id))
                .bind(queued_job.map(|job| job.attempts))
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Shows a deployment running; `false` when it was deleted meanwhile
    /// (its job then writes nothing).
    #[tracing::instrument(skip(self), err)]
    pub async fn deployment_running(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        self.write_deployment_state(id, None, DeploymentState::Running, "", now)
            .await
    }

    /// Records, under its owner's lock, the file a deployment of `owner`'s
    /// is about to write (relative to the export root): a deletion of
    /// another deployment of it then leaves it. Answers `false`, recording
    /// nothing, while a deletion is removing that file (its mark lasts past
    /// `now_ms`, the job clock's): the removal runs with no lock held, and
    /// could take the file written now.
    #[tracing::instrument(skip(self), err)]
    pub async fn deployment_writes(
        &self,
        id: i64,
        owner: i64,
        written_path: &str,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        const REMOVING: &str = "SELECT id FROM deployments \
             WHERE user_id = $1 AND written_path = $2 AND removing_until > $3 LIMIT 1";
        const WRITES: &str = "UPDATE deployments SET written_path = $1 WHERE id = $2";
        let lock = self.user_lock();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(owner).execute(&mut *tx).await?;
            let removing = sqlx::query_scalar::<_, i64>(REMOVING)
                .bind(owner)
                .bind(written_path)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
            if removing.is_some() {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(WRITES)
                .bind(written_path)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Keeps `mark`, the mark of a deletion removing the deployment's file,
    /// until `until_ms` (see [`Db::delete_deployment`]); answers whether it
    /// still stood (it lapsed, and another deletion marked the deployment
    /// since, or the deletion ended).
    #[tracing::instrument(skip(self), err)]
    pub async fn renew_removal(
        &self,
        id: i64,
        mark: i64,
        until_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        const RENEW: &str = "UPDATE deployments SET removing_until = $1 \
             WHERE id = $2 AND removing_by = $3";
        with_pool!(self, pool => {
            sqlx::query(RENEW)
                .bind(until_ms)
                .bind(id)
                .bind(mark)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Deletes a deployment of `owner`'s unless it is being written (and its job, if
    /// queued), deciding under its owner's lock whether the file it wrote is
    /// its alone: of two deployments of one file deleted at once, the second
    /// finds the first gone as it deletes, looks again, and removes the file.
    ///
    /// Such a file is removed by `remove_file` (given its path and the mark)
    /// before the deployment is deleted, with its room in the quota. The
    /// deployment is marked meanwhile, until `now_ms` and [`REMOVAL_LEASE_MS`]
    /// (the job clock's; `remove_file` renews the mark, [`Db::renew_removal`]), so
    /// that another deployment of the file waits ([`Db::deployment_writes`])
    /// rather than write it just before the removal takes it, and another
    /// deletion of the deployment is refused. A file that cannot be removed
    /// keeps its deployment, and a crash in between leaves the deployment,
    /// whose deletion then ends the work (a file already gone is no
    /// failure), never a file that no record names but the quota still
    /// counts.
    #[tracing::instrument(skip(self, remove_file), err)]
    pub async fn delete_deployment<Removed>(
        &self,
        id: i64,
        owner: i64,
        job_kind: &str,
        now_ms: i64,
        remove_file: impl FnOnce(String, i64) -> Removed,
    ) -> Result<DeletedDeployment, sqlx::Error>
    where
        Removed: std::future::Future<Output = std::io::Result<()>>,
    {
        const STATE: &str = "SELECT state FROM deployments WHERE id = $1";
        // Another deletion of it is removing its file.
        const REMOVING: &str = "SELECT id FROM deployments WHERE id = $1 AND removing_until > $2";
        // The file it holds (done, or kept for it as an earlier deployment
        // of it was deleted while this one was to write it again, which then
        // failed or waits for a retry: nothing else would remove that one).
        // Another deployment of the file, done, waiting or writing it now,
        // keeps it.
        const ALONE: &str = concat!(
            "SELECT d.written_path FROM deployments d \
             WHERE d.id = $1 AND d.written_path IS NOT NULL AND ",
            holds_its_file!("d", "d.user_id"),
            " AND NOT EXISTS (SELECT 1 FROM deployments o WHERE o.user_id = d.user_id \
             AND o.written_path = d.written_path AND o.state <> $2 AND o.id <> d.id)"
        );
        // Its job too, unless it runs already: a deployment deleted while
        // queued leaves nothing waiting in the queue (nor escapes the
        // bound on a user's unfinished deployments).
        const JOB: &str = "DELETE FROM jobs WHERE kind = $1 AND payload = $2 AND state = 'queued'";
        // The removal of its file under way, and over: this deletion's mark
        // alone, not another's that marked it again once this one's lapsed.
        const MARK: &str =
            "UPDATE deployments SET removing_until = $1, removing_by = $2 WHERE id = $3";
        const UNMARK: &str = "UPDATE deployments SET removing_until = NULL, removing_by = NULL \
             WHERE id = $1 AND removing_by = $2";
        // The deployment itself, as it was decided (below).
        const DELETE: &str = "DELETE FROM deployments \
             WHERE id = $1 AND state <> $2 AND (NOT $3 OR removing_by = $4)";
        // Its room in the quota, unless a deployment wrote it again since.
        const RELEASE: &str =
            "DELETE FROM deployed_files WHERE path = $1 AND user_id = $2 AND updated_at <= $3";
        // The file the deployment alone wrote, read in transaction `$tx`.
        macro_rules! alone_in {
            ($tx:expr) => {
                sqlx::query_scalar::<_, String>(ALONE)
                    .bind(id)
                    .bind(DeploymentState::Failed.as_str())
                    .fetch_optional(&mut *$tx)
                    .await?
            };
        }
        let lock = self.user_lock();
        // This deletion's mark, told apart from any other's.
        let mark: i64 = rand::random();
        with_pool!(self, pool => {
            let mut remove_file = Some(remove_file);
            let mut looks = 0;
            loop {
                looks += 1;
                // What to remove, decided under the owner's lock.
                let mut tx = pool.begin().await?;
                sqlx::query(lock).bind(owner).execute(&mut *tx).await?;
                let state = sqlx::query_scalar::<_, String>(STATE)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                match state.as_deref() {
                    None => return Ok(DeletedDeployment::Gone),
                    Some(state) if state == DeploymentState::Running.as_str() => {
                        return Ok(DeletedDeployment::Running)
                    }
                    Some(_) => {}
                }
                let removing = sqlx::query_scalar::<_, i64>(REMOVING)
                    .bind(id)
                    .bind(now_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                if removing.is_some() {
                    return Ok(DeletedDeployment::BeingDeleted);
                }
                let alone = alone_in!(tx);
                let remove = alone.as_ref().and_then(|path| Some((path, remove_file.take()?)));
                // Marked as its file's removal begins: a deployment of the
                // same file waits until the mark goes (`deployment_writes`).
                let marked = remove.is_some();
                if marked {
                    let until = now_ms + REMOVAL_LEASE_MS;
                    sqlx::query(MARK)
                        .bind(until)
                        .bind(mark)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                } else {
                    tx.rollback().await?;
                }
                // The file goes first, with no lock held: a slow disk or a
                // hung mount holds up this request alone. Timed before the
                // removal: a deployment of the file that writes it again
                // after that keeps its room.
                let removed_at = Utc::now();
                if let Some((path, remove)) = remove {
                    if let Err(error) = remove(path.clone(), mark).await {
                        sqlx::query(UNMARK).bind(id).bind(mark).execute(pool).await?;
                        let path = path.clone();
                        return Ok(DeletedDeployment::FileStays { path, error: error.to_string() });
                    }
                }
                let mut tx = pool.begin().await?;
                sqlx::query(lock).bind(owner).execute(&mut *tx).await?;
                // Two deployments of one file deleted at once each found the
                // other: the one deleted second finds the file its alone now,
                // and looks again, to remove it; after three looks it keeps
                // the deployment rather than leave the file with none.
                if alone.is_none() {
                    if let Some(path) = alone_in!(tx) {
                        tx.rollback().await?;
                        if looks < 3 {
                            continue;
                        }
                        return Ok(DeletedDeployment::FileStays {
                            path,
                            error: "other deletions of the file at the same moment; try again"
                                .into(),
                        });
                    }
                }
                // Not if its job began meanwhile: it writes the file again.
                // Nor, if this deletion marked it, once another deletion has
                // marked it since this one's mark lapsed: that one's removal
                // is under way, and the row takes its mark along.
                let deleted = sqlx::query(DELETE)
                    .bind(id)
                    .bind(DeploymentState::Running.as_str())
                    .bind(marked)
                    .bind(mark)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if !deleted {
                    let state = sqlx::query_scalar::<_, String>(STATE)
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    sqlx::query(UNMARK).bind(id).bind(mark).execute(&mut *tx).await?;
                    tx.commit().await?;
                    return Ok(match state {
                        None => DeletedDeployment::Gone,
                        Some(state) if state == DeploymentState::Running.as_str() => {
                            DeletedDeployment::Running
                        }
                        Some(_) => DeletedDeployment::BeingDeleted,
                    });
                }
                sqlx::query(JOB)
                    .bind(job_kind)
                    .bind(job_payload(id))
                    .execute(&mut *tx)
                    .await?;
                if let Some(path) = &alone {
                    sqlx::query(RELEASE)
                        .bind(path)
                        .bind(owner)
                        .bind(removed_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                return Ok(DeletedDeployment::Deleted);
            }
        })
    }
}

/// What came of a deployment's deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletedDeployment {
    /// There was none (deleted meanwhile).
    Gone,
    /// It is being written: nothing was deleted.
    Running,
    /// Another deletion of it is removing its file: nothing more was done.
    BeingDeleted,
    /// Deleted, with the file it alone wrote (if any) and that file's room
    /// in the quota.
    Deleted,
    /// The file it alone wrote (`path`) could not be removed: nothing was
    /// deleted.
    FileStays { path: String, error: String },
}
