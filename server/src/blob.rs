//! Image bytes on local disk, content-addressed by SHA-256.
//!
//! An upload streams into a temporary file under `tmp/` while it is hashed
//! and fsynced ([`BlobStore::ingest`] answers a [`Staged`] blob); the core
//! then publishes it ([`BlobStore::publish`], a rename to
//! `blobs/<first two hex digits>/<sha256>`) while it holds the blob's lock in
//! the database and writes the record, so that a blob is never removed while
//! a record is being attached to it. A body that fails or is cut off leaves
//! nothing: the temporary file is deleted when its guard drops, even if the
//! request's future is simply dropped. Identical content is stored once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

/// Chunks in flight between the request and the writer thread.
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
    Io(#[from] std::io::Error),
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

/// Bytes that are complete, hashed and fsynced in a temporary file, not yet
/// published. Dropping it deletes the temporary file.
#[derive(Debug)]
pub struct Staged {
    pub sha256: String,
    pub size: u64,
    temp: tempfile::TempPath,
}

/// The bytes of an upload as they arrive, as a [`std::io::Read`] for an
/// inspector running on a thread of its own. It sees every byte once, in
/// order, without a second pass over the file; an inspector that has seen
/// enough simply stops reading.
pub struct UploadReader {
    chunks: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for UploadReader {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
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

#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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

impl BlobStore {
    /// Opens (and creates) the store under `root`.
    pub async fn open(root: &Path) -> std::io::Result<Self> {
        let store = Self {
            blobs: root.join("blobs"),
            tmp: root.join("tmp"),
        };
        tokio::fs::create_dir_all(&store.blobs).await?;
        tokio::fs::create_dir_all(&store.tmp).await?;
        Ok(store)
    }

    /// Deletes temporary files that a crash left behind. Only the server calls
    /// it, at start, before any upload can be in flight.
    pub async fn discard_partial_uploads(&self) -> std::io::Result<()> {
        tokio::fs::remove_dir_all(&self.tmp).await?;
        tokio::fs::create_dir_all(&self.tmp).await
    }

    /// Whether new bytes can be written: a probe file made and removed in
    /// the staging folder, as an upload would begin.
    pub async fn check_writable(&self) -> std::io::Result<()> {
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

    /// Where the blob with this digest lives, if the digest is well formed.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.blobs.join(&sha256[..2]).join(sha256))
    }

    /// The temporary folder, for tests that check nothing is left behind.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Streams `body` to a temporary file, hashing as it goes, and fsyncs it
    /// once complete; `inspector` reads the same bytes on a thread of its
    /// own meanwhile, and its answer comes back with the staged bytes.
    /// Growing past what `allowance` grants is refused.
    pub async fn ingest<S, E, R>(
        &self,
        mut body: S,
        allowance: &mut dyn Allowance,
        inspector: impl FnOnce(&mut UploadReader) -> R + Send + 'static,
    ) -> Result<(Staged, R), IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
        R: Send + 'static,
    {
        let tmp = self.tmp.clone();
        let temp = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new().prefix("upload-").tempfile_in(tmp)
        })
        .await
        .map_err(std::io::Error::other)??;
        let (file, temp_path) = temp.into_parts();

        // Writing runs on its own thread while this task hashes the next
        // chunk: disk and SHA-256 work side by side.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_DEPTH);
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = std::io::BufWriter::with_capacity(256 * 1024, file);
            while let Some(chunk) = receiver.blocking_recv() {
                file.write_all(&chunk)?;
            }
            let file = file.into_inner().map_err(|error| error.into_error())?;
            file.sync_data()
        });

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
            if sender.send(chunk).await.is_err() {
                break; // The writer failed; its error is read below.
            }
        }
        drop(sender);
        drop(inspecting);
        writer.await.map_err(std::io::Error::other)??;
        let inspection = inspection.await.map_err(std::io::Error::other)?;

        Ok((
            Staged {
                sha256: hex::encode(hasher.finalize()),
                size,
                temp: temp_path,
            },
            inspection,
        ))
    }

    /// Makes staged bytes the blob of their digest, unless the same bytes
    /// are already there. The caller holds the blob's lock.
    pub async fn publish(&self, staged: Staged) -> std::io::Result<()> {
        let destination = self
            .path(&staged.sha256)
            .ok_or_else(|| std::io::Error::other("bad digest"))?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let folder = destination
                .parent()
                .ok_or_else(|| std::io::Error::other("no folder"))?;
            std::fs::create_dir_all(folder)?;
            if destination.exists() {
                return Ok(()); // Same bytes already stored: the guard deletes ours.
            }
            staged
                .temp
                .persist(&destination)
                .map_err(|error| error.error)?;
            // The rename itself must survive a crash.
            std::fs::File::open(folder)?.sync_all()
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Whether the blob of this digest is on disk.
    pub async fn exists(&self, sha256: &str) -> bool {
        match self.path(sha256) {
            Some(path) => tokio::fs::try_exists(path).await.unwrap_or(false),
            None => false,
        }
    }

    /// Deletes temporary files untouched for `grace` (uploads that a crash
    /// or a stalled client left); answers how many.
    pub async fn discard_stale_uploads(&self, grace: Duration) -> std::io::Result<usize> {
        let tmp = self.tmp.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&tmp)? {
                let entry = entry?;
                if older_than(&entry, grace) && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// The digests of the blobs on disk untouched for `grace`: candidates
    /// for collection once the database says no record uses them.
    pub async fn settled_blobs(&self, grace: Duration) -> std::io::Result<Vec<String>> {
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
                    if is_sha256(&name) && older_than(&entry, grace) {
                        found.push(name);
                    }
                }
            }
            Ok(found)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Opens a blob for reading, with its length.
    pub async fn open_blob(&self, sha256: &str) -> std::io::Result<(tokio::fs::File, u64)> {
        let path = self
            .path(sha256)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "bad digest"))?;
        let file = tokio::fs::File::open(path).await?;
        let length = file.metadata().await?.len();
        Ok((file, length))
    }

    /// Deletes a blob that no record uses any more.
    pub async fn remove(&self, sha256: &str) -> std::io::Result<()> {
        match self.path(sha256) {
            Some(path) => match tokio::fs::remove_file(path).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        parts: Vec<Result<&'static [u8], &'static str>>,
    ) -> impl Stream<Item = Result<Bytes, &'static str>> + Unpin {
        futures_util::stream::iter(parts.into_iter().map(|part| part.map(Bytes::from_static)))
    }

    fn read_all(reader: &mut UploadReader) -> Vec<u8> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(reader, &mut bytes).unwrap();
        bytes
    }

    fn files_in(folder: &Path) -> usize {
        walk(folder).len()
    }

    fn walk(folder: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    #[tokio::test]
    async fn stores_under_the_digest_and_only_once() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::open(root.path()).await.unwrap();
        let (first, seen) = store
            .ingest(
                chunks(vec![Ok(b"hello "), Ok(b"world")]),
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
        store.publish(first).await.unwrap();
        assert!(store.exists(&digest).await);
        let (second, _) = store
            .ingest(chunks(vec![Ok(b"hello world")]), &mut Limit(100), |_| ())
            .await
            .unwrap();
        store.publish(second).await.unwrap();
        let stored = std::fs::read(store.path(&digest).unwrap()).unwrap();
        assert_eq!(stored, b"hello world");
        assert_eq!(files_in(&root.path().join("blobs")), 1);
        assert_eq!(files_in(store.tmp_dir()), 0);
    }

    #[tokio::test]
    async fn a_failed_or_oversized_body_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::open(root.path()).await.unwrap();
        let cut = store
            .ingest(
                chunks(vec![Ok(b"part"), Err("connection reset")]),
                &mut Limit(100),
                read_all,
            )
            .await;
        assert!(matches!(cut, Err(IngestError::Body(_))));
        let big = store
            .ingest(
                chunks(vec![Ok(b"0123456789"), Ok(b"0123456789")]),
                &mut Limit(15),
                read_all,
            )
            .await;
        assert!(matches!(big, Err(IngestError::TooLarge { limit: 15 })));
        assert_eq!(files_in(root.path()), 0);
    }

    #[test]
    fn only_hex_digests_map_to_paths() {
        let store = BlobStore {
            blobs: PathBuf::from("/b"),
            tmp: PathBuf::from("/t"),
        };
        assert!(store.path("../../etc/passwd").is_none());
        assert!(store.path(&"A".repeat(64)).is_none());
        assert_eq!(
            store.path(&"ab".repeat(32)).unwrap(),
            PathBuf::from(format!("/b/ab/{}", "ab".repeat(32)))
        );
    }
}
