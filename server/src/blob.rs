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
//!
//! A resumable upload keeps its bytes between requests in the backend's
//! uploads area, part after part ([`BlobStore::write_part`]): one file per
//! upload in a local folder, one object per part in an object store. Once
//! complete, they become staged bytes ([`BlobStore::stage_parts`]) without
//! being written again where the backend can (a local file is linked).

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

/// The areas of a store: published blobs, uploads being staged, and the
/// parts of resumable uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Blobs,
    Staging,
    Uploads,
}

/// A part of a resumable upload as recorded: bytes `[start, start + size)`
/// of the upload, which the backend keeps under `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub start: u64,
    pub size: u64,
    pub name: String,
}

/// What hashing a file's bytes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digested {
    pub sha256: String,
    pub size: u64,
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

    /// Begins a part of resumable upload `upload` at `offset`: its parts
    /// before `offset` are kept; whatever was written past it before (never
    /// acknowledged) is not. One part of an upload is written at a time.
    async fn write_part(&self, upload: &str, offset: u64) -> io::Result<Box<dyn PartWriting>>;
    /// Streams the bytes of the upload's `parts`, in order.
    async fn read_parts(&self, upload: &str, parts: &[Part]) -> io::Result<ByteStream>;
    /// The bytes of the upload's `parts` (all of it) as staged bytes, to be
    /// published as one blob; the parts stay until removed. By default they
    /// are copied into the staging area.
    async fn stage_parts(&self, upload: &str, parts: &[Part]) -> io::Result<Box<dyn StagedBytes>> {
        let mut staging = self.stage().await?;
        let mut bytes = self.read_parts(upload, parts).await?;
        while let Some(piece) = bytes.next().await {
            staging.write(piece?).await?;
        }
        staging.finish().await
    }
    /// Deletes everything kept for the upload; nothing kept is no error.
    async fn remove_parts(&self, upload: &str) -> io::Result<()>;
    /// The uploads with parts kept and untouched for `grace`, for the
    /// collector to remove those the database no longer knows.
    async fn kept_uploads(&self, grace: Duration) -> io::Result<Vec<String>>;
}

/// A part of a resumable upload being written. Dropped before
/// [`PartWriting::finish`], its bytes are not the upload's.
#[async_trait::async_trait]
pub trait PartWriting: Send {
    async fn write(&mut self, bytes: Bytes) -> io::Result<()>;
    /// Makes the bytes durable.
    async fn finish(self: Box<Self>) -> io::Result<Box<dyn WrittenPart>>;
}

/// A durable part, not yet recorded as the upload's. Dropped without
/// [`WrittenPart::keep`] (the upload moved on meanwhile), it is discarded.
pub trait WrittenPart: Send + Sync + fmt::Debug {
    /// What the backend keeps it under, to be recorded with it.
    fn name(&self) -> &str;
    /// It is recorded: it stays until the upload's parts are removed.
    fn keep(self: Box<Self>);
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

/// Whether `name` may name a resumable upload in a backend: a plain name,
/// never a path.
pub(crate) fn is_upload_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(crate) fn not_found(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what.to_owned())
}

/// One chunk of a resumable upload, written as a part: the part (none if
/// the chunk was empty), its size, and why its body broke off, if it did.
#[derive(Debug)]
pub struct Chunk {
    pub part: Option<Box<dyn WrittenPart>>,
    pub size: u64,
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
        body: S,
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
        let (digested, inspection) =
            pass(body, allowance, inspector, Some(staging.as_mut())).await?;
        let bytes = staging.finish().await?;
        Ok((
            Staged {
                sha256: digested.sha256,
                size: digested.size,
                bytes,
            },
            inspection,
        ))
    }

    /// Hashes `body` and shows it to `inspector`, as [`BlobStore::ingest`]
    /// does, without storing it: for bytes that are stored already.
    pub async fn digest<S, E, R>(
        &self,
        body: S,
        allowance: &mut dyn Allowance,
        inspector: impl FnOnce(&mut UploadReader) -> R + Send + 'static,
    ) -> Result<(Digested, R), IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
        R: Send + 'static,
    {
        pass(body, allowance, inspector, None).await
    }

    /// Writes one chunk of resumable upload `upload`, at `offset`, as it
    /// arrives: at most `max` bytes (more is refused), each piece shown to
    /// `observe`. What arrived before the body broke off is written too (a
    /// client resumes after it); an empty chunk writes nothing.
    pub async fn write_part<S, E>(
        &self,
        upload: &str,
        offset: u64,
        mut body: S,
        max: u64,
        mut observe: impl FnMut(&[u8]) + Send,
    ) -> Result<Chunk, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let _receiving = Receiving::new(&self.receiving);
        let mut writing = self.backend.write_part(upload, offset).await?;
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
            observe(&piece);
            writing.write(piece).await?;
        }
        let part = if size == 0 {
            None
        } else {
            Some(writing.finish().await?)
        };
        Ok(Chunk { part, size, broken })
    }

    /// Streams the bytes of a resumable upload's `parts`, in order.
    pub async fn read_parts(&self, upload: &str, parts: &[Part]) -> io::Result<ByteStream> {
        self.backend.read_parts(upload, parts).await
    }

    /// A complete resumable upload's bytes, which hash to `digested`, as
    /// staged bytes to publish.
    pub async fn stage_parts(
        &self,
        upload: &str,
        parts: &[Part],
        digested: Digested,
    ) -> io::Result<Staged> {
        Ok(Staged {
            bytes: self.backend.stage_parts(upload, parts).await?,
            sha256: digested.sha256,
            size: digested.size,
        })
    }

    /// Deletes what a resumable upload kept.
    pub async fn remove_parts(&self, upload: &str) -> io::Result<()> {
        self.backend.remove_parts(upload).await
    }

    /// The uploads with parts kept and untouched for `grace`.
    pub async fn kept_uploads(&self, grace: Duration) -> io::Result<Vec<String>> {
        self.backend.kept_uploads(grace).await
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

/// Bytes hashed and shown to an inspector on a thread of its own as they
/// arrive, in one body or across many (a resumable upload's chunks).
pub struct Digesting<R> {
    hasher: Sha256,
    size: u64,
    /// `None` once the inspector stopped reading: it has seen all it needs.
    inspecting: Option<tokio::sync::mpsc::Sender<Bytes>>,
    inspection: tokio::task::JoinHandle<R>,
}

impl<R: Send + 'static> Digesting<R> {
    /// Starts `inspector` on a thread of its own, reading the bytes taken.
    pub fn start(inspector: impl FnOnce(&mut UploadReader) -> R + Send + 'static) -> Self {
        let (to_inspector, chunks) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_DEPTH);
        let inspection = tokio::task::spawn_blocking(move || {
            let mut reader = UploadReader {
                chunks,
                current: Bytes::new(),
            };
            inspector(&mut reader)
        });
        Self {
            hasher: Sha256::new(),
            size: 0,
            inspecting: Some(to_inspector),
            inspection,
        }
    }

    /// How many bytes were taken.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Takes the next bytes: hashed, and passed to the inspector (waiting
    /// for it, if it is behind).
    pub async fn take(&mut self, bytes: &Bytes) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        self.hasher.update(bytes);
        if let Some(inspecting) = &self.inspecting {
            if inspecting.send(bytes.clone()).await.is_err() {
                self.inspecting = None;
            }
        }
    }

    /// Ends the file: its digest and size, and the inspector's answer.
    pub async fn finish(self) -> io::Result<(Digested, R)> {
        drop(self.inspecting);
        let inspection = self.inspection.await.map_err(io::Error::other)?;
        Ok((
            Digested {
                sha256: hex::encode(self.hasher.finalize()),
                size: self.size,
            },
            inspection,
        ))
    }
}

/// Takes `body` in, hashing it, showing it to `inspector` on a thread of
/// its own and writing it to `staging` if there is one; growing past what
/// `allowance` grants is refused.
async fn pass<S, E, R>(
    mut body: S,
    allowance: &mut dyn Allowance,
    inspector: impl FnOnce(&mut UploadReader) -> R + Send + 'static,
    mut staging: Option<&mut (dyn Staging + '_)>,
) -> Result<(Digested, R), IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: fmt::Display,
    R: Send + 'static,
{
    let mut digesting = Digesting::start(inspector);
    let mut granted = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| IngestError::Body(error.to_string()))?;
        let size = digesting.size().saturating_add(chunk.len() as u64);
        if size > granted {
            granted = allowance.grow(size).await?;
        }
        digesting.take(&chunk).await;
        if let Some(staging) = staging.as_mut() {
            staging.write(chunk).await?;
        }
    }
    Ok(digesting.finish().await?)
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

    /// Writes one chunk of upload `id` at `offset`; answers it as recorded.
    async fn part_of(
        store: &BlobStore,
        id: &str,
        offset: u64,
        pieces: Vec<Result<Bytes, &'static str>>,
    ) -> (Chunk, Part) {
        let chunk = store
            .write_part(id, offset, chunks(pieces), 1 << 20, |_| ())
            .await
            .unwrap();
        let part = Part {
            start: offset,
            size: chunk.size,
            name: chunk.part.as_ref().unwrap().name().to_owned(),
        };
        (chunk, part)
    }

    /// A resumable upload's parts: what a chunk brought before it broke off
    /// is kept, a chunk never recorded is not the upload's, the parts read
    /// back in order and become one blob; removed, nothing is left.
    pub async fn keeps_an_uploads_parts_until_removed(store: BlobStore) {
        let id = "0123abcd";
        let (first, hello) = part_of(&store, id, 0, vec![Ok("hello ".into())]).await;
        first.part.unwrap().keep();
        // Refused (say, for its checksum) or outrun by another request.
        let (refused, _) = part_of(&store, id, 6, vec![Ok("XXXXXXXXXXX".into())]).await;
        drop(refused);
        let (second, world) = part_of(
            &store,
            id,
            6,
            vec![Ok("wor".into()), Ok("ld".into()), Err("connection reset")],
        )
        .await;
        assert_eq!(second.broken.as_deref(), Some("connection reset"));
        assert_eq!(second.size, 5);
        second.part.unwrap().keep();
        let parts = vec![hello, world];
        assert!(matches!(
            store
                .write_part(id, 11, chunks(vec![Ok("too long".into())]), 3, |_| ())
                .await,
            Err(IngestError::TooLarge { limit: 3 })
        ));
        let mut read = Vec::new();
        let mut bytes = store.read_parts(id, &parts).await.unwrap();
        while let Some(piece) = bytes.next().await {
            read.extend_from_slice(&piece.unwrap());
        }
        assert_eq!(read, b"hello world");
        let digested = Digested {
            sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9".into(),
            size: 11,
        };
        let staged = store.stage_parts(id, &parts, digested).await.unwrap();
        staged.publish().await.unwrap();
        let sha256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
        assert_eq!(read_blob(&store, sha256, 0, 11).await, b"hello world");
        assert_eq!(
            store.kept_uploads(Duration::ZERO).await.unwrap(),
            vec![id.to_owned()]
        );
        store.remove_parts(id).await.unwrap();
        store.remove_parts(id).await.unwrap();
        assert!(store.stored(Area::Uploads).await.unwrap().is_empty());
        assert!(store.kept_uploads(Duration::ZERO).await.unwrap().is_empty());
        assert_eq!(read_blob(&store, sha256, 0, 11).await, b"hello world");
        assert!(store.stored(Area::Staging).await.unwrap().is_empty());
        for bad in ["../x", "a/b", ""] {
            assert!(store.remove_parts(bad).await.is_err(), "{bad}");
        }
    }

    #[test]
    fn only_hex_digests_name_blobs() {
        assert!(!is_sha256("../../etc/passwd"));
        assert!(!is_sha256(&"A".repeat(64)));
        assert!(is_sha256(&"ab".repeat(32)));
    }
}
