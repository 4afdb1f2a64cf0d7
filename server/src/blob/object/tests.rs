//! The blob contract and the object store's own cases, on `object_store`'s
//! in-memory store.

use super::super::{contract, BlobStore, Limit, LongCopy, Publication};
use super::*;
use object_store::memory::InMemory;

fn in_memory() -> (Arc<InMemory>, BlobStore) {
    let bucket = Arc::new(InMemory::new());
    let store = BlobStore::new(Arc::new(ObjectBlobs::new(bucket.clone(), "depot")));
    (bucket, store)
}

#[tokio::test]
async fn stores_under_the_digest_and_only_once() {
    contract::stores_under_the_digest_and_only_once(in_memory().1).await;
}

/// A blob published before generations is read, listed and removed under
/// its digest alone.
#[tokio::test]
async fn a_blob_from_before_generations_is_under_its_digest() {
    let (bucket, store) = in_memory();
    let sha256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let key = Path::from(format!("depot/blobs/b9/{sha256}"));
    bucket.put(&key, "hello world".into()).await.unwrap();
    let legacy = BlobKey::new(sha256, "");
    assert_eq!(store.open_blob(&legacy).await.unwrap().size(), 11);
    let settled = store.settled_blobs(Duration::ZERO).await.unwrap();
    assert_eq!(settled, vec![legacy.clone()]);
    store.remove(&legacy).await.unwrap();
    assert!(store.stored(Area::Blobs).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_or_oversized_body_leaves_nothing() {
    // Larger than a part, so that parts were sent before the failure.
    contract::a_failed_or_oversized_body_leaves_nothing(in_memory().1, PART_SIZE + 10).await;
}

#[tokio::test]
async fn uploads_past_the_places_wait_for_one_to_end() {
    contract::uploads_past_the_places_wait_for_one_to_end(in_memory().1).await;
}

#[tokio::test]
async fn a_chunk_given_up_on_leaves_nothing_behind() {
    contract::a_chunk_given_up_on_leaves_nothing_behind(in_memory().1).await;
}

#[tokio::test]
async fn keeps_an_uploads_parts_until_removed() {
    contract::keeps_an_uploads_parts_until_removed(in_memory().1).await;
}

#[tokio::test]
async fn bytes_prepared_in_vain_come_back() {
    contract::bytes_prepared_in_vain_come_back(in_memory().1).await;
}

#[tokio::test]
async fn large_uploads_go_up_in_parts_and_read_back_in_ranges() {
    let (bucket, store) = in_memory();
    let bytes: Vec<u8> = (0..(2 * PART_SIZE + 12345))
        .map(|i| (i % 251) as u8)
        .collect();
    // Chunks of an odd size, as a network delivers them.
    let chunks: Vec<Result<Bytes, &str>> = bytes
        .chunks(100_003)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    let (staged, ()) = store
        .ingest(
            futures_util::stream::iter(chunks),
            &mut Limit(u64::MAX),
            |_| (),
        )
        .await
        .unwrap();
    let sha256 = staged.sha256.clone();
    let copy = staged.publish(None).await.unwrap();
    let key = Path::from(format!(
        "depot/blobs/{}/{sha256}.{}",
        &sha256[..2],
        copy.generation
    ));
    let stored = bucket.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored.as_ref(), &bytes[..]);
    let blob = store.open_blob(&copy).await.unwrap();
    assert_eq!(blob.size(), bytes.len() as u64);
    let start = PART_SIZE as u64 - 5;
    let read: Vec<Bytes> = blob
        .read(start, 10)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.concat(), &bytes[start as usize..start as usize + 10]);
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());
}

#[tokio::test]
async fn long_reads_come_in_order_from_segments_fetched_side_by_side() {
    let (bucket, store) = in_memory();
    let length = 5 * READ_SEGMENT as usize + 777;
    let bytes: Vec<u8> = (0..length).map(|i| (i % 253) as u8).collect();
    let key = Path::from("depot/blobs/ab/long");
    bucket.put(&key, bytes.clone().into()).await.unwrap();
    let blob = Box::new(ObjectBlob {
        bucket: bucket.clone(),
        key,
        length: length as u64,
    });
    assert_eq!(store.stored(Area::Blobs).await.unwrap().len(), 1);
    let start = READ_SEGMENT - 3;
    let count = 3 * READ_SEGMENT + 11;
    let read: Vec<Bytes> = blob
        .read(start, count)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let (from, to) = (start as usize, (start + count) as usize);
    assert_eq!(read.concat(), &bytes[from..to]);
}

#[tokio::test]
async fn a_dead_servers_upload_is_aborted_once_its_marker_is_stale() {
    let (bucket, store) = in_memory();
    let objects = ObjectBlobs::new(bucket.clone(), "depot");
    // What a server killed in the middle of an upload leaves: a started
    // multipart upload with a part, and its marker.
    let key = Path::from("depot/staging/upload-dead");
    let upload = bucket.create_multipart(&key).await.unwrap();
    bucket
        .put_part(&key, &upload, 0, PutPayload::from_static(b"part"))
        .await
        .unwrap();
    bucket
        .put(
            &Path::from("depot/uploading/upload-dead"),
            PutPayload::from(upload.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        objects.discard_stale_uploads(HEARTBEAT * 10).await.unwrap(),
        0,
        "a fresh marker is a live upload"
    );
    assert_eq!(
        objects.discard_stale_uploads(Duration::ZERO).await.unwrap(),
        1
    );
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());
    // The upload is gone: completing it now fails.
    let part = PartId {
        content_id: "0".into(),
    };
    assert!(bucket
        .complete_multipart(&key, &upload, vec![part])
        .await
        .is_err());
}

/// An object larger than S3 copies in one request (5 GiB, here any size)
/// is copied through the server as a multipart upload, and arrives whole;
/// nothing of the upload is left behind.
#[tokio::test]
async fn objects_too_large_to_copy_in_the_store_are_copied_through_the_server() {
    let _alone = crate::blob::PLACES_TESTS.lock().await;
    let bucket = Arc::new(InMemory::new());
    let objects = ObjectBlobs::new(bucket.clone(), "depot");
    let bytes: Vec<u8> = (0..(2 * PART_SIZE + 777))
        .map(|i| (i % 253) as u8)
        .collect();
    let from = objects.area("personal").child("from");
    bucket
        .put(&from, PutPayload::from(bytes.clone()))
        .await
        .unwrap();
    for (to, largest) in [("copied", u64::MAX), ("streamed", 0)] {
        let to = objects.area("personal").child(to);
        objects
            .copy_within(&from, &to, bytes.len() as u64, largest)
            .await
            .unwrap();
        let copied = bucket.get(&to).await.unwrap().bytes().await.unwrap();
        assert!(copied == bytes, "{to}");
    }
    let uploading: Vec<_> = bucket
        .list(Some(&objects.area("uploading")))
        .try_collect()
        .await
        .unwrap();
    assert!(uploading.is_empty(), "{uploading:?}");
}

/// Staged bytes are copied to a new copy of their blob before the blob's
/// lock is taken, whatever their size: a store's copy of a few GiB takes
/// tens of seconds on some, and under the lock (on SQLite the database's
/// write lock) every other write waited for it. Under the lock, publishing
/// answers that copy; or, if the blob has a copy by then, that one, and the
/// copy made before goes, as it does if the bytes are never published.
#[tokio::test]
async fn staged_bytes_are_copied_before_the_lock() {
    let (bucket, store) = in_memory();
    let hello = || async {
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
            b"hello world",
        ))]);
        store.ingest(body, &mut Limit(100), |_| ()).await.unwrap().0
    };
    let blobs = || async { store.stored(Area::Blobs).await.unwrap() };
    let mut staged = hello().await;
    staged.prepare(None).await.unwrap();
    let copied = blobs().await;
    assert_eq!(copied.len(), 1, "copied before the lock");
    // Registered: however old it looks, no collector takes it.
    let settled = store.settled_blobs(Duration::ZERO).await.unwrap();
    assert!(settled.is_empty(), "{settled:?}");
    let grace = Duration::from_secs(3600);
    assert_eq!(store.discard_stale_uploads(grace).await.unwrap(), 0);
    let copy = staged.publish(None).await.unwrap();
    let settled = store.settled_blobs(Duration::ZERO).await.unwrap();
    assert_eq!(
        settled,
        vec![copy.clone()],
        "named, it is the collector's to check"
    );
    assert!(copied[0].ends_with(&copy.file_name()), "{copied:?}");
    assert!(store.exists(&copy).await);

    let mut staged = hello().await;
    staged.prepare(Some("0123456789abcdef")).await.unwrap();
    assert_eq!(blobs().await.len(), 2, "no such copy: copied anew");
    let kept = staged.publish(Some(&copy.generation)).await.unwrap();
    assert_eq!(kept, copy, "the blob's copy, there by then, is kept");
    let mut staged = hello().await;
    staged.prepare(Some(&copy.generation)).await.unwrap();
    drop(staged);
    let mut staged = hello().await;
    staged.prepare(None).await.unwrap();
    drop(staged);
    for _ in 0..100 {
        if blobs().await.len() == 1 && store.stored(Area::Staging).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(blobs().await, copied, "the unused copies are gone");
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());

    // A copy made before the lock and removed before it was published
    // (a collector took it: no row named it) is made again, under the lock
    // when asked to (`publish`, `LongCopy::Make`).
    let mut staged = hello().await;
    staged.prepare(None).await.unwrap();
    let prepared = blobs().await;
    let removed: Vec<_> = prepared
        .iter()
        .filter(|name| !copied.contains(name))
        .collect();
    assert_eq!(removed.len(), 1);
    bucket
        .delete(&Path::from(removed[0].as_str()))
        .await
        .unwrap();
    let published = staged.publish(None).await.unwrap();
    assert!(!removed[0].ends_with(&published.file_name()));
    assert!(
        store.exists(&published).await,
        "published a copy that is gone"
    );

    // Its marker removed (a collector took it for a dead server's, and may
    // be removing the copy): the copy is not named; the bytes come back to
    // be prepared again outside the lock, and the one made before goes.
    let markers = || async {
        let listed: Vec<_> = bucket
            .list(Some(&Path::from("depot/uploading")))
            .try_collect()
            .await
            .unwrap();
        listed
    };
    for _ in 0..100 {
        if markers().await.is_empty() {
            break; // The copy given up on above went, with its marker.
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut staged = hello().await;
    staged.prepare(None).await.unwrap();
    let marker = markers().await;
    assert_eq!(marker.len(), 1, "the copy is registered");
    let prepared = marker[0].location.filename().unwrap().to_owned();
    bucket.delete(&marker[0].location).await.unwrap();
    let given_back = staged.publish_prepared(None, LongCopy::GiveBack).await;
    let Publication::Unprepared(mut staged) = given_back.unwrap() else {
        panic!("a copy whose marker is gone was named, or copied under the lock");
    };
    staged.prepare(None).await.unwrap();
    let published = staged.publish_prepared(None, LongCopy::GiveBack).await;
    let Publication::Published(again) = published.unwrap() else {
        panic!("prepared again, and still given back");
    };
    assert_ne!(format!("copy-{}", again.file_name()), prepared);
    assert!(store.exists(&again).await);
    for _ in 0..100 {
        if blobs().await.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(blobs().await.len(), 3, "the copy not named is gone");
    assert!(markers().await.is_empty());
}

/// S3 dates an object a multipart upload made from the upload's start: a
/// staged upload that took longer than the grace period is "older" than
/// it the moment it completes. It is kept while its marker is kept fresh,
/// and the marker goes with it, once published or dropped.
#[tokio::test]
async fn a_staged_upload_is_kept_while_its_marker_is_fresh() {
    let (bucket, store) = in_memory();
    let objects = ObjectBlobs::new(bucket.clone(), "depot");
    let markers = || async {
        let listed: Vec<_> = bucket
            .list(Some(&objects.area("uploading")))
            .try_collect()
            .await
            .unwrap();
        listed
    };
    let body = |byte: u8| {
        futures_util::stream::iter(vec![Ok::<_, &str>(Bytes::from(vec![byte; PART_SIZE + 10]))])
    };
    let (staged, ()) = store
        .ingest(body(1), &mut Limit(u64::MAX), |_| ())
        .await
        .unwrap();
    let marker = markers().await;
    assert_eq!(marker.len(), 1, "a complete upload keeps its marker");
    // The staged object is older than the grace period; its marker was
    // rewritten since (as every minute).
    tokio::time::sleep(Duration::from_millis(60)).await;
    let upload = bucket
        .get(&marker[0].location)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    bucket
        .put(&marker[0].location, upload.into())
        .await
        .unwrap();
    let grace = Duration::from_millis(30);
    assert_eq!(objects.discard_stale_uploads(grace).await.unwrap(), 0);
    let kept = store.stored(Area::Staging).await.unwrap();
    assert_eq!(kept.len(), 2, "the staged object and its marker: {kept:?}");
    staged.publish(None).await.unwrap();
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());
    assert!(markers().await.is_empty(), "published: its marker is gone");

    // Given back to be prepared again (the blob's copy it counted on went
    // before the lock): both stay, its marker still kept; once published,
    // both go.
    let upload = || async {
        let ingested = store.ingest(body(3), &mut Limit(u64::MAX), |_| ()).await;
        ingested.unwrap().0
    };
    let earlier = upload().await;
    let mut staged = upload().await;
    let copy = earlier.publish(None).await.unwrap();
    staged.prepare(Some(&copy.generation)).await.unwrap();
    store.remove(&copy).await.unwrap();
    let given_back = staged
        .publish_prepared(Some(&copy.generation), LongCopy::GiveBack)
        .await;
    let Publication::Unprepared(mut staged) = given_back.unwrap() else {
        panic!("copied under the lock");
    };
    assert_eq!(markers().await.len(), 1, "its marker stays");
    let kept = store.stored(Area::Staging).await.unwrap();
    assert_eq!(kept.len(), 2, "the staged object and its marker: {kept:?}");
    staged.prepare(None).await.unwrap();
    let published = staged.publish_prepared(None, LongCopy::GiveBack).await;
    let Publication::Published(again) = published.unwrap() else {
        panic!("prepared again, and still given back");
    };
    assert!(store.exists(&again).await);
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());
    assert!(
        markers().await.is_empty(),
        "published: its markers are gone"
    );

    // Dropped unpublished: both go.
    let (staged, ()) = store
        .ingest(body(2), &mut Limit(u64::MAX), |_| ())
        .await
        .unwrap();
    drop(staged);
    for _ in 0..100 {
        if markers().await.is_empty() && store.stored(Area::Staging).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("a dropped upload left {:?}", markers().await);
}

/// A copy whose server died before publishing it: its marker, no longer
/// rewritten, goes stale and is removed, and the copy is then one the
/// collector may take (under the blob's lock, if no row names it).
#[tokio::test]
async fn a_dead_servers_registered_copy_goes_to_the_collector() {
    let (bucket, store) = in_memory();
    let objects = ObjectBlobs::new(bucket.clone(), "depot");
    let copy = BlobKey::fresh(&"ab".repeat(32));
    bucket
        .put(&objects.blob_key(&copy), "bytes".into())
        .await
        .unwrap();
    bucket
        .put(&objects.copy_marker(&copy), "copy".into())
        .await
        .unwrap();
    assert!(store
        .settled_blobs(Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let discarded = store.discard_stale_uploads(Duration::from_millis(10)).await;
    assert_eq!(discarded.unwrap(), 0, "no upload was discarded");
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());
    let settled = store.settled_blobs(Duration::ZERO).await.unwrap();
    assert_eq!(settled, vec![copy]);
}
