//! What the local store acknowledges is on disk. dav-server's own files
//! and folders (a ranged write or an append in place, a folder made or
//! removed, an entry moved) leave their changes in the page cache, where a
//! power cut loses them after the client was told they were done: its
//! file's `flush` is `std::fs::File::flush`, which writes nothing for a
//! file, and it syncs no folder. Whole files are Depot's own, synced
//! before they are renamed into place. A file's removal is not synced: a
//! folder's removal syncs one folder for all its files (dav-server
//! removes them one by one first, ten thousand syncs for a full store),
//! and a removal lost to a power cut brings a file back, never loses one.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsFuture};

/// A file of dav-server's opened for writing, whose `flush` (the end of a
/// write, before its answer) puts its bytes, and its name, on disk.
#[derive(Debug)]
pub(super) struct SyncedFile {
    inner: Box<dyn DavFile>,
    /// The same file, opened as dav-server opened it: synced through this
    /// descriptor, what was written is synced even if the name was moved
    /// or taken by another file meanwhile.
    same: tokio::fs::File,
    path: PathBuf,
}

impl SyncedFile {
    /// `inner`, just opened at `path`.
    pub(super) async fn new(inner: Box<dyn DavFile>, path: PathBuf) -> std::io::Result<Self> {
        let same = tokio::fs::File::open(&path).await?;
        Ok(Self { inner, same, path })
    }
}

impl DavFile for SyncedFile {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        self.inner.metadata()
    }

    fn write_buf(&'_ mut self, buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        self.inner.write_buf(buf)
    }

    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        self.inner.write_bytes(buf)
    }

    fn read_bytes(&'_ mut self, count: usize) -> FsFuture<'_, Bytes> {
        self.inner.read_bytes(count)
    }

    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        self.inner.seek(pos)
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        Box::pin(async move {
            self.inner.flush().await?;
            // Any descriptor of the file syncs its data; a file the write
            // made is also an entry of its folder.
            self.same.sync_data().await?;
            sync_folder_of(&self.path).await?;
            Ok(())
        })
    }
}

/// Puts the entries of the folder holding `path` on disk: a name made,
/// removed or moved there.
pub(super) async fn sync_folder_of(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(folder) => tokio::fs::File::open(folder).await?.sync_all().await,
        None => Ok(()),
    }
}
