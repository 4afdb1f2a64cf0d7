use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::model::{ImageKind, Role};
use bytes::Bytes;
use chrono::Utc;

use super::*;
use crate::blob::{Limit, StagedBytes};
use crate::core::{demo, test_core, Limits};
use crate::store::Db;

/// Staged bytes whose preparation never serves, as when the blob's copy it
/// counted on is removed before the lock each time: they come back
/// whenever they may. Each preparation keeps the copy it was told to count
/// on, and first takes the blob's lock itself, which waits (and fails the
/// test) while the attach still holds it.
#[derive(Debug)]
struct PreparedInVain {
    bytes: Box<dyn StagedBytes>,
    db: Db,
    counted_on: Arc<Mutex<Vec<Option<String>>>>,
}

#[async_trait::async_trait]
impl StagedBytes for PreparedInVain {
    async fn prepare(&mut self, sha256: &str, current: Option<&str>) -> io::Result<()> {
        let lock = tokio::time::timeout(Duration::from_secs(5), self.db.lock_blob(sha256))
            .await
            .expect("the blob's lock is let go while its bytes are prepared again")
            .map_err(io::Error::other)?;
        drop(lock);
        let counted_on = current.map(str::to_owned);
        self.counted_on.lock().unwrap().push(counted_on);
        self.bytes.prepare(sha256, current).await
    }

    async fn publish(
        self: Box<Self>,
        sha256: &str,
        current: Option<&str>,
        long: LongCopy,
    ) -> io::Result<Publication<Box<dyn StagedBytes>>> {
        match long {
            LongCopy::GiveBack => Ok(Publication::Unprepared(self)),
            LongCopy::Make => self.bytes.publish(sha256, current, long).await,
        }
    }
}

/// Staged bytes whose preparation takes `taking` (a large copy made in an
/// object store, streamed through the server).
#[derive(Debug)]
struct PreparedSlowly {
    bytes: Box<dyn StagedBytes>,
    taking: Duration,
}

#[async_trait::async_trait]
impl StagedBytes for PreparedSlowly {
    async fn prepare(&mut self, sha256: &str, current: Option<&str>) -> io::Result<()> {
        tokio::time::sleep(self.taking).await;
        self.bytes.prepare(sha256, current).await
    }

    async fn publish(
        self: Box<Self>,
        sha256: &str,
        current: Option<&str>,
        long: LongCopy,
    ) -> io::Result<Publication<Box<dyn StagedBytes>>> {
        self.bytes.publish(sha256, current, long).await
    }
}

/// The same bytes, staged anew.
async fn hello_world(core: &Core) -> Staged {
    let body = futures_util::stream::iter([Ok::<_, io::Error>(Bytes::from_static(b"hello world"))]);
    let ingested = core.blobs.ingest(body, &mut Limit(100), |_| ()).await;
    ingested.unwrap().0
}

/// A new record of `staged`'s bytes, named `name`.
fn record_of(staged: &Staged, name: &str) -> NewImage {
    let mut new = demo::record(ImageKind::Iso, "tests", name, Utc::now());
    new.size = Some(staged.size as i64);
    new.sha256 = Some(staged.sha256.clone());
    new
}

/// Bytes given back are prepared again with the lock let go, and counting
/// on no copy of the blob's: one that another user can delete and upload
/// again between each preparation and its lock, so that every try but the
/// last gave them back, never makes them copied under the lock.
#[tokio::test]
async fn bytes_prepared_in_vain_are_prepared_again_outside_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let core = test_core(dir.path(), Limits::default()).await;
    let first = hello_world(&core).await;
    let new = record_of(&first, "first.iso");
    core.attach_blob(first, Attach::Insert(&new), Landing::Alone, None)
        .await
        .unwrap();
    let sha256 = new.sha256.unwrap();
    let blobs_copy = core.published_copy(&sha256).await.unwrap();

    let counted_on = Arc::new(Mutex::new(Vec::new()));
    let staged = hello_world(&core).await.wrapped(|bytes| {
        Box::new(PreparedInVain {
            bytes,
            db: core.db.clone(),
            counted_on: counted_on.clone(),
        })
    });
    let new = record_of(&staged, "second.iso");
    let attached = core
        .attach_blob(staged, Attach::Insert(&new), Landing::Alone, None)
        .await;
    attached.expect("published on the last try");
    let counted_on = counted_on.lock().unwrap().clone();
    let mut expected = vec![None; PREPARATIONS as usize];
    expected[0] = Some(blobs_copy.generation.clone());
    assert_eq!(
        counted_on, expected,
        "prepared again each time the bytes came back, counting on no copy of the blob's"
    );
    let copy = core.published_copy(&sha256).await.unwrap();
    assert_eq!(
        copy, blobs_copy,
        "the blob's copy, there all along, is kept"
    );
    assert!(core.blobs.exists(&copy).await, "the records' copy is there");
}

/// A record refused under the blob's lock (its owner holds as many images
/// as they may) takes the copy made for it along: bytes new to the store
/// leave none behind, and bytes that another record reads keep theirs.
#[tokio::test]
async fn a_record_refused_under_the_lock_leaves_no_copy_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let core = test_core(dir.path(), Limits::default()).await;
    let copies = || async { core.blobs.settled_blobs(Duration::ZERO).await.unwrap() };
    let staged = hello_world(&core).await;
    let mut refused = record_of(&staged, "refused.iso");
    refused.owner_images_at_most = Some(0);
    let sha256 = refused.sha256.clone().unwrap();
    let refuse = |staged| async {
        let attached = core
            .attach_blob(staged, Attach::Insert(&refused), Landing::Alone, None)
            .await;
        assert!(
            matches!(attached, Err(CoreError::Conflict(_))),
            "{attached:?}"
        );
    };
    refuse(staged).await;
    assert_eq!(core.db.blob_generation(&sha256).await.unwrap(), None);
    assert_eq!(
        copies().await,
        [],
        "the copy made for the refused record was left"
    );

    let staged = hello_world(&core).await;
    let kept = record_of(&staged, "kept.iso");
    core.attach_blob(staged, Attach::Insert(&kept), Landing::Alone, None)
        .await
        .unwrap();
    let copy = core.published_copy(&sha256).await.unwrap();
    let staged = hello_world(&core).await;
    refuse(staged).await;
    assert_eq!(core.published_copy(&sha256).await.unwrap(), copy);
    let kept_copies = copies().await;
    assert_eq!(kept_copies.len(), 1, "{kept_copies:?}");
    assert_eq!(kept_copies[0], copy, "the kept record's copy alone");
    assert!(core.blobs.exists(&copy).await);
}

/// The quota reservation holding an upload's room is renewed while its
/// bytes are published: the making of their copy in an object store can
/// outlast the hour a reservation lives, and their room then counted for
/// no one, for other uploads to take.
#[tokio::test]
async fn a_long_publication_keeps_its_room_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        reservations_renewed_every: Duration::from_millis(100),
        ..Limits::default()
    };
    let core = test_core(dir.path(), limits).await;
    let user = core
        .create_user("alice", "alice-password", Role::User)
        .await
        .unwrap();
    let crate::store::Pool::Sqlite(pool) = core.db.pool().clone() else {
        panic!("the test core is on SQLite");
    };
    let an_hour_on = Utc::now().timestamp_millis() + 3_600_000;
    let reservation: i64 = sqlx::query_scalar(
        "INSERT INTO quota_reservations (user_id, bytes, expires_at) VALUES ($1, 100, $2) \
         RETURNING id",
    )
    .bind(user)
    .bind(an_hour_on)
    .fetch_one(&pool)
    .await
    .unwrap();
    let expiry = || {
        sqlx::query_scalar::<_, i64>("SELECT expires_at FROM quota_reservations WHERE id = $1")
            .bind(reservation)
            .fetch_one(&pool)
    };

    let staged = hello_world(&core).await.wrapped(|bytes| {
        Box::new(PreparedSlowly {
            bytes,
            taking: Duration::from_millis(1_500),
        })
    });
    let new = record_of(&staged, "slow.iso");
    let attaching = core.attach_blob(
        staged,
        Attach::Insert(&new),
        Landing::Alone,
        Some(reservation),
    );
    let watching = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let early = expiry().await.unwrap();
        tokio::time::sleep(Duration::from_millis(900)).await;
        (early, expiry().await.unwrap())
    };
    let (attached, (early, later)) = tokio::join!(attaching, watching);
    attached.unwrap();
    assert!(
        later >= early + 500,
        "not renewed: expiring at {early}, then {later}"
    );
}
