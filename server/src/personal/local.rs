//! Personal stores on local disk: one folder per user under the data
//! folder's `personal/`, served by dav-server's own local file system. A
//! symbolic link on the way to a path is refused, never followed (Depot's
//! writers make none; one put there by hand must not lead outside).

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use app::model::{StoreEntry, StorePath};
use chrono::{DateTime, Utc};
use dav_server::localfs::LocalFs;
use futures_util::StreamExt;

use super::{PersonalStores, StoreError, StoreFile, StoreFs};
use crate::blob::ByteStream;

#[derive(Debug, Clone)]
pub struct LocalStores {
    root: PathBuf,
}

impl LocalStores {
    /// Stores in folders under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The folder of one user's store.
    pub fn folder(&self, user_id: i64) -> PathBuf {
        self.root.join(user_id.to_string())
    }

    /// Where `parts` is on disk, inside the user's store, refusing links.
    fn resolve<'a>(
        &self,
        user_id: i64,
        parts: impl IntoIterator<Item = &'a str>,
    ) -> Result<PathBuf, StoreError> {
        let mut resolved = self.folder(user_id);
        for part in parts {
            if part.is_empty() || part == "." || part == ".." {
                return Err(StoreError::NotFound);
            }
            resolved.push(part);
            if std::fs::symlink_metadata(&resolved).is_ok_and(|meta| meta.file_type().is_symlink())
            {
                return Err(StoreError::Link);
            }
        }
        Ok(resolved)
    }

    fn path(&self, user_id: i64, path: &StorePath) -> Result<PathBuf, StoreError> {
        self.resolve(user_id, path.parts().iter().map(String::as_str))
    }
}

/// A missing path, or a file where a folder was expected, is not found.
fn store_error(error: io::Error) -> StoreError {
    match error.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => StoreError::NotFound,
        ErrorKind::AlreadyExists => StoreError::Exists,
        ErrorKind::DirectoryNotEmpty => StoreError::NotEmpty,
        _ => StoreError::Io(error),
    }
}

#[async_trait::async_trait]
impl PersonalStores for LocalStores {
    async fn file_system(&self, user_id: i64) -> io::Result<StoreFs> {
        let folder = self.folder(user_id);
        tokio::fs::create_dir_all(&folder).await?;
        Ok(StoreFs::growing(*LocalFs::new(
            &folder, false, false, false,
        )))
    }

    async fn list(
        &self,
        user_id: i64,
        folder: &StorePath,
        max: usize,
    ) -> Result<Vec<StoreEntry>, StoreError> {
        let resolved = self.path(user_id, folder)?;
        if folder.is_root() {
            tokio::fs::create_dir_all(&resolved).await?;
        }
        let listed = tokio::task::spawn_blocking(move || -> io::Result<Vec<StoreEntry>> {
            let mut entries = Vec::new();
            for entry in std::fs::read_dir(&resolved)?.take(max) {
                let entry = entry?;
                // Names that are not text are not the user's (WebDAV writes text).
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let meta = entry.metadata()?;
                let kind = meta.file_type();
                if kind.is_symlink() || !(kind.is_file() || kind.is_dir()) {
                    continue;
                }
                entries.push(StoreEntry {
                    name,
                    folder: kind.is_dir(),
                    size: if kind.is_file() { meta.len() } else { 0 },
                    modified: meta.modified().ok().map(DateTime::<Utc>::from),
                });
            }
            Ok(entries)
        })
        .await
        .map_err(io::Error::other)?;
        listed.map_err(store_error)
    }

    async fn is_folder(&self, user_id: i64, path: &StorePath) -> Result<bool, StoreError> {
        let resolved = self.path(user_id, path)?;
        if path.is_root() {
            tokio::fs::create_dir_all(&resolved).await?;
        }
        let meta = tokio::fs::metadata(&resolved).await.map_err(store_error)?;
        Ok(meta.is_dir())
    }

    async fn make_folder(&self, user_id: i64, path: &StorePath) -> Result<(), StoreError> {
        let resolved = self.path(user_id, path)?;
        tokio::fs::create_dir(&resolved).await.map_err(store_error)
    }

    async fn delete(&self, user_id: i64, path: &StorePath) -> Result<(), StoreError> {
        let resolved = self.path(user_id, path)?;
        let meta = tokio::fs::symlink_metadata(&resolved)
            .await
            .map_err(store_error)?;
        if meta.is_dir() {
            tokio::fs::remove_dir(&resolved).await.map_err(store_error)
        } else {
            tokio::fs::remove_file(&resolved).await.map_err(store_error)
        }
    }

    async fn files(&self, user_id: i64) -> io::Result<Option<Vec<StoreFile>>> {
        let root = self.folder(user_id);
        tokio::task::spawn_blocking(move || {
            if root.exists() {
                walk(&root).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn read(&self, user_id: i64, relative: &str) -> io::Result<ByteStream> {
        let path = match self.resolve(user_id, relative.split('/')) {
            Ok(path) => path,
            Err(StoreError::Io(error)) => return Err(error),
            Err(error) => return Err(io::Error::new(ErrorKind::NotFound, error.to_string())),
        };
        let file = tokio::fs::File::open(path).await?;
        Ok(tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed())
    }
}

/// Every file under `root`, without following links out of it.
fn walk(root: &Path) -> io::Result<Vec<StoreFile>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    // Files and folders may vanish while the walk runs (a delete through
    // WebDAV): what is gone is simply not there.
    let gone = |error: &io::Error| error.kind() == ErrorKind::NotFound;
    while let Some(folder) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if gone(&error) && folder != root => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let kind = match entry.file_type() {
                Ok(kind) => kind,
                Err(error) if gone(&error) => continue,
                Err(error) => return Err(error),
            };
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() {
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(error) if gone(&error) => continue,
                    Err(error) => return Err(error),
                };
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let folder = relative
                    .parent()
                    .map(|parent| parent.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                found.push(StoreFile {
                    utf8: relative.to_str().is_some(),
                    relative: relative.to_string_lossy().replace('\\', "/"),
                    name: entry.file_name().to_string_lossy().into_owned(),
                    folder,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH).into(),
                });
            }
        }
    }
    Ok(found)
}
