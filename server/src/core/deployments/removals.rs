//! A deployment's deletion, which removes the file it wrote, and the wait
//! of a deployment of the same file while such a removal is under way.
//!
//! The removal runs with no lock held (a slow disk or a hung mount holds up
//! that one request), so the deletion marks the deployment as it begins
//! (`Db::delete_deployment`) and renews the mark while the removal runs. A
//! deployment of the same file by the same owner records the file it
//! writes under the owner's lock only while no such mark stands
//! (`Db::deployment_writes`): were it to write the file first, the removal
//! could take it, and it would stand done with no file and its room in the
//! quota let go.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use app::error::CoreError;
use app::model::{DeploymentState, Viewer};
use chrono::Utc;

use crate::core::jobs::{job_clock_ms, DEPLOY_JOB};
use crate::core::renewing::renewing;
use crate::core::{db_error, Core};
use crate::store::{Db, DeletedDeployment, REMOVAL_LEASE_MS};

/// How often a removal under way renews its mark: several times within its
/// lease, so that one slow answer of the database does not let it lapse.
const RENEW_EVERY: Duration = Duration::from_millis(REMOVAL_LEASE_MS as u64 / 4);

/// How often a deployment waiting for a removal looks again.
const LOOK_AGAIN_EVERY: Duration = Duration::from_millis(500);

/// How long a deployment waits for a removal before its job gives this
/// attempt up (to be retried, and to fail once its attempts are spent): a
/// removal stuck on a hung mount holds a job worker, which every user's
/// syncs and deployments share, a minute at a time.
const WAIT_AT_MOST: Duration = Duration::from_secs(60);

impl Core {
    /// Deletes a deployment, and removes the file it wrote from the
    /// environment (ViCE: "removes an image deployment from the
    /// environment"), unless another of the owner's deployments wrote the
    /// same: the file's room in the owner's quota goes with it. A deployment
    /// being written is refused until it ends (its file would land all the
    /// same); one deleted while queued is never run. One whose file cannot
    /// be removed stays, with its file (409), and so does one whose file
    /// another deletion of it is removing this moment (409).
    pub async fn delete_deployment(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError> {
        let owner = self.deployment(viewer, id).await?.user_id;
        let now = self.job_clock_ms().await.map_err(db_error)?;
        let (db, export_root) = (self.db.clone(), self.limits.export_root.clone());
        let skew = self.clock_skew_ms();
        let remove_file = {
            let db = db.clone();
            move |path: String, mark: i64| async move {
                let removal = remove_deployed_file(export_root, path);
                match renewing(removal, RENEW_EVERY, || renew_mark(&db, skew, id, mark)).await {
                    // What stands there now is no file Depot wrote: its own is gone.
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                    removed => removed,
                }
            }
        };
        // It runs to its end in a task of its own: a request dropped midway
        // (its client gone) neither stops renewing the mark while the
        // removal goes on, nor leaves the file gone and its deployment there.
        let deletion = async move {
            db.delete_deployment(id, owner, DEPLOY_JOB, now, remove_file)
                .await
        };
        let deleted = tokio::spawn(deletion)
            .await
            .map_err(|_| CoreError::Internal)?
            .map_err(db_error)?;
        match deleted {
            DeletedDeployment::Deleted => Ok(()),
            DeletedDeployment::Gone => Err(CoreError::not_found(format!("deployment {id}"))),
            DeletedDeployment::Running => Err(CoreError::Conflict(format!(
                "deployment {id} is being written; delete it once it is done or failed"
            ))),
            DeletedDeployment::BeingDeleted => Err(CoreError::Conflict(format!(
                "deployment {id} is being deleted already"
            ))),
            DeletedDeployment::FileStays { path, error } => {
                tracing::warn!(%error, "cannot remove a deployed file");
                Err(CoreError::Conflict(format!(
                    "deployment {id} was not deleted: its file {path} could not be removed \
                     ({error}); it stays, and counts against the quota, until it can be"
                )))
            }
        }
    }

    /// Records the file deployment `id` of `owner`'s writes (`written`,
    /// relative to the export root; `shown` in messages), first waiting
    /// while a deletion of another deployment is removing that file, the
    /// reason shown on the deployment meanwhile. Answers `false` once it
    /// has waited [`WAIT_AT_MOST`].
    pub(super) async fn record_written_file(
        &self,
        id: i64,
        owner: i64,
        written: &str,
        shown: &str,
    ) -> Result<bool, sqlx::Error> {
        let started = tokio::time::Instant::now();
        let mut shown_waiting = false;
        loop {
            let now = self.job_clock_ms().await?;
            if self.db.deployment_writes(id, owner, written, now).await? {
                if shown_waiting {
                    self.show_running(id, "").await?;
                }
                return Ok(true);
            }
            if !shown_waiting {
                let reason = format!(
                    "waiting: a deletion of another deployment of {shown} is removing that file"
                );
                self.show_running(id, &reason).await?;
                shown_waiting = true;
            }
            if started.elapsed() >= WAIT_AT_MOST {
                return Ok(false);
            }
            tokio::time::sleep(LOOK_AGAIN_EVERY).await;
        }
    }

    async fn show_running(&self, id: i64, reason: &str) -> Result<(), sqlx::Error> {
        let state = DeploymentState::Running;
        self.db
            .set_deployment_state(id, state, reason, Utc::now())
            .await
    }
}

/// Removes a deployed file (`written`, its path relative to the export
/// root).
async fn remove_deployed_file(export_root: Option<PathBuf>, written: String) -> io::Result<()> {
    let Some(root) = export_root else {
        return Ok(()); // No export root any more: nothing is written below one.
    };
    let path = Path::new(&written);
    let (Some(name), relative) = (path.file_name(), path.parent().unwrap_or(Path::new(""))) else {
        return Ok(());
    };
    let (relative, name) = (relative.to_owned(), name.to_string_lossy().into_owned());
    tokio::task::spawn_blocking(move || crate::core::export::remove(&root, &relative, &name))
        .await
        .map_err(io::Error::other)?
}

/// Keeps `mark`, the mark of deployment `id`'s deletion, for
/// [`REMOVAL_LEASE_MS`] more, on the job clock (of a server `skew_ms` off
/// the system's).
async fn renew_mark(db: &Db, skew_ms: i64, id: i64, mark: i64) {
    let renewed = match job_clock_ms(db, skew_ms).await {
        Ok(now) => db.renew_removal(id, mark, now + REMOVAL_LEASE_MS).await,
        Err(error) => Err(error),
    };
    match renewed {
        Ok(true) => {}
        // Its removal goes on (it cannot be called back from the disk),
        // now unmarked: a deployment of the file may write it meanwhile.
        Ok(false) => tracing::warn!(
            deployment = id,
            "the mark of a deployed file's removal lapsed before the removal ended"
        ),
        Err(error) => {
            tracing::warn!(%error, "cannot renew the mark of a deployed file's removal")
        }
    }
}
