//! Where a resumable upload's bytes live between its requests: freed at
//! expiry, collected after a crash, never written by two requests at once.

use futures_util::StreamExt as _;
use rstest::rstest;

use super::*;
use crate::helpers::{execute, json_of};

/// A server whose users have `quota` bytes each, and Alice signed in.
async fn alice_with_quota(backend: Backend, quota: u64) -> (TestApp, app::model::Principal) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(quota)).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let alice = app.core.login(ALICE.0, ALICE.1).await.unwrap();
    (app, alice)
}

/// An upload left past its expiry is gone: its chunks, its reservation,
/// and its URL (404), once the collector has run.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_expired_upload_frees_its_space(#[case] backend: Backend) {
    let (app, alice) = alice_with_quota(backend, 2_000_000).await;
    let path = create(&app, 1_500_000, &format!("filename {}", b64(b"old.img"))).await;
    assert_eq!(
        patch(&app, &path, 0, random_bytes(500_000)).await.status(),
        204
    );
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 1_500_000);
    assert!(
        !app.stored(depot_server::blob::Area::Uploads)
            .await
            .is_empty(),
        "the chunk is kept"
    );

    // A day and more later.
    execute(&app, "UPDATE resumable_uploads SET expires_at = 0").await;
    assert_eq!(
        tus(&app, Method::HEAD, &path)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.core
        .collect_garbage(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 0);
    assert!(app
        .stored(depot_server::blob::Area::Uploads)
        .await
        .is_empty());
    assert!(app.stored(depot_server::blob::Area::Blobs).await.is_empty());
    assert_eq!(
        patch(&app, &path, 500_000, random_bytes(10)).await.status(),
        404
    );
}

/// What a crash between forgetting an upload and removing its bytes leaves
/// is removed by the collector; an upload it still knows keeps its bytes,
/// however old, and completes.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn the_collector_removes_parts_of_uploads_it_no_longer_knows(#[case] backend: Backend) {
    use depot_server::blob::Area;
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let kept = iso_bytes(2 << 20);
    let kept_path = create(&app, kept.len(), &format!("filename {}", b64(b"kept.iso"))).await;
    assert_eq!(
        patch(&app, &kept_path, 0, kept[..1 << 20].to_vec())
            .await
            .status(),
        204
    );
    let lost_path = create(&app, 3 << 20, &format!("filename {}", b64(b"lost.iso"))).await;
    assert_eq!(
        patch(&app, &lost_path, 0, random_bytes(1 << 20))
            .await
            .status(),
        204
    );
    let lost_id = lost_path.rsplit('/').next().unwrap();
    let lost_parts = |stored: &[String]| stored.iter().any(|name| name.contains(lost_id));
    assert!(lost_parts(&app.stored(Area::Uploads).await));
    // The row goes; the bytes stay (the server died in between).
    execute(
        &app,
        &format!("DELETE FROM resumable_uploads WHERE id = '{lost_id}'"),
    )
    .await;
    app.core
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();
    let stored = app.stored(Area::Uploads).await;
    assert!(!lost_parts(&stored), "{stored:?}");
    assert!(!stored.is_empty(), "the known upload's bytes stay");
    let rest = patch(&app, &kept_path, 1 << 20, kept[1 << 20..].to_vec()).await;
    assert_eq!(rest.status(), 204);
    assert_eq!(image_sha256(&app, &kept_path).await, sha256_hex(&kept));
    assert!(app.stored(Area::Uploads).await.is_empty());
}

/// Two requests sending a chunk at the same offset at once (a client that
/// retried too early, or two tabs): one is taken, the other is told the
/// offset moved on, and the image is exactly the chunks taken. On one
/// server the second waits for the first; on two servers of a shared store
/// the database takes the one that ends first.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn chunks_racing_at_one_offset_leave_the_file_whole(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let other = match backend {
        Backend::Shared => Some(app.spawn_beside(|_| {}).await),
        _ => None,
    };
    let iso = iso_bytes(4 << 20);
    let path = create(&app, iso.len(), &format!("filename {}", b64(b"race.iso"))).await;
    assert_eq!(
        patch(&app, &path, 0, iso[..1 << 20].to_vec())
            .await
            .status(),
        204
    );
    // The first racer's body arrives slowly; the second's, other bytes of
    // the same length, arrives meanwhile.
    let slow_pieces: Vec<Vec<u8>> = iso[1 << 20..2 << 20]
        .chunks(64 << 10)
        .map(<[u8]>::to_vec)
        .collect();
    let pieces = futures_util::stream::iter(slow_pieces).then(|piece| async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Ok::<_, std::io::Error>(piece)
    });
    let slow = tus(&app, Method::PATCH, &path)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", (1 << 20).to_string())
        .body(reqwest::Body::wrap_stream(pieces))
        .send();
    let other_bytes = vec![0xEE; 1 << 20];
    let fast = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        patch(
            other.as_ref().unwrap_or(&app),
            &path,
            1 << 20,
            other_bytes.clone(),
        )
        .await
    };
    let (slow, fast) = tokio::join!(slow, fast);
    let statuses = (slow.unwrap().status().as_u16(), fast.status().as_u16());
    let mut expected = iso.clone();
    if other.is_some() {
        assert_eq!(statuses, (409, 204));
        expected[1 << 20..2 << 20].copy_from_slice(&other_bytes);
    } else {
        assert_eq!(statuses, (204, 409));
    }
    assert_eq!(offset_of(&app, &path).await, 2 << 20);
    let rest = patch(&app, &path, 2 << 20, iso[2 << 20..].to_vec()).await;
    assert_eq!(rest.status(), 204);
    assert_eq!(image_sha256(&app, &path).await, sha256_hex(&expected));
}

/// A completion that fails for a passing reason (the blob store could not
/// take the file) keeps the upload and its reservation: its stored parts
/// stay counted, and the retry that completes it is held to the quota.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_completion_that_fails_keeps_the_uploads_reservation(#[case] backend: Backend) {
    let (app, alice) = alice_with_quota(backend, 2_000_000).await;
    let path = create(&app, 300_000, &format!("filename {}", b64(b"disk.img"))).await;
    let bytes = random_bytes(300_000);
    assert_eq!(
        patch(&app, &path, 0, bytes[..200_000].to_vec())
            .await
            .status(),
        204
    );

    let unwritable = BlobsUnwritable::new(&app);
    let failed = patch(&app, &path, 200_000, bytes[200_000..].to_vec()).await;
    assert!(failed.status().is_server_error(), "{}", failed.status());
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 300_000);

    drop(unwritable);
    let completed = patch(&app, &path, 300_000, Vec::new()).await;
    assert_eq!(completed.status(), 204);
    assert_eq!(image_sha256(&app, &path).await, sha256_hex(&bytes));
    // The image's bytes, and no reservation left beside them.
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 300_000);
}

/// A chunk that takes longer than its upload lives (one request of a whole
/// large file, as tus-js-client sends by default) keeps the upload: the
/// collector renews what a chunk is arriving for, and the chunk lands.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_chunk_still_arriving_keeps_its_upload_past_its_expiry(#[case] backend: Backend) {
    let (app, alice) = alice_with_quota(backend, 4 << 20).await;
    let bytes = random_bytes(1 << 20);
    let path = create(&app, bytes.len(), &format!("filename {}", b64(b"long.img"))).await;
    let (sender, request) = chunk_sent_by_hand(&app, &path, 0);
    let feeding = async {
        sender.send(Ok(bytes[..1000].to_vec())).await.unwrap();
        // Once the chunk is being written:
        chunks_begun(&app, 1).await;
        // Its day nearly over, as the database has it: the collector
        // renews it, and past that moment another run leaves it be.
        let soon = chrono::Utc::now().timestamp_millis() + 1000;
        for table in ["resumable_uploads", "quota_reservations"] {
            execute(&app, &format!("UPDATE {table} SET expires_at = {soon}")).await;
        }
        for _ in 0..2 {
            app.core
                .collect_garbage(std::time::Duration::from_secs(3600))
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        }
        // Its reservation holds as well: the bytes on their way still count.
        let usage = app.core.quota_usage(alice.id).await.unwrap();
        assert_eq!(usage, bytes.len() as u64);
        sender.send(Ok(bytes[1000..].to_vec())).await.unwrap();
        drop(sender);
    };
    let (response, ()) = tokio::join!(request, feeding);
    assert_eq!(response.unwrap().status(), 204);
    assert_eq!(image_sha256(&app, &path).await, sha256_hex(&bytes));
}

/// An upload terminated while a chunk of it is being written goes once the
/// chunk has ended, not before: its room is not free for another upload
/// while its bytes still arrive, and nothing of it is left behind.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_upload_terminated_mid_chunk_goes_when_the_chunk_ends(#[case] backend: Backend) {
    let (app, alice) = alice_with_quota(backend, 1 << 20).await;
    let bytes = random_bytes(1 << 20);
    let path = create(&app, bytes.len(), &format!("filename {}", b64(b"gone.img"))).await;
    let (sender, request) = chunk_sent_by_hand(&app, &path, 0);
    let chunk = tokio::spawn(request);
    sender.send(Ok(bytes[..4096].to_vec())).await.unwrap();
    chunks_begun(&app, 1).await;
    let terminated = tokio::spawn(tus(&app, Method::DELETE, &path).send());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !terminated.is_finished(),
        "terminated while a chunk was written"
    );
    // The room is still the upload's.
    let other = tus(&app, Method::POST, "/api/uploads")
        .header("upload-length", (1 << 20).to_string())
        .header("upload-metadata", format!("filename {}", b64(b"next.img")))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 413);
    sender.send(Ok(bytes[4096..8192].to_vec())).await.unwrap();
    drop(sender);
    // The chunk lands; its answer, read after it, may find the upload gone.
    let chunk = chunk.await.unwrap().unwrap().status();
    assert!(matches!(chunk.as_u16(), 204 | 404), "{chunk}");
    assert_eq!(terminated.await.unwrap().unwrap().status(), 204);
    assert_eq!(
        tus(&app, Method::HEAD, &path)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 0);
    let left = app.stored(depot_server::blob::Area::Uploads).await;
    assert!(left.is_empty(), "{left:?}");
}

/// A creation whose body breaks off loses its client, and with it the
/// answer that names the upload: no upload is left holding its room for a
/// day, out of its owner's reach.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_creation_cut_short_leaves_no_upload(#[case] backend: Backend) {
    let (app, alice) = alice_with_quota(backend, 4 << 20).await;
    let bytes = random_bytes(2 << 20);
    let (sender, request) = sent_by_hand(
        tus(&app, Method::POST, "/api/uploads")
            .header("upload-length", bytes.len().to_string())
            .header("upload-metadata", format!("filename {}", b64(b"cut.img")))
            .header("content-type", "application/offset+octet-stream"),
    );
    let cut = tokio::spawn(request);
    sender.send(Ok(bytes[..1 << 20].to_vec())).await.unwrap();
    // Once the upload is made (its room reserved), its body breaks off.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.core.quota_usage(alice.id).await.unwrap() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload was never made"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dropped = std::io::Error::other("the connection dropped");
    sender.send(Err(dropped)).await.unwrap();
    assert!(cut.await.unwrap().is_err(), "the body was cut");
    // The server sees the cut a moment after the client.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let usage = app.core.quota_usage(alice.id).await.unwrap();
        let left = app.stored(depot_server::blob::Area::Uploads).await;
        if usage == 0 && left.is_empty() {
            break;
        }
        let late = std::time::Instant::now() > deadline;
        assert!(!late, "the upload kept {usage} bytes of room and {left:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The whole quota is there for the next try.
    create(&app, 4 << 20, &format!("filename {}", b64(b"cut.img"))).await;
}

/// A creation whose body came whole, then broke (its chunked body's end
/// never sent) made its image: the image stays, its upload with it.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_creation_whole_then_cut_keeps_its_image(#[case] backend: Backend) {
    use tokio::io::AsyncWriteExt as _;

    let (app, alice) = alice_with_quota(backend, 4 << 20).await;
    let bytes = random_bytes(100_000);
    let mut request = format!(
        "POST /api/uploads HTTP/1.1\r\nHost: depot\r\nAuthorization: Basic {}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Length: {}\r\nUpload-Metadata: filename {}\r\n\
         Content-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
         {:x}\r\n",
        b64(format!("{}:{}", ALICE.0, ALICE.1).as_bytes()),
        bytes.len(),
        b64(b"whole.img"),
        bytes.len()
    )
    .into_bytes();
    request.extend_from_slice(&bytes);
    request.extend_from_slice(b"\r\n");
    let mut client = tokio::net::TcpStream::connect(app.address).await.unwrap();
    client.write_all(&request).await.unwrap();
    // The body's last chunk (of no bytes) never comes.
    drop(client);
    let listed = || async {
        let page = json_of(
            reqwest::Client::new()
                .get(app.url("/mws/rest/images?api-version=3"))
                .basic_auth(ALICE.0, Some(ALICE.1)),
        )
        .await;
        page["totalCount"].as_i64().unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while listed().await == 0 {
        assert!(std::time::Instant::now() < deadline, "no image was made");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A moment for a termination that should not come.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(listed().await, 1);
    let usage = app.core.quota_usage(alice.id).await.unwrap();
    assert_eq!(usage, bytes.len() as u64);
}

/// A completion that cannot read the upload's parts back (no live digest
/// of it on this server) is the server's failure, 500, not the uploader's;
/// and it lets its claim go, so that the next request completes the upload
/// instead of hearing for an hour that it is being completed.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_completion_that_cannot_read_the_parts_back_lets_its_claim_go(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let bytes = random_bytes(300_000);
    let path = create(&app, bytes.len(), &format!("filename {}", b64(b"disk.img"))).await;
    let first = patch(&app, &path, 0, bytes[..200_000].to_vec()).await;
    assert_eq!(first.status(), 204);
    // Every byte arrives, but the completion fails to land the blob, and
    // leaves the upload whole.
    let unwritable = BlobsUnwritable::new(&app);
    let last = patch(&app, &path, 200_000, bytes[200_000..].to_vec()).await;
    assert!(last.status().is_server_error(), "{}", last.status());
    drop(unwritable);

    // On another server (this one restarted) the completion reads the
    // parts back, and cannot: the upload's file is a folder now.
    let again = app.spawn_again().await;
    let uploads = app.data_dir.join("store").join("uploads");
    let part = walk(&uploads).pop().expect("the chunks are kept");
    let part_away = part.with_extension("away");
    std::fs::rename(&part, &part_away).unwrap();
    std::fs::create_dir(&part).unwrap();
    let failed = tus(&again, Method::GET, &path).send().await.unwrap();
    assert_eq!(failed.status(), 500);
    std::fs::remove_dir(&part).unwrap();
    std::fs::rename(&part_away, &part).unwrap();
    assert_eq!(image_sha256(&again, &path).await, sha256_hex(&bytes));
}

/// Every file under `folder`, however deep.
fn walk(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
