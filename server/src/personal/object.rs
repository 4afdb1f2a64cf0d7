//! Personal stores in the blob store's bucket, so that every server of a
//! deployment serves the same files: user `n`'s file `a/b.iso` is the object
//! `<prefix>/personal/n/a/b.iso`. Object stores have no folders, so a folder
//! made on purpose is kept by a marker object inside it, named so that no
//! file can be ([`MARKER`]); a folder is also there while anything is in it.
//!
//! A write goes up exactly as a blob's upload does (in parts, marked while in
//! flight, aborted if dropped, collected if its server dies), straight to the
//! file's key: S3 shows a multipart upload only once it is complete, so a
//! reader never sees half a file, and a failed write leaves the old file as
//! it was. Reads stream GETs of the version they opened.
//!
//! A user's store is found by its root marker, written when WebDAV first
//! opens it, or by anything in it: a store with neither is not there at all
//! (a wrong prefix, say), which a sync must not take for an empty one.

use std::io::{self, SeekFrom};
use std::time::SystemTime;

use app::model::{StoreEntry, StorePath};
use bytes::{Buf, Bytes};
use chrono::{DateTime, Utc};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsResult, FsStream,
    OpenOptions, ReadDirMeta,
};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::{Path, PathPart};
use object_store::{GetOptions, GetRange, ObjectMeta, PutPayload};
use percent_encoding::percent_decode_str;

use super::{PersonalStores, StoreError, StoreFile, StoreFs};
use crate::blob::object::{io_error, is_not_found, ObjectBlobs, ObjectStaging};
use crate::blob::{ByteStream, Staging};

/// The marker of a folder. Every part of a file's key is percent-encoded
/// from its name, `%` included, so no name is ever stored as this.
pub const MARKER: &str = "%folder";

fn marker() -> PathPart<'static> {
    PathPart::parse(MARKER).expect("the marker is a valid path part")
}

/// The personal stores under the `personal/` area of a bucket.
#[derive(Debug, Clone)]
pub struct ObjectStores {
    blobs: ObjectBlobs,
}

impl ObjectStores {
    pub fn new(blobs: ObjectBlobs) -> Self {
        Self { blobs }
    }

    fn user(&self, user_id: i64) -> ObjectFs {
        ObjectFs {
            blobs: self.blobs.clone(),
            root: self.blobs.area("personal").child(user_id.to_string()),
        }
    }
}

impl ObjectFs {
    fn root_marker(&self) -> Path {
        self.root.child(marker())
    }
}

/// One user's store.
#[derive(Debug, Clone)]
pub struct ObjectFs {
    blobs: ObjectBlobs,
    root: Path,
}

/// A name as the user wrote it, from one part of a key.
fn decoded(part: &str) -> Vec<u8> {
    percent_decode_str(part).collect()
}

/// What an object store's failure is to WebDAV.
fn fs_error(error: object_store::Error) -> FsError {
    if is_not_found(&error) {
        FsError::NotFound
    } else {
        tracing::warn!(%error, "the object store failed a personal-store request");
        FsError::GeneralFailure
    }
}

fn store_error(error: object_store::Error) -> StoreError {
    if is_not_found(&error) {
        StoreError::NotFound
    } else {
        StoreError::Io(io_error(error))
    }
}

impl From<FsError> for StoreError {
    fn from(error: FsError) -> Self {
        match error {
            FsError::NotFound => StoreError::NotFound,
            FsError::Exists => StoreError::Exists,
            other => StoreError::Io(io::Error::other(other)),
        }
    }
}

impl ObjectFs {
    /// The key of a path given by its parts, each encoded as a name.
    fn key<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> Path {
        parts
            .into_iter()
            .filter(|part| !part.is_empty())
            .fold(self.root.clone(), |key, part| key.child(part))
    }

    fn dav_key(&self, path: &DavPath) -> Path {
        self.key(path.as_bytes().split(|byte| *byte == b'/'))
    }

    fn store_key(&self, path: &StorePath) -> Path {
        self.key(path.parts().iter().map(String::as_bytes))
    }

    /// The file at `key`, if there is one.
    async fn file(&self, key: &Path) -> object_store::Result<Option<ObjectMeta>> {
        if *key == self.root {
            return Ok(None);
        }
        match self.blobs.bucket().head(key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The folder at `key`, if there is one: the root, a marked folder, or
    /// a prefix something is stored under.
    async fn folder(&self, key: &Path) -> object_store::Result<Option<Meta>> {
        if *key == self.root {
            return Ok(Some(Meta::folder(None)));
        }
        match self.blobs.bucket().head(&key.child(marker())).await {
            Ok(meta) => return Ok(Some(Meta::folder(Some(meta.last_modified)))),
            Err(error) if !is_not_found(&error) => return Err(error),
            Err(_) => {}
        }
        let mut below = self.blobs.bucket().list(Some(key));
        Ok(below.try_next().await?.map(|_| Meta::folder(None)))
    }

    async fn entry(&self, key: &Path) -> object_store::Result<Option<Meta>> {
        match self.file(key).await? {
            Some(meta) => Ok(Some(Meta::file(&meta))),
            None => self.folder(key).await,
        }
    }

    /// The key above `key`.
    fn parent(&self, key: &Path) -> Path {
        let parts: Vec<PathPart<'_>> = key.parts().collect();
        Path::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned())
    }

    /// Whether anything but the folder's own marker is below `key`.
    async fn has_content(&self, key: &Path) -> object_store::Result<bool> {
        let own_marker = key.child(marker());
        let mut below = self.blobs.bucket().list(Some(key));
        while let Some(meta) = below.try_next().await? {
            if meta.location != own_marker {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn make_folder_at(&self, key: &Path) -> Result<(), StoreError> {
        if *key == self.root || self.entry(key).await.map_err(store_error)?.is_some() {
            return Err(StoreError::Exists);
        }
        if self
            .folder(&self.parent(key))
            .await
            .map_err(store_error)?
            .is_none()
        {
            return Err(StoreError::NotFound);
        }
        self.blobs
            .bucket()
            .put(&key.child(marker()), PutPayload::default())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn delete_at(&self, key: &Path) -> Result<(), StoreError> {
        if self.file(key).await.map_err(store_error)?.is_some() {
            return Ok(self.blobs.delete(key).await?);
        }
        if *key == self.root || self.folder(key).await.map_err(store_error)?.is_none() {
            return Err(StoreError::NotFound);
        }
        if self.has_content(key).await.map_err(store_error)? {
            return Err(StoreError::NotEmpty);
        }
        Ok(self.blobs.delete(&key.child(marker())).await?)
    }

    /// Moves a file, or a folder and all below it, to `to` (copies inside
    /// the store, then deletes).
    async fn rename_at(&self, from: &Path, to: &Path) -> FsResult<()> {
        let bucket = self.blobs.bucket();
        // Not the store itself, nor a folder into itself.
        if *from == self.root || to.prefix_matches(from) {
            return Err(FsError::Forbidden);
        }
        if self.file(from).await.map_err(fs_error)?.is_some() {
            bucket.copy(from, to).await.map_err(fs_error)?;
            return self
                .blobs
                .delete(from)
                .await
                .map_err(|_| FsError::GeneralFailure);
        }
        let below: Vec<ObjectMeta> = bucket
            .list(Some(from))
            .try_collect()
            .await
            .map_err(fs_error)?;
        if below.is_empty() {
            return Err(FsError::NotFound);
        }
        // Each object is deleted as soon as its copy is made, so that a
        // move cut off midway leaves each file once, here or there.
        for meta in &below {
            let Some(rest) = meta.location.prefix_match(from) else {
                continue;
            };
            let destination = rest.fold(to.clone(), |key, part| key.child(part));
            bucket
                .copy(&meta.location, &destination)
                .await
                .map_err(fs_error)?;
            self.blobs
                .delete(&meta.location)
                .await
                .map_err(|_| FsError::GeneralFailure)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl PersonalStores for ObjectStores {
    async fn file_system(&self, user_id: i64) -> io::Result<StoreFs> {
        let store = self.user(user_id);
        let bucket = self.blobs.bucket();
        match bucket.head(&store.root_marker()).await {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => {
                bucket
                    .put(&store.root_marker(), PutPayload::default())
                    .await
                    .map_err(io_error)?;
            }
            Err(error) => return Err(io_error(error)),
        }
        Ok(StoreFs::atomic(store))
    }

    async fn list(
        &self,
        user_id: i64,
        folder: &StorePath,
        max: usize,
    ) -> Result<Vec<StoreEntry>, StoreError> {
        let store = self.user(user_id);
        let key = store.store_key(folder);
        if store.folder(&key).await.map_err(store_error)?.is_none() {
            return Err(StoreError::NotFound);
        }
        let listed = self
            .blobs
            .bucket()
            .list_with_delimiter(Some(&key))
            .await
            .map_err(store_error)?;
        let folders = listed.common_prefixes.iter().filter_map(|prefix| {
            Some(StoreEntry {
                name: String::from_utf8(decoded(prefix.filename()?)).ok()?,
                folder: true,
                size: 0,
                modified: None,
            })
        });
        let files = listed.objects.iter().filter_map(|meta| {
            let name = meta.location.filename()?;
            (name != MARKER).then_some(())?;
            Some(StoreEntry {
                name: String::from_utf8(decoded(name)).ok()?,
                folder: false,
                size: meta.size,
                modified: Some(meta.last_modified),
            })
        });
        Ok(folders.chain(files).take(max).collect())
    }

    async fn is_folder(&self, user_id: i64, path: &StorePath) -> Result<bool, StoreError> {
        let store = self.user(user_id);
        match store.entry(&store.store_key(path)).await {
            Ok(Some(meta)) => Ok(meta.dir),
            Ok(None) => Err(StoreError::NotFound),
            Err(error) => Err(store_error(error)),
        }
    }

    async fn make_folder(&self, user_id: i64, path: &StorePath) -> Result<(), StoreError> {
        let store = self.user(user_id);
        store.make_folder_at(&store.store_key(path)).await
    }

    async fn delete(&self, user_id: i64, path: &StorePath) -> Result<(), StoreError> {
        let store = self.user(user_id);
        store.delete_at(&store.store_key(path)).await
    }

    async fn files(&self, user_id: i64) -> io::Result<Option<Vec<StoreFile>>> {
        let store = self.user(user_id);
        let listed: Vec<ObjectMeta> = self
            .blobs
            .bucket()
            .list(Some(&store.root))
            .try_collect()
            .await
            .map_err(io_error)?;
        if listed.is_empty() {
            return Ok(None);
        }
        let mut files = Vec::new();
        for meta in listed {
            let Some(parts) = meta.location.prefix_match(&store.root) else {
                continue;
            };
            let names: Vec<Vec<u8>> = parts.map(|part| decoded(part.as_ref())).collect();
            let Some((name, folders)) = names.split_last() else {
                continue;
            };
            if meta.location.filename() == Some(MARKER) {
                continue;
            }
            let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
            let folder: Vec<String> = folders.iter().map(|part| text(part)).collect();
            let relative = names.iter().map(|part| text(part)).collect::<Vec<_>>();
            files.push(StoreFile {
                utf8: names.iter().all(|part| std::str::from_utf8(part).is_ok()),
                relative: relative.join("/"),
                folder: folder.join("/"),
                name: text(name),
                size: meta.size,
                modified: meta.last_modified,
            });
        }
        Ok(Some(files))
    }

    async fn read(&self, user_id: i64, relative: &str) -> io::Result<ByteStream> {
        let store = self.user(user_id);
        let key = store.key(relative.split('/').map(str::as_bytes));
        let found = self.blobs.bucket().get(&key).await.map_err(io_error)?;
        Ok(found.into_stream().map_err(io_error).boxed())
    }
}

impl DavFileSystem for ObjectFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        async move {
            let key = self.dav_key(path);
            let existing = self.file(&key).await.map_err(fs_error)?;
            if !(options.write || options.append) {
                let meta = existing.ok_or(FsError::NotFound)?;
                return Ok(Box::new(ObjectReader::new(self, key, meta)) as Box<dyn DavFile>);
            }
            match existing {
                Some(_) if options.create_new => return Err(FsError::Exists),
                None if !(options.create || options.create_new) => return Err(FsError::NotFound),
                _ => {}
            }
            if options.append || (existing.is_some() && !options.truncate) {
                // Objects are written whole: no appends, no ranged writes
                // into an existing file.
                return Err(FsError::NotImplemented);
            }
            if key == self.root || self.folder(&key).await.map_err(fs_error)?.is_some() {
                return Err(FsError::Forbidden);
            }
            if self
                .folder(&self.parent(&key))
                .await
                .map_err(fs_error)?
                .is_none()
            {
                return Err(FsError::NotFound);
            }
            Ok(Box::new(ObjectWriter {
                store: self.clone(),
                upload: Some(self.blobs.begin_upload_in_place(key.clone())),
                key,
                expected: options.size,
                only_new: options.create_new,
                written: 0,
                placed: None,
            }) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        _meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        async move {
            let key = self.dav_key(path);
            if self.folder(&key).await.map_err(fs_error)?.is_none() {
                return Err(FsError::NotFound);
            }
            let listed = self
                .blobs
                .bucket()
                .list_with_delimiter(Some(&key))
                .await
                .map_err(fs_error)?;
            let mut entries: Vec<FsResult<Box<dyn DavDirEntry>>> = Vec::new();
            for prefix in &listed.common_prefixes {
                if let Some(name) = prefix.filename() {
                    entries.push(Ok(Box::new(Entry {
                        name: decoded(name),
                        meta: Meta::folder(None),
                    })));
                }
            }
            for meta in &listed.objects {
                match meta.location.filename() {
                    Some(name) if name != MARKER => entries.push(Ok(Box::new(Entry {
                        name: decoded(name),
                        meta: Meta::file(meta),
                    }))),
                    _ => {}
                }
            }
            Ok(futures_util::stream::iter(entries).boxed() as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        async move {
            match self.entry(&self.dav_key(path)).await.map_err(fs_error)? {
                Some(meta) => Ok(Box::new(meta) as Box<dyn DavMetaData>),
                None => Err(FsError::NotFound),
            }
        }
        .boxed()
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            match self.make_folder_at(&self.dav_key(path)).await {
                Ok(()) => Ok(()),
                Err(StoreError::Exists) => Err(FsError::Exists),
                Err(StoreError::NotFound) => Err(FsError::NotFound),
                Err(_) => Err(FsError::GeneralFailure),
            }
        }
        .boxed()
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            match self.delete_at(&self.dav_key(path)).await {
                // A folder without a marker is gone with its last file.
                Ok(()) | Err(StoreError::NotFound) => Ok(()),
                Err(StoreError::NotEmpty) => Err(FsError::Exists),
                Err(_) => Err(FsError::GeneralFailure),
            }
        }
        .boxed()
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            match self.delete_at(&self.dav_key(path)).await {
                Ok(()) => Ok(()),
                Err(StoreError::NotFound) => Err(FsError::NotFound),
                Err(StoreError::NotEmpty) => Err(FsError::Exists),
                Err(_) => Err(FsError::GeneralFailure),
            }
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move { self.rename_at(&self.dav_key(from), &self.dav_key(to)).await }.boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let from = self.dav_key(from);
            if self.file(&from).await.map_err(fs_error)?.is_none() {
                return Err(FsError::NotFound);
            }
            self.blobs
                .bucket()
                .copy(&from, &self.dav_key(to))
                .await
                .map_err(fs_error)
        }
        .boxed()
    }
}

/// A file's or a folder's metadata.
#[derive(Debug, Clone)]
struct Meta {
    len: u64,
    modified: SystemTime,
    dir: bool,
}

impl Meta {
    fn file(meta: &ObjectMeta) -> Self {
        Self {
            len: meta.size,
            modified: meta.last_modified.into(),
            dir: false,
        }
    }

    /// A folder: when its marker was written, if it has one.
    fn folder(modified: Option<DateTime<Utc>>) -> Self {
        Self {
            len: 0,
            modified: modified.map_or(SystemTime::UNIX_EPOCH, SystemTime::from),
            dir: true,
        }
    }
}

impl DavMetaData for Meta {
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

struct Entry {
    name: Vec<u8>,
    meta: Meta,
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
struct ObjectReader {
    store: ObjectFs,
    key: Path,
    meta: Meta,
    e_tag: Option<String>,
    position: u64,
    /// In a mutex only to be `Sync`, as a `DavFile` must be; never contended.
    body: Option<std::sync::Mutex<BoxStream<'static, object_store::Result<Bytes>>>>,
    buffered: Bytes,
}

impl ObjectReader {
    fn new(store: &ObjectFs, key: Path, meta: ObjectMeta) -> Self {
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
struct ObjectWriter {
    store: ObjectFs,
    key: Path,
    upload: Option<ObjectStaging>,
    /// The length the request announced: a body that ends short (or runs
    /// long) is not completed.
    expected: Option<u64>,
    /// Whether the file must not exist when the write completes either.
    only_new: bool,
    written: u64,
    placed: Option<Meta>,
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
        let meta = self.placed.clone().unwrap_or(Meta {
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
        let here = self.written;
        async move {
            match pos {
                SeekFrom::Start(offset) if offset == here => Ok(here),
                SeekFrom::Current(0) | SeekFrom::End(0) => Ok(here),
                _ => Err(FsError::NotImplemented),
            }
        }
        .boxed()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;
    use crate::blob::{Area, Backend};

    fn stores() -> (ObjectBlobs, ObjectStores) {
        let blobs = ObjectBlobs::new(Arc::new(InMemory::new()), "depot");
        (blobs.clone(), ObjectStores::new(blobs))
    }

    fn dav(path: &str) -> DavPath {
        DavPath::new(path).unwrap()
    }

    fn store_path(path: &str) -> StorePath {
        StorePath::parse(path).unwrap()
    }

    async fn write(fs: &StoreFs, path: &str, chunks: &[&[u8]], flush: bool) -> FsResult<()> {
        let options = OpenOptions {
            write: true,
            create: true,
            truncate: true,
            ..OpenOptions::default()
        };
        let mut file = fs.open(&dav(path), options).await?;
        for chunk in chunks {
            file.write_bytes(Bytes::copy_from_slice(chunk)).await?;
        }
        if flush {
            file.flush().await?;
        }
        Ok(())
    }

    async fn read(fs: &StoreFs, path: &str, from: u64) -> Vec<u8> {
        let options = OpenOptions {
            read: true,
            ..OpenOptions::default()
        };
        let mut file = fs.open(&dav(path), options).await.unwrap();
        file.seek(SeekFrom::Start(from)).await.unwrap();
        let mut read = Vec::new();
        loop {
            let chunk = file.read_bytes(3).await.unwrap();
            if chunk.is_empty() {
                return read;
            }
            read.extend_from_slice(&chunk);
        }
    }

    #[tokio::test]
    async fn files_and_folders_round_trip_with_any_name() {
        let (_, stores) = stores();
        let fs = stores.file_system(7).await.unwrap();
        fs.create_dir(&dav("/100% sure/")).await.unwrap();
        assert_eq!(
            fs.create_dir(&dav("/100% sure/")).await.unwrap_err(),
            FsError::Exists
        );
        assert_eq!(
            fs.create_dir(&dav("/missing/sub/")).await.unwrap_err(),
            FsError::NotFound
        );
        write(
            &fs,
            "/100%25%20sure/%25folder",
            &[b"not ", b"a marker"],
            true,
        )
        .await
        .unwrap();
        assert_eq!(read(&fs, "/100%25%20sure/%25folder", 4).await, b"a marker");
        let listed = stores.list(7, &store_path("100% sure"), 100).await.unwrap();
        let names: Vec<_> = listed.iter().map(|entry| entry.name.as_str()).collect();
        assert_eq!(names, ["%folder"]);
        assert_eq!(listed[0].size, 12);
        let root = stores.list(7, &store_path(""), 100).await.unwrap();
        assert!(root[0].folder && root[0].name == "100% sure", "{root:?}");
        // Another user sees none of it.
        assert!(stores
            .list(8, &store_path(""), 100)
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            stores.list(8, &store_path("100% sure"), 100).await,
            Err(StoreError::NotFound)
        ));
        let files = stores.files(7).await.unwrap().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].relative, "100% sure/%folder");
        assert_eq!(files[0].folder, "100% sure");
        let bytes: Vec<Bytes> = stores
            .read(7, &files[0].relative)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(bytes.concat(), b"not a marker");
    }

    #[tokio::test]
    async fn a_write_replaces_the_file_only_when_complete() {
        let (blobs, stores) = stores();
        let fs = stores.file_system(1).await.unwrap();
        write(&fs, "/a.iso", &[b"old bytes"], true).await.unwrap();
        // Dropped before its flush: the old file stays, nothing is staged.
        write(&fs, "/a.iso", &[b"new"], false).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(read(&fs, "/a.iso", 0).await, b"old bytes");
        assert!(blobs.stored(Area::Staging).await.unwrap().is_empty());
        // A file needs its folder; a new file must be new when asked.
        assert_eq!(
            write(&fs, "/none/b.iso", &[b"x"], true).await.unwrap_err(),
            FsError::NotFound
        );
        let create_new = OpenOptions {
            write: true,
            create_new: true,
            ..OpenOptions::default()
        };
        assert_eq!(
            fs.open(&dav("/a.iso"), create_new).await.unwrap_err(),
            FsError::Exists
        );
        // A large file goes up in parts and reads back whole.
        let big: Vec<u8> = (0..(crate::blob::object::PART_SIZE * 2 + 5))
            .map(|index| (index % 251) as u8)
            .collect();
        let chunks: Vec<&[u8]> = big.chunks(1 << 20).collect();
        write(&fs, "/big.iso", &chunks, true).await.unwrap();
        assert_eq!(read(&fs, "/big.iso", 0).await, big);
        assert!(blobs.stored(Area::Staging).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_dead_servers_write_is_aborted_and_the_old_file_kept() {
        let (blobs, stores) = stores();
        let fs = stores.file_system(5).await.unwrap();
        write(&fs, "/a.iso", &[b"old"], true).await.unwrap();
        let options = OpenOptions {
            write: true,
            create: true,
            truncate: true,
            ..OpenOptions::default()
        };
        let mut file = fs.open(&dav("/a.iso"), options).await.unwrap();
        let part = vec![7u8; crate::blob::object::PART_SIZE + 1];
        file.write_bytes(Bytes::from(part)).await.unwrap();
        // Its server dies: nothing runs the writer's clean-up.
        std::mem::forget(file);
        let staging = blobs.stored(Area::Staging).await.unwrap();
        assert_eq!(staging.len(), 1, "{staging:?}");
        assert_eq!(
            blobs
                .discard_stale_uploads(std::time::Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert!(blobs.stored(Area::Staging).await.unwrap().is_empty());
        assert_eq!(read(&fs, "/a.iso", 0).await, b"old");
    }

    #[tokio::test]
    async fn a_store_never_opened_is_not_an_empty_one() {
        let (_, stores) = stores();
        assert!(stores.files(9).await.unwrap().is_none());
        stores.file_system(9).await.unwrap();
        assert_eq!(stores.files(9).await.unwrap().unwrap().len(), 0);
        assert!(stores
            .list(9, &store_path(""), 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn folders_move_whole_and_go_only_when_empty() {
        let (_, stores) = stores();
        let fs = stores.file_system(3).await.unwrap();
        fs.create_dir(&dav("/cds/")).await.unwrap();
        fs.create_dir(&dav("/cds/old/")).await.unwrap();
        write(&fs, "/cds/old/c.iso", &[b"cd"], true).await.unwrap();
        assert!(matches!(
            stores.delete(3, &store_path("cds")).await,
            Err(StoreError::NotEmpty)
        ));
        assert_eq!(
            fs.rename(&dav("/cds/"), &dav("/cds/old/cds/"))
                .await
                .unwrap_err(),
            FsError::Forbidden
        );
        fs.rename(&dav("/cds/"), &dav("/discs/")).await.unwrap();
        assert!(matches!(
            stores.is_folder(3, &store_path("cds")).await,
            Err(StoreError::NotFound)
        ));
        assert!(!stores
            .is_folder(3, &store_path("discs/old/c.iso"))
            .await
            .unwrap());
        assert!(stores.is_folder(3, &store_path("discs/old")).await.unwrap());
        stores
            .delete(3, &store_path("discs/old/c.iso"))
            .await
            .unwrap();
        // The folder was made on purpose: it stays, empty, until deleted.
        assert!(stores.is_folder(3, &store_path("discs/old")).await.unwrap());
        stores.delete(3, &store_path("discs/old")).await.unwrap();
        stores.delete(3, &store_path("discs")).await.unwrap();
        assert!(stores.files(3).await.unwrap().unwrap().is_empty());
        assert!(stores
            .list(3, &store_path(""), 10)
            .await
            .unwrap()
            .is_empty());
    }
}
