//! The Store page over HTTP (its server functions and its upload form): a
//! user's own folder only, paths that cannot leave it, the quota on every
//! way in, and the Sync buttons.

use std::time::{Duration, Instant};

use rstest::rstest;
use serde_json::Value;

use crate::helpers::{random_bytes, ui_call, Backend, TestApp};
use crate::store::iso;

const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password-1");

/// Posts the page's upload form: `folder`, then the files.
async fn add_files(
    app: &TestApp,
    user: (&str, &str),
    folder: &str,
    files: &[(&str, Vec<u8>)],
) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().text("folder", folder.to_owned());
    for (name, bytes) in files {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
        );
    }
    let response = reqwest::Client::new()
        .post(app.url("/api/store/upload"))
        .basic_auth(user.0, Some(user.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn names(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let name = entry["name"].as_str().unwrap();
            if entry["folder"] == true {
                format!("{name}/")
            } else {
                name.to_owned()
            }
        })
        .collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn the_store_page_lists_adds_and_deletes_in_the_users_own_folder(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    app.add_user(BOB.0, BOB.1).await;

    let (status, root) = ui_call(&app, ALICE, "store", &[("path", "")]).await;
    assert_eq!(status, 200, "{root}");
    assert!(names(&root).is_empty());
    assert_eq!(
        ui_call(&app, ("nobody", "x"), "store", &[("path", "")])
            .await
            .0,
        401
    );

    let (status, added) = add_files(
        &app,
        ALICE,
        "",
        &[("b.iso", iso()), ("a.txt", b"hello".to_vec())],
    )
    .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(
        ui_call(
            &app,
            ALICE,
            "store/folder",
            &[("path", ""), ("name", "cds")]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        ui_call(
            &app,
            ALICE,
            "store/folder",
            &[("path", ""), ("name", "cds")]
        )
        .await
        .0,
        409
    );
    let (status, _) = add_files(&app, ALICE, "cds", &[("c.iso", iso())]).await;
    assert_eq!(status, 201);
    let (_, root) = ui_call(&app, ALICE, "store", &[("path", "")]).await;
    assert_eq!(names(&root), ["cds/", "a.txt", "b.iso"]);
    let text = root["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "a.txt")
        .unwrap()
        .clone();
    assert_eq!(text["size"], 5);
    assert!(text["modified"].is_string());
    let (_, cds) = ui_call(&app, ALICE, "store", &[("path", "cds")]).await;
    assert_eq!(names(&cds), ["c.iso"]);
    // What the page added, WebDAV serves: one store, two ways in.
    let over_dav = reqwest::Client::new()
        .get(app.url("/store/cds/c.iso"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(over_dav.status(), 200);
    assert_eq!(over_dav.bytes().await.unwrap().len(), iso().len());

    // Bob has a store of his own, and Alice's paths mean nothing in it.
    let (_, his) = ui_call(&app, BOB, "store", &[("path", "")]).await;
    assert!(names(&his).is_empty());
    assert_eq!(ui_call(&app, BOB, "store", &[("path", "cds")]).await.0, 404);
    assert_eq!(
        ui_call(&app, BOB, "store/delete", &[("path", "cds/c.iso")])
            .await
            .0,
        404
    );

    // No path leaves the store, whatever it is made of.
    for path in ["..", "../2", "cds/../..", "/etc", "cds\\..\\.."] {
        let (status, answer) = ui_call(&app, ALICE, "store", &[("path", path)]).await;
        assert!(status == 400 || status == 404, "{path}: {status} {answer}");
    }
    for name in ["..", "x/y", ""] {
        assert_eq!(
            ui_call(&app, ALICE, "store/folder", &[("path", ""), ("name", name)])
                .await
                .0,
            400,
            "{name:?}"
        );
    }
    let (status, _) = add_files(&app, ALICE, "../bob", &[("x.iso", iso())]).await;
    assert_eq!(status, 400);
    let (status, _) = add_files(&app, ALICE, "", &[("..", iso())]).await;
    assert_eq!(status, 400);
    let (status, answer) = add_files(&app, ALICE, "missing", &[("x.iso", iso())]).await;
    assert_eq!(status, 404, "{answer}");
    let long = "x".repeat(300);
    assert_eq!(
        ui_call(
            &app,
            ALICE,
            "store/folder",
            &[("path", ""), ("name", &long)]
        )
        .await
        .0,
        400
    );
    assert_eq!(
        ui_call(
            &app,
            ALICE,
            "store/folder",
            &[("path", "a.txt"), ("name", "sub")]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        ui_call(&app, ALICE, "store/delete", &[("path", "a.txt/x")])
            .await
            .0,
        404
    );
    // A file of the same name is never overwritten by the form.
    let (status, answer) = add_files(&app, ALICE, "", &[("a.txt", b"other bytes".to_vec())]).await;
    assert_eq!(status, 409, "{answer}");
    let kept = reqwest::Client::new()
        .get(app.url("/store/a.txt"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.bytes().await.unwrap().as_ref(), b"hello");

    // A link someone planted by hand is neither shown nor followed (an
    // object store has no links).
    if backend != Backend::Shared {
        let alice_id = app.core.login(ALICE.0, ALICE.1).await.unwrap().id;
        let planted = app.personal_folder(alice_id).join("etc");
        std::os::unix::fs::symlink("/etc", &planted).unwrap();
        let (_, me) = ui_call(&app, ALICE, "store", &[("path", "")]).await;
        assert_eq!(names(&me), ["cds/", "a.txt", "b.iso"]);
        let (status, answer) = ui_call(&app, ALICE, "store", &[("path", "etc")]).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains("link"), "{answer}");
        assert_eq!(
            ui_call(&app, ALICE, "store/delete", &[("path", "etc/passwd")])
                .await
                .0,
            400
        );
        std::fs::remove_file(&planted).unwrap();
    }

    // A folder goes once it is empty.
    let (status, answer) = ui_call(&app, ALICE, "store/delete", &[("path", "cds")]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("not empty"));
    assert_eq!(
        ui_call(&app, ALICE, "store/delete", &[("path", "cds/c.iso")])
            .await
            .0,
        200
    );
    assert_eq!(
        ui_call(&app, ALICE, "store/delete", &[("path", "cds")])
            .await
            .0,
        200
    );
    assert_eq!(
        ui_call(&app, ALICE, "store/delete", &[("path", "")])
            .await
            .0,
        400
    );
    let (_, root) = ui_call(&app, ALICE, "store", &[("path", "")]).await;
    assert_eq!(names(&root), ["a.txt", "b.iso"]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn the_upload_form_keeps_to_the_quota_and_leaves_nothing_partial(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(60_000)).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let (status, _) = add_files(&app, ALICE, "", &[("first.iso", iso())]).await;
    assert_eq!(status, 201);
    let (status, answer) =
        add_files(&app, ALICE, "", &[("second.iso", random_bytes(40_000))]).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer.to_string().contains("quota"), "{answer}");
    let (_, root) = ui_call(&app, ALICE, "store", &[("path", "")]).await;
    assert_eq!(names(&root), ["first.iso"]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn the_sync_button_turns_the_stores_isos_into_images(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    add_files(
        &app,
        ALICE,
        "",
        &[("disc.iso", iso()), ("broken.iso", random_bytes(3000))],
    )
    .await;
    let (status, submitted) = ui_call(&app, ALICE, "store/sync", &[("kind", "ISO")]).await;
    assert_eq!(status, 200, "{submitted}");
    assert_eq!(submitted["kind"], "ISO");
    assert_eq!(
        ui_call(&app, ALICE, "store/sync", &[("kind", "EVERYTHING")])
            .await
            .0,
        400
    );

    let started = Instant::now();
    let done = loop {
        let (_, syncs) = ui_call(&app, ALICE, "store/syncs", &[]).await;
        let newest = syncs[0].clone();
        if newest["status"] == "PROCESSED" || newest["status"] == "ERROR" {
            break newest;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sync never finished: {newest}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["added"], 1, "{done}");
    let problems = done["errors"].to_string() + &done["warnings"].to_string();
    assert!(problems.contains("broken.iso"), "{done}");
    let (_, page) = app.page(Some(ALICE), "/?mine=true").await;
    assert!(page.contains("disc.iso"), "{page}");
}
