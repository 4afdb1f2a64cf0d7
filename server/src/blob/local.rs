//! Blobs in a local folder, the embedded default: an upload streams into a
//! temporary file under `tmp/` (written on a thread of its own, around the
//! page cache where the filesystem allows, see [`direct`]) and is fsynced;
//! publishing renames it to `blobs/<first two hex digits>/<sha256>.<generation>`
//! (see [`BlobKey`]; a blob published before generations is under its digest
//! alone). One
//! server owns the folder, so what a crash left in `tmp/` is discarded at
//! start.
//!
//! A resumable upload is one file, `uploads/<id>`, each chunk appended and
//! fsynced (bytes past the offset acknowledged last are cut off first) by
//! one writer at a time, which locks the file; once complete, the file is
//! hard-linked as its blob: its bytes are written once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{
    is_sha256, is_upload_name, not_found, Area, Backend, Blob, BlobKey, ByteStream, LongCopy, Part,
    PartWriting, Publication, StagedBytes, Staging, WrittenPart,
};

mod direct;
mod mapped;
#[cfg(test)]
pub(crate) use mapped::MAPPING_TESTS;
pub use mapped::{file_range, FileRange};
mod reading;
mod upload_staged;

use reading::LocalBlob;
use upload_staged::LocalUploadStaged;

/// Chunks in flight between the request and the writer thread.
const QUEUE_DEPTH: usize = 8;

#[derive(Debug, Clone)]
pub struct LocalBlobs {
    blobs: PathBuf,
    tmp: PathBuf,
    uploads: PathBuf,
    /// Names the catalog the blobs are the bytes of.
    catalog: PathBuf,
}

/// Whether a directory entry was last modified more than `grace` ago.
fn older_than(entry: &std::fs::DirEntry, grace: Duration) -> bool {
    entry
        .metadata()
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age >= grace)
}

/// The name a blob is copied under until it is whole: one of its own for
/// each copy (two uploads of the same bytes may copy at once).
fn partial_copy(sha256: &str) -> String {
    format!(".{sha256}.{:016x}.partial", rand::random::<u64>())
}

/// Whether a name in `blobs/` is a copy's until it is whole (or, without
/// its own part, one an earlier version made).
fn is_partial_copy(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_suffix(".partial"))
    else {
        return false;
    };
    match rest.split_once('.') {
        None => is_sha256(rest),
        Some((sha256, own)) => {
            is_sha256(sha256) && own.len() == 16 && own.bytes().all(|b| b.is_ascii_hexdigit())
        }
    }
}

fn lost(error: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(error)
}

impl LocalBlobs {
    /// Opens (and creates) the store under `root`.
    pub async fn open(root: &Path) -> std::io::Result<Self> {
        let store = Self {
            blobs: root.join("blobs"),
            tmp: root.join("tmp"),
            uploads: root.join("uploads"),
            catalog: root.join("catalog"),
        };
        tokio::fs::create_dir_all(&store.blobs).await?;
        tokio::fs::create_dir_all(&store.tmp).await?;
        tokio::fs::create_dir_all(&store.uploads).await?;
        Ok(store)
    }

    /// The file of resumable upload `upload`, if its id is a plain name.
    fn upload_path(&self, upload: &str) -> std::io::Result<PathBuf> {
        if is_upload_name(upload) {
            Ok(self.uploads.join(upload))
        } else {
            Err(not_found("bad upload id"))
        }
    }

    /// Where this copy of a blob lives, if its key is well formed.
    fn path(&self, key: &BlobKey) -> Option<PathBuf> {
        key.is_valid()
            .then(|| self.blobs.join(key.folder()).join(key.file_name()))
    }
}

/// Every this many bytes written, their write-back to disk is started.
const WRITE_BACK_EVERY: u64 = 8 << 20;

/// Chunks a writer thread writes in one call, at most.
const BATCH: usize = 16;

/// Writes what arrives through the channel to `file` on a thread of its
/// own (while the request's task receives the next chunk: disk, network and
/// SHA-256 work side by side), and fsyncs it at the end. From a block's
/// start, on a filesystem that takes them, with direct writes (see
/// [`direct`]); otherwise through the page cache: the chunks waiting
/// go out in one vectored write, from where they are: no copy into a buffer
/// first. The bytes go to disk as they come, not all at the fsync: the disk
/// writes while the network delivers, and the fsync that acknowledges them
/// waits for little.
fn spawn_writer(
    mut file: std::fs::File,
) -> (
    tokio::sync::mpsc::Sender<Bytes>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_DEPTH);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut written = std::io::Seek::stream_position(&mut file)?;
        if let Some(direct) = direct::Direct::begin(&file, written) {
            direct.write(&file, written, &mut receiver)?;
            return file.sync_data();
        }
        let mut unsent = written;
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(chunk) = receiver.blocking_recv() {
            batch.push(chunk);
            while batch.len() < BATCH {
                match receiver.try_recv() {
                    Ok(chunk) => batch.push(chunk),
                    Err(_) => break,
                }
            }
            written += write_all_vectored(&mut file, &batch)?;
            batch.clear();
            if written - unsent >= WRITE_BACK_EVERY {
                start_write_back(&file, unsent, written - unsent);
                unsent = written;
            }
        }
        file.sync_data()
    });
    (sender, writer)
}

/// Writes every byte of `chunks`, in as few calls as the kernel allows;
/// answers how many that was.
fn write_all_vectored(file: &mut impl Write, chunks: &[Bytes]) -> std::io::Result<u64> {
    let mut slices: Vec<std::io::IoSlice<'_>> = chunks
        .iter()
        .map(|chunk| std::io::IoSlice::new(chunk))
        .collect();
    let mut slices = &mut slices[..];
    let total = chunks.iter().map(|chunk| chunk.len() as u64).sum();
    // Leading empty chunks dropped: a batch of nothing but empty chunks is
    // written at once, not taken for a write that wrote zero.
    std::io::IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(wrote) => std::io::IoSlice::advance_slices(&mut slices, wrote),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(total)
}

/// Starts writing `length` bytes of `file` from `start` to disk, without
/// waiting: Linux's `POSIX_FADV_DONTNEED` starts write-back of the range's
/// dirty pages (and drops those already clean, which nothing here reads
/// again). Only a hint: the fsync after it is what makes the bytes durable.
fn start_write_back(file: &std::fs::File, start: u64, length: u64) {
    let length = std::num::NonZeroU64::new(length);
    if let Err(error) = rustix::fs::fadvise(file, start, length, rustix::fs::Advice::DontNeed) {
        tracing::debug!(%error, "cannot start write-back early");
    }
}

/// Sends `chunk` to a writer thread; if the writer stopped, its error is
/// the answer.
async fn send_to_writer(
    sender: &mut tokio::sync::mpsc::Sender<Bytes>,
    writer: &mut tokio::task::JoinHandle<std::io::Result<()>>,
    chunk: Bytes,
) -> std::io::Result<()> {
    if sender.send(chunk).await.is_err() {
        let (closed, _) = tokio::sync::mpsc::channel(1);
        *sender = closed;
        return match writer.await.map_err(lost)? {
            Err(error) => Err(error),
            Ok(()) => Err(std::io::Error::other("the writer stopped")),
        };
    }
    Ok(())
}

/// A temporary file being written by its own thread.
struct LocalStaging {
    sender: tokio::sync::mpsc::Sender<Bytes>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
    temp: tempfile::TempPath,
    blobs: PathBuf,
}

#[async_trait::async_trait]
impl Staging for LocalStaging {
    async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        send_to_writer(&mut self.sender, &mut self.writer, chunk).await
    }

    async fn finish(self: Box<Self>) -> std::io::Result<Box<dyn StagedBytes>> {
        let Self {
            sender,
            writer,
            temp,
            blobs,
        } = *self;
        drop(sender);
        writer.await.map_err(lost)??;
        Ok(Box::new(LocalStaged { temp, blobs }))
    }
}

/// Makes a blob's prefix folder (`blobs/ab/`) if it is not there yet, its
/// entry in the blobs folder synced: the blob's own entry is synced in the
/// prefix folder once renamed there, and a crash must not lose the folder
/// that holds it after the record naming it is committed.
/// Once per folder and process (256 at most): a folder seen there may be
/// one another thread has made and not yet synced.
fn prefix_folder(blobs: &Path, folder: &Path) -> std::io::Result<()> {
    static SYNCED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let synced = |folders: &Vec<PathBuf>| folders.iter().any(|synced| synced == folder);
    if synced(
        &SYNCED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    ) {
        return Ok(());
    }
    std::fs::create_dir_all(folder)?;
    std::fs::File::open(blobs)?.sync_all()?;
    let mut folders = SYNCED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !synced(&folders) {
        folders.push(folder.to_owned());
    }
    Ok(())
}

/// A complete, fsynced temporary file; deleted when dropped unpublished.
#[derive(Debug)]
struct LocalStaged {
    temp: tempfile::TempPath,
    blobs: PathBuf,
}

/// The blob's `current` copy, if its file is there: the same bytes, kept
/// rather than a new copy.
fn current_copy(
    folder: &Path,
    sha256: &str,
    current: Option<&str>,
) -> std::io::Result<Option<BlobKey>> {
    let Some(key) = BlobKey::named(sha256, current) else {
        return Ok(None);
    };
    let there = folder.join(key.file_name()).try_exists()?;
    Ok(there.then_some(key))
}

#[async_trait::async_trait]
impl StagedBytes for LocalStaged {
    /// A rename, never a copy: nothing to prepare.
    async fn publish(
        self: Box<Self>,
        sha256: &str,
        current: Option<&str>,
        _long: LongCopy,
    ) -> std::io::Result<Publication<Box<dyn StagedBytes>>> {
        let folder = self.blobs.join(&sha256[..2]);
        let (sha256, current) = (sha256.to_owned(), current.map(str::to_owned));
        tokio::task::spawn_blocking(move || -> std::io::Result<BlobKey> {
            prefix_folder(&self.blobs, &folder)?;
            if let Some(kept) = current_copy(&folder, &sha256, current.as_deref())? {
                return Ok(kept); // Same bytes already stored: the guard deletes ours.
            }
            let key = BlobKey::fresh(&sha256);
            self.temp
                .persist(folder.join(key.file_name()))
                .map_err(|error| error.error)?;
            // The rename itself must survive a crash.
            std::fs::File::open(&folder)?.sync_all()?;
            Ok(key)
        })
        .await
        .map_err(lost)?
        .map(Publication::Published)
    }
}

/// How often a chunk looks again whether the writer before it has ended.
const LOCK_POLL: Duration = Duration::from_millis(2);

/// Opens an upload's file and takes its lock, which a writer holds until
/// it ends: the thread of a chunk given up on mid-way (its request dropped)
/// still writes what it was sent, then fsyncs, and nothing of that chunk
/// may land after the next one's cut. Waited for without a thread: a
/// request dropped while it waits stops waiting and leaves the file as it
/// was (a wait on a blocking thread would go on, and cut the file later,
/// under a chunk acknowledged meanwhile).
async fn locked_upload_file(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    let opening = path.to_owned();
    let file = tokio::task::spawn_blocking(move || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(create)
            .truncate(false)
            .open(opening)
    })
    .await
    .map_err(lost)??;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) => tokio::time::sleep(LOCK_POLL).await,
            Err(rustix::io::Errno::INTR) => {}
            Err(error) => return Err(error.into()),
        }
    }
}

/// A chunk being appended to an upload's file by its own thread.
struct LocalPartWriting {
    sender: tokio::sync::mpsc::Sender<Bytes>,
    writer: tokio::task::JoinHandle<std::io::Result<()>>,
    name: String,
}

#[async_trait::async_trait]
impl PartWriting for LocalPartWriting {
    async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        send_to_writer(&mut self.sender, &mut self.writer, bytes).await
    }

    async fn finish(self: Box<Self>) -> std::io::Result<Box<dyn WrittenPart>> {
        let Self {
            sender,
            writer,
            name,
        } = *self;
        drop(sender);
        writer.await.map_err(lost)??;
        Ok(Box::new(LocalPart { name }))
    }
}

/// A chunk appended to an upload's file. One not kept needs no undoing:
/// the next chunk cuts the file back to the offset acknowledged last.
#[derive(Debug)]
struct LocalPart {
    name: String,
}

impl WrittenPart for LocalPart {
    fn name(&self) -> &str {
        &self.name
    }

    fn keep(self: Box<Self>) {}
}

#[async_trait::async_trait]
impl Backend for LocalBlobs {
    async fn stage(&self) -> std::io::Result<Box<dyn Staging>> {
        let tmp = self.tmp.clone();
        let temp = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new().prefix("upload-").tempfile_in(tmp)
        })
        .await
        .map_err(lost)??;
        let (file, temp) = temp.into_parts();
        let (sender, writer) = spawn_writer(file);
        Ok(Box::new(LocalStaging {
            sender,
            writer,
            temp,
            blobs: self.blobs.clone(),
        }))
    }

    async fn open(&self, key: &BlobKey) -> std::io::Result<Box<dyn Blob>> {
        let path = self.path(key).ok_or_else(|| not_found("bad digest"))?;
        Ok(Box::new(LocalBlob::open_published(path).await?))
    }

    async fn exists(&self, key: &BlobKey) -> std::io::Result<bool> {
        match self.path(key) {
            Some(path) => tokio::fs::try_exists(path).await,
            None => Ok(false),
        }
    }

    async fn remove(&self, key: &BlobKey) -> std::io::Result<()> {
        match self.path(key) {
            Some(path) => match tokio::fs::remove_file(path).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    async fn settled_blobs(&self, grace: Duration) -> std::io::Result<Vec<BlobKey>> {
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for folder in std::fs::read_dir(&blobs)? {
                let folder = folder?;
                if !folder.file_type()?.is_dir() {
                    continue;
                }
                for entry in std::fs::read_dir(folder.path())? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if let Some(key) = BlobKey::from_file_name(&name) {
                        if older_than(&entry, grace) {
                            found.push(key);
                        }
                    }
                }
            }
            Ok(found)
        })
        .await
        .map_err(lost)?
    }

    async fn discard_stale_uploads(&self, grace: Duration) -> std::io::Result<usize> {
        let (tmp, blobs) = (self.tmp.clone(), self.blobs.clone());
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            let mut discard = |entry: &std::fs::DirEntry| {
                if older_than(entry, grace) && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            };
            for entry in std::fs::read_dir(&tmp)? {
                discard(&entry?);
            }
            // And the copies of complete uploads into `blobs/` (from an
            // `uploads/` mounted apart) that a crash cut short: nothing
            // else removes them, since no digest names them. A folder that
            // cannot be read is left to the next round.
            let folders = std::fs::read_dir(&blobs)?.flatten();
            for folder in folders.filter(|folder| folder.path().is_dir()) {
                let Ok(entries) = std::fs::read_dir(folder.path()) else {
                    continue;
                };
                for entry in entries.flatten() {
                    if is_partial_copy(&entry.file_name().to_string_lossy()) {
                        discard(&entry);
                    }
                }
            }
            Ok(removed)
        })
        .await
        .map_err(lost)?
    }

    async fn discard_partial_uploads(&self) -> std::io::Result<()> {
        tokio::fs::remove_dir_all(&self.tmp).await?;
        tokio::fs::create_dir_all(&self.tmp).await
    }

    async fn claim_for_catalog(&self, catalog: &str) -> std::io::Result<String> {
        let (path, tmp, catalog) = (self.catalog.clone(), self.tmp.clone(), catalog.to_owned());
        tokio::task::spawn_blocking(move || {
            // Written whole, then linked into place unless a name is there:
            // never a file half written, nor one written over.
            let mut written = tempfile::Builder::new()
                .prefix(".catalog-")
                .tempfile_in(&tmp)?;
            std::io::Write::write_all(&mut written, catalog.as_bytes())?;
            written.as_file().sync_all()?;
            match std::fs::hard_link(written.path(), &path) {
                Ok(()) => {
                    if let Some(folder) = path.parent() {
                        std::fs::File::open(folder)?.sync_all()?;
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(error),
            }
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        })
        .await
        .map_err(lost)?
    }

    async fn check_writable(&self) -> std::io::Result<()> {
        let probe = self
            .tmp
            .join(format!(".ready-{:016x}", rand::random::<u64>()));
        tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .await?;
        tokio::fs::remove_file(&probe).await
    }

    async fn stored(&self, area: Area) -> std::io::Result<Vec<String>> {
        fn walk(folder: &Path, found: &mut Vec<String>) -> std::io::Result<()> {
            for entry in std::fs::read_dir(folder)? {
                let path = entry?.path();
                if path.is_dir() {
                    walk(&path, found)?;
                } else {
                    found.push(path.to_string_lossy().into_owned());
                }
            }
            Ok(())
        }
        let folder = match area {
            Area::Blobs => self.blobs.clone(),
            Area::Staging => self.tmp.clone(),
            Area::Uploads => self.uploads.clone(),
        };
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            walk(&folder, &mut found)?;
            Ok(found)
        })
        .await
        .map_err(lost)?
    }

    async fn write_part(&self, upload: &str, offset: u64) -> std::io::Result<Box<dyn PartWriting>> {
        let path = self.upload_path(upload)?;
        let mut file = locked_upload_file(&path, offset == 0).await?;
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let found = file.metadata()?;
            // A finished upload's file is its blob's too (linked, not
            // copied), and a stored blob is never written in place: its
            // bytes are what its name says, and downloads send its pages.
            if std::os::unix::fs::MetadataExt::nlink(&found) > 1 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the upload's file is a stored blob now, not written again",
                ));
            }
            let kept = found.len();
            if kept < offset {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("the upload's file holds {kept} bytes, not {offset}"),
                ));
            }
            // A chunk written before but never acknowledged is cut off.
            if kept > offset {
                file.set_len(offset)?;
            }
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset))?;
            if offset == 0 {
                // The new file's name must survive a crash.
                if let Some(folder) = path.parent() {
                    std::fs::File::open(folder)?.sync_all()?;
                }
            }
            Ok(file)
        })
        .await
        .map_err(lost)??;
        let (sender, writer) = spawn_writer(file);
        Ok(Box::new(LocalPartWriting {
            sender,
            writer,
            name: upload.to_owned(),
        }))
    }

    async fn read_parts(&self, upload: &str, parts: &[Part]) -> std::io::Result<ByteStream> {
        let end = parts.last().map_or(0, |part| part.start + part.size);
        let file = LocalBlob::open(self.upload_path(upload)?).await?;
        if file.length < end {
            return Err(std::io::Error::other(format!(
                "the upload's file holds {} bytes, not {end}",
                file.length
            )));
        }
        Box::new(file).read(0, end).await
    }

    async fn stage_parts(
        &self,
        upload: &str,
        parts: &[Part],
    ) -> std::io::Result<Box<dyn StagedBytes>> {
        Ok(Box::new(LocalUploadStaged::new(
            self.upload_path(upload)?,
            parts.last().map_or(0, |part| part.start + part.size),
            self.blobs.clone(),
        )))
    }

    async fn remove_parts(&self, upload: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.upload_path(upload)?).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }

    async fn kept_uploads(&self, grace: Duration) -> std::io::Result<Vec<String>> {
        let uploads = self.uploads.clone();
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&uploads)? {
                let entry = entry?;
                if older_than(&entry, grace) {
                    found.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            Ok(found)
        })
        .await
        .map_err(lost)?
    }
}

#[cfg(test)]
mod tests;
