//! The files an object-store personal store opens: a reader streaming GETs
//! of the version it opened, and a writer uploading in place, completed by
//! its flush.

use std::io::SeekFrom;
use std::time::SystemTime;

use bytes::{Buf, Bytes};
use chrono::{DateTime, Utc};
use dav_server::fs::{DavDirEntry, DavFile, DavMetaData, FsError, FsFuture};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta};

use super::{fs_error, ObjectFs};
use crate::blob::object::ObjectStaging;
use crate::blob::Staging;
use crate::personal::{seek_in_order, EntryMeta};

/// Metadata of what the store lists.
pub(super) struct Meta;

impl Meta {
    pub(super) fn file(meta: &ObjectMeta) -> EntryMeta {
        EntryMeta {
            len: meta.size,
            modified: meta.last_modified.into(),
            dir: false,
        }
    }

    /// A folder: when its marker was written, if it has one.
    pub(super) fn folder(modified: Option<DateTime<Utc>>) -> EntryMeta {
        EntryMeta {
            len: 0,
            modified: modified.map_or(SystemTime::UNIX_EPOCH, SystemTime::from),
            dir: true,
        }
    }
}

/// One entry of a folder's listing.
pub(super) struct Entry {
    pub(super) name: Vec<u8>,
    pub(super) meta: EntryMeta,
}

impl DavDirEntry for Entry {
    fn name(&self) -> Vec<u8> {
        self.name.clone()
    }

    fn metadata(&'_ self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) }.boxed()
    }
}

/// A file open for reading: one GET streamed from the current position,
/// started again after a seek.
pub(super) struct ObjectReader {
    store: ObjectFs,
    key: Path,
    meta: EntryMeta,
    e_tag: Option<String>,
    position: u64,
    /// In a mutex only to be `Sync`, as a `DavFile` must be; never contended.
    body: Option<std::sync::Mutex<BoxStream<'static, object_store::Result<Bytes>>>>,
    buffered: Bytes,
}

impl ObjectReader {
    pub(super) fn new(store: &ObjectFs, key: Path, meta: ObjectMeta) -> Self {
        Self {
            store: store.clone(),
            key,
            meta: Meta::file(&meta),
            e_tag: meta.e_tag,
            position: 0,
            body: None,
            buffered: Bytes::new(),
        }
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("key", &self.key)
            .field("position", &self.position)
            .finish()
    }
}

impl DavFile for ObjectReader {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.meta.clone();
        async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) }.boxed()
    }

    fn write_buf(&'_ mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn write_bytes(&'_ mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    fn read_bytes(&'_ mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            while self.buffered.is_empty() {
                if self.position >= self.meta.len {
                    return Ok(Bytes::new());
                }
                if self.body.is_none() {
                    // The version opened, or nothing: never a mix of two.
                    let options = GetOptions {
                        range: Some(GetRange::Offset(self.position)),
                        if_match: self.e_tag.clone(),
                        ..GetOptions::default()
                    };
                    let found = self
                        .store
                        .blobs
                        .bucket()
                        .get_opts(&self.key, options)
                        .await
                        .map_err(fs_error)?;
                    self.body = Some(std::sync::Mutex::new(found.into_stream()));
                }
                let body = self
                    .body
                    .as_mut()
                    .and_then(|body| body.get_mut().ok())
                    .ok_or(FsError::GeneralFailure)?;
                match body.try_next().await.map_err(fs_error)? {
                    Some(chunk) => self.buffered = chunk,
                    // The object shrank since it was opened.
                    None => return Ok(Bytes::new()),
                }
            }
            let taken = self.buffered.split_to(count.min(self.buffered.len()));
            self.position += taken.len() as u64;
            Ok(taken)
        }
        .boxed()
    }

    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        async move {
            let target = match pos {
                SeekFrom::Start(offset) => Some(offset),
                SeekFrom::End(offset) => self.meta.len.checked_add_signed(offset),
                SeekFrom::Current(offset) => self.position.checked_add_signed(offset),
            }
            .ok_or(FsError::GeneralFailure)?;
            if target != self.position {
                self.position = target;
                self.body = None;
                self.buffered = Bytes::new();
            }
            Ok(target)
        }
        .boxed()
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        async { Ok(()) }.boxed()
    }
}

/// A file being written: an upload to its key, completed by `flush`.
/// Dropped unflushed, the upload is aborted and the old file stays.
pub(super) struct ObjectWriter {
    pub(super) store: ObjectFs,
    pub(super) key: Path,
    pub(super) upload: Option<ObjectStaging>,
    /// The length the request announced: a body that ends short (or runs
    /// long) is not completed.
    pub(super) expected: Option<u64>,
    /// Whether the file must not exist when the write completes either.
    pub(super) only_new: bool,
    pub(super) written: u64,
    pub(super) placed: Option<EntryMeta>,
}

impl std::fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("key", &self.key)
            .field("written", &self.written)
            .finish()
    }
}

impl DavFile for ObjectWriter {
    fn metadata(&'_ mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta = self.placed.clone().unwrap_or(EntryMeta {
            len: self.written,
            modified: SystemTime::now(),
            dir: false,
        });
        async move { Ok(Box::new(meta) as Box<dyn DavMetaData>) }.boxed()
    }

    fn write_buf(&'_ mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        self.write_bytes(bytes)
    }

    fn write_bytes(&'_ mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move {
            let upload = self.upload.as_mut().ok_or(FsError::GeneralFailure)?;
            let length = buf.len() as u64;
            if let Err(error) = upload.write(buf).await {
                tracing::warn!(%error, "a write into a personal store failed");
                self.upload = None;
                return Err(FsError::GeneralFailure);
            }
            self.written += length;
            Ok(())
        }
        .boxed()
    }

    fn read_bytes(&'_ mut self, _count: usize) -> FsFuture<'_, Bytes> {
        async { Err(FsError::Forbidden) }.boxed()
    }

    /// Only where the next byte goes: an object is written in order.
    fn seek(&'_ mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let sought = seek_in_order(pos, self.written);
        async move { sought }.boxed()
    }

    fn flush(&'_ mut self) -> FsFuture<'_, ()> {
        async move {
            let Some(upload) = self.upload.take() else {
                return match self.placed {
                    Some(_) => Ok(()),
                    None => Err(FsError::GeneralFailure),
                };
            };
            if self
                .expected
                .is_some_and(|expected| expected != self.written)
            {
                return Err(FsError::GeneralFailure);
            }
            // Checked again, as late as can be: another request may have
            // made the file while this one was sending.
            if self.only_new
                && self
                    .store
                    .file(&self.key)
                    .await
                    .map_err(fs_error)?
                    .is_some()
            {
                return Err(FsError::Exists);
            }
            if let Err(error) = upload.finish_in_place().await {
                tracing::warn!(%error, "cannot place a file in a personal store");
                return Err(FsError::GeneralFailure);
            }
            self.placed = match self.store.file(&self.key).await {
                Ok(Some(meta)) => Some(Meta::file(&meta)),
                _ => None,
            };
            Ok(())
        }
        .boxed()
    }
}
