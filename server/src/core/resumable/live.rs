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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::super::inspect::{self, Inspection};
use super::Digest;
use crate::blob::Digesting;

/// Live ingests one server runs at once: each holds an inspector thread
/// while its upload lasts. Past this, uploads are read back at completion.
const MAX_LIVE: usize = 8;

/// A live ingest not fed for this long is dropped (its upload is read back
/// if it ever completes).
const IDLE: Duration = Duration::from_secs(600);

/// One upload's ingest: the bytes taken so far, hashed and inspected.
/// Dropped, it stops (its inspector sees the end of its input).
struct Live {
    touched: Instant,
    digesting: Digesting<Result<Inspection, String>>,
    _place: Place,
}

/// One of the server's places for live ingests, taken while it lives.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
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
    pub(super) fn lend(&self, id: &str, offset: u64) -> Option<Lent> {
        let mut running = self.running();
        running.retain(|_, live| live.touched.elapsed() < IDLE);
        let live = match running.remove(id) {
            Some(live) if live.digesting.size() == offset => live,
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
                Live {
                    touched: Instant::now(),
                    digesting: Digesting::start(|reader| inspect::inspect(reader)),
                    _place: Place(self.count.clone()),
                }
            }
            None => return None,
        };
        Some(Lent {
            id: id.to_owned(),
            live,
        })
    }

    /// Gives back a lent ingest once its chunk was taken, if it took in
    /// exactly the upload's bytes up to `received`; drops it otherwise.
    pub(super) fn give_back(&self, mut lent: Lent, received: u64) {
        if lent.live.digesting.size() != received {
            return;
        }
        lent.live.touched = Instant::now();
        self.running().insert(lent.id, lent.live);
    }

    /// Ends the live ingest of an upload whose `length` bytes all arrived,
    /// and answers what it made of them; `None` if there is none (the
    /// upload is then read back from its parts).
    pub(super) async fn finish(&self, id: &str, length: u64) -> Option<Digest> {
        let live = self.running().remove(id)?;
        if live.digesting.size() != length {
            return None;
        }
        let Live {
            digesting, _place, ..
        } = live;
        match digesting.finish().await {
            Ok(digest) => Some(digest),
            Err(error) => {
                tracing::warn!(upload = id, %error, "a live ingest failed; reading the parts back");
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

impl Lent {
    /// `body`, with every piece also hashed and inspected before it is
    /// passed on (so the ingest holds what the chunk's part holds, or more
    /// if the chunk is then refused, which `give_back` sees).
    pub(super) fn tee<'a, S, E>(
        &'a mut self,
        body: S,
    ) -> impl Stream<Item = Result<Bytes, E>> + Unpin + Send + 'a
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send + 'a,
        E: Send + 'a,
    {
        let digesting = &mut self.live.digesting;
        Box::pin(futures_util::stream::unfold(
            (body, digesting),
            |(mut body, digesting)| async move {
                let piece = body.next().await?;
                if let Ok(bytes) = &piece {
                    digesting.take(bytes).await;
                }
                Some((piece, (body, digesting)))
            },
        ))
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
        let live = LiveIngests::default();
        let lent: Vec<Lent> = (0..MAX_LIVE)
            .map(|n| live.lend(&format!("u{n}"), 0).unwrap())
            .collect();
        assert!(live.lend("one-too-many", 0).is_none());
        assert!(live.lend("u0", 10).is_none(), "not in step");

        let mut lent = lent.into_iter();
        drop(lent.next());
        let again = live.lend("another", 0).expect("room again");
        // Given back at an offset it was not fed to: dropped, room again.
        live.give_back(again, 10);
        let first = lent.next().unwrap();
        live.give_back(first, 0);
        assert!(live.lend("u1", 0).is_some(), "kept in step");
        assert!(live.lend("yet-another", 0).is_some());
    }
}
