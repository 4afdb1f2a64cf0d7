//! Image bytes, content-addressed by SHA-256, behind one seam with two
//! backends chosen at start: a local folder ([`local`], the embedded
//! default) and an S3-compatible object store ([`object`]) that several
//! servers share.
//!
//! An upload streams into the backend's staging area while it is hashed and
//! inspected ([`BlobStore::ingest`] answers a [`Staged`] blob); the core then
//! publishes it under its digest ([`Staged::publish`]) while it holds the
//! blob's lock in the database and writes the record, so that a blob is never
//! removed while a record is being attached to it. A body that fails or is cut
//! off leaves nothing: staged bytes are discarded when their guard drops, even
//! if the request's future is simply dropped. Identical content is stored once.

pub mod local;
pub mod object;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

/// Chunks in flight between the request and the inspector's thread.
const QUEUE_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the file is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    #[error("the file does not fit in what is left of the quota of {quota} bytes")]
    OverQuota { quota: u64 },
    #[error("the upload was interrupted: {0}")]
    Body(String),
    #[error("storage failed: {0}")]
    Io(#[from] io::Error),
}

/// How many bytes an upload may grow to, decided as it grows (a quota
/// reservation, or a fixed limit).
#[async_trait::async_trait]
pub trait Allowance: Send {
    /// Makes room for at least `needed` bytes in all; answers how many bytes
    /// the upload may now reach, or refuses.
    async fn grow(&mut self, needed: u64) -> Result<u64, IngestError>;
}

/// A fixed limit, and no quota.
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub u64);

#[async_trait::async_trait]
impl Allowance for Limit {
    async fn grow(&mut self, needed: u64) -> Result<u64, IngestError> {
        if needed > self.0 {
            Err(IngestError::TooLarge { limit: self.0 })
        } else {
            Ok(self.0)
        }
    }
}

/// A blob's bytes as they are read.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// The two areas of a store: published blobs, and uploads being staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Blobs,
    Staging,
}

/// What a storage backend does; everything else (hashing, limits,
/// inspection) is the same for both and lives in [`BlobStore`].
#[async_trait::async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Begins staging the bytes of a new upload.
    async fn stage(&self) -> io::Result<Box<dyn Staging>>;
    /// Opens a published blob for reading.
    async fn open(&self, sha256: &str) -> io::Result<Box<dyn Blob>>;
    /// Whether the blob of this digest is published.
    async fn exists(&self, sha256: &str) -> io::Result<bool>;
    /// Deletes a published blob; a missing one is no error.
    async fn remove(&self, sha256: &str) -> io::Result<()>;
    /// The digests of the blobs untouched for `grace`: candidates for
    /// collection once the database says no record uses them.
    async fn settled_blobs(&self, grace: Duration) -> io::Result<Vec<String>>;
    /// Discards staged uploads untouched for `grace` (what a crash or a
    /// stalled client left); answers how many.
    async fn discard_stale_uploads(&self, grace: Duration) -> io::Result<usize>;
    /// Discards every staged upload, at start, when this server is the only
    /// one that could be staging (a local folder); a shared store leaves
    /// them to [`Backend::discard_stale_uploads`].
    async fn discard_partial_uploads(&self) -> io::Result<()>;
    /// Whether new bytes can be written: a probe made and removed in the
    /// staging area, as an upload would begin.
    async fn check_writable(&self) -> io::Result<()>;
    /// The names of what is stored in `area`, for tests and diagnostics.
    async fn stored(&self, area: Area) -> io::Result<Vec<String>>;
}

/// Bytes being staged. Dropped before [`Staging::finish`], it discards
/// everything written so far.
#[async_trait::async_trait]
pub trait Staging: Send {
    async fn write(&mut self, chunk: Bytes) -> io::Result<()>;
    /// Makes the bytes durable in the staging area.
    async fn finish(self: Box<Self>) -> io::Result<Box<dyn StagedBytes>>;
}

/// Complete, durable bytes in the staging area. Dropped unpublished, they
/// are discarded.
#[async_trait::async_trait]
pub trait StagedBytes: Send + Sync + fmt::Debug {
    /// Makes them the blob of `sha256`, unless the same bytes are already
    /// there (then they are discarded).
    async fn publish(self: Box<Self>, sha256: &str) -> io::Result<()>;
}

/// A published blob, open for reading.
#[async_trait::async_trait]
pub trait Blob: Send {
    /// Its length in bytes.
    fn size(&self) -> u64;
    /// Streams `count` bytes from `start`, never the whole blob in memory.
    async fn read(self: Box<Self>, start: u64, count: u64) -> io::Result<ByteStream>;
}

/// Bytes that are complete, hashed and durable in the staging area, not yet
/// published. Dropping it discards them.
#[derive(Debug)]
pub struct Staged {
    pub sha256: String,
    pub size: u64,
    bytes: Box<dyn StagedBytes>,
}

impl Staged {
    /// Makes the bytes the blob of their digest. The caller holds the blob's lock.
    pub async fn publish(self) -> io::Result<()> {
        self.bytes.publish(&self.sha256).await
    }
}

/// The bytes of an upload as they arrive, as a [`std::io::Read`] for an
/// inspector running on a thread of its own. It sees every byte once, in
/// order, without a second pass over the file; an inspector that has seen
/// enough simply stops reading.
pub struct UploadReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl io::Read for UploadReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let take = buffer.len().min(self.current.len());
        buffer[..take].copy_from_slice(&self.current.split_to(take));
        Ok(take)
    }
}

pub(crate) fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn not_found(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what.to_owned())
}

/// One chunk of a resumable upload, staged: its bytes (none if it was
/// empty), and why its body broke off, if it did.
#[derive(Debug)]
pub struct Chunk {
    pub staged: Option<Staged>,
    pub broken: Option<String>,
}

/// The blob store the core uses, over whichever backend was chosen at start.
#[derive(Debug, Clone)]
pub struct BlobStore {
    backend: Arc<dyn Backend>,
    /// Bodies streaming in now (uploads and resumable chunks), for metrics.
    receiving: Arc<AtomicUsize>,
}

/// Counts one body streaming in while it lives.
struct Receiving(Arc<AtomicUsize>);

impl Receiving {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BlobStore {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self {
            backend,
            receiving: Arc::default(),
        }
    }

    /// The same store, whose ingests do not count as bodies streaming in
    /// (one that re-reads or mirrors bytes already counted).
    pub fn uncounted(&self) -> Self {
        Self {
            backend: self.backend.clone(),
            receiving: Arc::default(),
        }
    }

    /// How many bodies are streaming into the store now.
    pub fn receiving(&self) -> usize {
        self.receiving.load(Ordering::Relaxed)
    }

    /// A store in a local folder (and creates it).
    pub async fn open(root: &std::path::Path) -> io::Result<Self> {
        Ok(Self::new(Arc::new(local::LocalBlobs::open(root).await?)))
    }

    /// Streams `body` into the staging area, hashing as it goes, and makes
    /// it durable once complete; `inspector` reads the same bytes on a
    /// thread of its own meanwhile, and its answer comes back with the
    /// staged bytes. Growing past what `allowance` grants is refused.
    pub async fn ingest<S, E, R>(
        &self,
        mut body: S,
        allowance: &mut dyn Allowance,
        inspector: impl FnOnce(&mut UploadReader) -> R + Send + 'static,
    ) -> Result<(Staged, R), IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
        R: Send + 'static,
    {
        let _receiving = Receiving::new(&self.receiving);
        let mut staging = self.backend.stage().await?;

        let (to_inspector, chunks) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_DEPTH);
        let inspection = tokio::task::spawn_blocking(move || {
            let mut reader = UploadReader {
                chunks,
                current: Bytes::new(),
            };
            inspector(&mut reader)
        });
        let mut inspecting = Some(to_inspector);

        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut granted = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| IngestError::Body(error.to_string()))?;
            size = size.saturating_add(chunk.len() as u64);
            if size > granted {
                granted = allowance.grow(size).await?;
            }
            hasher.update(&chunk);
            if let Some(to_inspector) = &inspecting {
                // An inspector that stopped reading has seen all it needs.
                if to_inspector.send(chunk.clone()).await.is_err() {
                    inspecting = None;
                }
            }
            staging.write(chunk).await?;
        }
        drop(inspecting);
        let bytes = staging.finish().await?;
        let inspection = inspection.await.map_err(io::Error::other)?;

        Ok((
            Staged {
                sha256: hex::encode(hasher.finalize()),
                size,
                bytes,
            },
            inspection,
        ))
    }

    /// Stages one chunk of a resumable upload as it arrives, at most `max`
    /// bytes (more is refused), showing each piece to `observe`; what arrived
    /// before the body broke off is kept (a client resumes after it), and an
    /// empty chunk stages nothing. The chunk is a blob like any other once
    /// published under its digest.
    pub async fn stage_chunk<S, E>(
        &self,
        mut body: S,
        max: u64,
        mut observe: impl FnMut(&[u8]) + Send,
    ) -> Result<Chunk, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let _receiving = Receiving::new(&self.receiving);
        let mut staging = self.backend.stage().await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut broken = None;
        while let Some(piece) = body.next().await {
            let piece = match piece {
                Ok(piece) => piece,
                Err(error) => {
                    broken = Some(error.to_string());
                    break;
                }
            };
            size = size.saturating_add(piece.len() as u64);
            if size > max {
                return Err(IngestError::TooLarge { limit: max });
            }
            hasher.update(&piece);
            observe(&piece);
            staging.write(piece).await?;
        }
        let staged = if size == 0 {
            None
        } else {
            Some(Staged {
                bytes: staging.finish().await?,
                sha256: hex::encode(hasher.finalize()),
                size,
            })
        };
        Ok(Chunk { staged, broken })
    }

    /// Opens a blob for reading, with its length.
    pub async fn open_blob(&self, sha256: &str) -> io::Result<Box<dyn Blob>> {
        if !is_sha256(sha256) {
            return Err(not_found("bad digest"));
        }
        self.backend.open(sha256).await
    }

    /// The whole blob as a blocking reader, for copies made on a thread of
    /// their own. Call it from a blocking thread.
    pub async fn blocking_reader(&self, sha256: &str) -> io::Result<impl io::Read + Send> {
        let blob = self.open_blob(sha256).await?;
        let length = blob.size();
        let stream = blob.read(0, length).await?;
        Ok(tokio_util::io::SyncIoBridge::new(
            tokio_util::io::StreamReader::new(stream),
        ))
    }

    /// Whether the blob of this digest is stored.
    pub async fn exists(&self, sha256: &str) -> bool {
        is_sha256(sha256) && self.backend.exists(sha256).await.unwrap_or(false)
    }

    /// Deletes a blob that no record uses any more.
    pub async fn remove(&self, sha256: &str) -> io::Result<()> {
        if !is_sha256(sha256) {
            return Ok(());
        }
        self.backend.remove(sha256).await
    }

    pub async fn settled_blobs(&self, grace: Duration) -> io::Result<Vec<String>> {
        self.backend.settled_blobs(grace).await
    }

    pub async fn discard_stale_uploads(&self, grace: Duration) -> io::Result<usize> {
        self.backend.discard_stale_uploads(grace).await
    }

    pub async fn discard_partial_uploads(&self) -> io::Result<()> {
        self.backend.discard_partial_uploads().await
    }

    pub async fn check_writable(&self) -> io::Result<()> {
        self.backend.check_writable().await
    }

    /// The names of what is stored in `area`.
    pub async fn stored(&self, area: Area) -> io::Result<Vec<String>> {
        self.backend.stored(area).await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The contract every backend keeps, run against each in its module.

    use super::*;

    fn chunks(
        parts: Vec<Result<Bytes, &'static str>>,
    ) -> impl Stream<Item = Result<Bytes, &'static str>> + Unpin {
        futures_util::stream::iter(parts)
    }

    fn read_all(reader: &mut UploadReader) -> Vec<u8> {
        let mut bytes = Vec::new();
        io::Read::read_to_end(reader, &mut bytes).unwrap();
        bytes
    }

    async fn read_blob(store: &BlobStore, sha256: &str, start: u64, count: u64) -> Vec<u8> {
        let blob = store.open_blob(sha256).await.unwrap();
        let mut stream = blob.read(start, count).await.unwrap();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        bytes
    }

    /// Stores under the digest and only once; reads whole and in ranges.
    pub async fn stores_under_the_digest_and_only_once(store: BlobStore) {
        let (first, seen) = store
            .ingest(
                chunks(vec![Ok("hello ".into()), Ok("world".into())]),
                &mut Limit(100),
                read_all,
            )
            .await
            .unwrap();
        assert_eq!(seen, b"hello world", "the inspector sees every byte");
        let digest = first.sha256.clone();
        assert_eq!(
            digest,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(first.size, 11);
        assert!(
            !store.exists(&digest).await,
            "staged bytes are not published"
        );
        first.publish().await.unwrap();
        assert!(store.exists(&digest).await);
        let (second, _) = store
            .ingest(
                chunks(vec![Ok("hello world".into())]),
                &mut Limit(100),
                |_| (),
            )
            .await
            .unwrap();
        second.publish().await.unwrap();
        assert_eq!(read_blob(&store, &digest, 0, 11).await, b"hello world");
        assert_eq!(read_blob(&store, &digest, 6, 5).await, b"world");
        assert_eq!(store.open_blob(&digest).await.unwrap().size(), 11);
        assert_eq!(store.stored(Area::Blobs).await.unwrap().len(), 1);
        assert!(store.stored(Area::Staging).await.unwrap().is_empty());
        store.remove(&digest).await.unwrap();
        assert!(!store.exists(&digest).await);
        assert!(store.open_blob(&digest).await.is_err());
    }

    /// A failed or oversized body, or staged bytes never published, leave nothing.
    pub async fn a_failed_or_oversized_body_leaves_nothing(store: BlobStore, big: usize) {
        let cut = store
            .ingest(
                chunks(vec![
                    Ok(Bytes::from(vec![7u8; big])),
                    Err("connection reset"),
                ]),
                &mut Limit(u64::MAX),
                read_all,
            )
            .await;
        assert!(matches!(cut, Err(IngestError::Body(_))));
        let oversized = store
            .ingest(
                chunks(vec![
                    Ok(Bytes::from(vec![1u8; big])),
                    Ok("0123456789".into()),
                ]),
                &mut Limit(big as u64 + 5),
                read_all,
            )
            .await;
        assert!(matches!(oversized, Err(IngestError::TooLarge { .. })));
        let (unpublished, _) = store
            .ingest(
                chunks(vec![Ok("never kept".into())]),
                &mut Limit(100),
                |_| (),
            )
            .await
            .unwrap();
        drop(unpublished);
        // Discarding may run on a task of its own: give it a moment.
        for _ in 0..100 {
            if store.stored(Area::Staging).await.unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(store.stored(Area::Staging).await.unwrap().is_empty());
        assert!(store.stored(Area::Blobs).await.unwrap().is_empty());
    }

    #[test]
    fn only_hex_digests_name_blobs() {
        assert!(!is_sha256("../../etc/passwd"));
        assert!(!is_sha256(&"A".repeat(64)));
        assert!(is_sha256(&"ab".repeat(32)));
    }
}
