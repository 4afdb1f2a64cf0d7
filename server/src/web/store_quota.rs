//! The personal store's file system (either backend's), with every
//! write counted against the owner's quota and the upload limit as it
//! happens (chunked bodies without a length included), and `COPY` counted
//! before it copies (and again after, if its file grew meanwhile). A write
//! refused midway removes what it had written: nothing partial stays
//! behind. Every new file or folder is admitted against the cap on the
//! store's entries and their depth first, a `MOVE` against the depth.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::model::{beyond_store_limits, inside_slashes, MAX_STORE_PATH};
use bytes::{Buf, Bytes};
use dav_server::davpath::DavPath;
use dav_server::fs::{
    DavDirEntry, DavFile, DavFileSystem, DavMetaData, FsError, FsFuture, FsStream, OpenOptions,
    ReadDirMeta,
};
use futures_util::StreamExt;

use crate::blob::IngestError;
use crate::core::{
    check_store_depth, Admission, Core, EntryRefused, NewEntry, SharePlace, StoreWrite,
    MAX_STORE_DEPTH,
};
use crate::personal::{inside, StoreFs};

/// One user's store folder, as one WebDAV request reaches it.
#[derive(Clone)]
pub struct QuotaFs {
    inner: StoreFs,
    core: Arc<Core>,
    user_id: i64,
    /// The room of the request's copies (a `COPY` of a folder copies its
    /// files one by one), and when it was first asked for: one reservation
    /// grown by each, so that a folder of many small files does not count
    /// the whole store for each. It is let go of when the request is
    /// dropped and its last copy has ended (a `COPY` may go on while its
    /// answer is sent, or after its client went away).
    copies: Arc<tokio::sync::Mutex<Option<(StoreWrite, Instant)>>>,
    /// The request's upload place, held by each of its copies and moves
    /// until it ends, as the request is until it does.
    place: Option<Arc<SharePlace>>,
}

/// How long a request's copies use the same reservation: far less than a
/// reservation lives without growing, which a copy whose answer is read
/// slowly could otherwise outlast, and then use room no longer reserved.
const COPY_ROOM_LIFE: Duration = Duration::from_secs(300);

impl QuotaFs {
    pub fn new(inner: StoreFs, core: Arc<Core>, user_id: i64) -> Self {
        Self {
            inner,
            core,
            user_id,
            copies: Arc::default(),
            place: None,
        }
    }

    /// The same, its copies and moves holding the request's upload place.
    pub fn holding(self, place: Option<Arc<SharePlace>>) -> Self {
        Self { place, ..self }
    }

    /// Admits an entry at `path`, a new one or one written over a file.
    async fn admit(&self, path: &DavPath, kind: NewEntry) -> Result<Admission, FsError> {
        // Each request's own paths are measured before it runs; a folder's
        // copy makes paths of its own.
        if beyond_store_limits(path.as_bytes()) {
            return Err(FsError::PathTooLong);
        }
        self.core
            .admit_store_entry(self.user_id, depth(path), kind)
            .await
            .map_err(entry_refused)
    }

    /// Whether `path` is a file.
    async fn is_file(&self, path: &DavPath) -> bool {
        DavFileSystem::metadata(&self.inner, path)
            .await
            .is_ok_and(|meta| !meta.is_dir())
    }
}

/// How deep `path` is: `/a/b/c.iso` is 3 deep.
fn depth(path: &DavPath) -> usize {
    path.as_bytes()
        .split(|byte| *byte == b'/')
        .filter(|part| !part.is_empty())
        .count()
}

/// How a refused entry answers: 507 past the cap, 414 too deep.
fn entry_refused(refused: EntryRefused) -> FsError {
    match refused {
        EntryRefused::TooMany { .. } => FsError::InsufficientStorage,
        EntryRefused::TooDeep => FsError::PathTooLong,
        EntryRefused::Io(error) => {
            tracing::error!(%error, "cannot count the entries of a personal store");
            FsError::GeneralFailure
        }
    }
}

/// A name as a path's segment.
fn segment(name: &[u8]) -> String {
    percent_encoding::percent_encode(name, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What lies below a folder: how many levels of entries (0 for an empty
/// one), how many bytes its files hold, and its longest path (`a/b/c`,
/// in bytes; 0 for an empty one).
#[derive(Default)]
struct Below {
    height: usize,
    bytes: u64,
    longest: usize,
}

impl Below {
    /// Refuses what lies below a folder copied or moved to `to` where it
    /// would reach too deep, or a path too long for a store to keep: each
    /// request's paths are measured, but a folder's are not, and a tree
    /// moved below a long path could hold paths longer than a file system
    /// can name (Linux's 4,096 bytes, past which the folder could not be
    /// walked, counted or deleted, nor the server start).
    fn check_at(&self, to: &DavPath) -> Result<(), FsError> {
        check_store_depth(depth(to) + self.height).map_err(entry_refused)?;
        if self.longest > 0 && store_length(to) + 1 + self.longest > MAX_STORE_PATH {
            return Err(FsError::PathTooLong);
        }
        Ok(())
    }
}

/// A path's length inside the store, as [`beyond_store_limits`] measures it.
fn store_length(path: &DavPath) -> usize {
    inside_slashes(path.as_bytes()).len()
}

/// What lies below `folder`, its levels counted up to `limit + 1` (past
/// that the walk stops, its bytes short).
async fn below(fs: &StoreFs, folder: &DavPath, limit: usize) -> Result<Below, FsError> {
    let mut found = Below::default();
    // Each folder to list, its level and its path's length below `folder`.
    let mut pending = vec![(folder.clone(), 0_usize, 0_usize)];
    while let Some((path, level, length)) = pending.pop() {
        let mut entries = DavFileSystem::read_dir(fs, &path, ReadDirMeta::None).await?;
        while let Some(entry) = entries.next().await {
            let entry = entry?;
            let name = entry.name();
            let entry_length = if length == 0 {
                name.len()
            } else {
                length + 1 + name.len()
            };
            found.longest = found.longest.max(entry_length);
            found.height = found.height.max(level + 1);
            if found.height > limit {
                return Ok(found);
            }
            if !entry.is_dir().await? {
                found.bytes += entry.metadata().await?.len();
                continue;
            }
            let mut below = path.as_url_string();
            if !below.ends_with('/') {
                below.push('/');
            }
            below.push_str(&segment(&name));
            below.push('/');
            let below = DavPath::new(&below).map_err(|_| FsError::GeneralFailure)?;
            pending.push((below, level + 1, entry_length));
        }
    }
    Ok(found)
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
            // So does it those of a write in place (a range, an append), until
            // the write ends: the file may be deleted or replaced meanwhile,
            // and bytes written on into it then are in no listing, though on
            // the disk until the write lets the file go. They count twice
            // while it runs (in the file's size too): the price of never
            // counting them not at all.
            let atomic = self.inner.atomic_writes() || (options.truncate && !options.append);
            let mut write = StoreWrite::new(self.core.clone(), self.user_id, true);
            // A length announced up front is checked (and reserved) before
            // anything is written or truncated.
            if let Some(size) = options.size {
                write.announce(size).await.map_err(refused)?;
            }
            // Every write is admitted, even one over a file that exists
            // (whatever its options say): the file may be moved away
            // before the write lands, which then makes it anew.
            let depths = self.core.store_depths_kept(self.user_id).await;
            let seen = self.core.store_moves_seen(self.user_id);
            let existed = DavFileSystem::metadata(&self.inner, path).await.is_ok();
            let kind = if existed {
                NewEntry::Over(seen)
            } else {
                NewEntry::New
            };
            let admission = Some(self.admit(path, kind).await?);
            let file = DavFileSystem::open(&self.inner, path, options).await?;
            drop(depths);
            Ok(Box::new(CountedFile {
                inner: file,
                write: Some(write),
                admission,
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
        Box::pin(async move {
            let _depths = self.core.store_depths_kept(self.user_id).await;
            let admission = self.admit(path, NewEntry::New).await?;
            DavFileSystem::create_dir(&self.inner, path).await?;
            admission.made();
            Ok(())
        })
    }

    /// A removed entry makes room for another (at the next refusal's walk).
    fn remove_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            DavFileSystem::remove_dir(&self.inner, path).await?;
            self.core.store_entry_removed(self.user_id);
            Ok(())
        })
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            DavFileSystem::remove_file(&self.inner, path).await?;
            self.core.store_entry_removed(self.user_id);
            Ok(())
        })
    }

    /// A move adds no bytes and no entries (when it completes), but may
    /// take a folder's entries deeper or their paths longer: not past what
    /// a store's may be.
    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            // Held until the move ends (in its task): nothing is made in
            // the folder meanwhile at the depth it had.
            let depths = self.core.store_depths_changing(self.user_id).await;
            self.check_move_reach(from, to).await?;
            // A move in an object store is copies, then deletes: one that
            // did not complete, or that another overlapped, may leave files
            // twice.
            let admission = if self.inner.atomic_writes() {
                let seen = self.core.store_moves_seen(self.user_id);
                Some(self.admit(to, NewEntry::Moved(seen)).await?)
            } else {
                None
            };
            let moving = self.core.store_move_begins(self.user_id);
            // It runs to its end in a task of its own, its admission and
            // its mark as under way with it: a request dropped midway (its
            // client gone) leaves no file both here and there, and a walk
            // of the store meanwhile knows what it may miss.
            let (inner, from, to) = (self.inner.clone(), from.clone(), to.clone());
            let place = self.place.clone();
            to_its_end(async move {
                let moved = DavFileSystem::rename(&inner, &from, &to).await;
                drop(place);
                // Done, refused before anything was copied, or a file gone
                // meanwhile: no file is left twice.
                if let (Ok(()) | Err(FsError::Forbidden | FsError::NotFound), Some(admission)) =
                    (&moved, admission)
                {
                    admission.made();
                }
                drop(moving);
                drop(depths);
                moved
            })
            .await
        })
    }

    /// A copy of a file adds its bytes, and an entry: both are made room
    /// for first (a folder's copy makes its folders with
    /// [`QuotaFs::create_dir`], and copies its files here).
    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        Box::pin(async move {
            let size = DavFileSystem::metadata(&self.inner, from).await?.len();
            let depths = self.core.store_depths_kept(self.user_id).await;
            let seen = self.core.store_moves_seen(self.user_id);
            let kind = if self.is_file(to).await {
                NewEntry::Over(seen)
            } else {
                NewEntry::New
            };
            let admission = self.admit(to, kind).await?;
            // It runs to its end in a task of its own: a copy whose client
            // went away may still land (an object store's copy is the
            // store's own doing), and is counted all the same.
            let (fs, from, to) = (self.clone(), from.clone(), to.clone());
            to_its_end(async move {
                // `fs` holds the request's upload place till then.
                let copied = fs.copy_counted(&from, &to, size).await;
                drop(depths);
                copied?;
                admission.made();
                Ok(())
            })
            .await
        })
    }
}

/// Runs a step that must not stop midway (a move, a copy and its count) to
/// its end in a task of its own, whether the request waits for it or not.
async fn to_its_end<F>(step: F) -> Result<(), FsError>
where
    F: std::future::Future<Output = Result<(), FsError>> + Send + 'static,
{
    tokio::spawn(step)
        .await
        .map_err(|_| FsError::GeneralFailure)?
}

impl QuotaFs {
    /// What a `COPY` or `MOVE` onto an entry that exists would be refused
    /// for, asked before anything is done: dav-server deletes the
    /// destination first (RFC 4918's `Overwrite`), so a copy refused then
    /// for the quota or the upload limit, or a move or a folder's copy for
    /// the depth, had lost it. A copy takes its room now, a folder's for all
    /// its files, which the copy then spends (replacing a file thus needs
    /// room for both for a moment, as a `PUT` over it does).
    pub async fn refuse_before_overwrite(
        &self,
        moving: bool,
        from: &DavPath,
        to: &DavPath,
    ) -> Result<(), FsError> {
        let Ok(source) = DavFileSystem::metadata(&self.inner, from).await else {
            return Ok(()); // dav-server answers for a missing source.
        };
        let Ok(target) = DavFileSystem::metadata(&self.inner, to).await else {
            // Nothing there to lose; but a folder's copy, whose entries are
            // each admitted as they are made, would stop partway at one
            // too deep or too long: it is measured whole first.
            if !moving && source.is_dir() && !inside(to, from) {
                let room = MAX_STORE_DEPTH.saturating_sub(depth(to));
                below(&self.inner, from, room).await?.check_at(to)?;
            }
            return Ok(());
        };
        // Onto a folder that holds the source, or something inside it:
        // deleting the destination first deleted (part of) the source.
        let trimmed = |path: &DavPath| {
            let path = path.as_bytes();
            path.strip_suffix(b"/").unwrap_or(path).to_vec()
        };
        if trimmed(from) == trimmed(to) || inside(from, to) || inside(to, from) {
            return Err(FsError::Forbidden);
        }
        // A move between folders of an object store (whose writes appear
        // whole, its moves are copies, then deletes) cut short leaves files
        // in both, and its retry (onto the folder it had begun) deleted the
        // files it had moved already.
        if moving {
            self.check_move_reach(from, to).await?;
            if target.is_dir() && self.inner.atomic_writes() {
                return Err(FsError::Exists);
            }
            Ok(())
        } else if source.is_file() {
            self.reserve_for_copies(source.len()).await
        } else {
            let room = MAX_STORE_DEPTH.saturating_sub(depth(to));
            let copied = below(&self.inner, from, room).await?;
            copied.check_at(to)?;
            self.reserve_for_copies(copied.bytes).await
        }
    }

    /// A move may take a folder's entries deeper, and their paths longer:
    /// not past what a store's may be.
    async fn check_move_reach(&self, from: &DavPath, to: &DavPath) -> Result<(), FsError> {
        if depth(to) > depth(from) || store_length(to) > store_length(from) {
            let room = MAX_STORE_DEPTH.saturating_sub(depth(to));
            let below = if DavFileSystem::metadata(&self.inner, from).await?.is_dir() {
                below(&self.inner, from, room).await?
            } else {
                Below::default()
            };
            below.check_at(to)?;
        }
        Ok(())
    }

    /// The room of the request's copies: the one it has, unless begun too
    /// long ago (then let go of), or a new one.
    async fn copy_room<'c>(
        &self,
        copies: &'c mut Option<(StoreWrite, Instant)>,
    ) -> &'c mut StoreWrite {
        if copies
            .as_ref()
            .is_some_and(|(_, began)| began.elapsed() > COPY_ROOM_LIFE)
        {
            if let Some((write, _)) = copies.take() {
                write.release().await;
            }
        }
        let (write, _) = copies.get_or_insert_with(|| {
            let write = StoreWrite::new(self.core.clone(), self.user_id, false);
            (write, Instant::now())
        });
        write
    }

    /// Takes room for `size` bytes of copies in advance, or refuses.
    async fn reserve_for_copies(&self, size: u64) -> Result<(), FsError> {
        let mut copies = self.copies.lock().await;
        let write = self.copy_room(&mut copies).await;
        if let Err(error) = write.announce(size).await {
            if let Some((write, _)) = copies.take() {
                write.release().await;
            }
            return Err(refused(error));
        }
        Ok(())
    }

    /// Copies a file of `size` bytes within the room of the request's
    /// copies, and takes room for what it copied past that (a file that
    /// grew since its size was read, a write to it meanwhile), or undoes
    /// the copy.
    async fn copy_counted(&self, from: &DavPath, to: &DavPath, size: u64) -> Result<(), FsError> {
        let inner = &self.inner;
        let mut copies = self.copies.lock().await;
        let write = self.copy_room(&mut copies).await;
        write.next_file();
        if let Err(error) = write.make_room(size).await {
            // A refused write's room is gone: the next copy asks anew.
            if let Some((write, _)) = copies.take() {
                write.release().await;
            }
            return Err(refused(error));
        }
        write.placing();
        // A copy may outlast its room's reservation: it is renewed meanwhile.
        let copied = write
            .keeper()
            .during(DavFileSystem::copy(inner, from, to))
            .await;
        write.placed();
        copied?;
        let refusal = match DavFileSystem::metadata(inner, to).await {
            Ok(meta) if meta.len() <= size => return Ok(()),
            Ok(meta) => match write.make_room(meta.len() - size).await {
                Ok(()) => return Ok(()),
                Err(error) => refused(error),
            },
            // A copy whose size cannot be read is not kept either.
            Err(_) => FsError::GeneralFailure,
        };
        if let Some((write, _)) = copies.take() {
            write.release().await;
        }
        if let Err(cleanup) = DavFileSystem::remove_file(inner, to).await {
            tracing::warn!(?cleanup, "cannot remove a copy past the quota");
        }
        Err(refusal)
    }
}

/// A file open for writing; each write takes room first.
struct CountedFile {
    inner: Box<dyn DavFile>,
    write: Option<StoreWrite>,
    /// The file's admission as an entry, until it is complete.
    admission: Option<Admission>,
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
            if flushed.is_ok() {
                if let Some(admission) = self.admission.take() {
                    admission.made();
                }
            }
            flushed
        })
    }
}

#[cfg(test)]
mod tests;
