//! Resumable uploads hashed and inspected while their chunks arrive. Each
//! chunk is kept as a part in the blob store (what makes it durable and
//! reachable from any server); on the server that received the upload from
//! its first byte, the same bytes also stream, as they arrive, through the
//! hash and the inspection of the one ingest path, on a task of their own.
//! Completion then only waits for that to end instead of reading the whole
//! file back. An upload resumed after a restart, on another server, or after
//! a chunk that was not taken whole, is read back from its parts at
//! completion: a live ingest only ever holds exactly the bytes the server
//! acknowledged, or it is dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::super::inspect;
use super::Digest;
use crate::blob::{BlobStore, IngestError, Limit};

/// Live ingests one server runs at once: each holds a hasher and an
/// inspector thread while its upload lasts. Past this, uploads are read
/// back at completion.
const MAX_LIVE: usize = 8;

/// A live ingest not fed for this long is dropped (its upload is read back
/// if it ever completes).
const IDLE: Duration = Duration::from_secs(600);

/// Pieces in flight between a chunk's request and the ingest.
const FEED_DEPTH: usize = 8;

/// One upload's ingest, fed so far with `fed` bytes.
struct Live {
    fed: u64,
    touched: Instant,
    feed: mpsc::Sender<Bytes>,
    ingest: Option<JoinHandle<Result<Digest, IngestError>>>,
    /// The server's count of live ingests, this one included.
    count: Arc<AtomicUsize>,
}

impl Drop for Live {
    /// An ingest given up on stops.
    fn drop(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            ingest.abort();
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// This server's live ingests, by upload id.
#[derive(Default)]
pub struct LiveIngests {
    running: Mutex<HashMap<String, Live>>,
    /// Every live ingest, parked here or lent to a request.
    count: Arc<AtomicUsize>,
}

/// A live ingest lent to one chunk's request.
pub(super) struct Lent {
    id: String,
    live: Live,
    fed: Arc<AtomicU64>,
    broken: Arc<AtomicBool>,
}

impl LiveIngests {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live ingest of upload `id` for a chunk at `offset`, if it has
    /// taken in exactly the bytes before it; a new one for a chunk at 0 if
    /// there is room. Taken out while the chunk arrives, so that no other
    /// request feeds it meanwhile.
    pub(super) fn lend(
        &self,
        blobs: &BlobStore,
        id: &str,
        offset: u64,
        length: u64,
    ) -> Option<Lent> {
        let mut running = self.running();
        running.retain(|_, live| live.touched.elapsed() < IDLE);
        let live = match running.remove(id) {
            Some(live) if live.fed == offset => live,
            // Out of step with the upload: of no use any more.
            Some(_) => return None,
            None if offset == 0 => {
                // Counted with the ones lent out, so that no burst of first
                // chunks gets past the bound.
                let taken = self.count.fetch_add(1, Ordering::AcqRel);
                if taken >= MAX_LIVE {
                    self.count.fetch_sub(1, Ordering::AcqRel);
                    return None;
                }
                start(blobs, length, self.count.clone())
            }
            None => return None,
        };
        Some(Lent {
            id: id.to_owned(),
            fed: Arc::new(AtomicU64::new(live.fed)),
            broken: Arc::new(AtomicBool::new(false)),
            live,
        })
    }

    /// Gives back a lent ingest once its chunk was taken, if it took in
    /// exactly the upload's bytes up to `received`; drops it otherwise.
    pub(super) fn give_back(&self, mut lent: Lent, received: u64) {
        let fed = lent.fed.load(Ordering::Acquire);
        if lent.broken.load(Ordering::Acquire) || fed != received {
            return;
        }
        lent.live.fed = fed;
        lent.live.touched = Instant::now();
        self.running().insert(lent.id, lent.live);
    }

    /// Ends the live ingest of an upload whose `length` bytes all arrived,
    /// and answers what it made of them; `None` if there is none (the
    /// upload is then read back from its parts).
    pub(super) async fn finish(&self, id: &str, length: u64) -> Option<Digest> {
        let mut live = self.running().remove(id)?;
        if live.fed != length {
            return None;
        }
        let ingest = live.ingest.take()?;
        drop(live); // Closes the feed: the ingest sees the end of the file.
        match ingest.await {
            Ok(Ok(ingested)) => Some(ingested),
            Ok(Err(error)) => {
                tracing::warn!(upload = id, %error, "a live ingest failed; reading the parts back");
                None
            }
            Err(error) => {
                tracing::warn!(upload = id, %error, "a live ingest stopped; reading the parts back");
                None
            }
        }
    }

    /// Drops an upload's live ingest (the upload is gone).
    pub(super) fn forget(&self, id: &str) {
        let live = self.running().remove(id);
        drop(live);
    }

    /// Drops the live ingests not fed for a while (an upload abandoned, or
    /// carried on by another server); answers how many.
    pub(super) fn drop_idle(&self) -> usize {
        let mut running = self.running();
        let before = running.len();
        running.retain(|_, live| live.touched.elapsed() < IDLE);
        before - running.len()
    }
}

/// Starts the ingest of a file of `length` bytes fed through a channel
/// (already counted in `count`).
fn start(blobs: &BlobStore, length: u64, count: Arc<AtomicUsize>) -> Live {
    let (feed, pieces) = mpsc::channel::<Bytes>(FEED_DEPTH);
    let body = futures_util::stream::unfold(pieces, |mut pieces| async move {
        let piece = pieces.recv().await?;
        Some((Ok::<_, Infallible>(piece), pieces))
    })
    .boxed();
    let blobs = blobs.clone();
    let ingest = tokio::spawn(async move {
        // The reservation made at the upload's creation covers `length`.
        blobs
            .digest(body, &mut Limit(length), |reader| inspect::inspect(reader))
            .await
    });
    Live {
        fed: 0,
        touched: Instant::now(),
        feed,
        ingest: Some(ingest),
        count,
    }
}

impl Lent {
    /// `body`, with every piece also sent to the ingest before it is
    /// passed on (so the ingest holds what the chunk's part holds, or more
    /// if the chunk is then refused, which `give_back` sees).
    pub(super) fn tee<'a, S, E>(
        &self,
        body: S,
    ) -> impl Stream<Item = Result<Bytes, E>> + Unpin + Send + 'a
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'a,
        E: Send + 'a,
    {
        let (feed, fed, broken) = (
            self.live.feed.clone(),
            self.fed.clone(),
            self.broken.clone(),
        );
        Box::pin(body.then(move |piece| {
            let (feed, fed, broken) = (feed.clone(), fed.clone(), broken.clone());
            async move {
                if let Ok(bytes) = &piece {
                    if feed.send(bytes.clone()).await.is_ok() {
                        fed.fetch_add(bytes.len() as u64, Ordering::AcqRel);
                    } else {
                        broken.store(true, Ordering::Release);
                    }
                }
                piece
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of first chunks, however many uploads it spans, starts at
    /// most `MAX_LIVE` ingests, counting the ones lent out; one dropped
    /// makes room again, and only a chunk at the offset an ingest reached
    /// gets it back.
    #[tokio::test]
    async fn live_ingests_are_bounded_and_kept_in_step() {
        let folder = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(folder.path()).await.unwrap();
        let live = LiveIngests::default();
        let lent: Vec<Lent> = (0..MAX_LIVE)
            .map(|n| live.lend(&blobs, &format!("u{n}"), 0, 100).unwrap())
            .collect();
        assert!(live.lend(&blobs, "one-too-many", 0, 100).is_none());
        assert!(live.lend(&blobs, "u0", 10, 100).is_none(), "not in step");

        let mut lent = lent.into_iter();
        drop(lent.next());
        let again = live.lend(&blobs, "another", 0, 100).expect("room again");
        // Given back at an offset it was not fed to: dropped, room again.
        live.give_back(again, 10);
        let first = lent.next().unwrap();
        live.give_back(first, 0);
        assert!(live.lend(&blobs, "u1", 0, 100).is_some(), "kept in step");
        assert!(live.lend(&blobs, "yet-another", 0, 100).is_some());
    }
}
