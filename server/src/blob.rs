//! Image bytes, content-addressed by SHA-256, behind one seam with two
//! backends chosen at start: a local folder ([`local`], the embedded
//! default) and an S3-compatible object store ([`object`]) that several
//! servers share.
//!
//! An upload streams into the backend's staging area while it is hashed and
//! inspected ([`BlobStore::ingest`] answers a [`Staged`] blob); the core then
//! prepares it (a long copy, outside any lock: [`Staged::prepare`]) and
//! publishes it as a copy of the blob of its digest
//! ([`Staged::publish_prepared`], [`BlobKey`]) while it holds the blob's lock
//! in the database and writes the record, so that a blob is never removed
//! while a record is being attached to it. A body that fails or is cut
//! off leaves nothing: staged bytes are discarded when their guard drops, even
//! if the request's future is simply dropped. Identical content is stored once
//! (but for moments, while a copy of it being published is given up).
//!
//! A resumable upload keeps its bytes between requests in the backend's
//! uploads area, part after part ([`BlobStore::write_part`]): one file per
//! upload in a local folder, one object per part in an object store. Once
//! complete, they become staged bytes ([`BlobStore::stage_parts`]) without
//! being written again where the backend can (a local file is linked).

mod digest;
mod key;
pub mod local;
pub mod object;

use digest::pass;
pub use digest::{Digesting, UploadReader};
pub use key::BlobKey;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

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

    /// Once every byte is in: makes sure the room for the `size` bytes is
    /// still held (a reservation lapses if an upload stalls past its life,
    /// and its room may have gone to others meanwhile), or refuses.
    async fn hold(&mut self, size: u64) -> Result<(), IngestError> {
        let _ = size;
        Ok(())
    }
}

/// How long a blob's copy no record reads, or a temporary upload file, must
/// have been untouched before the collector removes it (an upload in flight
/// is younger).
pub const GARBAGE_GRACE: Duration = Duration::from_secs(3600);

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
    /// Opens a published copy of a blob for reading.
    async fn open(&self, key: &BlobKey) -> io::Result<Box<dyn Blob>>;
    /// Whether this copy is published.
    async fn exists(&self, key: &BlobKey) -> io::Result<bool>;
    /// Deletes a published copy; a missing one is no error.
    async fn remove(&self, key: &BlobKey) -> io::Result<()>;
    /// The copies untouched for `grace`: candidates for collection once
    /// the database says no record reads them.
    async fn settled_blobs(&self, grace: Duration) -> io::Result<Vec<BlobKey>>;
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
    /// Records `catalog` as the catalog these blobs are the bytes of, unless
    /// one is recorded: answers the one recorded.
    async fn claim_for_catalog(&self, catalog: &str) -> io::Result<String>;

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
    /// Makes them a copy of the blob of `sha256`, and answers which: the
    /// blob's `current` generation if its bytes are there (then these are
    /// discarded), else a new one (see [`BlobKey`]). Where that takes a
    /// copy that [`StagedBytes::prepare`] was to have made (it is gone, or
    /// the blob's copy it counted on is), `long` says whether to make it
    /// now or give the bytes back, untouched, to be prepared again.
    async fn publish(
        self: Box<Self>,
        sha256: &str,
        current: Option<&str>,
        long: LongCopy,
    ) -> io::Result<Publication<Box<dyn StagedBytes>>>;

    /// Does, before the blob's lock is taken, whatever part of
    /// [`StagedBytes::publish`] takes long (a copy of many GiB), so that
    /// the lock, and the transaction that holds it, lasts only moments;
    /// `current` is the generation the blob had a moment ago, if any.
    async fn prepare(&mut self, _sha256: &str, _current: Option<&str>) -> io::Result<()> {
        Ok(())
    }
}

/// Whether [`StagedBytes::publish`] may copy the bytes at length (many
/// GiB through this server) while the blob's lock is held: a transaction
/// open that long holds up every other write of SQLite's, and PostgreSQL
/// ends it once it has been idle for its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongCopy {
    /// No: the bytes come back to be prepared again, outside the lock.
    GiveBack,
    /// Yes (the caller has prepared them as often as it will).
    Make,
}

/// What publishing staged bytes came to.
#[derive(Debug)]
pub enum Publication<B> {
    /// They are this copy of their blob.
    Published(BlobKey),
    /// They are untouched, and need preparing again
    /// ([`LongCopy::GiveBack`]); a copy made for them that no longer serves
    /// was discarded.
    Unprepared(B),
}

/// A published blob, open for reading.
#[async_trait::async_trait]
pub trait Blob: Send {
    /// Its length in bytes.
    fn size(&self) -> u64;
    /// Streams `count` bytes from `start`, never the whole blob in memory.
    async fn read(self: Box<Self>, start: u64, count: u64) -> io::Result<ByteStream>;
    /// Streams them for a socket: bytes the server writes out as they are
    /// and never reads itself, so that a local blob can hand its pages in the
    /// page cache, mapped, which the server's connections send from the
    /// file (a page that cannot be read any more, the disk failing or the
    /// file cut short, fails the kernel's send with an error; read by the
    /// server's own code, it would kill the process). By default the same as
    /// [`Blob::read`].
    async fn send(self: Box<Self>, start: u64, count: u64) -> io::Result<ByteStream> {
        self.read(start, count).await
    }
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
    /// Readies the bytes for [`Staged::publish`], before the blob's lock is
    /// taken (see [`StagedBytes::prepare`]), the blob's generation being
    /// `current` a moment ago.
    pub async fn prepare(&mut self, current: Option<&str>) -> io::Result<()> {
        self.bytes.prepare(&self.sha256, current).await
    }

    /// Makes the bytes a copy of the blob of their digest, and answers
    /// which: its `current` generation if that copy is there, else a new
    /// one, however long its copy takes: for tests of stores and records,
    /// which need no lock (see [`Staged::publish_prepared`]).
    pub async fn publish(self, current: Option<&str>) -> io::Result<BlobKey> {
        match self.publish_prepared(current, LongCopy::Make).await? {
            Publication::Published(copy) => Ok(copy),
            Publication::Unprepared(_) => Err(io::Error::other(
                "staged bytes came back unpublished where a copy was asked for",
            )),
        }
    }

    /// Makes the bytes a copy of the blob of their digest, and answers
    /// which: its `current` generation if that copy is there, else a new
    /// one. Where what [`Staged::prepare`] made no longer serves and a long
    /// copy would be needed, with `long` at [`LongCopy::GiveBack`], nothing
    /// is done and the bytes come back. The caller holds the blob's lock,
    /// and records the answer.
    pub async fn publish_prepared(
        self,
        current: Option<&str>,
        long: LongCopy,
    ) -> io::Result<Publication<Staged>> {
        let Self {
            sha256,
            size,
            bytes,
        } = self;
        Ok(match bytes.publish(&sha256, current, long).await? {
            Publication::Published(copy) => Publication::Published(copy),
            Publication::Unprepared(bytes) => Publication::Unprepared(Self {
                sha256,
                size,
                bytes,
            }),
        })
    }
}

#[cfg(test)]
impl Staged {
    /// The same bytes behind `wrap`'s (a test standing in for a backend).
    pub(crate) fn wrapped(
        self,
        wrap: impl FnOnce(Box<dyn StagedBytes>) -> Box<dyn StagedBytes>,
    ) -> Self {
        Self {
            bytes: wrap(self.bytes),
            ..self
        }
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

/// Uploads taken in at once, at most. Each holds up to two threads of
/// tokio's blocking pool (512, shared with every file read, open and write:
/// a download's chunks) while it lasts, a slow one too:
/// the one that hashes it and, on local disk, the one that writes it. Past
/// them an upload waits for one to end, so that uploads, however many and
/// however slowly sent, leave the rest of the server half the threads.
const UPLOADS_AT_ONCE: u32 = 128;

static UPLOAD_PLACES: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(UPLOADS_AT_ONCE as usize);

/// The tests that take upload places, one at a time: a test that takes
/// all but one would leave another none.
#[cfg(test)]
pub(crate) static PLACES_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A place among the [`UPLOADS_AT_ONCE`], once one is free.
async fn upload_place() -> io::Result<tokio::sync::SemaphorePermit<'static>> {
    UPLOAD_PLACES
        .acquire()
        .await
        .map_err(|_| io::Error::other("the uploads' places are closed"))
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
        let _place = upload_place().await?;
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
        let _place = upload_place().await?;
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
        let _place = upload_place().await?;
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

    /// Opens a copy of a blob for reading, with its length.
    pub async fn open_blob(&self, key: &BlobKey) -> io::Result<Box<dyn Blob>> {
        if !key.is_valid() {
            return Err(not_found("bad digest"));
        }
        self.backend.open(key).await
    }

    /// The whole copy as a blocking reader, for copies made on a thread of
    /// their own. Call it from a blocking thread.
    pub async fn blocking_reader(&self, key: &BlobKey) -> io::Result<impl io::Read + Send> {
        let blob = self.open_blob(key).await?;
        let length = blob.size();
        let stream = blob.read(0, length).await?;
        Ok(tokio_util::io::SyncIoBridge::new(
            tokio_util::io::StreamReader::new(stream),
        ))
    }

    /// Whether this copy is stored.
    pub async fn exists(&self, key: &BlobKey) -> bool {
        key.is_valid() && self.backend.exists(key).await.unwrap_or(false)
    }

    /// Deletes a copy that no record reads any more, nor ever will.
    pub async fn remove(&self, key: &BlobKey) -> io::Result<()> {
        if !key.is_valid() {
            return Ok(());
        }
        self.backend.remove(key).await
    }

    pub async fn settled_blobs(&self, grace: Duration) -> io::Result<Vec<BlobKey>> {
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

    /// Records `catalog` (a database's [`crate::store::Db::catalog_identity`])
    /// as the catalog these blobs are the bytes of, unless one is recorded:
    /// answers the one recorded. The collector takes a blob no record reads
    /// for garbage: a server whose database is not the blobs' must not start.
    pub async fn claim_for_catalog(&self, catalog: &str) -> io::Result<String> {
        self.backend.claim_for_catalog(catalog).await
    }
}

#[cfg(test)]
pub(crate) mod contract;
