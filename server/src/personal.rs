//! The personal stores' files (VSS's "VSKEY-STOR"), behind one seam with
//! two backends chosen at start beside the blob store's: a folder per user on
//! local disk ([`local`], the embedded default), or objects under
//! `personal/<user id>/` in the blob store's bucket ([`object`]), which every
//! server of a deployment shares. WebDAV serves a store through
//! [`PersonalStores::file_system`]; the file view, the sync and the quota
//! reach it through the other methods. Paths are always relative to the
//! user's own store: nothing here can name another user's files.

pub mod local;
pub mod object;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, SeekFrom};
use std::sync::Arc;
use std::time::SystemTime;

use app::model::{StoreEntry, StorePath};
use chrono::{DateTime, Utc};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsResult, FsStream,
    OpenOptions, ReadDirMeta,
};

use crate::blob::ByteStream;

/// Why an operation on a store's path did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The path, or a folder on the way, is not there (or is a file).
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("the folder is not empty")]
    NotEmpty,
    /// A symbolic link on the way, which is never followed.
    #[error("a link")]
    Link,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A file found in a store.
#[derive(Debug, Clone)]
pub struct StoreFile {
    /// Its path below the store's root, `/`-separated.
    pub relative: String,
    /// Whether its path was valid UTF-8 (else the names below are lossy).
    pub utf8: bool,
    /// Its folder below the store's root, `/`-separated ("" at the root).
    pub folder: String,
    pub name: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
    /// What tells this version of the file from another of its size and
    /// time, which a client can repeat (a move keeps a file's time, an
    /// object store's are whole seconds): a local file's inode and change
    /// time, an object's ETag.
    pub tag: Option<String>,
}

/// The files by folder and name, but those whose path is not UTF-8 (their
/// names are lossy, and could pass for another file's).
pub fn by_place(files: &[StoreFile]) -> HashMap<(&str, &str), &StoreFile> {
    files
        .iter()
        .filter(|file| file.utf8)
        .map(|file| ((file.folder.as_str(), file.name.as_str()), file))
        .collect()
}

/// Where each user's personal store keeps its files.
#[async_trait::async_trait]
pub trait PersonalStores: Send + Sync + fmt::Debug {
    /// The store of `user_id` as the file system WebDAV serves.
    async fn file_system(&self, user_id: i64) -> io::Result<StoreFs>;
    /// The entries of one folder, at most `max` of them, in no order.
    async fn list(
        &self,
        user_id: i64,
        folder: &StorePath,
        max: usize,
    ) -> Result<Vec<StoreEntry>, StoreError>;
    /// Whether `path` is a folder (`true`) or a file (`false`).
    async fn is_folder(&self, user_id: i64, path: &StorePath) -> Result<bool, StoreError>;
    /// Makes the folder `path` inside an existing folder.
    async fn make_folder(&self, user_id: i64, path: &StorePath) -> Result<(), StoreError>;
    /// Deletes a file, or a folder that is empty.
    async fn delete(&self, user_id: i64, path: &StorePath) -> Result<(), StoreError>;
    /// Every file of the store, or `None` when the store itself cannot be
    /// found (an unmounted volume is not an empty store).
    async fn files(&self, user_id: i64) -> io::Result<Option<Vec<StoreFile>>>;
    /// How many files and folders the store holds (its root aside),
    /// counted up to `stop_after + 1` at most: a store past a cap need not
    /// be counted to its end. Writes under way are not counted.
    async fn count_entries(&self, user_id: i64, stop_after: u64) -> io::Result<u64>;
    /// Streams the file at `relative` (a [`StoreFile::relative`]).
    async fn read(&self, user_id: i64, relative: &str) -> io::Result<ByteStream>;
    /// Discards what writes cut off by a crash left, at start, where this
    /// server is the only writer (an object store's are collected instead).
    async fn discard_partial_writes(&self) -> io::Result<()> {
        Ok(())
    }
    /// Whether other servers may change the same stores (an object
    /// store's): what they do is not seen here until a walk.
    fn shared(&self) -> bool {
        false
    }
}

/// One user's store as a WebDAV file system, whichever backend holds it.
#[derive(Clone)]
pub struct StoreFs {
    inner: Arc<dyn DavFileSystem + Send + Sync>,
    atomic_writes: bool,
}

impl StoreFs {
    /// A file system whose files grow in place as they are written (a
    /// local folder), except whole-file writes (a `PUT`), which replace
    /// the file when complete: written bytes are in the store's files at
    /// once only for the others.
    pub fn growing(inner: impl DavFileSystem + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(inner),
            atomic_writes: false,
        }
    }

    /// A file system whose writes appear whole when complete, and not at
    /// all if they fail (an object store): until then, the bytes written
    /// are in no file the quota counts.
    pub fn atomic(inner: impl DavFileSystem + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(inner),
            atomic_writes: true,
        }
    }

    pub fn atomic_writes(&self) -> bool {
        self.atomic_writes
    }
}

impl DavFileSystem for StoreFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        self.inner.open(path, options)
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        self.inner.read_dir(path, meta)
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        self.inner.metadata(path)
    }

    fn symlink_metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        self.inner.symlink_metadata(path)
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        self.inner.create_dir(path)
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        self.inner.remove_dir(path)
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        self.inner.remove_file(path)
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        self.inner.rename(from, to)
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        self.inner.copy(from, to)
    }
}

/// A file's or a folder's metadata, as a backend reports it for what it
/// writes or lists itself.
#[derive(Debug, Clone)]
pub(crate) struct EntryMeta {
    pub len: u64,
    pub modified: SystemTime,
    pub dir: bool,
}

impl DavMetaData for EntryMeta {
    fn len(&self) -> u64 {
        self.len
    }

    fn modified(&self) -> FsResult<SystemTime> {
        Ok(self.modified)
    }

    fn is_dir(&self) -> bool {
        self.dir
    }
}

/// Whether `path` lies inside the folder `folder` (below it, not it).
pub(crate) fn inside(path: &DavPath, folder: &DavPath) -> bool {
    let folder = folder.as_bytes();
    let folder = folder.strip_suffix(b"/").unwrap_or(folder);
    path.as_bytes()
        .strip_prefix(folder)
        .is_some_and(|rest| rest.starts_with(b"/"))
}

/// Where a file written whole and in order may seek, `here` bytes in: only
/// to where its next byte goes (a ranged write answers "not implemented").
pub(crate) fn seek_in_order(pos: SeekFrom, here: u64) -> FsResult<u64> {
    match pos {
        SeekFrom::Start(offset) if offset == here => Ok(here),
        SeekFrom::Current(0) | SeekFrom::End(0) => Ok(here),
        _ => Err(FsError::NotImplemented),
    }
}
