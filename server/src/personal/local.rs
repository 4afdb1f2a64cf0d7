//! Personal stores on local disk: one folder per user under the data
//! folder's `personal/`, served by dav-server's own local file system.
//! No client can make a symbolic link (Depot's writers make none, WebDAV
//! has no way to). The store's own paths (the Store page, downloads, the
//! page's uploads) refuse one on the way to a path, never follow it; WebDAV,
//! through dav-server's file system, would follow one an operator put there
//! by hand.

use std::io::{self, ErrorKind};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use app::model::{StoreEntry, StorePath};
use chrono::{DateTime, Utc};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsStream, OpenOptions,
    ReadDirMeta,
};
use dav_server::localfs::LocalFs;
use durable::{sync_folder_of, SyncedFile};
use futures_util::{FutureExt, StreamExt};
use whole_file::WholeFile;

use super::{inside, PersonalStores, StoreError, StoreFile, StoreFs};
use crate::blob::ByteStream;

mod durable;
mod whole_file;

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
            if part.is_empty() || part == "." || part == ".." || is_partial(part.as_bytes()) {
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
        Ok(StoreFs::growing(LocalStoreFs {
            inner: *LocalFs::new(&folder, false, false, false),
            root: folder,
        }))
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
                if is_partial(name.as_bytes()) {
                    continue;
                }
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

    async fn count_entries(&self, user_id: i64, stop_after: u64) -> io::Result<u64> {
        let root = self.folder(user_id);
        tokio::task::spawn_blocking(move || count_below(&root, stop_after))
            .await
            .map_err(io::Error::other)?
    }

    /// What a crash left of writes in progress: only this server writes
    /// here, so at start none is in progress.
    async fn discard_partial_writes(&self) -> io::Result<()> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            if !root.exists() {
                return Ok(());
            }
            let mut pending = vec![root.clone()];
            while let Some(folder) = pending.pop() {
                // A folder that cannot be read (one a store should never
                // hold: a path past the system's limit) is left as it is,
                // rather than keep the server from starting.
                let entries = match std::fs::read_dir(&folder) {
                    Ok(entries) => entries,
                    Err(error) if folder != root => {
                        tracing::warn!(%error, folder = %folder.display(),
                            "cannot look for partial writes in a personal store's folder");
                        continue;
                    }
                    Err(error) => return Err(error),
                };
                for entry in entries {
                    let entry = entry?;
                    let kind = entry.file_type()?;
                    if kind.is_dir() {
                        pending.push(entry.path());
                    } else if kind.is_file() && is_partial(entry.file_name().as_encoded_bytes()) {
                        std::fs::remove_file(entry.path())?;
                    }
                }
            }
            Ok(())
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

/// The entries under `root` of whatever kind (each takes an inode), up to
/// `stop_after + 1`, without following links out of it: a name's kind
/// comes from its folder's listing, not from a look at each entry. The
/// partial files of writes under way are theirs, counted as they are
/// admitted (and discarded at start if a crash left them).
fn count_below(root: &Path, stop_after: u64) -> io::Result<u64> {
    let mut counted = 0_u64;
    let mut pending = vec![root.to_path_buf()];
    let gone = |error: &io::Error| error.kind() == ErrorKind::NotFound;
    while let Some(folder) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if gone(&error) => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            if is_partial(entry.file_name().as_encoded_bytes()) {
                continue;
            }
            counted += 1;
            if counted > stop_after {
                return Ok(counted);
            }
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(entry.path());
            }
        }
    }
    Ok(counted)
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
            } else if kind.is_file() && !is_partial(entry.file_name().as_encoded_bytes()) {
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(error) if gone(&error) => continue,
                    Err(error) => return Err(error),
                };
                // A `\` is a name's own character here, as WebDAV wrote it
                // (`%5C`): taken for a `/`, a file in a folder `a\b` was
                // listed as `a/b`'s, whose bytes its sync then read.
                let relative = path.strip_prefix(root).unwrap_or(&path);
                let folder = relative
                    .parent()
                    .map(|parent| parent.to_string_lossy().into_owned())
                    .unwrap_or_default();
                found.push(StoreFile {
                    utf8: relative.to_str().is_some(),
                    relative: relative.to_string_lossy().into_owned(),
                    name: entry.file_name().to_string_lossy().into_owned(),
                    folder,
                    size: meta.len(),
                    modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH).into(),
                    tag: Some(inode_tag(&meta)),
                });
            }
        }
    }
    Ok(found)
}

/// The name prefix of a file being written: hidden from every listing,
/// renamed over its target once complete, removed if the write fails (or
/// at start, if a crash left it).
pub const PARTIAL_PREFIX: &str = ".depot-partial-";

fn is_partial(name: &[u8]) -> bool {
    name.starts_with(PARTIAL_PREFIX.as_bytes())
}

/// Whether a path is out of WebDAV's reach: it names a partial file (or
/// lies below such a name), or it would lead out of the user's folder.
/// Partial names are the server's own, so that no file can hide from the
/// listings and the quota under one. A path inside the store begins with
/// `/` and holds no dot segment; one that does not came past a check of
/// its prefix that fell short (dav-server's of `/store`, which took
/// `/store.../2/x` for `.../2/x`, joined to the folder as `../2/x`): the
/// web layer refuses such requests (`web/store.rs`), and this holds if it
/// ever did not.
fn off_limits(path: &DavPath) -> bool {
    let bytes = path.as_bytes();
    bytes.first() != Some(&b'/')
        || bytes
            .split(|byte| *byte == b'/')
            .any(|part| part == b"." || part == b".." || is_partial(part))
}

/// dav-server's local file system, except that a whole-file write (a
/// `PUT`) goes to a hidden file beside its target and replaces the target
/// only when complete: a write refused or cut off midway leaves the old
/// file as it was, never a truncated one; and that what it acknowledges
/// is on disk ([`durable`]).
#[derive(Clone)]
struct LocalStoreFs {
    inner: LocalFs,
    root: PathBuf,
}

impl LocalStoreFs {
    /// `change`, then the folders of `paths` synced: the change's answer
    /// waits until its names are on disk.
    fn synced<'a, const N: usize>(
        &'a self,
        change: FsFuture<'a, ()>,
        paths: [&'a DavPath; N],
    ) -> FsFuture<'a, ()> {
        async move {
            change.await?;
            for path in paths {
                sync_folder_of(&self.root.join(path.as_rel_ospath())).await?;
            }
            Ok(())
        }
        .boxed()
    }
}

impl DavFileSystem for LocalStoreFs {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        if off_limits(path) {
            return Box::pin(std::future::ready(Err(FsError::NotFound)));
        }
        if !options.write {
            return self.inner.open(path, options);
        }
        if !options.truncate || options.append {
            return async move {
                let file = self.inner.open(path, options).await?;
                let target = self.root.join(path.as_rel_ospath());
                Ok(Box::new(SyncedFile::new(file, target).await?) as Box<dyn DavFile>)
            }
            .boxed();
        }
        async move {
            let target = self.root.join(path.as_rel_ospath());
            match tokio::fs::symlink_metadata(&target).await {
                Ok(meta) if meta.is_dir() => return Err(FsError::Forbidden),
                Ok(_) if options.create_new => return Err(FsError::Exists),
                Err(error)
                    if error.kind() == ErrorKind::NotFound
                        && !(options.create || options.create_new) =>
                {
                    return Err(FsError::NotFound)
                }
                _ => {}
            }
            let folder = target.parent().ok_or(FsError::Forbidden)?;
            let temp = folder.join(format!("{PARTIAL_PREFIX}{:016x}", rand::random::<u64>()));
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .await
                .map_err(FsError::from)?;
            let write = WholeFile::new(file, temp, target, options.size, options.create_new);
            Ok(Box::new(write) as Box<dyn DavFile>)
        }
        .boxed()
    }

    fn read_dir<'a>(
        &'a self,
        path: &'a DavPath,
        meta: ReadDirMeta,
    ) -> FsFuture<'a, FsStream<Box<dyn DavDirEntry>>> {
        if off_limits(path) {
            return forbidden();
        }
        async move {
            let entries = self.inner.read_dir(path, meta).await?;
            Ok(entries
                .filter(|entry| {
                    let hidden = entry.as_ref().is_ok_and(|entry| is_partial(&entry.name()));
                    std::future::ready(!hidden)
                })
                .boxed() as FsStream<Box<dyn DavDirEntry>>)
        }
        .boxed()
    }

    fn metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        if off_limits(path) {
            return not_found();
        }
        self.inner.metadata(path)
    }

    fn symlink_metadata<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, Box<dyn DavMetaData>> {
        if off_limits(path) {
            return not_found();
        }
        self.inner.symlink_metadata(path)
    }

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        if off_limits(path) {
            return forbidden();
        }
        self.synced(self.inner.create_dir(path), [path])
    }

    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        if off_limits(path) {
            return forbidden();
        }
        self.synced(self.inner.remove_dir(path), [path])
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        if off_limits(path) {
            return forbidden();
        }
        self.inner.remove_file(path)
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        // A folder cannot be moved into itself (the system refuses, which
        // is no server failure).
        if off_limits(from) || off_limits(to) || inside(to, from) {
            return forbidden();
        }
        self.synced(self.inner.rename(from, to), [from, to])
    }

    /// A file's copy is written under a hidden name, on disk, then renamed
    /// into place, as a `PUT` is: written in place, a sync listing it
    /// midway took its first bytes for the file (and a copy cut short left
    /// them). dav-server copies a folder file by file through here.
    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        if off_limits(from) || off_limits(to) {
            return forbidden();
        }
        let (source, target) = (
            self.root.join(from.as_rel_ospath()),
            self.root.join(to.as_rel_ospath()),
        );
        async move {
            tokio::task::spawn_blocking(move || copy_whole(&source, &target))
                .await
                .map_err(|_| FsError::GeneralFailure)?
                .map_err(FsError::from)
        }
        .boxed()
    }
}

/// Copies the file `source` to `target`, which appears only whole (OS
/// errors, which dav-server answers with their statuses: a source that is
/// no file, or a folder standing at `target`, is 403).
fn copy_whole(source: &Path, target: &Path) -> io::Result<()> {
    if !std::fs::symlink_metadata(source)?.is_file() {
        return Err(rustix::io::Errno::ACCESS.into());
    }
    if std::fs::symlink_metadata(target).is_ok_and(|meta| meta.is_dir()) {
        return Err(rustix::io::Errno::ISDIR.into());
    }
    let folder = target.parent().ok_or(rustix::io::Errno::ACCESS)?;
    let temp = folder.join(format!("{PARTIAL_PREFIX}{:016x}", rand::random::<u64>()));
    let copied = std::fs::copy(source, &temp)
        .and_then(|_| std::fs::File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, target))
        .and_then(|()| std::fs::File::open(folder)?.sync_all());
    if copied.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    copied
}

fn not_found<'a, T: Send + 'a>() -> FsFuture<'a, T> {
    Box::pin(std::future::ready(Err(FsError::NotFound)))
}

fn forbidden<'a, T: Send + 'a>() -> FsFuture<'a, T> {
    Box::pin(std::future::ready(Err(FsError::Forbidden)))
}

/// What tells one version of a local file from another of its size and
/// modification time (which a move keeps, and which ticks coarsely): its
/// inode and its change time, which no client can set and which a move or
/// a write renews.
fn inode_tag(meta: &std::fs::Metadata) -> String {
    format!("{}:{}.{}", meta.ino(), meta.ctime(), meta.ctime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_takes_every_entry_but_writes_under_way_and_stops_past_its_bound() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path();
        std::fs::create_dir_all(path.join("a/b/c")).unwrap();
        std::fs::write(path.join("a/b/c/disk.vmdk"), b"x").unwrap();
        std::fs::write(path.join("empty"), b"").unwrap();
        std::fs::write(path.join(format!("a/{PARTIAL_PREFIX}1")), b"x").unwrap();
        std::os::unix::fs::symlink("/", path.join("a/link")).unwrap();
        // a, a/b, a/b/c, a/b/c/disk.vmdk, empty, a/link (not followed).
        assert_eq!(count_below(path, 100).unwrap(), 6);
        assert_eq!(count_below(path, 3).unwrap(), 4);
        assert_eq!(count_below(&path.join("missing"), 100).unwrap(), 0);
    }

    /// Made step by step, each folder from the one above it, as a tree
    /// moved below a long path is.
    fn folder_past_the_path_limit(root: &Path) -> std::path::PathBuf {
        use rustix::fs::{mkdirat, openat, Mode, OFlags, CWD};
        let name = "n".repeat(250);
        let mut folder = openat(CWD, root, OFlags::DIRECTORY, Mode::empty()).unwrap();
        let mut path = root.to_path_buf();
        for _ in 0..20 {
            mkdirat(&folder, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            folder = openat(&folder, name.as_str(), OFlags::DIRECTORY, Mode::empty()).unwrap();
            path.push(&name);
        }
        path
    }

    #[tokio::test]
    async fn a_folder_past_the_path_limit_keeps_no_server_from_starting() {
        let data = tempfile::tempdir().unwrap();
        let stores = LocalStores::new(data.path().join("personal"));
        let store = stores.folder(1);
        std::fs::create_dir_all(&store).unwrap();
        let deep = folder_past_the_path_limit(&store);
        assert!(
            std::fs::read_dir(&deep).is_err(),
            "the folder is past the limit"
        );
        let partial = store.join(format!("{PARTIAL_PREFIX}1"));
        std::fs::write(&partial, b"x").unwrap();
        stores.discard_partial_writes().await.unwrap();
        assert!(!partial.exists(), "a partial write beside it is discarded");
    }

    #[test]
    fn a_backslash_in_a_name_is_no_folder() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path();
        std::fs::create_dir_all(path.join("a/b")).unwrap();
        std::fs::create_dir_all(path.join("a\\b")).unwrap();
        std::fs::write(path.join("a/b/x.iso"), b"x").unwrap();
        std::fs::write(path.join("a\\b/x.iso"), b"yy").unwrap();
        let mut found: Vec<_> = walk(path)
            .unwrap()
            .into_iter()
            .map(|file| (file.folder, file.relative, file.size))
            .collect();
        found.sort();
        let expected = [("a/b", "a/b/x.iso", 1), ("a\\b", "a\\b/x.iso", 2)];
        let expected = expected.map(|(folder, relative, size): (&str, &str, u64)| {
            (folder.to_owned(), relative.to_owned(), size)
        });
        assert_eq!(found, expected);
    }

    /// Paths past a check of the store's prefix that fell short (read as
    /// dav-server reads `/store/../store.../2/x` and `/store/../storeX/etc`
    /// with its prefix `/store`) reach nothing, in the user's folder or out.
    #[tokio::test]
    async fn a_path_out_of_the_folder_reaches_nothing() {
        let stores = tempfile::tempdir().unwrap();
        let stores = LocalStores::new(stores.path().to_owned());
        std::fs::create_dir_all(stores.folder(2)).unwrap();
        std::fs::write(stores.folder(2).join("x"), b"bob's").unwrap();
        let alice = stores.file_system(1).await.unwrap();
        let prefixed = |text: &str| {
            let mut path = DavPath::new(text).unwrap();
            path.set_prefix("/store").unwrap();
            path
        };
        let within = prefixed("/store/a");
        for path in [prefixed("/store.../2/x"), prefixed("/storeX/etc/hostname")] {
            let read = OpenOptions {
                read: true,
                ..OpenOptions::default()
            };
            assert!(alice.open(&path, read).await.is_err());
            let write = OpenOptions {
                write: true,
                create: true,
                truncate: true,
                ..OpenOptions::default()
            };
            assert!(alice.open(&path, write).await.is_err());
            assert!(alice.metadata(&path).await.is_err());
            assert!(alice.read_dir(&path, ReadDirMeta::None).await.is_err());
            assert!(alice.remove_file(&path).await.is_err());
            assert!(alice.rename(&path, &within).await.is_err());
            assert!(alice.copy(&path, &within).await.is_err());
        }
        assert_eq!(std::fs::read(stores.folder(2).join("x")).unwrap(), b"bob's");
        assert!(!stores.folder(1).join("a").exists());
    }

    #[test]
    fn a_folder_is_inside_itself_only_below_a_slash() {
        let path = |text: &str| DavPath::new(text).unwrap();
        assert!(inside(&path("/f/g"), &path("/f/")));
        assert!(inside(&path("/f/g/"), &path("/f")));
        assert!(!inside(&path("/fg"), &path("/f")));
        assert!(!inside(&path("/f"), &path("/f/")));
        assert!(!inside(&path("/g/f/"), &path("/f/")));
    }
}
