//! A complete resumable upload's file, published as its blob: linked, or
//! where `uploads/` is another file system than `blobs/`, copied first.

use std::path::{Path, PathBuf};

use super::super::{BlobKey, LongCopy, Publication, StagedBytes};
use super::{current_copy, lost, partial_copy, prefix_folder};

/// A complete upload's file, to be linked as its blob; the file itself
/// stays until the upload's parts are removed (a completion that fails
/// after publishing finds its bytes still there).
#[derive(Debug)]
pub(super) struct LocalUploadStaged {
    file: PathBuf,
    length: u64,
    blobs: PathBuf,
    /// The file beside its blob (linked or copied) before the blob's lock
    /// is taken; removed if dropped unpublished.
    beside: Option<tempfile::TempPath>,
}

impl LocalUploadStaged {
    pub(super) fn new(file: PathBuf, length: u64, blobs: PathBuf) -> Self {
        Self {
            file,
            length,
            blobs,
            beside: None,
        }
    }
}

/// The upload's file, locked (no writer changes it until it is dropped) and
/// holding exactly `length` bytes: bytes past it were never acknowledged.
fn locked_at_length(path: &Path, length: u64) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
    let kept = file.metadata()?.len();
    if kept < length {
        return Err(std::io::Error::other(format!(
            "the upload's file holds {kept} bytes, not {length}"
        )));
    }
    if kept > length {
        file.set_len(length)?;
        file.sync_all()?;
    }
    Ok(file)
}

/// The upload's file beside its blob, under a partial name: the same file,
/// linked (its bytes written once), or where it cannot be (`uploads/` on
/// another file system, or another mount of the same), a copy, whole and on
/// disk.
fn beside_its_blob(
    path: &Path,
    length: u64,
    folder: &Path,
    sha256: &str,
) -> std::io::Result<tempfile::TempPath> {
    let beside = tempfile::TempPath::try_from_path(folder.join(partial_copy(sha256)))?;
    let _locked = locked_at_length(path, length)?;
    match std::fs::hard_link(path, &beside) {
        // Its time is the upload's last write, maybe hours ago: the
        // collector of stale partial copies would take it for one a crash
        // left before it is renamed into place.
        Ok(()) => std::fs::File::open(&beside)?.set_modified(std::time::SystemTime::now())?,
        Err(error) if error.kind() == std::io::ErrorKind::CrossesDevices => {
            std::fs::copy(path, &beside)?;
            std::fs::File::open(&beside)?.sync_all()?;
        }
        Err(error) => return Err(error),
    }
    Ok(beside)
}

#[async_trait::async_trait]
impl StagedBytes for LocalUploadStaged {
    /// The file put beside its blob: a copy of many GiB where it must be
    /// copied, made before the blob's lock is taken (on SQLite, the
    /// database's write lock), not while every other write waits.
    async fn prepare(&mut self, sha256: &str, current: Option<&str>) -> std::io::Result<()> {
        let (file, length, blobs) = (self.file.clone(), self.length, self.blobs.clone());
        let folder = blobs.join(&sha256[..2]);
        let (sha256, current) = (sha256.to_owned(), current.map(str::to_owned));
        self.beside = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            prefix_folder(&blobs, &folder)?;
            if current_copy(&folder, &sha256, current.as_deref())?.is_some() {
                return Ok(None);
            }
            beside_its_blob(&file, length, &folder, &sha256).map(Some)
        })
        .await
        .map_err(lost)??;
        Ok(())
    }

    /// Under the blob's lock: a rename of the file put beside its blob, or
    /// where that was not made (the blob's copy was there then, and has been
    /// removed since), the bytes given back, or with [`LongCopy::Make`] the
    /// file linked or copied there now.
    async fn publish(
        mut self: Box<Self>,
        sha256: &str,
        current: Option<&str>,
        long: LongCopy,
    ) -> std::io::Result<Publication<Box<dyn StagedBytes>>> {
        let folder = self.blobs.join(&sha256[..2]);
        let (sha256, current) = (sha256.to_owned(), current.map(str::to_owned));
        tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            prefix_folder(&self.blobs, &folder)?;
            if let Some(kept) = current_copy(&folder, &sha256, current.as_deref())? {
                return Ok(Publication::Published(kept)); // Same bytes already stored.
            }
            let beside = match self.beside.take() {
                Some(beside) => beside,
                // Not prepared, or the blob was there then and has been
                // removed since: a link, or where `uploads/` is another
                // file system, a copy of the whole file.
                None if long == LongCopy::GiveBack => {
                    return Ok(Publication::Unprepared(self as Box<dyn StagedBytes>));
                }
                None => beside_its_blob(&self.file, self.length, &folder, &sha256)?,
            };
            let key = BlobKey::fresh(&sha256);
            beside
                .persist(folder.join(key.file_name()))
                .map_err(|error| error.error)?;
            std::fs::File::open(&folder)?.sync_all()?;
            Ok(Publication::Published(key))
        })
        .await
        .map_err(lost)?
    }
}
