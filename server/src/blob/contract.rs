//! The contract every backend keeps, run against each in its module.

use super::*;

fn chunks(
    parts: Vec<Result<Bytes, &'static str>>,
) -> impl Stream<Item = Result<Bytes, &'static str>> + Unpin {
    futures_util::stream::iter(parts)
}

fn read_all(reader: &mut UploadReader) -> Vec<u8> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(reader, &mut bytes).unwrap();
    bytes
}

async fn read_blob(store: &BlobStore, copy: &BlobKey, start: u64, count: u64) -> Vec<u8> {
    let blob = store.open_blob(copy).await.unwrap();
    let mut stream = blob.read(start, count).await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    bytes
}

async fn hello_world(store: &BlobStore) -> Staged {
    let chunks = chunks(vec![Ok("hello world".into())]);
    store
        .ingest(chunks, &mut Limit(100), |_| ())
        .await
        .unwrap()
        .0
}

/// Stores under the digest and only once while the blob's copy is there;
/// reads whole and in ranges. Bytes published again once the row named no
/// copy are a new copy, which removing the old one leaves alone.
pub async fn stores_under_the_digest_and_only_once(store: BlobStore) {
    let (first, seen) = store
        .ingest(
            chunks(vec![Ok("hello ".into()), Ok("world".into())]),
            &mut Limit(100),
            read_all,
        )
        .await
        .unwrap();
    assert_eq!(seen, b"hello world", "the inspector sees every byte");
    let digest = first.sha256.clone();
    assert_eq!(
        digest,
        "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
    );
    assert_eq!(first.size, 11);
    assert!(store.stored(Area::Blobs).await.unwrap().is_empty());
    let copy = first.publish(None).await.unwrap();
    assert_eq!(copy.sha256, digest);
    assert!(!copy.generation.is_empty(), "a new generation");
    assert!(store.exists(&copy).await);
    let second = hello_world(&store).await;
    assert_eq!(second.publish(Some(&copy.generation)).await.unwrap(), copy);
    assert_eq!(read_blob(&store, &copy, 0, 11).await, b"hello world");
    assert_eq!(read_blob(&store, &copy, 6, 5).await, b"world");
    assert_eq!(store.open_blob(&copy).await.unwrap().size(), 11);
    assert_eq!(store.stored(Area::Blobs).await.unwrap().len(), 1);
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());

    let again = hello_world(&store).await.publish(None).await.unwrap();
    assert_ne!(again, copy, "published anew, under a generation of its own");
    let mut settled = store.settled_blobs(Duration::ZERO).await.unwrap();
    settled.sort_by(|a, b| a.generation.cmp(&b.generation));
    let mut both = vec![copy.clone(), again.clone()];
    both.sort_by(|a, b| a.generation.cmp(&b.generation));
    assert_eq!(settled, both);
    store.remove(&copy).await.unwrap();
    assert!(!store.exists(&copy).await);
    assert!(store.open_blob(&copy).await.is_err());
    assert_eq!(read_blob(&store, &again, 0, 11).await, b"hello world");
    // A copy whose file is gone is not the blob's any more: published anew.
    let third = hello_world(&store).await;
    let replaced = third.publish(Some(&copy.generation)).await.unwrap();
    assert!(replaced != copy && replaced != again);
    assert_eq!(read_blob(&store, &replaced, 0, 11).await, b"hello world");
}

/// A failed or oversized body, or staged bytes never published, leave nothing.
pub async fn a_failed_or_oversized_body_leaves_nothing(store: BlobStore, big: usize) {
    let cut = store
        .ingest(
            chunks(vec![
                Ok(Bytes::from(vec![7u8; big])),
                Err("connection reset"),
            ]),
            &mut Limit(u64::MAX),
            read_all,
        )
        .await;
    assert!(matches!(cut, Err(IngestError::Body(_))));
    let oversized = store
        .ingest(
            chunks(vec![
                Ok(Bytes::from(vec![1u8; big])),
                Ok("0123456789".into()),
            ]),
            &mut Limit(big as u64 + 5),
            read_all,
        )
        .await;
    assert!(matches!(oversized, Err(IngestError::TooLarge { .. })));
    let (unpublished, _) = store
        .ingest(
            chunks(vec![Ok("never kept".into())]),
            &mut Limit(100),
            |_| (),
        )
        .await
        .unwrap();
    drop(unpublished);
    // Discarding may run on a task of its own: give it a moment.
    for _ in 0..100 {
        if store.stored(Area::Staging).await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());
    assert!(store.stored(Area::Blobs).await.unwrap().is_empty());
}

/// Writes one chunk of upload `id` at `offset`; answers it as recorded.
async fn part_of(
    store: &BlobStore,
    id: &str,
    offset: u64,
    pieces: Vec<Result<Bytes, &'static str>>,
) -> (Chunk, Part) {
    let chunk = store
        .write_part(id, offset, chunks(pieces), 1 << 20, |_| ())
        .await
        .unwrap();
    let part = Part {
        start: offset,
        size: chunk.size,
        name: chunk.part.as_ref().unwrap().name().to_owned(),
    };
    (chunk, part)
}

/// Bytes prepared in vain (the blob's copy their preparation counted on was
/// removed before the lock was taken) come back untouched rather than be
/// copied under the lock, and are published once prepared again. A
/// resumable upload's bytes: on local disk they are linked or copied
/// beside their blob, as on an object store they are copied.
pub async fn bytes_prepared_in_vain_come_back(store: BlobStore) {
    let id = "feedc0de";
    let (chunk, part) = part_of(&store, id, 0, vec![Ok("hello world".into())]).await;
    chunk.part.unwrap().keep();
    let digested = Digested {
        sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9".into(),
        size: 11,
    };
    let parts = [part];
    let first = store.stage_parts(id, &parts, digested.clone()).await;
    let copy = first.unwrap().publish(None).await.unwrap();
    let mut second = store.stage_parts(id, &parts, digested).await.unwrap();
    second.prepare(Some(&copy.generation)).await.unwrap();
    // Released by another request while this one waited for the lock.
    store.remove(&copy).await.unwrap();
    let given_back = second
        .publish_prepared(Some(&copy.generation), LongCopy::GiveBack)
        .await
        .unwrap();
    let Publication::Unprepared(mut again) = given_back else {
        panic!("copied under the lock: {given_back:?}");
    };
    assert!(
        store.stored(Area::Blobs).await.unwrap().is_empty(),
        "nothing is copied while the bytes are given back"
    );
    again.prepare(None).await.unwrap();
    let published = again.publish_prepared(None, LongCopy::GiveBack).await;
    let Publication::Published(published) = published.unwrap() else {
        panic!("prepared again, and still given back");
    };
    assert_ne!(published, copy, "a new generation");
    assert_eq!(read_blob(&store, &published, 0, 11).await, b"hello world");
    store.remove_parts(id).await.unwrap();
    assert_eq!(read_blob(&store, &published, 0, 11).await, b"hello world");
}

/// A resumable upload's parts: what a chunk brought before it broke off
/// is kept, a chunk never recorded is not the upload's, the parts read
/// back in order and become one blob; removed, nothing is left.
pub async fn keeps_an_uploads_parts_until_removed(store: BlobStore) {
    let id = "0123abcd";
    let (first, hello) = part_of(&store, id, 0, vec![Ok("hello ".into())]).await;
    first.part.unwrap().keep();
    // Refused (say, for its checksum) or outrun by another request.
    let (refused, _) = part_of(&store, id, 6, vec![Ok("XXXXXXXXXXX".into())]).await;
    drop(refused);
    let (second, world) = part_of(
        &store,
        id,
        6,
        vec![Ok("wor".into()), Ok("ld".into()), Err("connection reset")],
    )
    .await;
    assert_eq!(second.broken.as_deref(), Some("connection reset"));
    assert_eq!(second.size, 5);
    second.part.unwrap().keep();
    let parts = vec![hello, world];
    assert!(matches!(
        store
            .write_part(id, 11, chunks(vec![Ok("too long".into())]), 3, |_| ())
            .await,
        Err(IngestError::TooLarge { limit: 3 })
    ));
    let mut read = Vec::new();
    let mut bytes = store.read_parts(id, &parts).await.unwrap();
    while let Some(piece) = bytes.next().await {
        read.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(read, b"hello world");
    let digested = Digested {
        sha256: "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9".into(),
        size: 11,
    };
    let staged = store.stage_parts(id, &parts, digested).await.unwrap();
    let copy = staged.publish(None).await.unwrap();
    assert_eq!(read_blob(&store, &copy, 0, 11).await, b"hello world");
    assert_eq!(
        store.kept_uploads(Duration::ZERO).await.unwrap(),
        vec![id.to_owned()]
    );
    store.remove_parts(id).await.unwrap();
    store.remove_parts(id).await.unwrap();
    assert!(store.stored(Area::Uploads).await.unwrap().is_empty());
    assert!(store.kept_uploads(Duration::ZERO).await.unwrap().is_empty());
    assert_eq!(read_blob(&store, &copy, 0, 11).await, b"hello world");
    assert!(store.stored(Area::Staging).await.unwrap().is_empty());
    for bad in ["../x", "a/b", ""] {
        assert!(store.remove_parts(bad).await.is_err(), "{bad}");
    }
}

/// Past [`UPLOADS_AT_ONCE`] uploads being taken in, the next waits for one
/// to end rather than take more of the blocking pool's threads: one to be
/// stored, one hashed only, and a resumable upload's chunk alike.
pub async fn uploads_past_the_places_wait_for_one_to_end(store: BlobStore) {
    let _alone = PLACES_TESTS.lock().await;
    let _others = UPLOAD_PLACES
        .acquire_many(UPLOADS_AT_ONCE - 1)
        .await
        .unwrap();
    let a_while = Duration::from_millis(300);
    // The first upload's body goes on until told to end.
    let (end, ended) = tokio::sync::oneshot::channel::<()>();
    let slow = futures_util::stream::once(async move {
        let _ = ended.await;
        Ok::<_, &str>(Bytes::from_static(b"first"))
    });
    let mut limits = [Limit(100), Limit(100), Limit(100)];
    let [slowly, stored, hashed] = &mut limits;
    let mut first = std::pin::pin!(store.ingest(Box::pin(slow), slowly, |_| ()));
    assert!(tokio::time::timeout(a_while, &mut first).await.is_err());
    let mut second =
        std::pin::pin!(store.ingest(chunks(vec![Ok("second".into())]), stored, |_| ()));
    let mut third = std::pin::pin!(store.digest(chunks(vec![Ok("third".into())]), hashed, |_| ()));
    let fourth = store.write_part(
        "5678cdef",
        0,
        chunks(vec![Ok("fourth".into())]),
        100,
        |_| (),
    );
    let mut fourth = std::pin::pin!(fourth);
    assert!(tokio::time::timeout(a_while, &mut second).await.is_err());
    assert!(tokio::time::timeout(a_while, &mut third).await.is_err());
    assert!(tokio::time::timeout(a_while, &mut fourth).await.is_err());
    end.send(()).unwrap();
    let long = Duration::from_secs(10);
    let (staged, ()) = first.await.unwrap();
    drop(staged);
    tokio::time::timeout(long, second)
        .await
        .expect("a place")
        .unwrap();
    tokio::time::timeout(long, third)
        .await
        .expect("a place")
        .unwrap();
    tokio::time::timeout(long, fourth)
        .await
        .expect("a place")
        .unwrap();
}

/// A chunk whose request was dropped mid-way (the client gone, a timeout)
/// is not the upload's, even while what it was sent is still being written
/// somewhere: the next chunk, written from the same offset, is what the
/// upload holds then, and all that its blob holds.
pub async fn a_chunk_given_up_on_leaves_nothing_behind(store: BlobStore) {
    let id = "4567cdef";
    let (given, all_given) = tokio::sync::oneshot::channel();
    // Pieces enough to keep a writer busy for a while after they are sent
    // (all at once: made beforehand); then the body waits for more that
    // never come.
    let piece = Bytes::from(vec![b'A'; 8 << 20]);
    let pieces = futures_util::stream::iter(vec![Ok(piece); 8]);
    let stalled = futures_util::stream::once(async move {
        let _ = given.send(());
        std::future::pending::<Result<Bytes, &'static str>>().await
    });
    let mut sent = 0;
    let given_up = store.write_part(id, 0, pieces.chain(stalled).boxed(), 1 << 30, |bytes| {
        sent += bytes.len()
    });
    tokio::select! {
        _ = given_up => panic!("the body never ends"),
        _ = all_given => {}
    }
    assert_eq!(sent, 64 << 20, "every piece was handed to the writer");
    let (kept, part) = part_of(&store, id, 0, vec![Ok("hello world".into())]).await;
    kept.part.unwrap().keep();
    let sha256 = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
    let digested = Digested {
        sha256: sha256.into(),
        size: 11,
    };
    let staged = store.stage_parts(id, &[part], digested).await.unwrap();
    let copy = staged.publish(None).await.unwrap();
    // What a writer left behind would have written by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.open_blob(&copy).await.unwrap().size(), 11);
    assert_eq!(read_blob(&store, &copy, 0, 11).await, b"hello world");
    store.remove_parts(id).await.unwrap();
}

#[test]
fn only_hex_digests_name_blobs() {
    assert!(!is_sha256("../../etc/passwd"));
    assert!(!is_sha256(&"A".repeat(64)));
    assert!(is_sha256(&"ab".repeat(32)));
}
