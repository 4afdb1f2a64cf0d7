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

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Mutex};

use app::model::{StoreEntry, StorePath};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsResult, FsStream,
    OpenOptions, ReadDirMeta,
};
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::{Path, PathPart};
use object_store::{ObjectMeta, PutPayload};
use percent_encoding::percent_decode_str;

mod files;

use files::{Entry, Meta, ObjectReader, ObjectWriter};

use super::{EntryMeta, PersonalStores, StoreError, StoreFile, StoreFs};
use crate::blob::object::{io_error, is_not_found, ObjectBlobs};
use crate::blob::ByteStream;

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
    /// The users whose root marker this server has seen or written: every
    /// WebDAV request opens the store, and only the first needs to look.
    opened: Arc<Mutex<HashSet<i64>>>,
}

impl ObjectStores {
    pub fn new(blobs: ObjectBlobs) -> Self {
        Self {
            blobs,
            opened: Arc::default(),
        }
    }

    fn seen(&self, user_id: i64) -> bool {
        self.opened
            .lock()
            .is_ok_and(|opened| opened.contains(&user_id))
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

/// [`fs_error`], for what the blob store's own copies answer.
fn copy_error(error: std::io::Error) -> FsError {
    if error.kind() == std::io::ErrorKind::NotFound {
        FsError::NotFound
    } else {
        tracing::warn!(%error, "the object store failed a personal-store copy");
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
    async fn folder(&self, key: &Path) -> object_store::Result<Option<EntryMeta>> {
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

    async fn entry(&self, key: &Path) -> object_store::Result<Option<EntryMeta>> {
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
        if let Some(file) = self.file(from).await.map_err(fs_error)? {
            self.blobs
                .copy(from, to, file.size)
                .await
                .map_err(copy_error)?;
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
            self.blobs
                .copy(&meta.location, &destination, meta.size)
                .await
                .map_err(copy_error)?;
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
        if !self.seen(user_id) {
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
            if let Ok(mut opened) = self.opened.lock() {
                opened.insert(user_id);
            }
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
                tag: meta.e_tag,
            });
        }
        Ok(Some(files))
    }

    /// Objects, markers included: the store's own root marker aside, each
    /// is a file or a folder made on purpose.
    async fn count_entries(&self, user_id: i64, stop_after: u64) -> io::Result<u64> {
        let store = self.user(user_id);
        let root_marker = store.root_marker();
        let mut listed = self.blobs.bucket().list(Some(&store.root));
        let mut counted = 0_u64;
        while let Some(meta) = listed.try_next().await.map_err(io_error)? {
            if meta.location != root_marker {
                counted += 1;
                if counted > stop_after {
                    break;
                }
            }
        }
        Ok(counted)
    }

    async fn read(&self, user_id: i64, relative: &str) -> io::Result<ByteStream> {
        let store = self.user(user_id);
        let key = store.key(relative.split('/').map(str::as_bytes));
        let found = self.blobs.bucket().get(&key).await.map_err(io_error)?;
        Ok(found.into_stream().map_err(io_error).boxed())
    }

    fn shared(&self) -> bool {
        true
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

    /// A move is copies and deletes, object by object. Dropped midway, it
    /// stops there: `QuotaFs`, through which every move comes, runs it to
    /// its end in a task of its own, whether its client waits or not.
    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move { self.rename_at(&self.dav_key(from), &self.dav_key(to)).await }.boxed()
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let from = self.dav_key(from);
            let Some(file) = self.file(&from).await.map_err(fs_error)? else {
                return Err(FsError::NotFound);
            };
            // As a write would be: never over a folder (a file of the same
            // key would sit beside it), only into one.
            let to = self.dav_key(to);
            if to == self.root || self.folder(&to).await.map_err(fs_error)?.is_some() {
                return Err(FsError::Forbidden);
            }
            if self
                .folder(&self.parent(&to))
                .await
                .map_err(fs_error)?
                .is_none()
            {
                return Err(FsError::NotFound);
            }
            self.blobs
                .copy(&from, &to, file.size)
                .await
                .map_err(copy_error)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests;
