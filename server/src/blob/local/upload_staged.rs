//! A complete resumable upload's file, published as its blob: linked, or
//! where `uploads/` is another file system than `blobs/`, copied first.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::super::StagedBytes;
use super::{lost, partial_copy, prefix_folder};

/// A complete upload's file, to be linked as its blob; the file itself
/// stays until the upload's parts are removed (a completion that fails
/// after publishing finds its bytes still there).
#[derive(Debug)]
pub(super) struct LocalUploadStaged {
    file: PathBuf,
    length: u64,
    blobs: PathBuf,
    /// Its copy beside the blob, made before the blob's lock is taken when
    /// the file cannot be linked; removed if dropped unpublished.
    copied: Option<tempfile::TempPath>,
}

impl LocalUploadStaged {
    pub(super) fn new(file: PathBuf, length: u64, blobs: PathBuf) -> Self {
        Self {
            file,
            length,
            blobs,
            copied: None,
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

/// Copies the upload's file beside its blob, whole and on disk.
fn copy_beside(
    path: &Path,
    length: u64,
    folder: &Path,
    sha256: &str,
) -> std::io::Result<tempfile::TempPath> {
    let copy = tempfile::TempPath::try_from_path(folder.join(partial_copy(sha256)))?;
    let _locked = locked_at_length(path, length)?;
    std::fs::copy(path, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    Ok(copy)
}

#[async_trait::async_trait]
impl StagedBytes for LocalUploadStaged {
    /// On another file system than the blobs', the copy: many GiB, made
    /// before the blob's lock is taken (on SQLite, the database's write
    /// lock), not while every other write waits.
    async fn prepare(&mut self, sha256: &str) -> std::io::Result<()> {
        let (file, length, blobs) = (self.file.clone(), self.length, self.blobs.clone());
        let folder = blobs.join(&sha256[..2]);
        let sha256 = sha256.to_owned();
        self.copied = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            prefix_folder(&blobs, &folder)?;
            let apart = std::fs::metadata(&file)?.dev() != std::fs::metadata(&folder)?.dev();
            if !apart || folder.join(&sha256).exists() {
                return Ok(None);
            }
            copy_beside(&file, length, &folder, &sha256).map(Some)
        })
        .await
        .map_err(lost)??;
        Ok(())
    }

    async fn publish(self: Box<Self>, sha256: &str) -> std::io::Result<()> {
        let folder = self.blobs.join(&sha256[..2]);
        let destination = folder.join(sha256);
        let sha256 = sha256.to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            prefix_folder(&self.blobs, &folder)?;
            if destination.exists() {
                return Ok(()); // Same bytes already stored.
            }
            match self.copied {
                Some(copy) => copy.persist(&destination).map_err(|error| error.error)?,
                None => {
                    let linked = {
                        let _locked = locked_at_length(&self.file, self.length)?;
                        std::fs::hard_link(&self.file, &destination)
                    };
                    match linked {
                        Ok(()) => {}
                        // Not copied before: the blob was there then, and
                        // has been removed since. A copy, then, now.
                        Err(error) if error.kind() == std::io::ErrorKind::CrossesDevices => {
                            let copy = copy_beside(&self.file, self.length, &folder, &sha256)?;
                            copy.persist(&destination).map_err(|error| error.error)?;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
            std::fs::File::open(&folder)?.sync_all()
        })
        .await
        .map_err(lost)?
    }
}
