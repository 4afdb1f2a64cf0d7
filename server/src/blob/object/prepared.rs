//! A copy of staged bytes made under a new generation of their blob before
//! the blob's lock is taken (a copy of many GiB takes minutes, too long to
//! hold the lock: on SQLite every write waits for it, and PostgreSQL ends a
//! transaction left idle for 15), and published under it by naming it.
//!
//! Until a row names it, nothing in the database says it is wanted, and its
//! date cannot either: S3 dates an object a multipart upload made from the
//! upload's start, so a copy streamed through the server for over an hour
//! looks settled the moment it is complete. So it is registered before it
//! is made: a marker `uploading/copy-<its file name>`, rewritten every
//! [`HEARTBEAT`] while its server holds it, keeps every collector's hands
//! off it ([`ObjectBlobs::marked_copies`]); a marker its server stopped
//! rewriting (it died) goes stale, is removed, and the copy is then one no
//! row names, which the collector removes under the blob's lock.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::PutPayload;

use super::{discard_in_background, in_background, ObjectBlobs, HEARTBEAT};
use crate::blob::{BlobKey, GARBAGE_GRACE};

/// What a copy's marker is called, before the copy's file name.
pub(super) const COPY_MARKER: &str = "copy-";

/// How long a copy's marker may go unwritten (its store not answering)
/// before the copy is not trusted any more: a collector may take a marker
/// older than [`GARBAGE_GRACE`] for a dead server's, and the copy with it,
/// its removal maybe still on its way. Half of that leaves the other half
/// for the clocks to differ.
const LAPSES_AFTER: Duration = Duration::from_secs(GARBAGE_GRACE.as_secs() / 2);

#[derive(Debug)]
pub(super) struct PreparedCopy {
    pub(super) key: BlobKey,
    marker: Path,
    /// Set once the marker went [`LAPSES_AFTER`] unwritten.
    lapsed: Arc<AtomicBool>,
    beating: tokio::task::JoinHandle<()>,
}

impl ObjectBlobs {
    /// The marker that registers the copy `key` while it is being made and
    /// published.
    pub(super) fn copy_marker(&self, key: &BlobKey) -> Path {
        self.area("uploading")
            .child(format!("{COPY_MARKER}{}", key.file_name()))
    }
}

impl PreparedCopy {
    /// Registers a new copy of the blob of `sha256`, then copies object
    /// `from`, of `size` bytes, to it.
    pub(super) async fn make(
        store: &ObjectBlobs,
        from: &Path,
        size: u64,
        sha256: &str,
    ) -> io::Result<Self> {
        let key = BlobKey::fresh(sha256);
        let marker = store.copy_marker(&key);
        store
            .bucket
            .put(&marker, PutPayload::from_static(b"copy"))
            .await
            .map_err(super::io_error)?;
        let lapsed = Arc::new(AtomicBool::new(false));
        let beating = tokio::spawn(keep_fresh(store.clone(), marker.clone(), lapsed.clone()));
        let prepared = Self {
            key,
            marker,
            lapsed,
            beating,
        };
        let destination = store.blob_key(&prepared.key);
        if let Err(error) = store.copy(from, &destination, size).await {
            prepared.discard(store);
            return Err(error);
        }
        Ok(prepared)
    }

    /// Whether it can still be named: its marker kept without a lapse, and
    /// the copy there.
    pub(super) async fn is_held(&self, store: &ObjectBlobs) -> io::Result<bool> {
        Ok(!self.lapsed.load(Ordering::Relaxed)
            && store.is_there(&store.blob_key(&self.key)).await?)
    }

    /// It is being named, under the blob's lock: its marker goes (the lock
    /// keeps collectors off it until the name is committed, or it is not and
    /// the copy is nobody's).
    pub(super) async fn named(self, store: &ObjectBlobs) -> BlobKey {
        self.beating.abort();
        if let Err(error) = store.delete(&self.marker).await {
            tracing::warn!(%error, "cannot delete a copy's marker; the collector will");
        }
        self.key.clone()
    }

    /// It will never be named: the copy goes, then its marker.
    pub(super) fn discard(self, store: &ObjectBlobs) {
        self.beating.abort();
        let (store, copy, marker) = (
            store.clone(),
            store.blob_key(&self.key),
            self.marker.clone(),
        );
        in_background(async move {
            match store.delete(&copy).await {
                Ok(()) => {
                    discard_in_background(&store, marker, "a copy's marker; the collector will")
                }
                // The marker goes stale, and the copy then is one no row
                // names, for the collector.
                Err(error) => tracing::warn!(%error, "cannot discard an unused copy"),
            }
        });
    }
}

impl Drop for PreparedCopy {
    fn drop(&mut self) {
        self.beating.abort();
    }
}

/// Rewrites `marker` every [`HEARTBEAT`]; sets `lapsed` once it went
/// [`LAPSES_AFTER`] without being written.
async fn keep_fresh(store: ObjectBlobs, marker: Path, lapsed: Arc<AtomicBool>) {
    let mut written = Instant::now();
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        match store
            .bucket
            .put(&marker, PutPayload::from_static(b"copy"))
            .await
        {
            Ok(_) => written = Instant::now(),
            Err(error) => tracing::warn!(%error, "cannot keep a copy's marker fresh"),
        }
        if written.elapsed() >= LAPSES_AFTER {
            lapsed.store(true, Ordering::Relaxed);
        }
    }
}
