//! Quotas and the images a sync makes of personal-store files: a copy
//! counts as its file while it holds the file's bytes and on its own
//! otherwise (an `.ovf` packed with its disks, a copy whose file changed or
//! went), and takes no other bytes.

use depot_server::store::Pool;
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{json_of, random_bytes, Backend, TestApp};
use crate::uploads::b64;
use crate::vice::iso_bytes;

const QUOTA: u64 = 1_000_000;

/// A synced image is a copy of a personal-store file, whose bytes the quota
/// counts as the file's: other bytes put under it (a ViCE file upload, a
/// resumable upload for it) would be counted nowhere, so they are refused.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_synced_image_takes_no_other_bytes(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    let file = iso_bytes(40_000);
    assert_eq!(alice.dav("PUT", "/t.iso", Some(file.clone())).await.0, 201);
    assert_eq!(alice.sync("iso").await["added"], 1);
    let listed: Value = json_of(
        reqwest::Client::new()
            .get(app.url("/v2/user/image/iso"))
            .basic_auth("alice", Some("alice-password")),
    )
    .await;
    let id = listed["data"][0]["id"].as_i64().unwrap();

    // Small files: the server answers before it reads them, and a larger
    // body still being sent could have the connection reset under it.
    for _ in 0..2 {
        let part = reqwest::multipart::Part::bytes(iso_bytes(40_000)).file_name("other.iso");
        let response = reqwest::Client::new()
            .post(app.url(&format!("/v1/image/{id}/file")))
            .basic_auth("alice", Some("alice-password"))
            .multipart(reqwest::multipart::Form::new().part("upfile", part))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(body.contains("is a copy of [personal]"), "{body}");
    }
    let resumable = reqwest::Client::new()
        .post(app.url("/api/uploads"))
        .basic_auth("alice", Some("alice-password"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "900000")
        .header(
            "upload-metadata",
            format!("image {}", b64(id.to_string().as_bytes())),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resumable.status(), StatusCode::CONFLICT);
    let refusal = resumable.text().await.unwrap();
    assert!(refusal.contains("is a copy of [personal]"), "{refusal}");

    let user = app.core.login("alice", "alice-password").await.unwrap();
    assert_eq!(app.core.quota_usage(user.id).await.unwrap(), 40_000);
    let viewer = app::model::Viewer::User(user);
    let image = app.core.get_image(&viewer, id).await.unwrap();
    assert_eq!(image.size, Some(40_000));
}

/// A sync's copies count against the quota unless they are their file's
/// bytes: an `.ovf` packed with its disks is stored on its own (one disk
/// named by many descriptors was stored many times over, uncounted), and a
/// copy whose file changed or went still holds its bytes until a sync
/// catches up.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn synced_copies_count_unless_they_are_their_files(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;
    // One 300 KB disk, named by three descriptors: room for two packages.
    let disk = random_bytes(300_000);
    assert_eq!(alice.dav("MKCOL", "/vms/", None).await.0, 201);
    assert_eq!(alice.dav("PUT", "/vms/disk.vmdk", Some(disk)).await.0, 201);
    for n in 1..=3 {
        let descriptor = crate::store::ovf("disk.vmdk");
        let path = format!("/vms/vm{n}.ovf");
        assert_eq!(alice.dav("PUT", &path, Some(descriptor)).await.0, 201);
    }
    let done = alice.sync("vm").await;
    assert_eq!(done["added"], 2, "{done}");
    let errors = done["message"]["errors"].to_string();
    assert!(errors.contains("quota"), "{errors}");
    // The files and the two packages, and nothing held for the refused one.
    let files = 300_000 + 3 * crate::store::ovf("disk.vmdk").len() as u64;
    let packages = synced_bytes(&app, "alice").await;
    assert!(packages > 600_000, "{packages}");
    let used = app.core.quota_usage(alice_id).await.unwrap();
    assert_eq!(used, files + packages);

    // A copy of a file as it is counts once, as the file.
    let bob = crate::store::User::new(&app, "bob", "bob-password").await;
    let bob_id = app.core.login("bob", "bob-password").await.unwrap().id;
    assert_eq!(
        bob.dav("PUT", "/t.iso", Some(iso_bytes(40_000))).await.0,
        201
    );
    assert_eq!(bob.sync("iso").await["added"], 1);
    assert_eq!(app.core.quota_usage(bob_id).await.unwrap(), 40_000);
    // Replaced by other bytes of the same size, the file no longer holds
    // its copy's: both count.
    let junk = random_bytes(40_000);
    assert!(bob.dav("PUT", "/t.iso", Some(junk)).await.0.is_success());
    assert_eq!(app.core.quota_usage(bob_id).await.unwrap(), 80_000);
    // The file becomes something else: its old copy still counts, and
    // still after a sync that refuses the new bytes and keeps the record.
    let status = bob
        .dav("PUT", "/t.iso", Some(b"not an iso".to_vec()))
        .await
        .0;
    assert!(status.is_success(), "{status}");
    assert_eq!(app.core.quota_usage(bob_id).await.unwrap(), 40_010);
    let kept = bob.sync("iso").await;
    assert!(
        kept["message"]["errors"].to_string().contains("t.iso"),
        "{kept}"
    );
    assert_eq!(app.core.quota_usage(bob_id).await.unwrap(), 40_010);
    // The file goes, and a sync takes the copy away with it.
    assert!(bob.dav("DELETE", "/t.iso", None).await.0.is_success());
    assert_eq!(app.core.quota_usage(bob_id).await.unwrap(), 40_000);
    assert_eq!(bob.sync("iso").await["deleted"], 1);
    assert_eq!(app.core.quota_usage(bob_id).await.unwrap(), 0);
}

/// A sync that finds the store as it left it copies nothing again. An
/// `.ovf`'s package was packed anew by every sync, and near the quota
/// refused room for a second copy of its disks; a package packed again
/// (its descriptor rewritten) needs room only to grow.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn an_unchanged_store_copies_nothing_again(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;
    let descriptor = crate::store::ovf("disk.vmdk");
    assert_eq!(
        alice
            .dav("PUT", "/disk.vmdk", Some(random_bytes(400_000)))
            .await
            .0,
        201
    );
    assert_eq!(
        alice
            .dav("PUT", "/vm.ovf", Some(descriptor.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        alice.dav("PUT", "/t.iso", Some(iso_bytes(40_000))).await.0,
        201
    );
    assert_eq!(alice.sync("vm").await["added"], 1);
    assert_eq!(alice.sync("iso").await["added"], 1);
    let used = app.core.quota_usage(alice_id).await.unwrap();
    // Room for less than a second package.
    assert!(used + 400_000 > QUOTA, "{used}");
    let images = synced_images(&app, "alice").await;
    assert_eq!(images.len(), 2);

    let unchanged = |done: &Value| {
        assert_eq!(done["status"], "PROCESSED", "{done}");
        assert_eq!(done["added"], 0, "{done}");
        assert_eq!(done["deleted"], 0, "{done}");
        assert_eq!(done["message"]["errors"], serde_json::json!([]), "{done}");
    };
    for _ in 0..2 {
        unchanged(&alice.sync("vm").await);
        unchanged(&alice.sync("iso").await);
        assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), used);
        assert_eq!(synced_images(&app, "alice").await, images);
    }
    // Rewritten as it was, the descriptor is packed again, to the same bytes.
    assert!(alice
        .dav("PUT", "/vm.ovf", Some(descriptor))
        .await
        .0
        .is_success());
    unchanged(&alice.sync("vm").await);
    unchanged(&alice.sync("vm").await);
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), used);
    assert_eq!(synced_images(&app, "alice").await, images);
}

/// A user's synced images: id, name, version and size, by id.
async fn synced_images(app: &TestApp, user: &str) -> Vec<(i64, String, i64, Option<i64>)> {
    let password = format!("{user}-password");
    let viewer = app::model::Viewer::User(app.core.login(user, &password).await.unwrap());
    let page = app
        .core
        .list_images(&viewer, app::query::Query::new(100))
        .await
        .unwrap();
    let mut images: Vec<_> = page
        .items
        .into_iter()
        .filter(|image| image.data_store == "personal")
        .map(|image| (image.id, image.name, image.version, image.size))
        .collect();
    images.sort();
    images
}

/// The bytes of a user's synced images.
async fn synced_bytes(app: &TestApp, user: &str) -> u64 {
    let images = synced_images(app, user).await;
    images.iter().map(|image| image.3.unwrap() as u64).sum()
}

/// Size and modification time do not tell a file from another: a move
/// keeps a file's time, and times tick coarsely. A file moved over a synced
/// one, with its size and its time to the nanosecond, is still a change:
/// the old copy counts on its own, and the next sync takes the new bytes.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_file_moved_over_a_synced_one_is_a_change_whatever_its_size_and_time(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;
    let first = iso_bytes(40_000);
    assert_eq!(alice.dav("PUT", "/t.iso", Some(first)).await.0, 201);
    assert_eq!(alice.sync("iso").await["added"], 1);
    let before = synced_images(&app, "alice").await;
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 40_000);

    let other = iso_bytes(40_000);
    assert_eq!(alice.dav("PUT", "/other.iso", Some(other)).await.0, 201);
    let folder = app.personal_folder(alice_id);
    let time = std::fs::metadata(folder.join("t.iso"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(folder.join("other.iso"))
        .unwrap()
        .set_modified(time)
        .unwrap();
    let moved = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"MOVE").unwrap(),
            app.url("/store/other.iso"),
        )
        .basic_auth("alice", Some("alice-password"))
        .header("destination", app.url("/store/t.iso"))
        .header("overwrite", "T")
        .send()
        .await
        .unwrap();
    assert!(moved.status().is_success(), "{}", moved.status());
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 80_000);

    let done = alice.sync("iso").await;
    assert_eq!(done["message"]["errors"], serde_json::json!([]), "{done}");
    let after = synced_images(&app, "alice").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].0, before[0].0);
    assert!(after[0].2 > before[0].2, "not updated: {after:?}");
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 40_000);
}

/// Copies whose source is not recorded (synced by an older Depot) count on
/// their own; the check a server runs at start-up reads each one's file and
/// records its source if the file holds its bytes, and adds, changes and
/// removes no image.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn copies_without_a_recorded_source_are_checked_at_start(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;
    for name in ["/kept.iso", "/junk.iso", "/gone.iso"] {
        assert_eq!(alice.dav("PUT", name, Some(iso_bytes(40_000))).await.0, 201);
    }
    assert_eq!(alice.sync("iso").await["added"], 3);
    let before = synced_images(&app, "alice").await;
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 120_000);
    assert_eq!(app.core.reconfirm_synced_copies().await.unwrap(), 0);

    // As an older server left them: one file still the copy's bytes, one
    // replaced by others of its size, one gone.
    const FORGET: &str = "UPDATE images SET synced_from = NULL";
    let forgotten = match app.core.db().pool() {
        Pool::Sqlite(pool) => sqlx::query(FORGET).execute(pool).await.map(|_| ()),
        Pool::Postgres(pool) => sqlx::query(FORGET).execute(pool).await.map(|_| ()),
    };
    forgotten.unwrap();
    let junk = random_bytes(40_000);
    assert!(alice
        .dav("PUT", "/junk.iso", Some(junk))
        .await
        .0
        .is_success());
    assert!(alice.dav("DELETE", "/gone.iso", None).await.0.is_success());
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 200_000);

    assert_eq!(app.core.reconfirm_synced_copies().await.unwrap(), 1);
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 160_000);
    assert_eq!(app.core.reconfirm_synced_copies().await.unwrap(), 0);
    assert_eq!(synced_images(&app, "alice").await, before);
}
