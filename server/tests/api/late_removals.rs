//! A blob's bytes removed late: an object store that timed out a `DELETE`
//! and carried it out afterwards, or a server that died after sending it,
//! must not take bytes a record reads; and blobs stored before copies had
//! generations stay readable and removable.

use std::time::Duration;

use rstest::rstest;
use serde_json::Value;

use depot_server::blob::{Area, BlobKey};
use depot_server::store::Pool;

use crate::helpers::{random_bytes, test_bucket, Backend, TestApp, ADMIN_PASSWORD};

async fn uploaded(app: &TestApp, bytes: &[u8]) -> i64 {
    let created: Value = app
        .upload("admin", ADMIN_PASSWORD, "same.img", bytes.to_vec())
        .await
        .json()
        .await
        .unwrap();
    created["images"][0]["id"].as_i64().unwrap()
}

async fn deleted(app: &TestApp, id: i64) {
    let delete = reqwest::Client::new()
        .delete(app.url(&format!("/v1/image/{id}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 200);
}

async fn downloaded(app: &TestApp, id: i64) -> (u16, Vec<u8>) {
    let download = reqwest::Client::new()
        .get(app.url(&format!("/api/images/{id}/download")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let status = download.status().as_u16();
    (status, download.bytes().await.unwrap().to_vec())
}

/// The copies of blobs the store holds.
async fn copies(app: &TestApp) -> Vec<BlobKey> {
    app.core
        .blobs()
        .settled_blobs(Duration::ZERO)
        .await
        .unwrap()
}

/// An image deleted, its bytes released; the same bytes uploaded again
/// (on a shared store, through another server); then the first removal
/// lands, late: the same removal of the same copy, sent again. The new
/// image's bytes are still there.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_late_removal_spares_the_same_bytes_uploaded_again(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bytes = random_bytes(300_000);
    let first = uploaded(&app, &bytes).await;
    let released = copies(&app).await;
    assert_eq!(released.len(), 1);
    deleted(&app, first).await;
    assert!(
        copies(&app).await.is_empty(),
        "released with its last image"
    );

    let other = match backend {
        Backend::Shared => Some(app.spawn_beside(|_| {}).await),
        _ => None,
    };
    let second = uploaded(other.as_ref().unwrap_or(&app), &bytes).await;
    assert_eq!(downloaded(&app, second).await, (200, bytes.clone()));
    app.core.blobs().remove(&released[0]).await.unwrap();

    let (status, read) = downloaded(&app, second).await;
    assert_eq!(
        status, 200,
        "the late removal took the bytes uploaded again"
    );
    assert_eq!(read, bytes);
    assert_eq!(copies(&app).await.len(), 1);
}

/// Runs `sql` on the server's database.
async fn execute(app: &TestApp, sql: &str) {
    match app.core.db().pool() {
        Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
    .unwrap();
}

/// Moves a copy to where a server before generations put it, the digest
/// alone, behind the server's back.
async fn as_before_generations(app: &TestApp, copy: &BlobKey) {
    let legacy = BlobKey::new(&copy.sha256, "");
    if app.storage.blob_store.is_some() {
        use object_store::{path::Path, ObjectStore};
        let bucket = test_bucket(&app.storage);
        let stored = app.stored(Area::Blobs).await;
        let from = Path::from(stored[0].as_str());
        let to = Path::from(stored[0].replace(&copy.file_name(), &legacy.file_name()));
        bucket.copy(&from, &to).await.unwrap();
        bucket.delete(&from).await.unwrap();
    } else {
        let from = std::path::PathBuf::from(&app.stored(Area::Blobs).await[0]);
        std::fs::rename(&from, from.with_file_name(legacy.file_name())).unwrap();
    }
    execute(app, "UPDATE blobs SET generation = ''").await;
    assert_eq!(copies(app).await, vec![legacy]);
}

/// A blob stored before generations (its row's generation empty, as the
/// migration leaves it, and its bytes under the digest alone) is read,
/// released with its last image, and its bytes uploaded again are a copy
/// of a new generation.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_blob_from_before_generations_is_read_and_released(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bytes = random_bytes(200_000);
    let first = uploaded(&app, &bytes).await;
    let copy = copies(&app).await.remove(0);
    as_before_generations(&app, &copy).await;
    assert_eq!(downloaded(&app, first).await, (200, bytes.clone()));
    let again = uploaded(&app, &bytes).await;
    assert_eq!(downloaded(&app, again).await, (200, bytes.clone()));
    assert_eq!(copies(&app).await.len(), 1, "the bytes are stored once");

    deleted(&app, first).await;
    deleted(&app, again).await;
    assert!(
        copies(&app).await.is_empty(),
        "released with its last image"
    );
    let third = uploaded(&app, &bytes).await;
    let copies = copies(&app).await;
    assert_eq!(copies.len(), 1);
    assert!(!copies[0].generation.is_empty(), "{copies:?}");
    assert_eq!(downloaded(&app, third).await, (200, bytes));
}

/// A blob's row lost (a database restored from before it was made, its
/// copy's generation with it): the collector does not take the copy its
/// records read, but makes it the one they read again.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn the_collector_gives_records_whose_blob_row_is_lost_their_copy_back(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let bytes = random_bytes(100_000);
    let id = uploaded(&app, &bytes).await;
    let copy = copies(&app).await.remove(0);
    execute(&app, "DELETE FROM blobs").await;
    assert_ne!(downloaded(&app, id).await.0, 200, "no row names its copy");

    let collected = app.core.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(collected.orphaned_blobs, 0);
    assert_eq!(copies(&app).await, vec![copy]);
    assert_eq!(downloaded(&app, id).await, (200, bytes));
}

/// A copy whose removal fails once its last image is deleted: the row that
/// named it is gone all the same (it is removed only after that commit), so
/// nothing can keep it meanwhile and lose it to a removal landing later;
/// the same bytes uploaded again are a new copy.
#[tokio::test]
async fn a_failed_removal_leaves_no_row_naming_the_copy() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bytes = random_bytes(100_000);
    let first = uploaded(&app, &bytes).await;
    let copy = copies(&app).await.remove(0);
    // A folder where the file was: removing it as a file fails.
    let file = std::path::PathBuf::from(&app.stored(Area::Blobs).await[0]);
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    std::fs::write(file.join("keep"), b"x").unwrap();
    deleted(&app, first).await;
    let named = app.core.db().blob_generation(&copy.sha256).await.unwrap();
    assert_eq!(named, None, "the row still names a copy being removed");

    let again = uploaded(&app, &bytes).await;
    assert_eq!(downloaded(&app, again).await, (200, bytes));
    let named = app.core.db().blob_generation(&copy.sha256).await.unwrap();
    assert_ne!(named.as_deref(), Some(copy.generation.as_str()));
}
