//! Cases of the quota's file system that need a store of their own making.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use app::model::Role;
use futures_util::FutureExt;

use super::*;
use crate::core::Limits;
use crate::personal::local::LocalStores;
use crate::personal::PersonalStores;

/// Alice's local store with a hand in it: a copy finds its file grown
/// since its size was read (a write to it meanwhile), or takes as many
/// milliseconds as `slow_copy` says if any; and a move, once begun, waits
/// to be let go.
#[derive(Clone)]
struct Meddled {
    inner: StoreFs,
    folder: PathBuf,
    slow_copy: Arc<AtomicU64>,
    move_begun: Arc<tokio::sync::Notify>,
    move_goes: Arc<tokio::sync::Notify>,
}

impl DavFileSystem for Meddled {
    fn open<'a>(
        &'a self,
        path: &'a DavPath,
        options: OpenOptions,
    ) -> FsFuture<'a, Box<dyn DavFile>> {
        DavFileSystem::open(&self.inner, path, options)
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

    fn create_dir<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        DavFileSystem::create_dir(&self.inner, path)
    }

    fn remove_file<'a>(&'a self, path: &'a DavPath) -> FsFuture<'a, ()> {
        DavFileSystem::remove_file(&self.inner, path)
    }

    fn copy<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            let slow = self.slow_copy.load(Ordering::Relaxed);
            if slow > 0 {
                tokio::time::sleep(Duration::from_millis(slow)).await;
                return DavFileSystem::copy(&self.inner, from, to).await;
            }
            let file = self.folder.join(from.as_rel_ospath());
            let mut grown = std::fs::read(&file).unwrap();
            grown.resize(1 << 20, 7);
            std::fs::write(&file, grown).unwrap();
            DavFileSystem::copy(&self.inner, from, to).await
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a DavPath, to: &'a DavPath) -> FsFuture<'a, ()> {
        async move {
            self.move_begun.notify_one();
            self.move_goes.notified().await;
            DavFileSystem::rename(&self.inner, from, to).await
        }
        .boxed()
    }
}

/// Alice's store under `limits`, meddled with, as her requests reach it.
async fn alices_store(dir: &std::path::Path, limits: Limits) -> (QuotaFs, Meddled) {
    let core = Arc::new(crate::core::test_core(dir, limits).await);
    let stores = LocalStores::new(dir.join("personal"));
    let user = core
        .create_user("alice", "alice-password", Role::User)
        .await
        .unwrap();
    let meddled = Meddled {
        inner: stores.file_system(user).await.unwrap(),
        folder: stores.folder(user),
        slow_copy: Arc::default(),
        move_begun: Arc::default(),
        move_goes: Arc::default(),
    };
    let fs = QuotaFs::new(StoreFs::growing(meddled.clone()), core, user);
    (fs, meddled)
}

#[tokio::test]
async fn a_copy_of_a_file_that_grew_meanwhile_keeps_to_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        user_quota_bytes: Some(64 << 10),
        ..Limits::default()
    };
    let (fs, meddled) = alices_store(dir.path(), limits).await;
    let folder = meddled.folder;
    std::fs::write(folder.join("small.iso"), b"ten bytes.").unwrap();

    let (from, to) = (
        DavPath::new("/small.iso").unwrap(),
        DavPath::new("/copy.iso").unwrap(),
    );
    let copied = DavFileSystem::copy(&fs, &from, &to).await;
    assert!(
        matches!(copied, Err(FsError::InsufficientStorage)),
        "{copied:?}"
    );
    assert!(
        !folder.join("copy.iso").exists(),
        "the copy past the quota was kept"
    );
}

/// A copy that outlasts its room's reservation renews it meanwhile, so
/// the room stays its own. (A copy of a large file through an object store
/// can run past the hour a reservation lives: its room counted no more,
/// for other writes to take, and the copy landed unchecked.)
#[tokio::test]
async fn a_long_copy_keeps_its_room_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        user_quota_bytes: Some(1 << 30),
        reservations_renewed_every: Duration::from_millis(100),
        ..Limits::default()
    };
    let (fs, meddled) = alices_store(dir.path(), limits).await;
    meddled.slow_copy.store(1_500, Ordering::Relaxed);
    std::fs::write(meddled.folder.join("disk.iso"), vec![1; 100_000]).unwrap();
    let crate::store::Pool::Sqlite(pool) = fs.core.db().pool().clone() else {
        panic!("the test core is on SQLite");
    };
    let expiry = || {
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(expires_at) FROM quota_reservations")
            .fetch_one(&pool)
    };

    let (from, to) = (
        DavPath::new("/disk.iso").unwrap(),
        DavPath::new("/copy.iso").unwrap(),
    );
    let copying = DavFileSystem::copy(&fs, &from, &to);
    let watching = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let early = expiry().await.unwrap().expect("the copy reserved its room");
        tokio::time::sleep(Duration::from_millis(900)).await;
        let later = expiry().await.unwrap().unwrap();
        (early, later)
    };
    let (copied, (early, later)) = tokio::join!(copying, watching);
    copied.unwrap();
    assert!(
        later >= early + 500,
        "not renewed: expiring at {early}, then {later}"
    );
    assert!(meddled.folder.join("copy.iso").exists());
}

/// Folders made in a folder while it is moved deeper are made before
/// the move measures it, or after it (where the folder was): never
/// past the deepest a store's entries may be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_made_too_deep_in_a_folder_being_moved() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, meddled) = alices_store(dir.path(), Limits::default()).await;
    let folder = meddled.folder;
    let deep: PathBuf = (1..=30).map(|level| level.to_string()).collect();
    std::fs::create_dir_all(folder.join(&deep)).unwrap();
    std::fs::create_dir_all(folder.join("src")).unwrap();
    let (begun, go) = (meddled.move_begun, meddled.move_goes);

    // Below 30 levels: 31 deep, its folder empty (0 below) when measured.
    let to = format!("/{}/src/", deep.display());
    let moving = {
        let fs = fs.clone();
        tokio::spawn(async move {
            let (from, to) = (DavPath::new("/src/").unwrap(), DavPath::new(&to).unwrap());
            DavFileSystem::rename(&fs, &from, &to).await
        })
    };
    begun.notified().await;
    let making = {
        let fs = fs.clone();
        tokio::spawn(async move {
            for path in ["/src/a/", "/src/a/b/"] {
                let _ = DavFileSystem::create_dir(&fs, &DavPath::new(path).unwrap()).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    go.notify_one();
    moving.await.unwrap().unwrap();
    making.await.unwrap();
    let moved = folder.join(&deep).join("src");
    assert!(moved.is_dir());
    assert!(
        !moved.join("a/b").exists(),
        "a folder 33 deep was made while its parent moved"
    );
}

/// A write in place (a range, an append) goes on into a file deleted
/// meanwhile: its bytes are in no listing then, but on the disk until the
/// write lets the file go. The write's reservation holds them: past the
/// quota the write is refused.
#[tokio::test]
async fn a_write_into_a_file_deleted_meanwhile_keeps_to_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        user_quota_bytes: Some(256 << 10),
        ..Limits::default()
    };
    let (fs, meddled) = alices_store(dir.path(), limits).await;
    let path = DavPath::new("/x.bin").unwrap();
    let options = OpenOptions {
        write: true,
        create: true,
        ..OpenOptions::default()
    };
    let mut file = DavFileSystem::open(&fs, &path, options).await.unwrap();
    file.write_bytes(Bytes::from(vec![1; 128 << 10]))
        .await
        .unwrap();
    std::fs::remove_file(meddled.folder.join("x.bin")).unwrap();
    let mut written = 128 << 10;
    let refused = loop {
        match file.write_bytes(Bytes::from(vec![1; 64 << 10])).await {
            Ok(()) if written < 4 << 20 => written += 64 << 10,
            outcome => break outcome,
        }
    };
    assert!(
        matches!(refused, Err(FsError::InsufficientStorage)),
        "{refused:?} after {written} bytes"
    );
    assert!(written <= 256 << 10, "{written} bytes written");
}
