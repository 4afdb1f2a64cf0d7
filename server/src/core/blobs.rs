//! Bytes and the records that use them: attaching staged bytes to a record,
//! letting go of bytes no record uses, and collecting what a crash left.
//!
//! Both halves hold the blob's lock ([`crate::store::BlobLock`]) while they
//! touch the file and the records, so a delete and an upload of the same
//! bytes cannot interleave: the upload either finds the bytes published
//! under its lock, or publishes its own copy; the delete removes the file
//! only when, under the same lock, no record uses it.

use std::time::Duration;

use app::error::CoreError;
use chrono::{DateTime, Utc};

use super::{db_error, io_error, Core};
use crate::blob::Staged;
use crate::store::NewImage;

/// How a record takes staged bytes.
pub(super) enum Attach<'a> {
    /// A new record.
    Insert(&'a NewImage),
    /// An existing record whose file changed.
    Replace {
        id: i64,
        format: &'a str,
        virtual_size: Option<i64>,
        now: DateTime<Utc>,
    },
}

/// What the collector removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blobs that no record used (a crash between storing and recording).
    pub orphaned_blobs: usize,
    /// Temporary files of uploads that stopped.
    pub stale_uploads: usize,
    /// Expired quota reservations, tokens and the like.
    pub expired_rows: u64,
}

impl Core {
    /// Publishes staged bytes and records them, under the blob's lock;
    /// answers the record's id. Nothing is left behind on failure.
    pub(super) async fn attach_blob(
        &self,
        staged: Staged,
        attach: Attach<'_>,
    ) -> Result<i64, CoreError> {
        let sha256 = staged.sha256.clone();
        let size = staged.size as i64;
        let attached = async {
            let mut lock = self.db.lock_blob(&sha256).await.map_err(db_error)?;
            self.blobs.publish(staged).await.map_err(io_error)?;
            let id = match attach {
                Attach::Insert(new) => lock.insert_image(new).await.map_err(db_error)?,
                Attach::Replace {
                    id,
                    format,
                    virtual_size,
                    now,
                } => {
                    lock.set_image_content(id, size, format, virtual_size, now)
                        .await
                        .map_err(db_error)?;
                    id
                }
            };
            lock.commit().await.map_err(db_error)?;
            Ok(id)
        }
        .await;
        if attached.is_err() {
            self.release_blob(&sha256).await;
        }
        attached
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
        let mut lock = self.db.lock_blob(sha256).await.map_err(db_error)?;
        if lock.references().await.map_err(db_error)? > 0 {
            return Ok(false);
        }
        self.blobs.remove(sha256).await.map_err(io_error)?;
        lock.forget().await.map_err(db_error)?;
        lock.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Collects what crashes and stopped clients left: blobs on disk that
    /// no record uses and temporary upload files, each untouched for
    /// `grace`; and expired reservations and tokens.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<Collected, CoreError> {
        let mut collected = Collected {
            stale_uploads: self
                .blobs
                .discard_stale_uploads(grace)
                .await
                .map_err(io_error)?,
            ..Collected::default()
        };
        let used: std::collections::HashSet<String> = self
            .db
            .referenced_blobs()
            .await
            .map_err(db_error)?
            .into_iter()
            .collect();
        // The decision is taken again under each blob's lock: an upload may
        // have attached a record since the list was read.
        for sha256 in self.blobs.settled_blobs(grace).await.map_err(io_error)? {
            if !used.contains(&sha256) && self.try_release_blob(&sha256).await? {
                collected.orphaned_blobs += 1;
            }
        }
        let now = Utc::now();
        collected.expired_rows += self
            .db
            .delete_expired_reservations(now.timestamp_millis())
            .await
            .map_err(db_error)?;
        collected.expired_rows += self.purge_expired_tokens().await?;
        self.login_guard.shrink();
        if collected.orphaned_blobs > 0 || collected.stale_uploads > 0 {
            tracing::info!(
                orphaned_blobs = collected.orphaned_blobs,
                stale_uploads = collected.stale_uploads,
                "collected what interrupted uploads left"
            );
        }
        Ok(collected)
    }
}
