//! Image bytes on local disk, content-addressed by SHA-256.
//!
//! An upload streams into a temporary file under `tmp/` while it is hashed;
//! only when the body is complete is the file fsynced and renamed to
//! `blobs/<first two hex digits>/<sha256>`. A body that fails or is cut off
//! leaves nothing: the temporary file is deleted when its guard drops, even if
//! the request's future is simply dropped. Identical content is stored once.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

/// How many leading bytes an upload keeps in memory for format detection
/// (an ISO's volume descriptor sits at 32 KiB).
pub const HEAD_LEN: usize = 64 * 1024;

/// Chunks in flight between the request and the writer thread.
const QUEUE_DEPTH: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the file is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    #[error("the upload was interrupted: {0}")]
    Body(String),
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A blob that is safely on disk.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub sha256: String,
    pub size: u64,
    /// The first [`HEAD_LEN`] bytes.
    pub head: Vec<u8>,
    /// False when the same bytes were already stored.
    pub newly_stored: bool,
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

    /// Where the blob with this digest lives, if the digest is well formed.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.blobs.join(&sha256[..2]).join(sha256))
    }

    /// The temporary folder, for tests that check nothing is left behind.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Streams `body` to disk, hashing as it goes, and publishes it under its
    /// digest once complete. More than `limit` bytes is refused.
    pub async fn ingest<S, E>(&self, mut body: S, limit: u64) -> Result<Ingested, IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
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

        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut head = Vec::with_capacity(HEAD_LEN);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| IngestError::Body(error.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(IngestError::TooLarge { limit });
            }
            if head.len() < HEAD_LEN {
                let take = (HEAD_LEN - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(&chunk);
            if sender.send(chunk).await.is_err() {
                break; // The writer failed; its error is read below.
            }
        }
        drop(sender);
        writer.await.map_err(std::io::Error::other)??;

        let sha256 = hex::encode(hasher.finalize());
        let destination = self
            .path(&sha256)
            .ok_or_else(|| std::io::Error::other("bad digest"))?;
        let newly_stored = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
            let folder = destination
                .parent()
                .ok_or_else(|| std::io::Error::other("no folder"))?;
            std::fs::create_dir_all(folder)?;
            if destination.exists() {
                return Ok(false); // Same bytes already stored: the guard deletes ours.
            }
            temp_path
                .persist(&destination)
                .map_err(|error| error.error)?;
            // The rename itself must survive a crash.
            std::fs::File::open(folder)?.sync_all()?;
            Ok(true)
        })
        .await
        .map_err(std::io::Error::other)??;

        Ok(Ingested {
            sha256,
            size,
            head,
            newly_stored,
        })
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
        let first = store
            .ingest(chunks(vec![Ok(b"hello "), Ok(b"world")]), 100)
            .await
            .unwrap();
        assert_eq!(
            first.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(first.size, 11);
        assert_eq!(first.head, b"hello world");
        assert!(first.newly_stored);
        let second = store
            .ingest(chunks(vec![Ok(b"hello world")]), 100)
            .await
            .unwrap();
        assert!(!second.newly_stored);
        let stored = std::fs::read(store.path(&first.sha256).unwrap()).unwrap();
        assert_eq!(stored, b"hello world");
        assert_eq!(files_in(&root.path().join("blobs")), 1);
        assert_eq!(files_in(store.tmp_dir()), 0);
    }

    #[tokio::test]
    async fn a_failed_or_oversized_body_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::open(root.path()).await.unwrap();
        let cut = store
            .ingest(chunks(vec![Ok(b"part"), Err("connection reset")]), 100)
            .await;
        assert!(matches!(cut, Err(IngestError::Body(_))));
        let big = store
            .ingest(chunks(vec![Ok(b"0123456789"), Ok(b"0123456789")]), 15)
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
