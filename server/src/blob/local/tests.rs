//! The local store's own cases, and the blob contract on it.

use super::super::{contract, BlobStore};
use super::*;

/// Uneven chunks, some empty, more than a batch.
fn uneven_chunks() -> Vec<Bytes> {
    (0..50u8)
        .map(|n| Bytes::from(vec![n; usize::from(n % 7) * 1_013]))
        .collect()
}

/// A file that takes at most 1,000 bytes of the first slice a call.
struct Grudging(Vec<u8>);

impl Write for Grudging {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let take = bytes.len().min(1_000);
        self.0.extend_from_slice(&bytes[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn vectored_writes_carry_on_after_short_writes() {
    let chunks = uneven_chunks();
    let whole: Vec<u8> = chunks.iter().flatten().copied().collect();
    let mut file = Grudging(Vec::new());
    let wrote = write_all_vectored(&mut file, &chunks).unwrap();
    assert_eq!(wrote, whole.len() as u64);
    assert_eq!(file.0, whole);
}

#[tokio::test]
async fn the_writer_appends_every_chunk_in_order_after_what_was_there() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("part");
    std::fs::write(&path, b"kept").unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).unwrap();
    let (mut sender, mut writer) = spawn_writer(file);
    let chunks = uneven_chunks();
    for chunk in &chunks {
        send_to_writer(&mut sender, &mut writer, chunk.clone())
            .await
            .unwrap();
    }
    drop(sender);
    writer.await.unwrap().unwrap();
    let mut expected = b"kept".to_vec();
    expected.extend(chunks.iter().flatten());
    assert_eq!(std::fs::read(&path).unwrap(), expected);
}

#[tokio::test]
async fn uploads_past_the_places_wait_for_one_to_end() {
    let (_root, store) = store_in_a_new_folder().await;
    contract::uploads_past_the_places_wait_for_one_to_end(store).await;
}

/// A store in a folder of its own, removed when the first is dropped.
async fn store_in_a_new_folder() -> (tempfile::TempDir, BlobStore) {
    let root = tempfile::tempdir().unwrap();
    let store = BlobStore::open(root.path()).await.unwrap();
    (root, store)
}

#[tokio::test]
async fn stores_under_the_digest_and_only_once() {
    let (_root, store) = store_in_a_new_folder().await;
    contract::stores_under_the_digest_and_only_once(store).await;
}

#[tokio::test]
async fn a_failed_or_oversized_body_leaves_nothing() {
    let (_root, store) = store_in_a_new_folder().await;
    contract::a_failed_or_oversized_body_leaves_nothing(store, 10).await;
}

#[tokio::test]
async fn keeps_an_uploads_parts_until_removed() {
    let (_root, store) = store_in_a_new_folder().await;
    contract::keeps_an_uploads_parts_until_removed(store).await;
}

#[tokio::test]
async fn bytes_prepared_in_vain_come_back() {
    let (_root, store) = store_in_a_new_folder().await;
    contract::bytes_prepared_in_vain_come_back(store).await;
}

#[tokio::test]
async fn a_chunk_given_up_on_leaves_nothing_behind() {
    let (_root, store) = store_in_a_new_folder().await;
    contract::a_chunk_given_up_on_leaves_nothing_behind(store).await;
}

/// A chunk waits for the writer before it (which holds the upload's
/// file) to end; one whose request is dropped while it waits leaves the
/// file as it was, and the next chunk goes on from there.
#[tokio::test]
async fn a_chunk_dropped_while_it_waits_for_the_writer_before_it_cuts_nothing() {
    let (root, store) = store_in_a_new_folder().await;
    let body = |bytes: &'static [u8]| {
        futures_util::stream::iter([Ok::<_, &str>(Bytes::from_static(bytes))])
    };
    let chunk = store.write_part("up", 0, body(b"hello world"), 100, |_| ());
    chunk.await.unwrap().part.unwrap().keep();
    let path = root.path().join("uploads/up");
    // Held as a writer thread holds it while it still writes.
    let writer = std::fs::File::open(&path).unwrap();
    rustix::fs::flock(&writer, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let waiting = store.write_part("up", 5, body(b"XXXX"), 100, |_| ());
    let waited = tokio::time::timeout(Duration::from_millis(200), waiting).await;
    assert!(waited.is_err(), "it waits while the file is held");
    drop(writer);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
    let next = store.write_part("up", 11, body(b"!"), 100, |_| ());
    next.await.unwrap().part.unwrap().keep();
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world!");
}

/// The complete resumable upload `up` of "hello world" (its parts).
async fn hello_world_upload(store: &BlobStore) -> [super::super::Part; 1] {
    let body = futures_util::stream::iter([Ok::<_, &str>(Bytes::from_static(b"hello world"))]);
    let chunk = store.write_part("up", 0, body, 100, |_| ()).await.unwrap();
    let part = chunk.part.unwrap();
    let parts = [super::super::Part {
        start: 0,
        size: 11,
        name: part.name().to_owned(),
    }];
    part.keep();
    parts
}

/// A complete upload's file becomes its blob without a copy: the blob
/// is the same file on disk (its bytes were written once), and stays
/// when the upload's file goes.
#[tokio::test]
async fn a_complete_upload_is_linked_not_copied() {
    use std::os::unix::fs::MetadataExt;
    let (root, store) = store_in_a_new_folder().await;
    let parts = hello_world_upload(&store).await;
    let sha256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let digested = super::super::Digested {
        sha256: sha256.into(),
        size: 11,
    };
    let staged = store.stage_parts("up", &parts, digested).await.unwrap();
    let copy = staged.publish(None).await.unwrap();
    let upload = std::fs::metadata(root.path().join("uploads/up")).unwrap();
    let blob = root.path().join("blobs/b9").join(copy.file_name());
    let blob = std::fs::metadata(blob).unwrap();
    assert_eq!((upload.dev(), upload.ino()), (blob.dev(), blob.ino()));
    // Nothing written to the upload after that can cut or change the
    // blob, whatever the upload's record says.
    for offset in [0, 5, 11] {
        let body = futures_util::stream::iter([Ok::<_, &str>(Bytes::from_static(b"X"))]);
        let written = store.write_part("up", offset, body, 100, |_| ()).await;
        assert!(written.is_err(), "a write at {offset}");
    }
    let blob = root.path().join("blobs/b9").join(copy.file_name());
    assert_eq!(std::fs::read(&blob).unwrap(), b"hello world");
    store.remove_parts("up").await.unwrap();
    assert!(store.exists(&copy).await);
    assert!(store.stored(Area::Uploads).await.unwrap().is_empty());
}

/// An upload's file on another file system than the blobs' is copied
/// beside its blob before the blob's lock is taken (a copy of many GiB under
/// it, on SQLite the database's write lock, held every write back); under
/// the lock it only takes its name. A copy never published is removed.
#[tokio::test]
async fn an_upload_on_another_file_system_is_copied_before_the_lock() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    let apart = tempfile::tempdir_in("/dev/shm").expect("a tmpfs at /dev/shm");
    std::os::unix::fs::symlink(apart.path(), root.path().join("uploads")).unwrap();
    let store = BlobStore::open(root.path()).await.unwrap();
    let blobs = root.path().join("blobs/b9");
    let uploads = root.path().join("uploads");
    assert_ne!(
        std::fs::metadata(&uploads).unwrap().dev(),
        std::fs::metadata(root.path().join("blobs")).unwrap().dev()
    );
    let sha256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let copies = || {
        std::fs::read_dir(&blobs)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| super::is_partial_copy(&entry.file_name().to_string_lossy()))
                    .count()
            })
            .unwrap_or(0)
    };
    for publish in [false, true] {
        let parts = hello_world_upload(&store).await;
        let digested = super::super::Digested {
            sha256: sha256.into(),
            size: 11,
        };
        let mut staged = store.stage_parts("up", &parts, digested).await.unwrap();
        staged.prepare(None).await.unwrap();
        assert_eq!(copies(), 1, "copied before the lock");
        let published = store.settled_blobs(Duration::ZERO).await.unwrap();
        assert!(published.is_empty(), "not published yet: {published:?}");
        if publish {
            let copy = staged.publish(None).await.unwrap();
            let published = blobs.join(copy.file_name());
            assert_eq!(std::fs::read(published).unwrap(), b"hello world");
        } else {
            drop(staged);
        }
        assert_eq!(copies(), 0);
        store.remove_parts("up").await.unwrap();
    }
}

/// A complete upload linked beside its blob before the lock is new to the
/// collector of stale partial copies, however long ago its last chunk was
/// written: the link shares the upload's file, and so its time.
#[tokio::test]
async fn an_upload_written_long_ago_is_not_collected_before_it_is_published() {
    let (root, store) = store_in_a_new_folder().await;
    let parts = hello_world_upload(&store).await;
    let hours_ago = SystemTime::now() - Duration::from_secs(3 * 3600);
    let upload = std::fs::File::open(root.path().join("uploads/up")).unwrap();
    upload.set_modified(hours_ago).unwrap();
    let sha256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let digested = super::super::Digested {
        sha256: sha256.into(),
        size: 11,
    };
    let mut staged = store.stage_parts("up", &parts, digested).await.unwrap();
    staged.prepare(None).await.unwrap();
    store
        .discard_stale_uploads(Duration::from_secs(3600))
        .await
        .unwrap();
    let copy = staged.publish(None).await.unwrap();
    let blob = root.path().join("blobs/b9").join(copy.file_name());
    assert_eq!(std::fs::read(blob).unwrap(), b"hello world");
}

/// A blob copied from an upload's file on another file system, cut short
/// by a crash, is discarded with the stale uploads; a blob is not.
#[tokio::test]
async fn a_blob_copy_cut_short_is_discarded_with_the_stale_uploads() {
    let (root, store) = store_in_a_new_folder().await;
    let sha256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let folder = root.path().join("blobs/b9");
    std::fs::create_dir_all(&folder).unwrap();
    // A copy's, and one of the name an earlier version gave them.
    let partials = [super::partial_copy(sha256), format!(".{sha256}.partial")];
    for name in partials.iter().chain([&sha256.to_owned()]) {
        std::fs::write(folder.join(name), b"hello").unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let removed = store.discard_stale_uploads(Duration::from_millis(10)).await;
    assert_eq!(removed.unwrap(), 2);
    assert!(partials.iter().all(|name| !folder.join(name).exists()));
    assert!(folder.join(sha256).exists());
}

#[test]
fn only_hex_digests_map_to_paths() {
    let store = LocalBlobs {
        blobs: PathBuf::from("/b"),
        tmp: PathBuf::from("/t"),
        uploads: PathBuf::from("/u"),
        catalog: PathBuf::from("/catalog"),
    };
    assert!(store.path(&BlobKey::new("../../etc/passwd", "")).is_none());
    assert!(store
        .path(&BlobKey::new(&"ab".repeat(32), "../x"))
        .is_none());
    assert_eq!(
        store.path(&BlobKey::new(&"ab".repeat(32), "")).unwrap(),
        PathBuf::from(format!("/b/ab/{}", "ab".repeat(32)))
    );
    assert_eq!(
        store
            .path(&BlobKey::new(&"ab".repeat(32), "0123456789abcdef"))
            .unwrap(),
        PathBuf::from(format!("/b/ab/{}.0123456789abcdef", "ab".repeat(32)))
    );
}
