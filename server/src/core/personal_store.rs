//! The personal store's files as the browser's file view reaches them:
//! list a folder, make one, delete a file or an empty folder. WebDAV
//! (`web/store.rs`) is the other way in; both stay inside the user's own
//! folder. Store files count against the quota by being there, so nothing
//! here keeps books of bytes; a new folder is admitted against the cap on
//! entries (`store_entries.rs`).

use app::error::CoreError;
use app::model::{Principal, StoreListing, StorePath, SyncInfo, Viewer};

use super::store_entries::NewEntry;
use super::sync::{SyncKind, SyncRequest};
use super::{io_error, Core};
use crate::personal::StoreError;

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

/// What a store's refusal means to the user.
fn store_error(path: &StorePath, error: StoreError) -> CoreError {
    match error {
        StoreError::NotFound => missing(path),
        StoreError::Exists => CoreError::Conflict(format!("'{}' already exists", path.as_string())),
        StoreError::NotEmpty => {
            CoreError::invalid(format!("the folder '{}' is not empty", path.as_string()))
        }
        StoreError::Link => CoreError::invalid(format!(
            "'{}' is a link, which Depot does not follow",
            path.as_string()
        )),
        StoreError::Io(error) => io_error(error),
    }
}

impl Core {
    /// One folder of the caller's store: folders first, then files, by name.
    pub async fn list_store(&self, viewer: &Viewer, raw: &str) -> Result<StoreListing, CoreError> {
        let user = viewer.require_user()?;
        let path = StorePath::parse(raw)?;
        let mut entries = self
            .personal
            .list(user.id, &path, MAX_LISTING)
            .await
            .map_err(|error| store_error(&path, error))?;
        entries.sort_by(|a, b| b.folder.cmp(&a.folder).then_with(|| a.name.cmp(&b.name)));
        Ok(StoreListing {
            path: path.as_string(),
            entries,
        })
    }

    /// Whether `path` is a folder of the user's store: files are added only
    /// to one that exists.
    pub async fn check_store_folder(
        &self,
        user: &Principal,
        path: &StorePath,
    ) -> Result<(), CoreError> {
        match self.personal.is_folder(user.id, path).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(missing(path)),
            Err(error) => Err(store_error(path, error)),
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
        let admission = self
            .admit_store_entry(user.id, path.parts().len(), NewEntry::New)
            .await?;
        match self.personal.make_folder(user.id, &path).await {
            Ok(()) => {
                admission.made();
                Ok(())
            }
            Err(StoreError::NotFound) => Err(missing(&path.parent().unwrap_or(path))),
            Err(error) => Err(store_error(&path, error)),
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
        self.personal
            .delete(user.id, &path)
            .await
            .map_err(|error| store_error(&path, error))?;
        self.store_entry_removed(user.id);
        Ok(())
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
