//! The personal store's files as the browser's file view reaches them:
//! list a folder, make one, delete a file or an empty folder. WebDAV
//! (`web/store.rs`) is the other way in; both stay inside the user's own
//! folder. Store files count against the quota by being there, so nothing
//! here keeps books.

use std::io::ErrorKind;
use std::path::PathBuf;

use app::error::CoreError;
use app::model::{Principal, StoreEntry, StoreListing, StorePath, SyncInfo, Viewer};
use chrono::{DateTime, Utc};

use super::sync::{SyncKind, SyncRequest};
use super::{io_error, Core};

/// The most entries one folder's listing shows.
pub const MAX_LISTING: usize = 10_000;

fn missing(path: &StorePath) -> CoreError {
    CoreError::not_found(format!("'{}' in your store", path.as_string()))
}

impl From<SyncRequest> for SyncInfo {
    fn from(request: SyncRequest) -> Self {
        SyncInfo {
            id: request.id,
            kind: request.kind,
            status: request.status,
            added: request.added,
            updated: request.updated,
            deleted: request.deleted,
            errors: request.errors,
            warnings: request.warnings,
            created_at: request.created_at,
            updated_at: request.updated_at,
        }
    }
}

impl Core {
    /// Where `path` is on disk, inside the user's store. A symbolic link on
    /// the way is refused, never followed (the store's own writers make
    /// none; one put there by hand must not lead outside).
    fn store_file(&self, user_id: i64, path: &StorePath) -> Result<PathBuf, CoreError> {
        let mut resolved = self.personal_folder(user_id);
        for part in path.parts() {
            resolved.push(part);
            if std::fs::symlink_metadata(&resolved).is_ok_and(|meta| meta.file_type().is_symlink())
            {
                return Err(CoreError::invalid(format!(
                    "'{}' is a link, which Depot does not follow",
                    path.as_string()
                )));
            }
        }
        Ok(resolved)
    }

    /// One folder of the caller's store: folders first, then files, by name.
    pub async fn list_store(&self, viewer: &Viewer, raw: &str) -> Result<StoreListing, CoreError> {
        let user = viewer.require_user()?;
        let path = StorePath::parse(raw)?;
        let folder = self.store_file(user.id, &path)?;
        if path.is_root() {
            tokio::fs::create_dir_all(&folder).await.map_err(io_error)?;
        }
        let listed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<StoreEntry>> {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(&folder)?.take(MAX_LISTING) {
                let entry = entry?;
                // Names that are not text are not the user's (WebDAV writes text).
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let meta = entry.metadata()?;
                let kind = meta.file_type();
                if kind.is_symlink() || !(kind.is_file() || kind.is_dir()) {
                    continue;
                }
                entries.push(StoreEntry {
                    name,
                    folder: kind.is_dir(),
                    size: if kind.is_file() { meta.len() } else { 0 },
                    modified: meta.modified().ok().map(DateTime::<Utc>::from),
                });
            }
            entries.sort_by(|a, b| b.folder.cmp(&a.folder).then_with(|| a.name.cmp(&b.name)));
            Ok(entries)
        })
        .await
        .map_err(|_| CoreError::Internal)?;
        match listed {
            Ok(entries) => Ok(StoreListing {
                path: path.as_string(),
                entries,
            }),
            Err(error)
                if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
            {
                Err(missing(&path))
            }
            Err(error) => Err(io_error(error)),
        }
    }

    /// Whether `path` is a folder of the user's store: files are added only
    /// to one that exists.
    pub async fn check_store_folder(
        &self,
        user: &Principal,
        path: &StorePath,
    ) -> Result<(), CoreError> {
        let folder = self.store_file(user.id, path)?;
        if path.is_root() {
            tokio::fs::create_dir_all(&folder).await.map_err(io_error)?;
        }
        match tokio::fs::metadata(&folder).await {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(missing(path)),
            Err(error)
                if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
            {
                Err(missing(path))
            }
            Err(error) => Err(io_error(error)),
        }
    }

    /// Makes a folder `name` inside the folder `raw` of the caller's store.
    pub async fn make_store_folder(
        &self,
        viewer: &Viewer,
        raw: &str,
        name: &str,
    ) -> Result<(), CoreError> {
        let user = viewer.require_user()?;
        let path = StorePath::parse(raw)?.join(name.trim())?;
        let folder = self.store_file(user.id, &path)?;
        match tokio::fs::create_dir(&folder).await {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::AlreadyExists => Err(CoreError::Conflict(
                format!("'{}' already exists", path.as_string()),
            )),
            Err(error)
                if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
            {
                Err(missing(&path.parent().unwrap_or(path)))
            }
            Err(error) => Err(io_error(error)),
        }
    }

    /// Deletes a file, or a folder once it is empty, from the caller's store.
    /// The images synced from a file stay until the next sync.
    pub async fn delete_store_entry(&self, viewer: &Viewer, raw: &str) -> Result<(), CoreError> {
        let user = viewer.require_user()?;
        let path = StorePath::parse(raw)?;
        if path.is_root() {
            return Err(CoreError::invalid("the store itself cannot be deleted"));
        }
        let target = self.store_file(user.id, &path)?;
        let meta = match tokio::fs::symlink_metadata(&target).await {
            Ok(meta) => meta,
            Err(error)
                if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
            {
                return Err(missing(&path))
            }
            Err(error) => return Err(io_error(error)),
        };
        let removed = if meta.is_dir() {
            tokio::fs::remove_dir(&target).await
        } else {
            tokio::fs::remove_file(&target).await
        };
        match removed {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == ErrorKind::DirectoryNotEmpty => Err(CoreError::invalid(
                format!("the folder '{}' is not empty", path.as_string()),
            )),
            Err(error) if error.kind() == ErrorKind::NotFound => Err(missing(&path)),
            Err(error) => Err(io_error(error)),
        }
    }

    /// Submits a sync of the caller's store for `kind` (`VM` or `ISO`).
    pub async fn sync_store(&self, viewer: &Viewer, kind: &str) -> Result<SyncInfo, CoreError> {
        let kind = SyncKind::parse(kind)
            .ok_or_else(|| CoreError::invalid("a sync is of VM images or ISOs"))?;
        self.submit_sync(viewer, kind).await.map(SyncInfo::from)
    }

    /// The caller's latest sync requests, newest first.
    pub async fn recent_syncs(
        &self,
        viewer: &Viewer,
        limit: u64,
    ) -> Result<Vec<SyncInfo>, CoreError> {
        let (requests, _) = self.list_sync_requests(viewer, None, limit, 0).await?;
        Ok(requests.into_iter().map(SyncInfo::from).collect())
    }
}
