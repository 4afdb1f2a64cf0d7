//! A complete upload in `staging/`, waiting to be published; deleted when
//! dropped unpublished.
//!
//! Its age cannot tell the collector whether it is still wanted: S3 dates
//! an object a multipart upload made from the upload's start (AWS says so,
//! and Garage does the same), so an upload that took longer than the grace
//! period looked stale the moment it completed, and any server's collector
//! deleted it while it was being copied to its blob's key (minutes, past
//! 5 GiB; a resumable upload's parts staged again at its completion, each
//! time). So the marker of the upload that made it is kept, and rewritten,
//! until it is published or dropped; the collector leaves a staged object
//! alone while its marker is fresh, and removes both once the marker goes
//! stale (its server died).

use object_store::path::Path;
use object_store::{MultipartId, PutPayload};

use super::{discard_in_background, in_background, ObjectBlobs, HEARTBEAT};
use crate::blob::StagedBytes;

#[derive(Debug)]
pub(super) struct ObjectStaged {
    pub(super) store: ObjectBlobs,
    pub(super) key: Option<Path>,
    pub(super) size: u64,
    /// The marker of the multipart upload that made it (a single `PUT`'s
    /// object is dated when it is written: it has none).
    pub(super) marker: Option<KeptMarker>,
}

/// A marker rewritten every [`HEARTBEAT`] until dropped.
#[derive(Debug)]
pub(super) struct KeptMarker {
    path: Path,
    beating: tokio::task::JoinHandle<()>,
}

impl KeptMarker {
    /// Keeps the marker at `path`, which names `upload`, fresh.
    pub(super) fn keep(store: &ObjectBlobs, path: Path, upload: MultipartId) -> Self {
        let (bucket, at) = (store.bucket.clone(), path.clone());
        let beating = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if let Err(error) = bucket.put(&at, PutPayload::from(upload.clone())).await {
                    tracing::warn!(%error, "cannot keep a staged upload's marker fresh");
                }
            }
        });
        Self { path, beating }
    }

    /// Stops rewriting the marker, and deletes it.
    async fn remove(self, store: &ObjectBlobs) {
        self.beating.abort();
        if let Err(error) = store.delete(&self.path).await {
            tracing::warn!(%error, "cannot delete a staged upload's marker; the collector will");
        }
    }
}

impl Drop for KeptMarker {
    fn drop(&mut self) {
        self.beating.abort();
    }
}

#[async_trait::async_trait]
impl StagedBytes for ObjectStaged {
    /// A copy takes long (bytes too many to copy inside the store stream
    /// through this server; a store's own copy of a few GiB takes tens of
    /// seconds on some): they are copied to their blob's key now, outside
    /// its lock (on SQLite the database's write lock, which every write
    /// waits for), and [`ObjectStaged::publish`] then finds them there (or,
    /// if the blob was removed meanwhile, copies them again under it).
    async fn prepare(&mut self, sha256: &str) -> std::io::Result<()> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let destination = self.store.blob_key(sha256);
        self.store
            .copy_unless_there(key, &destination, self.size)
            .await
    }

    async fn publish(mut self: Box<Self>, sha256: &str) -> std::io::Result<()> {
        let Some(key) = self.key.take() else {
            return Err(std::io::Error::other("published twice"));
        };
        let destination = self.store.blob_key(sha256);
        if let Err(error) = self
            .store
            .copy_unless_there(&key, &destination, self.size)
            .await
        {
            self.key = Some(key); // Dropping deletes the staged copy.
            return Err(error);
        }
        if let Err(error) = self.store.delete(&key).await {
            tracing::warn!(%error, "cannot delete a published upload's staged copy");
            // Its marker goes stale, and the collector deletes both.
            return Ok(());
        }
        if let Some(marker) = self.marker.take() {
            marker.remove(&self.store).await;
        }
        Ok(())
    }
}

impl Drop for ObjectStaged {
    fn drop(&mut self) {
        match (self.key.take(), self.marker.take()) {
            (Some(key), None) => {
                discard_in_background(&self.store, key, "an upload; the collector will")
            }
            (Some(key), Some(marker)) => {
                let store = self.store.clone();
                in_background(async move {
                    match store.delete(&key).await {
                        Ok(()) => marker.remove(&store).await,
                        // The marker goes stale, and the collector deletes both.
                        Err(error) => tracing::warn!(%error, "cannot discard an upload"),
                    }
                });
            }
            // Published, or its staged copy could not be deleted: a marker
            // left stops being rewritten, and the collector takes both.
            (None, _) => {}
        }
    }
}
