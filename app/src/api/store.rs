//! The personal store in the browser: its folders and files, and the syncs
//! that turn them into images; the same core functions as WebDAV and VSS's
//! `/v2/user/image/*` sync requests.

use leptos::prelude::*;

use crate::error::CoreError;
use crate::model::{StoreListing, SyncInfo};

/// One folder of the viewer's store (`""` is its root).
#[server(prefix = "/api/ui", endpoint = "store")]
pub async fn list_store(path: String) -> Result<StoreListing, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.list_store(&viewer, &path).await)
}

/// Makes a folder `name` inside the folder `path`.
#[server(prefix = "/api/ui", endpoint = "store/folder")]
pub async fn make_store_folder(path: String, name: String) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.make_store_folder(&viewer, &path, &name).await)
}

/// Deletes a file, or an empty folder.
#[server(prefix = "/api/ui", endpoint = "store/delete")]
pub async fn delete_store_entry(path: String) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.delete_store_entry(&viewer, &path).await)
}

/// Submits a sync of the store's VM images (`VM`) or ISOs (`ISO`).
#[server(prefix = "/api/ui", endpoint = "store/sync")]
pub async fn sync_store(kind: String) -> Result<SyncInfo, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.sync_store(&viewer, &kind).await)
}

/// The viewer's latest sync requests, newest first.
#[server(prefix = "/api/ui", endpoint = "store/syncs")]
pub async fn recent_syncs() -> Result<Vec<SyncInfo>, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.recent_syncs(&viewer).await)
}
