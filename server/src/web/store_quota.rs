//! The personal store's file system (either backend's), with every
//! write counted against the owner's quota and the upload limit as it
//! happens (chunked bodies without a length included), and `COPY` counted
//! before it copies. A write refused midway removes what it had written:
//! nothing partial stays behind.

use std::io::SeekFrom;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsStream, OpenOptions,
    ReadDirMeta,
};

use crate::blob::IngestError;
use crate::core::{Core, StoreWrite};
use crate::personal::StoreFs;

/// One user's store folder, as WebDAV reaches it.
#[derive(Clone)]
pub struct QuotaFs {
    inner: StoreFs,
    core: Arc<Core>,
    user_id: i64,
}

impl QuotaFs {
    pub fn new(inner: StoreFs, core: Arc<Core>, user_id: i64) -> Self {
        Self {
            inner,
            core,
            user_id,
        }
    }
}

/// How a refused write answers: 413 past the upload limit, 507 past the quota.
fn refused(error: IngestError) -> FsError {
    match error {
        IngestError::TooLarge { .. } => FsError::TooLarge,
        IngestError::OverQuota { .. } => FsError::InsufficientStorage,
        IngestError::Body(_) | IngestError::Io(_) => FsError::GeneralFailure,
    }
}

impl DavFileSystem for QuotaFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        Box::pin(async move {
            if !(options.write || options.append) {
                return DavFileSystem::open(&self.inner, path, options).await;
            }
            // Bytes of a whole-file write (and any write to an object store)
            // are in no file until it completes: the reservation holds them.
            let atomic = self.inner.atomic_writes() || (options.truncate && !options.append);
            let mut write = StoreWrite::new(self.core.clone(), self.user_id, atomic);
            // A length announced up front is checked (and reserved) before
            // anything is written or truncated.
            if let Some(size) = options.size {
                write.announce(size).await.map_err(refused)?;
            }
            let existed = DavFileSystem::metadata(&self.inner, path).await.is_ok();
            let file = DavFileSystem::open(&self.inner, path, options).await?;
            Ok(Box::new(CountedFile {
                inner: file,
                write: Some(write),
                fs: self.inner.clone(),
                path: path.clone(),
                // An atomic write leaves nothing to remove when it fails.
                created: !existed && !atomic,
            }) as Box<dyn DavFile>)
        })
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        DavFileSystem::read_dir(&self.inner, path, meta)
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        DavFileSystem::metadata(&self.inner, path)
    }

    fn symlink_metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        DavFileSystem::symlink_metadata(&self.inner, path)
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        DavFileSystem::create_dir(&self.inner, path)
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        DavFileSystem::remove_dir(&self.inner, path)
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        DavFileSystem::remove_file(&self.inner, path)
    }

    /// A move adds no bytes.
    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        DavFileSystem::rename(&self.inner, from, to)
    }

    /// A copy adds the source's bytes: room for them is reserved first.
    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            let size = DavFileSystem::metadata(&self.inner, from).await?.len();
            let mut write = StoreWrite::new(self.core.clone(), self.user_id, false);
            write.make_room(size).await.map_err(refused)?;
            write.placing();
            let copied = DavFileSystem::copy(&self.inner, from, to).await;
            write.release().await;
            copied
        })
    }
}

/// A file open for writing; each write takes room first.
struct CountedFile {
    inner: Box<dyn DavFile>,
    write: Option<StoreWrite>,
    fs: StoreFs,
    path: DavPath,
    /// Whether this write created the file: only then is a failed write's
    /// file removed (never a file the user had, nor another request's).
    created: bool,
}

impl std::fmt::Debug for CountedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountedFile")
            .field("path", &self.path)
            .field("write", &self.write)
            .finish()
    }
}

impl CountedFile {
    /// Takes room for `bytes`; a refusal removes the partly written file
    /// if this write created it.
    async fn take_room(&mut self, bytes: u64) -> Result<(), FsError> {
        let Some(write) = self.write.as_mut() else {
            return Err(FsError::GeneralFailure);
        };
        if let Err(error) = write.make_room(bytes).await {
            // Let go before the refusal is answered: a client that writes
            // again at once is counted without this write's room.
            if let Some(write) = self.write.take() {
                write.release().await;
            }
            if self.created {
                if let Err(cleanup) = DavFileSystem::remove_file(&self.fs, &self.path).await {
                    tracing::warn!(?cleanup, "cannot remove a refused partial file");
                }
            }
            return Err(refused(error));
        }
        Ok(())
    }
}

/// A write that ended without its final flush (the client went away, or
/// the body broke off) leaves no partial file behind.
impl Drop for CountedFile {
    fn drop(&mut self) {
        if self.write.take().is_some() && self.created {
            let (fs, path) = (self.fs.clone(), self.path.clone());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = DavFileSystem::remove_file(&fs, &path).await;
                });
            }
        }
    }
}

impl DavFile for CountedFile {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        self.inner.metadata()
    }

    fn write_buf(&'_ mut self, buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        Box::pin(async move {
            self.take_room(buf.remaining() as u64).await?;
            self.inner.write_buf(buf).await
        })
    }

    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        Box::pin(async move {
            self.take_room(buf.len() as u64).await?;
            self.inner.write_bytes(buf).await
        })
    }

    fn read_bytes(&'_ mut self, count: usize) -> FsFuture<'_, Bytes> {
        self.inner.read_bytes(count)
    }

    /// A seek past the end (a ranged write) leaves a hole that becomes
    /// bytes of the file: the gap takes room like written bytes.
    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        Box::pin(async move {
            let length = self.inner.metadata().await?.len();
            let target = self.inner.seek(pos).await?;
            if target > length {
                if let Err(error) = self.take_room(target - length).await {
                    let _ = self.inner.seek(SeekFrom::Start(length)).await;
                    return Err(error);
                }
            }
            Ok(target)
        })
    }

    /// The write is complete: its bytes are in the store's files now.
    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        Box::pin(async move {
            if let Some(write) = self.write.as_mut() {
                write.hold().await.map_err(refused)?;
                write.placing();
            }
            let flushed = self.inner.flush().await;
            if let Some(write) = self.write.take() {
                write.release().await;
            }
            flushed
        })
    }
}
