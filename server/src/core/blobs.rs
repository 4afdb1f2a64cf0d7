//! Bytes and the records that use them: attaching staged bytes to a record,
//! letting go of bytes no record uses, and collecting what a crash left.
//!
//! Both halves hold the blob's lock ([`crate::store::BlobLock`]) while they
//! touch the records, so a delete and an upload of the same bytes cannot
//! interleave: the upload either finds the copy the blob's row names under
//! its lock, or publishes its own under a new generation and names that;
//! the delete forgets the row only when, under the same lock, no record
//! uses it, and removes the copy the row named once that is committed. A
//! copy no row names is never named again ([`crate::blob::BlobKey`]), so a
//! removal that lands late, on an object store that timed out, takes
//! nothing a record reads.

use std::time::Duration;

use app::error::CoreError;
use chrono::{DateTime, Utc};

use super::image_cap::too_many_images;
use super::inspect::Inspection;
use super::resumable::Completion;
use super::{db_error, io_error, Core, ReservationKeeper};
use crate::blob::{BlobKey, LongCopy, Publication, Staged};
use crate::store::{BlobLock, NewContent, NewImage};

/// How many times an upload's bytes are prepared ([`Staged::prepare`])
/// before the last one publishes them whatever copy that takes under the
/// blob's lock: each time but the last, bytes whose preparation no longer
/// serves are given back and the lock let go. The second makes a copy of
/// their own, which serves unless it lapses (a server paused half an hour).
const PREPARATIONS: u32 = 3;

/// How a record takes staged bytes.
pub(super) enum Attach<'a> {
    /// A new record.
    Insert(&'a NewImage),
    /// An existing record whose file changed, if it still has the bytes
    /// (digest) it `replaces`: two changes that began from the same bytes
    /// do not both land.
    Replace {
        id: i64,
        replaces: Option<&'a str>,
        /// Whether an administrator asks: else a record published since
        /// the change began keeps its bytes.
        by_admin: bool,
        inspection: &'a Inspection,
        now: DateTime<Utc>,
    },
}

/// What else lands with a record, in the transaction that records it.
pub(super) enum Landing<'a> {
    Alone,
    /// The personal-store source (see [`super::sync::Source`]) of a sync's
    /// copy.
    SyncedFrom(&'a str),
    /// The resumable upload the bytes complete, under this server's claim:
    /// if another server took the completion over, nothing lands here, so an
    /// upload never makes two images.
    Completing(&'a Completion),
}

/// What the collector removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Copies of blobs that no record read (a crash between storing and
    /// recording, or between forgetting and removing).
    pub orphaned_blobs: usize,
    /// Temporary files of uploads that stopped.
    pub stale_uploads: usize,
    /// Expired quota reservations, tokens and the like.
    pub expired_rows: u64,
}

impl Core {
    /// Publishes staged bytes and records them, with what `landing` says,
    /// under the blob's lock, letting go of the quota reservation `lets_go`
    /// that held their room in the same commit; answers the record's id.
    /// Nothing is left behind on failure, the reservation included.
    pub(super) async fn attach_blob(
        &self,
        mut staged: Staged,
        attach: Attach<'_>,
        landing: Landing<'_>,
        lets_go: Option<i64>,
    ) -> Result<i64, CoreError> {
        let sha256 = staged.sha256.clone();
        let size = staged.size as i64;
        // The copy this upload published, to remove if it lands nowhere.
        let mut published = None;
        // The reservation holding the bytes' room is renewed while they are
        // published and recorded: in an object store, the making of their
        // copy (streamed through the server past 5 GiB) can outlast it.
        let keeper = ReservationKeeper::new(self, lets_go);
        let attached = async {
            let mut preparations = 0;
            let (mut lock, current, copy) = loop {
                // After a give-back, bytes are prepared counting on no copy
                // of the blob's: theirs is made before the lock whatever
                // happens to the blob's meanwhile, so that no one deleting
                // and uploading the same bytes again can make the last try
                // copy under the lock; only a copy of theirs left lapsing
                // gets there.
                let likely = match preparations {
                    0 => self.db.blob_generation(&sha256).await.map_err(db_error)?,
                    _ => None,
                };
                staged.prepare(likely.as_deref()).await.map_err(io_error)?;
                let lock = self.db.lock_blob(&sha256).await.map_err(db_error)?;
                let current = lock.generation().map(str::to_owned);
                preparations += 1;
                let long = if preparations < PREPARATIONS {
                    LongCopy::GiveBack
                } else {
                    LongCopy::Make
                };
                match staged
                    .publish_prepared(current.as_deref(), long)
                    .await
                    .map_err(io_error)?
                {
                    Publication::Published(copy) => break (lock, current, copy),
                    // What was prepared no longer serves (the blob's copy
                    // it counted on was removed meanwhile, or the copy it
                    // made lapsed): the lock goes (its transaction rolled
                    // back) while the bytes are prepared again.
                    Publication::Unprepared(back) => {
                        tracing::info!(%sha256, preparations, "staged bytes to prepare again");
                        staged = back;
                    }
                }
            };
            if current.as_deref() != Some(copy.generation.as_str()) {
                published = Some(copy.clone());
                lock.set_generation(&copy.generation)
                    .await
                    .map_err(db_error)?;
            }
            let id = match attach {
                Attach::Insert(new) => lock
                    .insert_image(new)
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| too_many_images(new.owner_images_at_most))?,
                Attach::Replace {
                    id,
                    replaces,
                    by_admin,
                    inspection,
                    now,
                } => {
                    let attributes = inspection.attributes();
                    let content = NewContent {
                        size,
                        format: inspection.format.as_str(),
                        virtual_size: inspection.virtual_size,
                        inspection: &attributes,
                        guest_os: inspection.guest_os(),
                        now,
                        replaces,
                        published_too: by_admin,
                    };
                    let replaced = lock
                        .set_image_content(id, &content)
                        .await
                        .map_err(db_error)?;
                    if !replaced {
                        return Err(CoreError::Conflict(format!(
                            "image {id} changed, was published or went while its new bytes \
                             were stored; nothing was replaced"
                        )));
                    }
                    id
                }
            };
            match landing {
                Landing::Alone => {}
                Landing::SyncedFrom(source) => {
                    lock.set_synced_from(id, source).await.map_err(db_error)?
                }
                Landing::Completing(completion) => {
                    let upload = &completion.upload;
                    let claimed_at = completion.claimed_at;
                    if !lock
                        .finish_upload(upload, id, claimed_at)
                        .await
                        .map_err(db_error)?
                    {
                        return Err(completion.taken_over());
                    }
                }
            }
            if let Some(reservation) = lets_go {
                lock.release_quota(reservation).await.map_err(db_error)?;
            }
            lock.commit().await.map_err(db_error)?;
            Ok(id)
        };
        let attached = keeper.during(attached).await;
        if attached.is_err() {
            // Its copy if it made one (the row may still name it, if the
            // commit's answer was lost), else whatever copy the row names,
            // if no record uses it.
            match published {
                Some(copy) => self.collect_blob_quietly(&copy).await,
                None => self.release_blob(&sha256).await,
            }
            if let Some(reservation) = lets_go {
                if let Err(error) = self.db.release_quota(reservation).await {
                    tracing::warn!(%error, "cannot release a quota reservation; it will expire");
                }
            }
        }
        attached
    }

    /// The copy of the blob of `sha256` its records read. A row that names
    /// none is one from before generations: the copy under the digest alone.
    pub(super) async fn published_copy(&self, sha256: &str) -> Result<BlobKey, CoreError> {
        let generation = self.db.blob_generation(sha256).await.map_err(db_error)?;
        Ok(BlobKey::new(sha256, &generation.unwrap_or_default()))
    }

    /// Removes bytes that no record uses any more. A failure only leaves
    /// them orphaned (the collector takes them later), so it is logged, not
    /// answered.
    pub(super) async fn release_blob(&self, sha256: &str) {
        if let Err(error) = self.try_release_blob(sha256).await {
            tracing::warn!(%error, "cannot release a blob; the collector will");
        }
    }

    /// Removes the blob if no record uses it; answers whether it did.
    async fn try_release_blob(&self, sha256: &str) -> Result<bool, CoreError> {
        let lock = self.db.lock_blob(sha256).await.map_err(db_error)?;
        let Some(generation) = lock.generation().map(str::to_owned) else {
            return Ok(false); // No row named a copy: nothing to remove.
        };
        if !forget_if_unused(lock).await? {
            return Ok(false);
        }
        // Only once no row names the copy: see the module's comment.
        let copy = BlobKey::new(sha256, &generation);
        self.blobs.remove(&copy).await.map_err(io_error)?;
        Ok(true)
    }

    /// [`Core::try_collect_blob`], a failure logged.
    async fn collect_blob_quietly(&self, copy: &BlobKey) {
        if let Err(error) = self.try_collect_blob(copy).await {
            tracing::warn!(%error, "cannot remove an unused copy of a blob; the collector will");
        }
    }

    /// Removes this copy of a blob unless a record reads it; answers whether
    /// it did.
    async fn try_collect_blob(&self, copy: &BlobKey) -> Result<bool, CoreError> {
        let mut lock = self.db.lock_blob(&copy.sha256).await.map_err(db_error)?;
        match lock.generation() {
            Some(named) if named == copy.generation => {
                if !forget_if_unused(lock).await? {
                    return Ok(false);
                }
            }
            // Another copy is the blob's: this one is nobody's, and never
            // will be.
            Some(_) => drop(lock),
            None => {
                // Records of a digest with no row (a database restored from
                // before it was made): this copy is the one they read now.
                if lock.references().await.map_err(db_error)? > 0 {
                    lock.set_generation(&copy.generation)
                        .await
                        .map_err(db_error)?;
                    lock.commit().await.map_err(db_error)?;
                    return Ok(false);
                }
                drop(lock); // The row the lock made goes with it.
            }
        }
        self.blobs.remove(copy).await.map_err(io_error)?;
        Ok(true)
    }

    /// Collects what crashes and stopped clients left: blobs on disk that
    /// no record uses and temporary upload files, each untouched for
    /// `grace`; and expired reservations and tokens.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<Collected, CoreError> {
        // Each step runs whatever the others did: one blob that cannot be
        // removed must not stop tokens from expiring.
        let mut collected = Collected::default();
        let mut first_error = None;
        let mut note = |error: CoreError| {
            tracing::warn!(%error, "a garbage collection step failed");
            first_error.get_or_insert(error);
        };
        // The uploads a chunk is arriving for here, renewed and then left
        // alone: one list, so that what is left is what was renewed.
        let busy = self.writers.busy();
        if let Err(error) = self.renew_uploads_in_flight(&busy).await {
            note(error);
        }
        match self.blobs.discard_stale_uploads(grace).await {
            Ok(count) => collected.stale_uploads = count,
            Err(error) => note(io_error(error)),
        }
        match self.db.referenced_blobs().await {
            Ok(used) => {
                let used: std::collections::HashSet<BlobKey> = used
                    .into_iter()
                    .map(|(sha256, generation)| BlobKey { sha256, generation })
                    .collect();
                match self.blobs.settled_blobs(grace).await {
                    // The decision is taken again under each blob's lock: an
                    // upload may have attached a record since the list was read.
                    Ok(settled) => {
                        for copy in settled.into_iter().filter(|copy| !used.contains(copy)) {
                            match self.try_collect_blob(&copy).await {
                                Ok(true) => collected.orphaned_blobs += 1,
                                Ok(false) => {}
                                Err(error) => note(error),
                            }
                        }
                    }
                    Err(error) => note(io_error(error)),
                }
            }
            Err(error) => note(db_error(error)),
        }
        match self
            .db
            .delete_expired_reservations(Utc::now().timestamp_millis())
            .await
        {
            Ok(count) => collected.expired_rows += count,
            Err(error) => note(db_error(error)),
        }
        match self.collect_expired_uploads(grace, &busy).await {
            Ok(count) => collected.expired_rows += count as u64,
            Err(error) => note(error),
        }
        match self.purge_expired_tokens().await {
            Ok(count) => collected.expired_rows += count,
            Err(error) => note(error),
        }
        self.login_guard.shrink();
        if collected.orphaned_blobs > 0 || collected.stale_uploads > 0 {
            tracing::info!(
                orphaned_blobs = collected.orphaned_blobs,
                stale_uploads = collected.stale_uploads,
                "collected what interrupted uploads left"
            );
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(collected),
        }
    }
}

/// Forgets the blob's row and commits, unless a record reads it: answers
/// whether it did (the copy the row named is then nobody's, to remove).
async fn forget_if_unused(mut lock: BlobLock) -> Result<bool, CoreError> {
    if lock.references().await.map_err(db_error)? > 0 {
        return Ok(false);
    }
    lock.forget().await.map_err(db_error)?;
    lock.commit().await.map_err(db_error)?;
    Ok(true)
}

#[cfg(test)]
mod tests;
