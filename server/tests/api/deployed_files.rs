//! A deployed file counts against its owner's quota until its deployment
//! is deleted, and the deletion removes it; a deployment whose file cannot
//! be removed stays, its file counted, as does an environment holding such
//! files, so nothing is left that no record names.

use app::model::DeploymentState;
use chrono::Utc;
use depot_server::store::{DeletedDeployment, NewDeployment, REMOVAL_LEASE_MS};
use reqwest::Method;
use rstest::rstest;
use serde_json::Value;

use crate::deploy_isolation::{environment_at, finished, image_with, settled_deployment};
use crate::helpers::{Backend, TestApp};
use crate::vice::{iso_bytes, Vice};

/// A server exporting to a folder of its own (with a quota of `quota`
/// bytes a user, if any), and the user alice: the folder, the server and
/// alice's id.
async fn exporting_for_alice(
    backend: Backend,
    quota: Option<u64>,
) -> (tempfile::TempDir, TestApp, i64) {
    let root = tempfile::tempdir().unwrap();
    let export_root = root.path().to_path_buf();
    let app = TestApp::spawn_with(backend, move |args| {
        args.export_root = Some(export_root);
        args.user_quota_bytes = quota;
    })
    .await;
    app.add_user("alice", "alice-password").await;
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;
    (root, app, alice_id)
}

/// A `file://` environment of `vice`'s user at `folder`: its id.
async fn environment_in(vice: &Vice<'_>, folder: &std::path::Path) -> String {
    let location = format!("file://{}", folder.display());
    let (status, environment) = environment_at(vice, location).await;
    assert_eq!(status, 201, "{environment}");
    environment["id"].as_str().unwrap().to_owned()
}

/// Alice's image "disk" (100 KB) deployed into her environment at the
/// export root `root`: the environment's id, the image's id and the
/// deployment, done.
async fn disk_deployed_at_the_root(
    alice: &Vice<'_>,
    root: &std::path::Path,
) -> (String, String, Value) {
    let environment = environment_in(alice, root).await;
    let image = image_with(alice, "disk", iso_bytes(100_000)).await;
    let deployment = settled_deployment(alice, &environment, &image).await;
    assert_eq!(deployment["state"], "done", "{deployment}");
    (environment, image, deployment)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn deployed_bytes_count_against_the_quota(#[case] backend: Backend) {
    let (root, app, _) = exporting_for_alice(backend, Some(1_000_000)).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let environment = environment_in(&alice, root.path()).await;
    let image = image_with(&alice, "first", iso_bytes(400_000)).await;
    let done = settled_deployment(&alice, &environment, &image).await;
    assert_eq!(done["state"], "done", "{done}");
    // 400 KB image + 400 KB deployed: another copy would pass the quota.
    let second = image_with(&alice, "second", iso_bytes(150_000)).await;
    let over = settled_deployment(&alice, &environment, &second).await;
    assert_eq!(over["state"], "failed", "{over}");
    assert!(over["reason"].as_str().unwrap().contains("quota"), "{over}");
    assert!(!root.path().join("second").exists());

    // Deleting the deployment removes its file from the environment, and
    // the file's room from the quota: the second copy now fits. (The file
    // stayed, counted for good, with no way to let it go.) While it is
    // being written, it is not deleted: its file would land all the same.
    let first = done["id"].as_str().unwrap();
    crate::helpers::execute(
        &app,
        &format!("UPDATE deployments SET state = 'running' WHERE id = {first}"),
    )
    .await;
    let (status, answer) = alice
        .json(Method::DELETE, &format!("/deployment/{first}"), None)
        .await;
    assert_eq!(status, 409, "{answer}");
    crate::helpers::execute(
        &app,
        &format!("UPDATE deployments SET state = 'done' WHERE id = {first}"),
    )
    .await;
    assert!(root.path().join("first").exists());
    let (status, answer) = alice
        .json(Method::DELETE, &format!("/deployment/{first}"), None)
        .await;
    assert!(status.is_success(), "{answer}");
    assert!(!root.path().join("first").exists());
    let again = settled_deployment(&alice, &environment, &second).await;
    assert_eq!(again["state"], "done", "{again}");
    assert!(root.path().join("second").exists());
    // Two deployments of one file: it goes with the last of them.
    let twice = settled_deployment(&alice, &environment, &second).await;
    assert_eq!(twice["state"], "done", "{twice}");
    // The later one still writing it, as it were: it keeps the file too.
    let state_of_twice = |state: &str| {
        format!(
            "UPDATE deployments SET state = '{state}' WHERE id = {}",
            twice["id"].as_str().unwrap()
        )
    };
    crate::helpers::execute(&app, &state_of_twice("running")).await;
    for (deployment, stays) in [(&again, true), (&twice, false)] {
        let path = format!("/deployment/{}", deployment["id"].as_str().unwrap());
        let (status, answer) = alice.json(Method::DELETE, &path, None).await;
        assert!(status.is_success(), "{answer}");
        assert_eq!(root.path().join("second").exists(), stays);
        crate::helpers::execute(&app, &state_of_twice("done")).await;
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_deployment_whose_file_cannot_be_removed_stays(#[case] backend: Backend) {
    let (root, app, alice_id) = exporting_for_alice(backend, None).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let folder = root.path().join("alice");
    std::fs::create_dir(&folder).unwrap();
    let environment = environment_in(&alice, &folder).await;
    let image = image_with(&alice, "disk", iso_bytes(300_000)).await;
    let deployment = settled_deployment(&alice, &environment, &image).await;
    assert_eq!(deployment["state"], "done", "{deployment}");
    let path = format!("/deployment/{}", deployment["id"].as_str().unwrap());
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 600_000);

    // A file stands where the environment's folder was: the deployed file
    // cannot be reached to be removed. The deletion is refused, and the
    // deployment stays, its file still counted. (It was deleted all the
    // same, and the file, out of every record's reach, counted for good.)
    let aside = root.path().join("aside");
    std::fs::rename(&folder, &aside).unwrap();
    std::fs::write(&folder, b"not a folder").unwrap();
    let (status, answer) = alice.json(Method::DELETE, &path, None).await;
    assert_eq!(status, 409, "{answer}");
    let (status, kept) = alice.json(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["state"], "done", "{kept}");
    assert!(aside.join("disk").exists());
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 600_000);

    // Once the folder is back, the deletion removes the file and its room.
    std::fs::remove_file(&folder).unwrap();
    std::fs::rename(&aside, &folder).unwrap();
    let (status, answer) = alice.json(Method::DELETE, &path, None).await;
    assert!(status.is_success(), "{answer}");
    assert!(!folder.join("disk").exists());
    let (status, _) = alice.json(Method::GET, &path, None).await;
    assert_eq!(status, 404);
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 300_000);

    // A file already gone (removed before a crash stopped its deletion's
    // commit, as it were) is no failure: the deletion ends the work.
    let again = settled_deployment(&alice, &environment, &image).await;
    assert_eq!(again["state"], "done", "{again}");
    std::fs::remove_file(folder.join("disk")).unwrap();
    let path = format!("/deployment/{}", again["id"].as_str().unwrap());
    let (status, answer) = alice.json(Method::DELETE, &path, None).await;
    assert!(status.is_success(), "{answer}");
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 300_000);
}

/// Two deployments of one file deleted at once: each first finds the other
/// still there, and the one deleted second looks again and removes the
/// file, with its room in the quota. (Both deleted, the file stayed,
/// counted, and named by no deployment.) Several rounds, since the two
/// requests may not meet in each.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn two_deployments_of_a_file_deleted_at_once_take_it_with_them(#[case] backend: Backend) {
    let (root, app, alice_id) = exporting_for_alice(backend, None).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let environment = environment_in(&alice, root.path()).await;
    let image = image_with(&alice, "disk", iso_bytes(100_000)).await;
    for round in 0..5 {
        let mut paths = Vec::new();
        for _ in 0..2 {
            let deployment = settled_deployment(&alice, &environment, &image).await;
            assert_eq!(deployment["state"], "done", "{deployment}");
            paths.push(format!(
                "/deployment/{}",
                deployment["id"].as_str().unwrap()
            ));
        }
        let (first, second) = tokio::join!(
            alice.json(Method::DELETE, &paths[0], None),
            alice.json(Method::DELETE, &paths[1], None)
        );
        assert!(
            first.0.is_success() && second.0.is_success(),
            "{first:?} {second:?}"
        );
        assert!(
            !root.path().join("disk").exists(),
            "round {round}: the file stayed"
        );
        assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 100_000);
    }
}

/// An environment holding a file one of its deployments wrote is not
/// deleted (409) until that deployment is, which removes the file and its
/// room in the quota. (The environment went, its deployments with it, and
/// the file stayed, counted, with no deployment left to delete.)
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_environment_holding_deployed_files_is_kept_until_they_go(#[case] backend: Backend) {
    let (root, app, alice_id) = exporting_for_alice(backend, None).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let (environment_id, _, deployment) = disk_deployed_at_the_root(&alice, root.path()).await;
    let environment = format!("/environment/{environment_id}");
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 200_000);

    let (status, answer) = alice.json(Method::DELETE, &environment, None).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer.to_string().contains("delete those deployments"),
        "{answer}"
    );
    let (status, _) = alice.json(Method::GET, &environment, None).await;
    assert_eq!(status, 200);
    let path = format!("/deployment/{}", deployment["id"].as_str().unwrap());
    let (status, _) = alice.json(Method::DELETE, &path, None).await;
    assert!(status.is_success());
    // An administrator's deployment into it keeps it too.
    let admin = Vice::new(&app, "admin", crate::helpers::ADMIN_PASSWORD);
    let admins_image = image_with(&admin, "admins", iso_bytes(40_000)).await;
    let admins = settled_deployment(&admin, &environment_id, &admins_image).await;
    assert_eq!(admins["state"], "done", "{admins}");
    let (status, answer) = alice.json(Method::DELETE, &environment, None).await;
    assert_eq!(status, 409, "{answer}");
    let admins = format!("/deployment/{}", admins["id"].as_str().unwrap());
    let (status, _) = admin.json(Method::DELETE, &admins, None).await;
    assert!(status.is_success());
    let (status, answer) = alice.json(Method::DELETE, &environment, None).await;
    assert!(status.is_success(), "{answer}");
    assert!(!root.path().join("disk").exists());
    assert!(!root.path().join("admins").exists());
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 100_000);
    let (status, _) = alice.json(Method::DELETE, &environment, None).await;
    assert_eq!(status, 404);
}

/// A deployment outlives its image: deleting the image leaves the
/// deployment (its image no longer named) and its file, still counted,
/// and deleting the deployment then removes the file and its room. (The
/// image's deletion took its deployments with it, and the file stayed,
/// counted, with no deployment to delete.)
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_deployment_outlives_its_image(#[case] backend: Backend) {
    let (root, app, alice_id) = exporting_for_alice(backend, None).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let (_, image, deployment) = disk_deployed_at_the_root(&alice, root.path()).await;
    let path = format!("/deployment/{}", deployment["id"].as_str().unwrap());

    let (status, answer) = alice
        .json(Method::DELETE, &format!("/image/{image}"), None)
        .await;
    assert!(status.is_success(), "{answer}");
    let (status, kept) = alice.json(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["imageid"], "", "{kept}");
    assert_eq!(kept["state"], "done", "{kept}");
    assert!(root.path().join("disk").exists());
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 100_000);
    let (_, listed) = alice.json(Method::GET, "/deployments", None).await;
    let ids: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["id"])
        .collect();
    assert_eq!(ids, [&deployment["id"]], "{listed}");

    let (status, answer) = alice.json(Method::DELETE, &path, None).await;
    assert!(status.is_success(), "{answer}");
    assert!(!root.path().join("disk").exists());
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 0);
}

/// A deployment of a file that a deletion of another deployment is
/// removing waits until the removal is over, then writes it. (It wrote its
/// file while the deletion, which removes with no lock held, was about to
/// remove the other's: it stood done, its file gone and its room let go.)
/// Another deletion of the deployment meanwhile is refused. A removal's
/// mark holds while it is renewed and lapses after, and a deletion whose
/// file cannot be removed holds back no deployment after it.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_file_being_removed_is_deployed_again_once_it_is_gone(#[case] backend: Backend) {
    let (root, app, alice_id) = exporting_for_alice(backend, None).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let (environment, image, first) = disk_deployed_at_the_root(&alice, root.path()).await;
    let first: i64 = first["id"].as_str().unwrap().parse().unwrap();
    let file = root.path().join("disk");

    // The first deployment's deletion stops as its file's removal begins,
    // while the image is deployed again.
    let (core, db) = (&app.core, app.core.db());
    let folder = root.path().to_owned();
    let (begun, removal_begun) = tokio::sync::oneshot::channel();
    let (go_on, removal_goes_on) = tokio::sync::oneshot::channel::<()>();
    let remove = |path: String, mark: i64| async move {
        let now = core.job_clock_ms().await.unwrap();
        let again = db.delete_deployment(first, alice_id, "vice.deploy", now, |_, _| async {
            Err(std::io::Error::other(
                "a second deletion removes the file too",
            ))
        });
        assert_eq!(again.await.unwrap(), DeletedDeployment::BeingDeleted);
        // A mark holds while it is renewed, and no longer.
        let renewed = now + 2 * REMOVAL_LEASE_MS;
        assert!(db.renew_removal(first, mark, renewed).await.unwrap());
        let before = db.deployment_writes(first, alice_id, &path, renewed - 1_000);
        assert!(!before.await.unwrap(), "a renewed removal's mark lapsed");
        let lapsed = renewed + 1_000;
        let written = db.deployment_writes(first, alice_id, &path, lapsed).await;
        assert!(written.unwrap(), "a lapsed removal's mark held");
        begun.send(()).unwrap();
        removal_goes_on.await.unwrap();
        std::fs::remove_file(folder.join(path))
    };
    let now = core.job_clock_ms().await.unwrap();
    let deletion = db.delete_deployment(first, alice_id, "vice.deploy", now, remove);
    let deploying = async {
        removal_begun.await.unwrap();
        let waiting = settled_deployment(&alice, &environment, &image).await;
        go_on.send(()).unwrap();
        waiting
    };
    let (deleted, waiting) = tokio::join!(deletion, deploying);
    assert_eq!(deleted.unwrap(), DeletedDeployment::Deleted);
    assert_eq!(waiting["state"], "running", "{waiting}");
    let reason = waiting["reason"].as_str().unwrap();
    assert!(reason.contains("removing that file"), "{waiting}");
    let second = finished(&alice, waiting["id"].as_str().unwrap()).await;
    assert_eq!(second["state"], "done", "{second}");
    assert!(file.exists(), "the second deployment's file was removed");
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 200_000);

    // A deletion that cannot remove its file lets it be deployed again at once.
    let second: i64 = second["id"].as_str().unwrap().parse().unwrap();
    let now = core.job_clock_ms().await.unwrap();
    let refused = db
        .delete_deployment(second, alice_id, "vice.deploy", now, |_, _| async {
            Err(std::io::Error::other("the disk said no"))
        })
        .await
        .unwrap();
    assert!(
        matches!(refused, DeletedDeployment::FileStays { .. }),
        "{refused:?}"
    );
    let third = settled_deployment(&alice, &environment, &image).await;
    assert_eq!(third["state"], "done", "{third}");
    assert!(file.exists());
}

/// A deletion whose mark lapsed midway (its database unanswered for most of
/// a lease) while another deletion of the deployment marked it again
/// neither renews that mark nor, once its own removal ends, clears it,
/// whether by failing or by deleting the deployment (which the other then
/// does): a deployment of the file still waits for the other's removal.
/// (All three matched the deployment, not the deletion: the file could be
/// written again just before the other removal took it.)
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_lapsed_mark_leaves_the_next_deletions_mark_alone(
    #[case] backend: Backend,
    #[values(false, true)] lost_removal_ends_well: bool,
) {
    let (root, app, alice_id) = exporting_for_alice(backend, None).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let (_, _, first) = disk_deployed_at_the_root(&alice, root.path()).await;
    let first: i64 = first["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 200_000);
    let (core, db) = (&app.core, app.core.db());
    let folder = root.path().to_owned();
    let now = core.job_clock_ms().await.unwrap();
    let lapsed = now + REMOVAL_LEASE_MS + 1_000;

    // The first deletion's removal hangs past its lease, then ends.
    let (begun, first_begun) = tokio::sync::oneshot::channel();
    let (give_up, first_gives_up) = tokio::sync::oneshot::channel::<()>();
    let (ended, first_ended) = tokio::sync::oneshot::channel::<()>();
    // A file already gone is no failure (`export::remove`).
    let remove_if_there = |path: std::path::PathBuf| match std::fs::remove_file(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        removed => removed,
    };
    let file = folder.join("disk");
    let hung = move |_: String, mark: i64| async move {
        begun.send(mark).unwrap();
        first_gives_up.await.unwrap();
        match lost_removal_ends_well {
            true => remove_if_there(file),
            false => Err(std::io::Error::other("the mount answered at last: no")),
        }
    };
    let lost = async {
        let deleted = db.delete_deployment(first, alice_id, "vice.deploy", now, hung);
        let deleted = deleted.await;
        ended.send(()).unwrap();
        deleted
    };
    // Meanwhile its mark lapses, and a second deletion marks it again.
    let next = async {
        let lost_mark = first_begun.await.unwrap();
        let (begun, next_begun) = tokio::sync::oneshot::channel();
        let (go_on, next_goes_on) = tokio::sync::oneshot::channel::<()>();
        let remove = move |path: String, _| async move {
            begun.send(()).unwrap();
            next_goes_on.await.unwrap();
            remove_if_there(folder.join(path))
        };
        let deletion = db.delete_deployment(first, alice_id, "vice.deploy", lapsed, remove);
        let meanwhile = async {
            next_begun.await.unwrap();
            let later = lapsed + REMOVAL_LEASE_MS / 2;
            let renewed = db.renew_removal(first, lost_mark, later + REMOVAL_LEASE_MS);
            assert!(!renewed.await.unwrap(), "the lapsed mark was renewed");
            give_up.send(()).unwrap();
            first_ended.await.unwrap();
            let written = db.deployment_writes(first, alice_id, "disk", later).await;
            assert!(
                !written.unwrap(),
                "the first deletion took the second's mark"
            );
            go_on.send(()).unwrap();
        };
        tokio::join!(deletion, meanwhile).0
    };
    let (lost, next) = tokio::join!(lost, next);
    let lost = lost.unwrap();
    match lost_removal_ends_well {
        true => assert_eq!(lost, DeletedDeployment::BeingDeleted),
        false => assert!(
            matches!(lost, DeletedDeployment::FileStays { .. }),
            "{lost:?}"
        ),
    }
    assert_eq!(next.unwrap(), DeletedDeployment::Deleted);
    assert!(!root.path().join("disk").exists());
    // The image's bytes alone: the deployed file's room went with it.
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 100_000);
}

/// A deployment that recorded its file while an earlier deployment of it
/// was deleted (the file stayed for it), and then failed, takes the file
/// along when it is deleted, with its room in the quota; until then its
/// environment is kept, and it is not forgotten among old records. (The
/// file stayed, counted, with no deployment whose deletion would remove it.)
/// A failed deployment for which no file was kept removes nothing.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_failed_deployment_takes_along_the_file_left_for_it(#[case] backend: Backend) {
    let (root, app, alice_id) = exporting_for_alice(backend, None).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let (environment, image, first) = disk_deployed_at_the_root(&alice, root.path()).await;
    let file = root.path().join("disk");

    // A second deployment of the file recorded it, and waits for a retry as
    // the first is deleted: the file stays for it. (Its job is of a kind no
    // worker carries out: it fails, and nothing is recorded on the
    // deployment, which stays as the test sets it.)
    let db = app.core.db();
    let deployment = |kept_at_most| NewDeployment {
        user_id: alice_id,
        image_id: image.parse().unwrap(),
        environment_id: environment.parse().unwrap(),
        title: "",
        environment_reference: "",
        unfinished_at_most: 32,
        kept_at_most,
    };
    let inserted = db.insert_deployment(deployment(1000), "none", Utc::now());
    let second = inserted.await.unwrap().unwrap();
    let now = app.core.job_clock_ms().await.unwrap();
    assert!(db
        .deployment_writes(second, alice_id, "disk", now)
        .await
        .unwrap());
    // Old records forgotten meanwhile keep the first: the second, still to
    // run, may yet write another path.
    let inserted = db.insert_deployment(deployment(1), "none", Utc::now());
    let extra = inserted.await.unwrap().unwrap();
    let first = format!("/deployment/{}", first["id"].as_str().unwrap());
    let (status, answer) = alice.json(Method::DELETE, &first, None).await;
    assert!(status.is_success(), "{answer}");
    assert!(file.exists());
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 200_000);

    // It fails for good: its environment stays, and so does it, as older
    // records are forgotten.
    let failed = DeploymentState::Failed;
    db.set_deployment_state(second, failed, "no room", Utc::now())
        .await
        .unwrap();
    let environment_path = format!("/environment/{environment}");
    let (status, kept) = alice.json(Method::DELETE, &environment_path, None).await;
    assert_eq!(status, 409, "{kept}");
    let inserted = db.insert_deployment(deployment(1), "none", Utc::now());
    let third = inserted.await.unwrap().unwrap();
    let second = format!("/deployment/{second}");
    let (status, kept) = alice.json(Method::GET, &second, None).await;
    assert_eq!(status, 200, "{kept}");

    // Its deletion removes the file and its room.
    let (status, answer) = alice.json(Method::DELETE, &second, None).await;
    assert!(status.is_success(), "{answer}");
    assert!(!file.exists(), "the file stayed, with no deployment");
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 100_000);

    // A failed deployment of the same name, for which no file was kept,
    // leaves what stands there now: a claim a crash left behind, never
    // counted, says nothing of whose it is.
    std::fs::write(&file, b"the operator's").unwrap();
    let claimed = db.claim_deployed_file("disk", alice_id, Utc::now());
    assert_eq!(claimed.await.unwrap(), (alice_id, true));
    let inserted = db.insert_deployment(deployment(1000), "none", Utc::now());
    let fourth = inserted.await.unwrap().unwrap();
    let now = app.core.job_clock_ms().await.unwrap();
    assert!(db
        .deployment_writes(fourth, alice_id, "disk", now)
        .await
        .unwrap());
    db.set_deployment_state(fourth, failed, "no room", Utc::now())
        .await
        .unwrap();
    for deployment in [extra, third, fourth] {
        let path = format!("/deployment/{deployment}");
        let (status, answer) = alice.json(Method::DELETE, &path, None).await;
        assert!(status.is_success(), "{answer}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"the operator's");
    // Then the environment goes.
    let (status, answer) = alice.json(Method::DELETE, &environment_path, None).await;
    assert!(status.is_success(), "{answer}");
}
