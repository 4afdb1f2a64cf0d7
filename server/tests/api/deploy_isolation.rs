//! Deployments never overwrite what is not theirs: two users pointing at one
//! export folder cannot replace each other's files, a file Depot did not
//! write is left alone, links planted below the export root are never
//! followed, and errors name no resolved host path. (Deployed bytes and the
//! quota: `deployed_files`.)

use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::vice::{iso_bytes, Vice};

/// A server exporting to `root`, with users alice and bob.
async fn alice_and_bob_exporting_to(backend: Backend, root: &std::path::Path) -> TestApp {
    let export_root = root.to_path_buf();
    let app = TestApp::spawn_with(backend, move |args| args.export_root = Some(export_root)).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    app
}

/// An image of `vice`'s user named `title` with `bytes`; answers its id.
pub async fn image_with(vice: &Vice<'_>, title: &str, bytes: Vec<u8>) -> String {
    let (status, image) = vice
        .json(
            Method::POST,
            "/images",
            Some(&json!({"title": title, "contenttype": "disk-raw"})),
        )
        .await;
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new().part(
        "upfile",
        reqwest::multipart::Part::bytes(bytes).file_name("disk.iso"),
    );
    let uploaded = vice
        .request(Method::POST, &format!("/image/{id}/file"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    id
}

/// A `file://` environment of `vice`'s user; answers (status, body).
pub async fn environment_at(vice: &Vice<'_>, location: String) -> (u16, Value) {
    let body = json!({
        "title": "export",
        "credentials": {"location": location, "username": "u"},
        "managementlayer": {"type": "basic", "software": "fs", "version": "1"},
        "runtimetechnology": {"type": "virtualmachine", "software": "any", "version": "1"}
    });
    let (status, created) = vice.json(Method::POST, "/environments", Some(&body)).await;
    (status.as_u16(), created)
}

pub async fn deploy(vice: &Vice<'_>, environment: &str, image: &str) -> (u16, Value) {
    let (status, body) = vice
        .json(
            Method::POST,
            "/deploy",
            Some(&json!({"environmentId": environment, "imageid": image})),
        )
        .await;
    (status.as_u16(), body)
}

/// Waits until a deployment is done, or has a reason for not being done.
pub async fn settled(vice: &Vice<'_>, id: &str) -> Value {
    when(vice, id, |deployment| {
        let reason = deployment["reason"].as_str().unwrap_or_default();
        deployment["state"] == "done" || !reason.is_empty()
    })
    .await
}

/// A new deployment of `image` into `environment`, once settled (as
/// [`settled`]).
pub async fn settled_deployment(vice: &Vice<'_>, environment: &str, image: &str) -> Value {
    let (_, deployment) = deploy(vice, environment, image).await;
    settled(vice, deployment["id"].as_str().unwrap()).await
}

/// A deployment once it is done or has failed for good: one queued again
/// (with the reason its last attempt stopped) is waited for too.
pub async fn finished(vice: &Vice<'_>, id: &str) -> Value {
    when(vice, id, |deployment| {
        deployment["state"] == "done" || deployment["state"] == "failed"
    })
    .await
}

/// The deployment, polled until `ready` says it is (within 30 s).
async fn when(vice: &Vice<'_>, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, deployment) = vice
            .json(Method::GET, &format!("/deployment/{id}"), None)
            .await;
        if ready(&deployment) {
            return deployment;
        }
        assert!(std::time::Instant::now() < deadline, "{deployment}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn users_sharing_an_export_folder_never_overwrite_each_other(#[case] backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let shared = root.path().join("team").join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let app = alice_and_bob_exporting_to(backend, root.path()).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let location = format!("file://{}", shared.display());

    let alice_bytes = iso_bytes(200_000);
    let alice_image = image_with(&alice, "appliance", alice_bytes.clone()).await;
    let (_, alice_env) = environment_at(&alice, location.clone()).await;
    let alice_env = alice_env["id"].as_str().unwrap().to_owned();
    let (status, first) = deploy(&alice, &alice_env, &alice_image).await;
    assert_eq!(status, 201, "{first}");
    let first = settled(&alice, first["id"].as_str().unwrap()).await;
    assert_eq!(first["state"], "done", "{first}");
    assert_eq!(
        std::fs::read(shared.join("appliance")).unwrap(),
        alice_bytes
    );

    // Bob's image of the same name, into the same folder (Alice's since
    // she deployed there first): refused.
    let bob_image = image_with(&bob, "appliance", iso_bytes(200_000)).await;
    let (_, bob_env) = environment_at(&bob, location.clone()).await;
    let bob_env = bob_env["id"].as_str().unwrap().to_owned();
    let (status, attempt) = deploy(&bob, &bob_env, &bob_image).await;
    assert_eq!(status, 405, "{attempt}");
    assert_eq!(
        std::fs::read(shared.join("appliance")).unwrap(),
        alice_bytes
    );
    // Nor through another spelling of the same folder: the folder is
    // Alice's whatever path leads to it.
    for spelling in ["team/./shared", "team//shared", "team/shared/."] {
        let location = format!("file://{}/{spelling}", root.path().display());
        let (_, respelled) = environment_at(&bob, location).await;
        let respelled = respelled["id"].as_str().unwrap().to_owned();
        let (status, attempt) = deploy(&bob, &respelled, &bob_image).await;
        assert_eq!(status, 405, "{spelling}: {attempt}");
        assert!(
            attempt["message"]
                .as_str()
                .unwrap()
                .contains("that you may deploy into"),
            "{spelling}: {attempt}"
        );
    }

    // Alice may replace her own file.
    let again = settled_deployment(&alice, &alice_env, &alice_image).await;
    assert_eq!(again["state"], "done", "{again}");

    // A file Depot did not write is left alone.
    std::fs::write(shared.join("notes"), b"the operator's").unwrap();
    let notes_image = image_with(&alice, "notes", iso_bytes(100_000)).await;
    let refused = settled_deployment(&alice, &alice_env, &notes_image).await;
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("did not deploy"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read(shared.join("notes")).unwrap(),
        b"the operator's"
    );

    // A link planted where the file goes is not followed.
    let victim = outside.path().join("victim");
    std::os::unix::fs::symlink(&victim, shared.join("linked")).unwrap();
    let linked_image = image_with(&alice, "linked", iso_bytes(100_000)).await;
    let linked = settled_deployment(&alice, &alice_env, &linked_image).await;
    assert_ne!(linked["state"], "done", "{linked}");
    assert!(!victim.exists(), "the deployment wrote through a link");

    // A linked folder below the root is refused when deploying, and the
    // answer names the location as given, not where the link leads.
    std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
    let (_, escape_env) = environment_at(
        &alice,
        format!("file://{}", root.path().join("escape").display()),
    )
    .await;
    let escape_env = escape_env["id"].as_str().unwrap().to_owned();
    let (status, error) = deploy(&alice, &escape_env, &alice_image).await;
    assert_eq!(status, 405, "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        !message.contains(&outside.path().display().to_string()),
        "{message}"
    );
    assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
}

/// A server with an export root and no job workers (every deployment stays
/// queued until a test says otherwise), and the user alice.
pub async fn no_workers(backend: Backend) -> (tempfile::TempDir, TestApp) {
    let root = tempfile::tempdir().unwrap();
    let export_root = root.path().to_path_buf();
    let app = TestApp::spawn_with(backend, move |args| {
        args.export_root = Some(export_root);
        args.job_workers = 0;
    })
    .await;
    app.add_user("alice", "alice-password").await;
    (root, app)
}

/// A server with no job workers, and Alice's deployment of an image into
/// its export root, queued: the root, the server, the deployment's id.
async fn queued_deployment(backend: Backend) -> (tempfile::TempDir, TestApp, String) {
    let (root, app) = no_workers(backend).await;
    let location = format!("file://{}", root.path().display());
    let alice = Vice::new(&app, "alice", "alice-password");
    let (image, environment) = ready_to_deploy(&alice, &location).await;
    let (status, deployment) = deploy(&alice, &environment, &image).await;
    assert_eq!(status, 201, "{deployment}");
    let id = deployment["id"].as_str().unwrap().to_owned();
    (root, app, id)
}

/// An image of `vice`'s user and an environment at `location`: their ids.
pub async fn ready_to_deploy(vice: &Vice<'_>, location: &str) -> (String, String) {
    let image = image_with(vice, "appliance", iso_bytes(100_000)).await;
    let (_, environment) = environment_at(vice, location.to_owned()).await;
    (image, environment["id"].as_str().unwrap().to_owned())
}

/// One user queueing deployments without end would hold back everyone's
/// jobs (the queue runs oldest first): past their share of unfinished
/// deployments a user is refused, and another user is not.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_user_has_a_bounded_number_of_deployments_waiting(#[case] backend: Backend) {
    let (root, app) = no_workers(backend).await;
    app.add_user("bob", "bob-password-1").await;
    let location = format!("file://{}", root.path().display());
    let alice = Vice::new(&app, "alice", "alice-password");
    let (image, environment) = ready_to_deploy(&alice, &location).await;
    let mut waiting = Vec::new();
    let refused = loop {
        let (status, answer) = deploy(&alice, &environment, &image).await;
        if status != 201 {
            break (status, answer);
        }
        waiting.push(answer["id"].as_str().unwrap().to_owned());
        assert!(waiting.len() <= 32, "no bound on waiting deployments");
    };
    assert_eq!(waiting.len(), 32);
    assert_eq!(refused.0, 409, "{}", refused.1);
    assert!(
        refused.1.to_string().contains("queued or running"),
        "{}",
        refused.1
    );
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let (image, environment) = ready_to_deploy(&bob, &location).await;
    let (status, answer) = deploy(&bob, &environment, &image).await;
    assert_eq!(status, 201, "{answer}");

    // A deleted deployment leaves no job waiting in the queue: deleting is
    // no way around the bound.
    for id in &waiting {
        let (status, _) = alice
            .json(Method::DELETE, &format!("/deployment/{id}"), None)
            .await;
        assert!(status.is_success(), "{status}");
    }
    let queued: i64 = app
        .core
        .db()
        .job_counts()
        .await
        .unwrap()
        .iter()
        .filter(|count| count.state == "queued")
        .map(|count| count.count)
        .sum();
    assert_eq!(queued, 1, "only Bob's deployment waits");
}

/// A deployment whose worker stopped each time it ran (a server killed, a
/// lease lost) fails once its attempts are spent, saying why, rather than
/// stay "running" for good (and hold one of its user's places).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_deployment_whose_workers_all_stopped_fails(#[case] backend: Backend) {
    let (_root, app, id) = queued_deployment(backend).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    // Claimed three times (its attempts) by a worker that never renews.
    for _ in 0..3 {
        let now = chrono::Utc::now().timestamp_millis();
        let claimed = app.core.db().claim_job("gone", now, 1).await.unwrap();
        assert!(claimed.is_some());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        app.core
            .reap_jobs(chrono::Utc::now().timestamp_millis())
            .await
            .unwrap();
    }
    let failed = settled(&alice, &id).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["reason"].as_str().unwrap().contains("stopped"),
        "{failed}"
    );
}

/// A folder right below the export root is one user's: one named as a
/// user is theirs, even before they deploy there; another is its first
/// deployer's. Another user lays no file there, nor below it, whatever its
/// name (a hypervisor reading that folder would boot it). The root's own
/// files are shared, each kept by whoever deployed it first, and none
/// takes a name another user keeps.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_folder_below_the_export_root_is_one_users(#[case] backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    for folder in ["alice/nested", "bob", "team"] {
        std::fs::create_dir_all(root.path().join(folder)).unwrap();
    }
    let app = alice_and_bob_exporting_to(backend, root.path()).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let at = |folder: &str| format!("file://{}", root.path().join(folder).display());

    // Bob, first into Alice's folder and below it, and second into a
    // folder Alice deployed into first: refused, nothing written.
    for (folder, title) in [("alice", "planted"), ("alice/nested", "deeper")] {
        refused_into(&root, &bob, at(folder), folder, title).await;
    }
    let team = deployed_into(&alice, at("team"), "shared").await;
    assert_eq!(team["state"], "done", "{team}");
    refused_into(&root, &bob, at("team"), "team", "planted").await;
    for (who, folder, title) in [
        (&alice, "alice", "appliance"),
        (&alice, "alice/nested", "nested"),
        (&bob, "bob", "bobs"),
        (&alice, "", "root-a"),
        (&bob, "", "root-b"),
    ] {
        let done = deployed_into(who, at(folder), title).await;
        assert_eq!(done["state"], "done", "{folder}/{title}: {done}");
    }
    // Each of the root's files is its first deployer's, and no file there
    // takes the name of another user's folder, made or not yet made, in any
    // case; nor does one claim its name from the accounts to come.
    // Whichever it is, the reason is the same: it tells no one which
    // accounts exist, nor what others deployed.
    let taken = settled_reason(&deployed_into(&bob, at(""), "root-a").await);
    let reason = "that name is taken at the export root";
    assert!(taken.contains(reason), "{taken}");
    assert!(!taken.contains("another user"), "{taken}");
    app.add_user("dave", "dave-password").await;
    for (who, title) in [
        (&bob, "team"),
        (&alice, "bob"),
        (&alice, "Bob"),
        (&alice, "dave"),
    ] {
        let taken = settled_reason(&deployed_into(who, at(""), title).await);
        assert!(taken.contains(reason), "{title}: {taken}");
        assert!(!taken.contains("another user"), "{title}: {taken}");
    }
    for name in ["bob", "Bob", "dave"] {
        assert!(
            !root.path().join(name).is_file(),
            "a file was laid as {name}"
        );
    }
    // Nor is a file named as the copies a killed server leaves, which are
    // removed once they look abandoned.
    let taken =
        settled_reason(&deployed_into(&alice, at(""), ".a.0123456789ab.depot-partial").await);
    assert!(taken.contains("partial files"), "{taken}");
    let erin = deployed_into(&alice, at(""), "erin").await;
    assert_eq!(erin["state"], "done", "{erin}");
    app.add_user("erin", "erin-password").await;
    std::fs::create_dir(root.path().join("dave")).unwrap();
    let dave = Vice::new(&app, "dave", "dave-password");
    let done = deployed_into(&dave, at("dave"), "daves").await;
    assert_eq!(done["state"], "done", "{done}");
}

/// Why a settled deployment is not done.
fn settled_reason(deployment: &Value) -> String {
    assert_ne!(deployment["state"], "done", "{deployment}");
    deployment["reason"].as_str().unwrap().to_owned()
}

/// A deployment of `vice`'s into `folder`, refused at once for another
/// user's, as a missing folder is.
async fn refused_into(
    root: &tempfile::TempDir,
    vice: &Vice<'_>,
    location: String,
    folder: &str,
    title: &str,
) {
    let (status, refused) = deploy_into(vice, location, title).await;
    assert_eq!(status, 405, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("that you may deploy into"), "{message}");
    assert!(
        !root.path().join(folder).join(title).exists(),
        "{folder}/{title}"
    );
}

/// An image of `vice`'s named `title`, deployed into a new environment at
/// `location`: the answer to the deployment's request.
async fn deploy_into(vice: &Vice<'_>, location: String, title: &str) -> (u16, Value) {
    let image = image_with(vice, title, iso_bytes(100_000)).await;
    let (_, environment) = environment_at(vice, location).await;
    let environment = environment["id"].as_str().unwrap().to_owned();
    deploy(vice, &environment, &image).await
}

/// An image of `vice`'s named `title`, deployed into a new environment at
/// `location`: the deployment once settled.
async fn deployed_into(vice: &Vice<'_>, location: String, title: &str) -> Value {
    let (status, started) = deploy_into(vice, location, title).await;
    assert_eq!(status, 201, "{started}");
    settled(vice, started["id"].as_str().unwrap()).await
}

/// What another user's folder holds is not told: a deployment into a
/// folder inside it is refused as one into a missing folder is, the same
/// answer whichever exists.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn nothing_tells_what_another_users_folder_holds(#[case] backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("alice/present")).unwrap();
    let app = alice_and_bob_exporting_to(backend, root.path()).await;
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let mut answers = Vec::new();
    for folder in ["alice/present", "alice/absent"] {
        let location = format!("file://{}", root.path().join(folder).display());
        let (status, answer) = deploy_into(&bob, location, "probe").await;
        let message = answer["message"].as_str().unwrap().replace(folder, "F");
        answers.push((status, message));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 405, "{answers:?}");
}

/// A folder below the export root that a user deploys into before any
/// account has its name stays theirs: no account is made with that name
/// later (it would find their files where its own are looked for).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn no_account_is_named_as_another_users_export_folder(#[case] backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("carol")).unwrap();
    let app = alice_and_bob_exporting_to(backend, root.path()).await;
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let at = format!("file://{}", root.path().join("carol").display());
    let planted = deployed_into(&bob, at, "planted").await;
    assert_eq!(planted["state"], "done", "{planted}");

    let admin = Vice::new(&app, "admin", crate::helpers::ADMIN_PASSWORD);
    let (status, refused) = admin
        .json(
            Method::POST,
            "/user",
            Some(&json!({"username": "carol", "password": "carol-secret-1"})),
        )
        .await;
    assert_ne!(status, 200, "{refused}");
    assert!(refused.to_string().contains("export root"), "{refused}");
    let (status, made) = admin
        .json(
            Method::POST,
            "/user",
            Some(&json!({"username": "carole", "password": "carol-secret-1"})),
        )
        .await;
    assert_eq!(status, 200, "{made}");
}

/// An account disabled with deployments still queued writes nothing more
/// below the export root: each fails when its turn comes, saying why (a
/// sync of the account's stores nothing either).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_disabled_accounts_queued_deployments_write_nothing(#[case] backend: Backend) {
    let (root, app, id) = queued_deployment(backend).await;
    let id: i64 = id.parse().unwrap();
    let alice_id = app
        .core
        .db()
        .user_by_name("alice")
        .await
        .unwrap()
        .unwrap()
        .id;
    let (status, disabled) = crate::helpers::ui_call(
        &app,
        ("admin", crate::helpers::ADMIN_PASSWORD),
        "users/change",
        &[("id", &alice_id.to_string()), ("action", "disable")],
    )
    .await;
    assert_eq!(status, 200, "{disabled}");

    // Its turn comes.
    let now = chrono::Utc::now().timestamp_millis();
    let job = app.core.db().claim_job("test", now, 60_000).await.unwrap();
    app.core
        .run_job(&job.expect("the deployment's job"))
        .await
        .unwrap();
    let ended = app.core.db().deployment(id).await.unwrap().unwrap();
    assert_eq!(ended.state, "failed", "{ended:?}");
    assert!(ended.reason.contains("disabled"), "{ended:?}");
    let laid: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert!(laid.is_empty(), "laid below the export root: {laid:?}");
}

/// A job taken back from a worker that stopped (server B's reaper), then
/// failed or done meanwhile by another (server C) shows what C found: B's
/// word that it waits again, arriving last, changes nothing (shown queued
/// for good, it would hold one of its user's places).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_late_reapers_word_changes_nothing(#[case] backend: Backend) {
    let (_root, app, id) = queued_deployment(backend).await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let db = app.core.db();
    let now = || chrono::Utc::now().timestamp_millis();
    // A worker that stops; B takes its job back.
    assert!(db.claim_job("gone", now(), 1).await.unwrap().is_some());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let reaped = db.reap_jobs(now()).await.unwrap();
    let [(job, state)] = reaped.as_slice() else {
        panic!("{reaped:?}");
    };
    assert_eq!(state, "queued");
    let reapers_word = || {
        app.core
            .job_failed(job, "the deployment stopped before finishing", true)
    };
    // C claims it, and it fails, to be tried again.
    let taken = db.claim_job("c", now(), 60_000).await.unwrap().unwrap();
    let reason = "the export root was away";
    let failed = db
        .fail_job(taken.id, "c", now(), now(), reason)
        .await
        .unwrap();
    assert_eq!(failed.as_deref(), Some("queued"));
    app.core.job_failed(&taken, reason, true).await.unwrap();
    reapers_word().await.unwrap();
    let shown = settled(&alice, &id).await;
    assert_eq!(shown["reason"], reason, "{shown}");
    // C claims it again and does it.
    let taken = db.claim_job("c", now(), 60_000).await.unwrap().unwrap();
    app.core.run_job(&taken).await.unwrap();
    assert!(db.finish_job(taken.id, "c", now()).await.unwrap());
    reapers_word().await.unwrap();
    let done = settled(&alice, &id).await;
    assert_eq!(done["state"], "done", "{done}");
}
