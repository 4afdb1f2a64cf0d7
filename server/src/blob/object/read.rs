//! Blobs read from the store: by ranged GETs, long reads in segments
//! fetched side by side.

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange};
use tokio_util::task::AbortOnDropHandle;

use super::{io_error, Bucket};
use crate::blob::{Blob, ByteStream};

/// A blob found in the store, read by ranged GETs.
pub(super) struct ObjectBlob {
    pub(super) bucket: Arc<dyn Bucket>,
    pub(super) key: Path,
    pub(super) length: u64,
}

/// Reads of more than this are fetched as ranged GETs of this size, a few
/// at once, in order: one GET's stream is bounded by the store's per-request
/// pace, as S3 clients that download in parallel ranges know.
pub(super) const READ_SEGMENT: u64 = 8 << 20;

/// Segments of one read fetched at once: what one download holds in memory
/// is at most this many segments and the one its socket is sending.
const FETCHED_AT_ONCE: usize = 3;

/// Segments held in memory for sockets at once, across every download (64
/// MiB, as the local store's downloads' buffers): a segment is fetched whole
/// ahead of its socket only with room among them. Without room, a download
/// streams its next segment straight from the store's answer (the store's
/// connection holds what the client has not taken yet), at one GET's pace:
/// it goes on without waiting for room, and clients that ask for downloads
/// and take little cannot make the server hold 24 MiB each. What the server
/// reads for itself is outside it (see [`Blob::read`]), bounded by its own
/// limits (the job workers, the upload places).
const ROOM_SEGMENTS: usize = 8;

static ROOM: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(ROOM_SEGMENTS);

#[async_trait::async_trait]
impl Blob for ObjectBlob {
    fn size(&self) -> u64 {
        self.length
    }

    async fn read(self: Box<Self>, start: u64, count: u64) -> std::io::Result<ByteStream> {
        if count <= READ_SEGMENT * 2 {
            return self.streamed(start, count).await;
        }
        // Segments are fetched whole, the next ones while one is sent.
        let (bucket, key) = (self.bucket, self.key);
        let fetched = futures_util::stream::iter(segments(start, count))
            .map(move |range| fetch(bucket.clone(), key.clone(), range, None))
            .buffered(FETCHED_AT_ONCE);
        Ok(Box::pin(fetched))
    }

    async fn send(self: Box<Self>, start: u64, count: u64) -> std::io::Result<ByteStream> {
        if count <= READ_SEGMENT * 2 {
            return self.streamed(start, count).await;
        }
        Ok(Box::pin(SentSegments {
            bucket: self.bucket,
            key: self.key,
            pending: segments(start, count).collect(),
            ahead: VecDeque::new(),
            current: None,
            opening: None,
        }))
    }
}

impl ObjectBlob {
    /// `count` bytes from `start`, as one GET's answer streams them.
    async fn streamed(self: Box<Self>, start: u64, count: u64) -> std::io::Result<ByteStream> {
        if count == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        open(self.bucket, self.key, start..start + count).await
    }
}

/// The segments of `count` bytes from `start`, in order.
fn segments(start: u64, count: u64) -> impl Iterator<Item = Range<u64>> {
    let end = start + count;
    (start..end)
        .step_by(READ_SEGMENT as usize)
        .map(move |from| from..(from + READ_SEGMENT).min(end))
}

/// One ranged GET, its answer streamed as it arrives.
async fn open(
    bucket: Arc<dyn Bucket>,
    key: Path,
    range: Range<u64>,
) -> std::io::Result<ByteStream> {
    let options = GetOptions {
        range: Some(GetRange::Bounded(range)),
        ..GetOptions::default()
    };
    let found = bucket.get_opts(&key, options).await.map_err(io_error)?;
    Ok(Box::pin(found.into_stream().map_err(io_error)))
}

/// One segment, fetched whole; with `room`, which it holds until the bytes
/// are let go of (sent).
async fn fetch(
    bucket: Arc<dyn Bucket>,
    key: Path,
    range: Range<u64>,
    room: Option<tokio::sync::SemaphorePermit<'static>>,
) -> std::io::Result<Bytes> {
    let bytes = bucket.get_range(&key, range).await.map_err(io_error)?;
    Ok(match room {
        Some(room) => Bytes::from_owner(Held { bytes, _room: room }),
        None => bytes,
    })
}

/// A segment's bytes and their room among the [`ROOM_SEGMENTS`].
struct Held {
    bytes: Bytes,
    _room: tokio::sync::SemaphorePermit<'static>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A long read for a socket: its segments in order, each either fetched
/// whole ahead of the socket, on a task of its own (with room, up to
/// [`FETCHED_AT_ONCE`] of them besides the one being sent), or, without
/// room, streamed from its GET once the segments before it are sent.
/// Dropped, it lets go of them all.
struct SentSegments {
    bucket: Arc<dyn Bucket>,
    key: Path,
    /// Segments not begun.
    pending: VecDeque<Range<u64>>,
    /// Segments being fetched whole, in order, before `pending`.
    ahead: VecDeque<AbortOnDropHandle<std::io::Result<Bytes>>>,
    /// A segment being streamed, before `ahead`.
    current: Option<ByteStream>,
    /// The GET of a segment to stream, its answer not yet begun.
    opening: Option<BoxFuture<'static, std::io::Result<ByteStream>>>,
}

impl SentSegments {
    /// Begins fetching the next segments whole while there is room for
    /// them and fewer than [`FETCHED_AT_ONCE`] are being fetched (besides
    /// the one last answered, which the socket may still be sending).
    fn fetch_ahead(&mut self) {
        while self.ahead.len() < FETCHED_AT_ONCE {
            let Some(range) = self.pending.front().cloned() else {
                return;
            };
            let Ok(room) = ROOM.try_acquire() else {
                return;
            };
            self.pending.pop_front();
            let (bucket, key) = (self.bucket.clone(), self.key.clone());
            let fetching = tokio::spawn(fetch(bucket, key, range, Some(room)));
            self.ahead.push_back(AbortOnDropHandle::new(fetching));
        }
    }

    /// Ends the stream (after an error): nothing more is fetched.
    fn stop(&mut self) {
        self.pending.clear();
        self.ahead.clear();
        self.current = None;
        self.opening = None;
    }

    /// The stream's answer `next`, the stream ended after an error.
    fn answer(&mut self, next: std::io::Result<Bytes>) -> Poll<Option<std::io::Result<Bytes>>> {
        match next {
            Ok(_) => self.fetch_ahead(),
            Err(_) => self.stop(),
        }
        Poll::Ready(Some(next))
    }
}

impl Stream for SentSegments {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(current) = this.current.as_mut() {
                match current.poll_next_unpin(context) {
                    Poll::Ready(Some(next)) => return this.answer(next),
                    Poll::Ready(None) => this.current = None,
                    Poll::Pending => {
                        this.fetch_ahead();
                        return Poll::Pending;
                    }
                }
                continue;
            }
            if let Some(opening) = this.opening.as_mut() {
                match opening.poll_unpin(context) {
                    Poll::Ready(Ok(stream)) => this.current = Some(stream),
                    Poll::Ready(Err(error)) => return this.answer(Err(error)),
                    Poll::Pending => return Poll::Pending,
                }
                this.opening = None;
                continue;
            }
            this.fetch_ahead();
            if let Some(first) = this.ahead.front_mut() {
                let fetched = std::task::ready!(first.poll_unpin(context));
                this.ahead.pop_front();
                let fetched = fetched
                    .map_err(std::io::Error::other)
                    .and_then(|bytes| bytes);
                return this.answer(fetched);
            }
            let Some(range) = this.pending.pop_front() else {
                return Poll::Ready(None);
            };
            let (bucket, key) = (this.bucket.clone(), this.key.clone());
            this.opening = Some(open(bucket, key, range).boxed());
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::ObjectStore;

    use super::*;

    async fn stored(length: usize) -> (Arc<InMemory>, Path, Vec<u8>) {
        let bucket = Arc::new(InMemory::new());
        let key = Path::from("depot/blobs/ab/long");
        let bytes: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
        bucket.put(&key, bytes.clone().into()).await.unwrap();
        (bucket, key, bytes)
    }

    async fn sent(bucket: &Arc<InMemory>, key: &Path, start: u64, count: u64) -> ByteStream {
        let blob = Box::new(ObjectBlob {
            bucket: bucket.clone(),
            key: key.clone(),
            length: count,
        });
        blob.send(start, count).await.unwrap()
    }

    /// Whether all the room comes back within a while: segments fetched
    /// ahead of a stream that was dropped are let go of as their tasks end.
    async fn all_room_free() -> bool {
        for _ in 0..5_000 {
            if ROOM.available_permits() == ROOM_SEGMENTS {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        false
    }

    /// A download holds room for the segments it fetched ahead until they
    /// are sent; downloads past the room go on, streamed, without waiting
    /// and without holding any; the room all comes back.
    #[tokio::test]
    async fn segments_ahead_of_sockets_are_held_only_within_the_room() {
        let length = 5 * READ_SEGMENT as usize + 777;
        let (bucket, key, bytes) = stored(length).await;
        let (start, count) = (READ_SEGMENT - 3, 4 * READ_SEGMENT + 11);
        let wanted = &bytes[start as usize..(start + count) as usize];

        let mut first = sent(&bucket, &key, start, count).await;
        let first_bytes = first.next().await.unwrap().unwrap();
        assert_eq!(first_bytes.len() as u64, READ_SEGMENT);
        let held = ROOM_SEGMENTS - ROOM.available_permits();
        assert!((1..=FETCHED_AT_ONCE + 1).contains(&held), "{held}");

        // The rest of the room taken: the next downloads fetch nothing ahead
        // and go on all the same, in order.
        let rest = ROOM.available_permits() as u32;
        let all = ROOM.try_acquire_many(rest).unwrap();
        let mut others = Vec::new();
        for _ in 0..4 {
            let mut other = sent(&bucket, &key, start, count).await;
            let piece = tokio::time::timeout(std::time::Duration::from_secs(5), other.next())
                .await
                .expect("a download past the room goes on")
                .unwrap()
                .unwrap();
            assert!(piece.len() as u64 <= READ_SEGMENT);
            others.push((piece, other));
        }
        for (piece, other) in others {
            let rest: Vec<Bytes> = other.try_collect().await.unwrap();
            assert!([vec![piece], rest].concat().concat() == wanted);
        }
        assert_eq!(ROOM.available_permits(), 0);
        drop(all);

        let rest: Vec<Bytes> = first.try_collect().await.unwrap();
        assert!([vec![first_bytes], rest].concat().concat() == wanted);
        assert!(all_room_free().await);

        // A download dropped midway lets go of what it fetched ahead.
        let mut dropped = sent(&bucket, &key, 0, length as u64).await;
        dropped.next().await.unwrap().unwrap();
        drop(dropped);
        assert!(all_room_free().await);
    }
}
