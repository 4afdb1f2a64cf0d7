//! Deployments (ViCE): an image put into an execution environment by a job
//! of the persistent queue. The one target carried out is a `file://` folder
//! under the operator's export root (`DEPOT_EXPORT_ROOT`); a deployment into
//! any other kind of environment is recorded, and its job fails with
//! "target not supported".
//!
//! Several users may point environments at the same folder, so each file a
//! deployment writes is claimed for its owner (`deployed_files`, by path
//! relative to the root): a deployment replaces only a file Depot wrote for
//! the same owner, never another owner's nor one Depot did not write, and
//! the bytes it writes count against the owner's quota. Messages name paths
//! as the user wrote them or relative to the root, never resolved host
//! paths; links below the root are never followed (see [`super::export`]).
//! A user has at most [`UNFINISHED_PER_USER`] deployments waiting or running.

use std::path::{Path, PathBuf};

use app::error::CoreError;
use app::model::{short_text, Deployment, DeploymentState, Environment, Paged, Viewer};
use chrono::Utc;

use super::jobs::DEPLOY_JOB;
use super::{db_error, Core};
use crate::store::{NewDeployment, UserRow};

mod removals;

/// Deployments one user may have queued or running at once. Past them a new
/// one is refused (409): the job queue runs oldest first, so one account
/// queueing deployments without end would hold back every other user's
/// jobs (syncs, deployments) behind its own.
const UNFINISHED_PER_USER: i64 = 32;

/// The most deployments one user keeps, older finished ones forgotten as
/// new ones come: every list of a user's deployments carries them all.
const KEPT_PER_USER: i64 = 1000;

/// Why a file cannot be written at the export root, whatever keeps its name
/// there: a user's folder, a folder another user deploys into, or another
/// user's deployed file. Told apart, they said which accounts exist and
/// which (maybe private) images others had deployed.
fn name_taken_at_the_root(shown: &str) -> String {
    format!(
        "cannot write {shown}: that name is taken at the export root; give the image another \
         name, or deploy into a folder of your own"
    )
}

/// The folder a `file://` location names, if it is one.
fn file_folder(location: &str) -> Option<PathBuf> {
    location
        .strip_prefix("file://")
        .map(|path| PathBuf::from(path.trim()))
}

/// Whether the first folder of `relative` is in `root` under exactly that
/// name: a folder is claimed by its name, and a file system that takes
/// another spelling for it (`ALICE`, `alice.` on one that ignores case or
/// trailing dots) would lead another name to a kept folder.
fn top_named_exactly(root: &Path, relative: &Path) -> std::io::Result<bool> {
    let Some(top) = relative.components().next() else {
        return Ok(true);
    };
    for entry in std::fs::read_dir(root)? {
        if entry?.file_name() == top.as_os_str() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A folder under the export root, as the deployment job reaches it.
struct ExportFolder {
    /// The export root, resolved.
    root: PathBuf,
    /// The folder below it, as written (no `..`, no links followed later).
    relative: PathBuf,
}

impl Core {
    /// The folder a `file://` location names below the export root, which
    /// `user` may deploy into, or a reason why not that names no resolved
    /// host path. Whose a folder is, is asked before the disk is: a folder
    /// inside another user's is refused as a missing one is, so that no
    /// answer tells what that user's folder holds.
    async fn allowed_folder(&self, folder: &Path, user: i64) -> Result<ExportFolder, CoreError> {
        let Some(configured) = &self.limits.export_root else {
            return Err(CoreError::invalid(
                "no export root is configured (DEPOT_EXPORT_ROOT)",
            ));
        };
        let root = configured.canonicalize().map_err(|error| {
            tracing::error!(%error, "the export root is unusable");
            CoreError::invalid("the export root is unusable")
        })?;
        let outside = || {
            CoreError::invalid(format!(
                "file://{} is outside the allowed export root",
                folder.display()
            ))
        };
        let relative = folder
            .strip_prefix(configured)
            .or_else(|_| folder.strip_prefix(&root))
            .map_err(|_| outside())?;
        if relative
            .components()
            .any(|part| !matches!(part, std::path::Component::Normal(_)))
        {
            return Err(outside());
        }
        // Rebuilt from its parts: one folder has one name (`a/./b`, `a//b`
        // and `a/b/` are `a/b`), since a deployed file is claimed by it.
        let relative: PathBuf = relative.components().collect();
        let refused = || {
            CoreError::invalid(format!(
                "file://{} is not a folder below the export root that you may deploy into \
                 (it must exist, not through a link, and not in another user's folder)",
                folder.display()
            ))
        };
        if let Some(top) = relative.components().next() {
            let top = top.as_os_str().to_string_lossy();
            let keeper = self.db.export_folder_keeper(&top).await.map_err(db_error)?;
            if keeper.is_some_and(|keeper| keeper != user) {
                return Err(refused());
            }
        }
        let found = {
            let (root, relative) = (root.clone(), relative.clone());
            tokio::task::spawn_blocking(move || {
                if super::export::target(&root, &relative, ".").is_err() {
                    return Ok(false);
                }
                top_named_exactly(&root, &relative)
            })
        };
        match found.await {
            Ok(Ok(true)) => Ok(ExportFolder { relative, root }),
            Ok(Ok(false)) => Err(refused()),
            // Worth another try (a job retries): not the folder's fault.
            Ok(Err(error)) => Err(super::io_error(error)),
            Err(_) => Err(CoreError::Internal),
        }
    }

    /// Deploys an image of the caller's into one of their environments.
    pub async fn deploy(
        &self,
        viewer: &Viewer,
        image_id: i64,
        environment_id: i64,
        title: &str,
        environment_reference: &str,
    ) -> Result<Deployment, CoreError> {
        let user = viewer.require_user()?;
        let title = short_text("title", Some(title.to_owned()))?;
        let environment_reference = short_text(
            "environmentReference",
            Some(environment_reference.to_owned()),
        )?;
        let image = self.get_image(viewer, image_id).await?;
        if !image.writable_by(viewer) {
            return Err(CoreError::not_found(format!("image {image_id}")));
        }
        // As `deploy_targets` offers: a record without bytes has nothing
        // to deploy (its job could only fail).
        if !image.has_content() {
            return Err(CoreError::invalid(format!(
                "image {image_id} has no file to deploy; upload one first"
            )));
        }
        let environment = self.environment(viewer, environment_id).await?;
        if let Some(folder) = file_folder(&environment.location) {
            self.allowed_folder(&folder, user.id).await?;
        }
        let new = NewDeployment {
            user_id: user.id,
            image_id: image.id,
            environment_id: environment.id,
            title: &title,
            environment_reference: &environment_reference,
            unfinished_at_most: UNFINISHED_PER_USER,
            kept_at_most: KEPT_PER_USER,
        };
        let id = self
            .db
            .insert_deployment(new, DEPLOY_JOB, Utc::now())
            .await
            .map_err(db_error)?
            .ok_or_else(|| {
                CoreError::Conflict(format!(
                    "you have {UNFINISHED_PER_USER} deployments queued or running; \
                     deploy more once some have finished"
                ))
            })?;
        self.jobs_waiting.notify_one();
        self.deployment(viewer, id).await
    }

    /// The environments the viewer may deploy an image into: `None` when
    /// they may not deploy it at all (nobody signed in, not theirs, no bytes),
    /// by the same rules as [`Core::deploy`].
    pub async fn deploy_targets(
        &self,
        viewer: &Viewer,
        image_id: i64,
    ) -> Result<Option<Vec<Environment>>, CoreError> {
        if viewer.principal().is_none() {
            return Ok(None);
        }
        let image = match self.get_image(viewer, image_id).await {
            Ok(image) => image,
            Err(CoreError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        if !image.writable_by(viewer) || !image.has_content() {
            return Ok(None);
        }
        self.list_environments(viewer, None, None).await.map(Some)
    }

    /// A deployment its owner (or an admin) may see.
    pub async fn deployment(&self, viewer: &Viewer, id: i64) -> Result<Deployment, CoreError> {
        let user = viewer.require_user()?;
        match self.db.deployment(id).await.map_err(db_error)? {
            Some(row) if row.user_id == user.id || viewer.is_admin() => row.try_into(),
            _ => Err(CoreError::not_found(format!("deployment {id}"))),
        }
    }

    /// The caller's deployments (everyone's for an admin).
    pub async fn list_deployments(&self, viewer: &Viewer) -> Result<Vec<Deployment>, CoreError> {
        let user = viewer.require_user()?;
        let owner = (!viewer.is_admin()).then_some(user.id);
        let rows = self.db.deployments(owner).await.map_err(db_error)?;
        rows.into_iter().map(Deployment::try_from).collect()
    }

    /// One page of the viewer's deployments (everyone's for an admin), newest first.
    pub async fn deployments_page(
        &self,
        viewer: &Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<Paged<Deployment>, CoreError> {
        let user = viewer.require_user()?;
        let owner = (!viewer.is_admin()).then_some(user.id);
        let limit = limit.clamp(1, app::query::MAX_PAGE);
        let (rows, total) = self
            .db
            .deployments_page(owner, limit, offset)
            .await
            .map_err(db_error)?;
        Ok(Paged {
            items: rows
                .into_iter()
                .map(Deployment::try_from)
                .collect::<Result<_, _>>()?,
            total: total.max(0) as u64,
            limit,
            offset,
        })
    }

    /// The job: copies the image's bytes into the environment's folder.
    /// A failure that no retry can mend is recorded and ends the job.
    pub(crate) async fn run_deployment(&self, id: i64) -> Result<(), String> {
        let unavailable = |error: sqlx::Error| {
            tracing::error!(%error, "database error during a deployment");
            "the database was unavailable".to_owned()
        };
        let Some(deployment) = self.db.deployment(id).await.map_err(unavailable)? else {
            return Ok(());
        };
        let fail = |reason: String| async move {
            self.db
                .set_deployment_state(id, DeploymentState::Failed, &reason, Utc::now())
                .await
                .map_err(unavailable)
        };
        // Its user may still write: a disabled account's queued deployments
        // lay nothing more below the export root, as its syncs store nothing.
        let user = self
            .db
            .user_by_id(deployment.user_id)
            .await
            .map_err(unavailable)?;
        match user.as_ref().map(UserRow::principal) {
            Some(Ok(_)) => {}
            Some(Err(refused)) => return fail(refused.to_string()).await,
            None => return fail("the user is gone".into()).await,
        }
        // Deleted since it was read: nothing is written for it.
        if !self
            .db
            .deployment_running(id, Utc::now())
            .await
            .map_err(unavailable)?
        {
            return Ok(());
        }
        let Some(environment) = self
            .db
            .environment(deployment.environment_id)
            .await
            .map_err(unavailable)?
        else {
            return fail("the environment is gone".into()).await;
        };
        let Some(folder) = file_folder(&environment.location) else {
            return fail(format!(
                "target not supported: only file:// environments are deployed to, not '{}'",
                environment.location
            ))
            .await;
        };
        let folder = match self.allowed_folder(&folder, deployment.user_id).await {
            Ok(folder) => folder,
            Err(CoreError::Internal) => {
                return Err("the database or the export root was unavailable".into())
            }
            Err(refused) => return fail(refused.to_string()).await,
        };
        let Some(image_id) = deployment.image_id else {
            return fail("the image is gone".into()).await;
        };
        let Some(row) = self.db.image(image_id).await.map_err(unavailable)? else {
            return fail("the image is gone".into()).await;
        };
        let Some(sha256) = row.sha256.clone() else {
            return fail("the image has no file to deploy".into()).await;
        };
        let now = Utc::now();
        let shown = folder.relative.join(&row.name).display().to_string();
        if row.name.ends_with(super::export::PARTIAL_SUFFIX) {
            // Taken for a copy a killed server left, it would be removed.
            return fail(format!(
                "cannot write {shown}: names ending in {} are Depot's partial files",
                super::export::PARTIAL_SUFFIX
            ))
            .await;
        }
        match folder.relative.components().next() {
            // A folder right below the root is one user's: nobody else lays
            // a file where another user's hypervisor reads. It is kept by
            // whoever it was first claimed for: the user it is named as (no
            // other can take it first), or else its first deployer. A claim
            // stands: no account is made later with the name of a kept
            // folder (`Core::create_user`).
            Some(top) => {
                let top = top.as_os_str().to_string_lossy();
                let named_for = self.db.user_by_name(&top).await.map_err(unavailable)?;
                let claimed_for = named_for.map_or(deployment.user_id, |user| user.id);
                let keeper = self
                    .db
                    .claim_export_folder(&top, claimed_for, now)
                    .await
                    .map_err(unavailable)?;
                if keeper != Some(deployment.user_id) {
                    return fail(format!(
                        "cannot write {shown}: another user deploys into {top}/ (a folder \
                         below the export root named as a user is theirs, another its first \
                         deployer's)"
                    ))
                    .await;
                }
            }
            // A file at the root takes no name another user keeps there, in
            // any case (on a disk that ignores case, `BOB` stands where
            // `bob/` would be made): nobody could make that user's folder.
            // It claims no name itself: image names are anyone's to choose,
            // and a claim would keep accounts of that name from being made.
            None => {
                let kept = self
                    .db
                    .export_name_kept_by_another(&row.name, deployment.user_id)
                    .await
                    .map_err(unavailable)?;
                if kept {
                    return fail(name_taken_at_the_root(&shown)).await;
                }
            }
        }
        let claim = shown.clone();
        // Recorded first, under the owner's lock, once no deletion of
        // another deployment is removing the file: a deletion leaves it
        // from then on, and one that removed it let its claim go before
        // this one is made.
        if !self
            .record_written_file(id, deployment.user_id, &claim, &shown)
            .await
            .map_err(unavailable)?
        {
            return Err(format!(
                "cannot write {shown} yet: a deletion of another deployment of it is still \
                 removing that file"
            ));
        }
        let (holder, new_claim) = self
            .db
            .claim_deployed_file(&claim, deployment.user_id, Utc::now())
            .await
            .map_err(unavailable)?;
        if holder != deployment.user_id {
            // Below the root, the folder is the caller's: another user's
            // file in it predates the folder's claim, and naming it so
            // tells the caller of nothing beyond their own folder.
            let reason = if folder.relative.as_os_str().is_empty() {
                name_taken_at_the_root(&shown)
            } else {
                format!("cannot write {shown}: another user's deployment wrote that file")
            };
            return fail(reason).await;
        }
        // Whatever happens below, the reservation is let go and a claim made
        // for nothing is dropped.
        let mut reservation = None;
        let copied = self
            .copy_deployment(
                &folder,
                &row,
                &sha256,
                new_claim,
                deployment.user_id,
                &mut reservation,
            )
            .await;
        // The file written is counted before its reservation goes: in
        // between, the room it takes would be free for another write.
        let counted = match &copied {
            Ok(written) => self
                .db
                .set_deployed_size(&claim, deployment.user_id, *written as i64, Utc::now())
                .await
                .map_err(unavailable),
            Err(_) => Ok(()),
        };
        if let Some(reservation) = reservation {
            if let Err(error) = self.db.release_quota(reservation).await {
                tracing::warn!(%error, "cannot release a quota reservation; it will expire");
            }
        }
        counted?;
        if let Err(failure) = copied {
            if new_claim {
                self.db
                    .drop_deployed_claim(&claim, deployment.user_id)
                    .await
                    .map_err(unavailable)?;
            }
            return match failure {
                CopyFailure::Final(reason) => fail(format!("cannot write {shown}: {reason}")).await,
                CopyFailure::Retry(reason) => Err(format!("cannot write {shown}: {reason}")),
            };
        }
        self.db
            .set_deployment_state(id, DeploymentState::Done, "", Utc::now())
            .await
            .map_err(unavailable)
    }

    /// Copies an image's bytes to its deployment's target: checks what
    /// stands there, reserves quota, writes. Answers the bytes written.
    async fn copy_deployment(
        &self,
        folder: &ExportFolder,
        row: &crate::store::ImageRow,
        sha256: &str,
        new_claim: bool,
        owner: i64,
        reservation: &mut Option<i64>,
    ) -> Result<u64, CopyFailure> {
        let lost = |error: tokio::task::JoinError| CopyFailure::Retry(error.to_string());
        let (root, relative, name) = (
            folder.root.clone(),
            folder.relative.clone(),
            row.name.clone(),
        );
        let standing =
            tokio::task::spawn_blocking(move || super::export::target(&root, &relative, &name))
                .await
                .map_err(lost)?;
        match standing {
            Ok(super::export::Target::Missing) => {}
            Ok(super::export::Target::File) if !new_claim => {}
            Ok(_) => {
                return Err(CopyFailure::Retry(
                    "something Depot did not deploy for you stands there".into(),
                ))
            }
            Err(error) => return Err(CopyFailure::Retry(error.to_string())),
        }
        // The copy counts against the owner's quota while it is written,
        // then as the deployed file it became.
        if let Some(quota) = self.limits.user_quota_bytes {
            let size = row.size.unwrap_or(0).max(0) as u64;
            self.reserve(owner, quota, reservation, size, size)
                .await
                .map_err(|error| CopyFailure::Final(error.to_string()))?;
        }
        let copy = self
            .published_copy(sha256)
            .await
            .map_err(|error| CopyFailure::Retry(error.to_string()))?;
        let source = match self.blobs.blocking_reader(&copy).await {
            Ok(reader) => reader,
            Err(error) => {
                return Err(CopyFailure::Retry(format!(
                    "cannot read the image's bytes: {error}"
                )))
            }
        };
        let (root, relative, name) = (
            folder.root.clone(),
            folder.relative.clone(),
            row.name.clone(),
        );
        let (source, _stop_when_dropped) = Stoppable::new(source);
        // Laid only whole: the bytes its record says it has, no fewer, no more.
        let size = row.size.and_then(|size| u64::try_from(size).ok());
        let source: Box<dyn std::io::Read + Send> = match size {
            Some(size) => Box::new(super::export::exactly(source, size)),
            None => Box::new(source),
        };
        tokio::task::spawn_blocking(move || super::export::write(&root, &relative, &name, source))
            .await
            .map_err(lost)?
            .map_err(|error| CopyFailure::Retry(error.to_string()))
    }
}

/// A copy's source that fails once nobody waits for the copy: its job was
/// stopped (its lease lost: another server runs it now), and the blocking
/// copy, which an abort does not reach, ends too rather than write on
/// beside the new one. Its partial file is removed as after any failure.
struct Stoppable<R> {
    inner: R,
    stopped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Stops its [`Stoppable`] when dropped.
struct StopOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl<R> Stoppable<R> {
    fn new(inner: R) -> (Self, StopOnDrop) {
        let stopped = std::sync::Arc::default();
        let stop = StopOnDrop(std::sync::Arc::clone(&stopped));
        (Self { inner, stopped }, stop)
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl<R: std::io::Read> std::io::Read for Stoppable<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::other("the deployment was stopped"));
        }
        self.inner.read(buffer)
    }
}

/// Why a deployment's copy did not happen: worth another attempt, or not.
enum CopyFailure {
    Retry(String),
    Final(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy whose job stopped (nobody waits for it) reads no further.
    #[test]
    fn a_stopped_copy_reads_no_further() {
        use std::io::Read;
        let (mut source, stop) = Stoppable::new(&b"bytes"[..]);
        let mut first = [0u8; 2];
        assert_eq!(source.read(&mut first).unwrap(), 2);
        drop(stop);
        let error = source.read(&mut first).unwrap_err();
        assert_eq!(error.to_string(), "the deployment was stopped");
    }

    /// A top folder is one the root lists under exactly that name; below
    /// it, whatever the disk finds.
    #[test]
    fn a_top_folder_is_named_as_the_root_lists_it() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("alice/nested")).unwrap();
        let named = |relative: &str| top_named_exactly(root.path(), Path::new(relative)).unwrap();
        assert!(named("alice"));
        assert!(named("alice/nested"));
        assert!(named(""));
        for other in ["ALICE", "alice.", "alice ", "Alice/nested"] {
            assert!(!named(other), "{other}");
        }
    }

    #[test]
    fn only_file_locations_name_folders() {
        assert_eq!(file_folder("file:///srv/x"), Some(PathBuf::from("/srv/x")));
        assert_eq!(file_folder("https://openstack:5000"), None);
    }
}
