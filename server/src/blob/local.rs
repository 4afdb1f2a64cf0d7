//! Blobs in a local folder, the embedded default: an upload streams into a
//! temporary file under `tmp/` (written on a thread of its own while the
//! request's task hashes the next chunk) and is fsynced; publishing renames
//! it to `blobs/<first two hex digits>/<sha256>`. One server owns the folder,
//! so what a crash left in `tmp/` is discarded at start.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{is_sha256, not_found, Area, Backend, Blob, ByteStream, StagedBytes, Staging};

/// Chunks in flight between the request and the writer thread.
const QUEUE_DEPTH: usize = 8;

/// Read size for downloads: large enough to keep the socket busy.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct LocalBlobs {
    blobs: PathBuf,
    tmp: PathBuf,
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

fn lost(error: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(error)
}

impl LocalBlobs {
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

    /// Where the blob with this digest lives, if the digest is well formed.
    fn path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.blobs.join(&sha256[..2]).join(sha256))
    }
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
        if self.sender.send(chunk).await.is_err() {
            // The writer stopped: its error is the answer.
            let (sender, _) = tokio::sync::mpsc::channel(1);
            self.sender = sender;
            return match (&mut self.writer).await.map_err(lost)? {
                Err(error) => Err(error),
                Ok(()) => Err(std::io::Error::other("the writer stopped")),
            };
        }
        Ok(())
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

/// A complete, fsynced temporary file; deleted when dropped unpublished.
#[derive(Debug)]
struct LocalStaged {
    temp: tempfile::TempPath,
    blobs: PathBuf,
}

#[async_trait::async_trait]
impl StagedBytes for LocalStaged {
    async fn publish(self: Box<Self>, sha256: &str) -> std::io::Result<()> {
        let folder = self.blobs.join(&sha256[..2]);
        let destination = folder.join(sha256);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&folder)?;
            if destination.exists() {
                return Ok(()); // Same bytes already stored: the guard deletes ours.
            }
            self.temp
                .persist(&destination)
                .map_err(|error| error.error)?;
            // The rename itself must survive a crash.
            std::fs::File::open(&folder)?.sync_all()
        })
        .await
        .map_err(lost)?
    }
}

/// An open blob file.
struct LocalBlob {
    file: tokio::fs::File,
    length: u64,
}

#[async_trait::async_trait]
impl Blob for LocalBlob {
    fn size(&self) -> u64 {
        self.length
    }

    async fn read(mut self: Box<Self>, start: u64, count: u64) -> std::io::Result<ByteStream> {
        if start > 0 {
            self.file.seek(std::io::SeekFrom::Start(start)).await?;
        }
        Ok(Box::pin(ReaderStream::with_capacity(
            self.file.take(count),
            READ_CHUNK,
        )))
    }
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
        // Writing runs on its own thread while the request's task hashes
        // the next chunk: disk and SHA-256 work side by side.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(QUEUE_DEPTH);
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut file = std::io::BufWriter::with_capacity(256 * 1024, file);
            while let Some(chunk) = receiver.blocking_recv() {
                file.write_all(&chunk)?;
            }
            let file = file.into_inner().map_err(|error| error.into_error())?;
            file.sync_data()
        });
        Ok(Box::new(LocalStaging {
            sender,
            writer,
            temp,
            blobs: self.blobs.clone(),
        }))
    }

    async fn open(&self, sha256: &str) -> std::io::Result<Box<dyn Blob>> {
        let path = self.path(sha256).ok_or_else(|| not_found("bad digest"))?;
        let file = tokio::fs::File::open(path).await?;
        let length = file.metadata().await?.len();
        Ok(Box::new(LocalBlob { file, length }))
    }

    async fn exists(&self, sha256: &str) -> std::io::Result<bool> {
        match self.path(sha256) {
            Some(path) => tokio::fs::try_exists(path).await,
            None => Ok(false),
        }
    }

    async fn remove(&self, sha256: &str) -> std::io::Result<()> {
        match self.path(sha256) {
            Some(path) => match tokio::fs::remove_file(path).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    async fn settled_blobs(&self, grace: Duration) -> std::io::Result<Vec<String>> {
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
        .map_err(lost)?
    }

    async fn discard_stale_uploads(&self, grace: Duration) -> std::io::Result<usize> {
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
        .map_err(lost)?
    }

    async fn discard_partial_uploads(&self) -> std::io::Result<()> {
        tokio::fs::remove_dir_all(&self.tmp).await?;
        tokio::fs::create_dir_all(&self.tmp).await
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
        };
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            walk(&folder, &mut found)?;
            Ok(found)
        })
        .await
        .map_err(lost)?
    }
}

#[cfg(test)]
mod tests {
    use super::super::{tests as contract, BlobStore};
    use super::*;

    #[tokio::test]
    async fn stores_under_the_digest_and_only_once() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::open(root.path()).await.unwrap();
        contract::stores_under_the_digest_and_only_once(store).await;
    }

    #[tokio::test]
    async fn a_failed_or_oversized_body_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let store = BlobStore::open(root.path()).await.unwrap();
        contract::a_failed_or_oversized_body_leaves_nothing(store, 10).await;
    }

    #[test]
    fn only_hex_digests_map_to_paths() {
        let store = LocalBlobs {
            blobs: PathBuf::from("/b"),
            tmp: PathBuf::from("/t"),
        };
        assert!(store.path("../../etc/passwd").is_none());
        assert_eq!(
            store.path(&"ab".repeat(32)).unwrap(),
            PathBuf::from(format!("/b/ab/{}", "ab".repeat(32)))
        );
    }
}
