//! A resumable upload becomes one image, whichever servers take part in
//! completing it.

use depot_server::store::Pool;
use rstest::rstest;

use super::*;
use crate::files::images_listed;

/// A completion that another server took over (this one outlasted its
/// lease, or looked dead) lands nothing: the upload is the other's to make
/// into an image, and it is made into exactly one.
#[tokio::test]
async fn a_completion_taken_over_lands_nothing() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let bytes = iso_bytes(60_000);
    let path = create(
        &app,
        bytes.len(),
        &format!("filename {}", b64(b"media.iso")),
    )
    .await;
    let id = path.rsplit('/').next().unwrap().to_owned();
    let Pool::Postgres(pool) = app.core.db().pool() else {
        unreachable!("a PostgreSQL app")
    };
    // The test holds the bytes' blob lock, as a server recording the same
    // bytes would: the completion waits for it before recording the image.
    let mut holder = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO blobs (sha256, created_at) VALUES ($1, 0) \
         ON CONFLICT (sha256) DO UPDATE SET created_at = blobs.created_at",
    )
    .bind(sha256_hex(&bytes))
    .execute(&mut *holder)
    .await
    .unwrap();
    let claimed_at = || async {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT completing_at FROM resumable_uploads WHERE id = $1",
        )
        .bind(&id)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let take_over = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while claimed_at().await.is_none() {
            assert!(std::time::Instant::now() < deadline, "never claimed");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Another server's claim, made while this one's completion waits.
        sqlx::query(
            "UPDATE resumable_uploads SET completing_at = completing_at + 1, \
             completion_renewed_at = NULL WHERE id = $1",
        )
        .bind(&id)
        .execute(pool)
        .await
        .unwrap();
        holder.commit().await.unwrap();
    };
    let (completed, ()) = tokio::join!(patch(&app, &path, 0, bytes.clone()), take_over);
    let status = completed.status();
    let answer = completed.text().await.unwrap();
    assert_eq!(status, 409, "{answer}");
    assert!(answer.contains("being made into an image"), "{answer}");
    assert_eq!(
        images_listed(&app).await,
        0,
        "the taken-over completion landed"
    );

    // The other server died: its claim lapses, and the next request
    // completes the upload, once.
    sqlx::query("UPDATE resumable_uploads SET completing_at = 0 WHERE id = $1")
        .bind(&id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(image_sha256(&app, &path).await, sha256_hex(&bytes));
    assert_eq!(image_sha256(&app, &path).await, sha256_hex(&bytes));
    assert_eq!(images_listed(&app).await, 1);
}

/// A user's uploads are taken in at most eight at once (their share of the
/// server's places): past them a chunk is refused at once (429), and so is
/// a completion a GET would start, which reads the bytes back as a chunk
/// would take them in; once theirs end, it goes on.
#[tokio::test]
async fn a_completion_started_by_a_get_takes_one_of_the_users_places() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_user(ALICE.0, ALICE.1).await;
    // Every byte arrived, but the completion failed to land the blob (its
    // folder replaced by a file): the next GET completes it.
    let bytes = random_bytes(100_000);
    let done = create(&app, bytes.len(), &format!("filename {}", b64(b"done.img"))).await;
    let unwritable = BlobsUnwritable::new(&app);
    let failed = patch(&app, &done, 0, bytes.clone()).await;
    assert!(failed.status().is_server_error(), "{}", failed.status());
    drop(unwritable);

    // Eight chunks arriving slowly hold all of alice's places.
    let mut senders = Vec::new();
    let mut chunks = Vec::new();
    for n in 0..8 {
        let name = format!("slow{n}.img");
        let path = create(&app, 1000, &format!("filename {}", b64(name.as_bytes()))).await;
        let (sender, chunk) = chunk_sent_by_hand(&app, &path, 0);
        sender.send(Ok(vec![1; 10])).await.unwrap();
        chunks.push(tokio::spawn(chunk));
        senders.push(sender);
    }
    // The eight, and the parts of the upload that failed to complete.
    chunks_begun(&app, 9).await;
    let ninth = create(&app, 1000, &format!("filename {}", b64(b"ninth.img"))).await;
    assert_eq!(patch(&app, &ninth, 0, vec![2; 1000]).await.status(), 429);
    let completing = tus(&app, Method::GET, &done).send().await.unwrap();
    assert_eq!(completing.status(), 429);

    drop(senders);
    for chunk in chunks {
        assert_eq!(chunk.await.unwrap().unwrap().status(), 204);
    }
    assert_eq!(image_sha256(&app, &done).await, sha256_hex(&bytes));
}

/// A completion its server goes on renewing (a large upload, hours in the
/// making) is not taken over, however long ago it was claimed; once the
/// renewals stop for a lease (the server died), it is, and the first
/// server's claim is gone.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_completion_renewed_is_not_taken_over(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let path = create(&app, 1000, &format!("filename {}", b64(b"large.iso"))).await;
    let id = path.rsplit('/').next().unwrap().to_owned();
    // Its bytes all in, and its day nearly over.
    let (now, hour) = (chrono::Utc::now().timestamp_millis(), 3_600_000);
    let minute_left = now + 60_000;
    let statement =
        format!("UPDATE resumable_uploads SET received = length, expires_at = {minute_left}");
    crate::helpers::execute(&app, &statement).await;
    let db = app.core.db();
    let claimed = now - 2 * hour;
    assert!(db
        .claim_completion(&id, claimed, claimed - hour)
        .await
        .unwrap());
    assert!(db
        .renew_completion(&id, claimed, now, now + hour)
        .await
        .unwrap());
    assert!(!db.claim_completion(&id, now, now - hour).await.unwrap());
    let later = now + 2 * hour;
    assert!(db.claim_completion(&id, later, later - hour).await.unwrap());
    assert!(!db
        .renew_completion(&id, claimed, later, later + hour)
        .await
        .unwrap());
    // Kept, as its renewals said, past its own expiry.
    let expired = db.expired_uploads(now + hour / 2).await.unwrap();
    assert!(!expired.contains(&id), "{expired:?}");
}
