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

use super::prepared::PreparedCopy;
use super::{discard_in_background, in_background, ObjectBlobs, HEARTBEAT};
use crate::blob::{Backend, BlobKey, LongCopy, Publication, StagedBytes};

#[derive(Debug)]
pub(super) struct ObjectStaged {
    pub(super) store: ObjectBlobs,
    pub(super) key: Option<Path>,
    pub(super) size: u64,
    /// The marker of the multipart upload that made it (a single `PUT`'s
    /// object is dated when it is written: it has none).
    pub(super) marker: Option<KeptMarker>,
    /// The copy [`StagedBytes::prepare`] made under a new generation, not
    /// yet published; deleted if dropped so.
    pub(super) prepared: Option<PreparedCopy>,
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
    /// seconds on some): unless the blob's current copy is there, they are
    /// copied to a new generation of their blob now, outside its lock (see
    /// [`PreparedCopy`]), and [`ObjectStaged::publish`] then answers that
    /// one, unless the blob has a copy by then.
    async fn prepare(&mut self, sha256: &str, current: Option<&str>) -> std::io::Result<()> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        if self.prepared.is_some() || self.current_copy(sha256, current).await?.is_some() {
            return Ok(());
        }
        self.prepared = Some(PreparedCopy::make(&self.store, key, self.size, sha256).await?);
        Ok(())
    }

    async fn publish(
        mut self: Box<Self>,
        sha256: &str,
        current: Option<&str>,
        long: LongCopy,
    ) -> std::io::Result<Publication<Box<dyn StagedBytes>>> {
        let Some(key) = self.key.take() else {
            return Err(std::io::Error::other("published twice"));
        };
        let published = match self.published_copy(&key, sha256, current, long).await {
            Ok(Some(published)) => published,
            Ok(None) => {
                self.key = Some(key);
                return Ok(Publication::Unprepared(self));
            }
            Err(error) => {
                self.key = Some(key); // Dropping deletes the staged copy.
                return Err(error);
            }
        };
        if let Err(error) = self.store.delete(&key).await {
            tracing::warn!(%error, "cannot delete a published upload's staged copy");
            // Its marker goes stale, and the collector deletes both.
            return Ok(Publication::Published(published));
        }
        if let Some(marker) = self.marker.take() {
            marker.remove(&self.store).await;
        }
        Ok(Publication::Published(published))
    }
}

impl ObjectStaged {
    /// The blob's `current` copy, if it is there.
    async fn current_copy(
        &self,
        sha256: &str,
        current: Option<&str>,
    ) -> std::io::Result<Option<BlobKey>> {
        let Some(copy) = BlobKey::named(sha256, current) else {
            return Ok(None);
        };
        let there = self.store.exists(&copy).await?;
        Ok(there.then_some(copy))
    }

    /// The copy the bytes of staged object `key` are published as: the
    /// blob's current one if it is there (the one [`ObjectStaged::prepare`]
    /// made, if any, is deleted), else that one if it is still held (see
    /// [`PreparedCopy::is_held`]), else a new one, copied now unless `long`
    /// gives the bytes back (`None`): a copy takes long however large the
    /// bytes (a store's own copy of a few GiB takes tens of seconds on
    /// some, and past 5 GiB they stream through this server).
    async fn published_copy(
        &mut self,
        key: &Path,
        sha256: &str,
        current: Option<&str>,
        long: LongCopy,
    ) -> std::io::Result<Option<BlobKey>> {
        if let Some(kept) = self.current_copy(sha256, current).await? {
            if let Some(prepared) = self.prepared.take() {
                if prepared.key == kept {
                    return Ok(Some(prepared.named().await));
                }
                drop(prepared); // Discarded.
            }
            return Ok(Some(kept));
        }
        if let Some(prepared) = self.prepared.take() {
            match prepared.is_held().await {
                Ok(true) => return Ok(Some(prepared.named().await)),
                Ok(false) => drop(prepared), // Discarded.
                Err(error) => {
                    self.prepared = Some(prepared); // Dropping discards it.
                    return Err(error);
                }
            }
        }
        if long == LongCopy::GiveBack {
            return Ok(None);
        }
        let copy = BlobKey::fresh(sha256);
        let destination = self.store.blob_key(&copy);
        self.store.copy(key, &destination, self.size).await?;
        Ok(Some(copy))
    }
}

impl Drop for ObjectStaged {
    fn drop(&mut self) {
        // A copy made before the lock and never published: no row names its
        // generation, nor ever will; dropping it discards it.
        drop(self.prepared.take());
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
