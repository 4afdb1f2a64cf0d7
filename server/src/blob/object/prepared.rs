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
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::PutPayload;

use super::{in_background, ObjectBlobs, HEARTBEAT};
use crate::blob::{BlobKey, GARBAGE_GRACE};

/// What a copy's marker is called, before the copy's file name.
pub(super) const COPY_MARKER: &str = "copy-";

/// How long a copy's marker may go unwritten (its store not answering)
/// before the copy is not trusted any more: a collector may take a marker
/// older than [`GARBAGE_GRACE`] (by its own clock) for a dead server's, and
/// the copy with it, its removal maybe still on its way. Half of that
/// leaves the other half for the clocks to differ. A collection given a
/// shorter grace (the tests') is not held to this.
const LAPSES_AFTER: Duration = Duration::from_secs(GARBAGE_GRACE.as_secs() / 2);

#[derive(Debug)]
pub(super) struct PreparedCopy {
    pub(super) key: BlobKey,
    store: ObjectBlobs,
    marker: Path,
    /// When the last write of the marker that the store took was sent (the
    /// wall clock's, which runs on while the machine sleeps).
    written: Arc<Mutex<SystemTime>>,
    /// Until named: dropped, it discards the copy and its marker.
    heartbeat: Option<Heartbeat>,
}

/// The task that rewrites a marker, and how to stop it between two writes.
#[derive(Debug)]
struct Heartbeat {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Stops it, once the write in flight, if any, has had its answer: a
    /// write cut off mid-way could still land after the marker's deletion,
    /// and make it again.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

impl ObjectBlobs {
    /// The marker that registers the copy `key` while it is being made and
    /// published.
    pub(super) fn copy_marker(&self, key: &BlobKey) -> Path {
        self.area("uploading")
            .child(format!("{COPY_MARKER}{}", key.file_name()))
    }

    /// The file names of the copies registered as being made and published
    /// (see the module's comment).
    pub(super) async fn marked_copies(&self) -> io::Result<std::collections::HashSet<String>> {
        let markers: Vec<object_store::ObjectMeta> = self
            .bucket
            .list(Some(&self.area("uploading")))
            .try_collect()
            .await
            .map_err(super::io_error)?;
        Ok(markers
            .iter()
            .filter_map(|meta| meta.location.filename())
            .filter_map(|name| name.strip_prefix(COPY_MARKER))
            .map(str::to_owned)
            .collect())
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
        let sent = SystemTime::now();
        store
            .bucket
            .put(&marker, PutPayload::from_static(b"copy"))
            .await
            .map_err(super::io_error)?;
        let written = Arc::new(Mutex::new(sent));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(keep_fresh(
            store.clone(),
            marker.clone(),
            written.clone(),
            stopped,
            HEARTBEAT,
        ));
        // From here on, dropped (the copy failing, or the request's future
        // dropped mid-way) discards the copy and its marker.
        let prepared = Self {
            key,
            store: store.clone(),
            marker,
            written,
            heartbeat: Some(Heartbeat { stop, task }),
        };
        store
            .copy(from, &store.blob_key(&prepared.key), size)
            .await?;
        Ok(prepared)
    }

    /// Whether it can still be named: its marker written within
    /// [`LAPSES_AFTER`] and still there (a collector removes a stale one
    /// before it takes the copy), and the copy there.
    pub(super) async fn is_held(&self) -> io::Result<bool> {
        let written = *self.written.lock().unwrap_or_else(PoisonError::into_inner);
        let fresh = written.elapsed().is_ok_and(|since| since < LAPSES_AFTER);
        Ok(fresh
            && self.store.is_there(&self.marker).await?
            && self.store.is_there(&self.store.blob_key(&self.key)).await?)
    }

    /// It is being named, under the blob's lock: its marker goes (the lock
    /// keeps collectors off it until the name is committed, or it is not and
    /// the copy is nobody's). The heartbeat is not waited for, under the
    /// lock: a write of it still in flight may make the marker again, which
    /// only keeps collectors off the copy until the marker goes stale.
    pub(super) async fn named(mut self) -> BlobKey {
        if let Some(heartbeat) = &self.heartbeat {
            heartbeat.task.abort();
        }
        if let Err(error) = self.store.delete(&self.marker).await {
            tracing::warn!(%error, "cannot delete a copy's marker; the collector will");
        }
        // Only now: cut off before this, it is discarded when dropped.
        self.heartbeat = None;
        self.key.clone()
    }
}

impl Drop for PreparedCopy {
    /// Not named: it never will be. The copy goes, then its marker.
    fn drop(&mut self) {
        let Some(heartbeat) = self.heartbeat.take() else {
            return;
        };
        let (store, marker) = (self.store.clone(), self.marker.clone());
        let copy = store.blob_key(&self.key);
        in_background(async move {
            heartbeat.stop().await;
            if let Err(error) = store.delete(&copy).await {
                // The marker goes stale, and the copy then is one no row
                // names, for the collector.
                tracing::warn!(%error, "cannot discard an unused copy");
                return;
            }
            if let Err(error) = store.delete(&marker).await {
                tracing::warn!(%error, "cannot delete a copy's marker; the collector will");
            }
        });
    }
}

/// Rewrites `marker` `every` [`HEARTBEAT`], noting in `written` when each
/// write the store took began, until told to stop (only between two
/// writes), or the marker is found gone (a collector took it for a dead
/// server's, and writing it again would hide that), or it lapsed: once
/// [`PreparedCopy::is_held`] refuses the copy, nothing may make it look
/// held again.
async fn keep_fresh(
    store: ObjectBlobs,
    marker: Path,
    written: Arc<Mutex<SystemTime>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    every: Duration,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = &mut stopped => return,
        }
        let begun = SystemTime::now();
        let last = *written.lock().unwrap_or_else(PoisonError::into_inner);
        if begun
            .duration_since(last)
            .map_or(true, |since| since >= LAPSES_AFTER)
        {
            return;
        }
        match store.is_there(&marker).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot keep a copy's marker fresh");
                continue;
            }
        }
        match store
            .bucket
            .put(&marker, PutPayload::from_static(b"copy"))
            .await
        {
            Ok(_) => *written.lock().unwrap_or_else(PoisonError::into_inner) = begun,
            Err(error) => tracing::warn!(%error, "cannot keep a copy's marker fresh"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStore;

    /// The heartbeat keeps a marker written; once it went half an hour
    /// unwritten (the store not answering), the copy is not held, and the
    /// heartbeat does not make it look held again.
    #[tokio::test]
    async fn a_lapsed_copy_is_never_held_again() {
        let bucket = Arc::new(InMemory::new());
        let store = ObjectBlobs::new(bucket.clone(), "depot");
        let from = Path::from("depot/staging/upload");
        bucket.put(&from, "bytes".into()).await.unwrap();
        let sha256 = "ab".repeat(32);
        let prepared = PreparedCopy::make(&store, &from, 5, &sha256).await.unwrap();
        assert!(prepared.is_held().await.unwrap());
        let beat = |written: SystemTime| {
            let written = Arc::new(Mutex::new(written));
            let (stop, stopped) = tokio::sync::oneshot::channel();
            let every = Duration::from_millis(5);
            let marker = prepared.marker.clone();
            let task = tokio::spawn(keep_fresh(
                store.clone(),
                marker,
                written.clone(),
                stopped,
                every,
            ));
            (written, stop, task)
        };
        let begun = SystemTime::now();
        let (written, stop, task) = beat(begun);
        // However busy the machine, within a while.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while *written.lock().unwrap() <= begun {
            let late = tokio::time::Instant::now() > deadline;
            assert!(!late, "the heartbeat never wrote the marker");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(()).unwrap();
        task.await.unwrap();

        let long_ago = SystemTime::now() - LAPSES_AFTER;
        *prepared.written.lock().unwrap() = long_ago;
        assert!(!prepared.is_held().await.unwrap(), "lapsed");
        let (written, _stop, task) = beat(long_ago);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("a lapsed heartbeat stops")
            .unwrap();
        assert_eq!(
            *written.lock().unwrap(),
            long_ago,
            "written again after its lapse"
        );
    }
}
