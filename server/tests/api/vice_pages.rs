//! The browser's pages for ViCE's environments and deployments: the same
//! records the dialect serves, each user's own, passwords never shown.

use std::time::{Duration, Instant};

use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::vice::{iso_bytes, Vice};

/// Posts a server function's form as a browser without WASM does.
async fn post_form(
    app: &TestApp,
    (user, password): (&str, &str),
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url(path))
        .basic_auth(user, Some(password))
        .header("accept", "text/html")
        .header("referer", app.url("/environments"))
        .form(fields)
        .send()
        .await
        .unwrap()
}

async fn create_environment(vice: &Vice<'_>, title: &str, location: &str, password: &str) -> i64 {
    let body = json!({
        "title": title,
        "managementlayer": {"type": "basic", "software": "rsync", "version": "3"},
        "runtimetechnology": {"type": "virtualmachine"},
        "credentials": {"location": location, "username": "deployer", "password": password}
    });
    let (status, created) = vice.json(Method::POST, "/environments", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().parse().unwrap()
}

async fn wait_until_settled(app: &TestApp, user: (&str, &str), id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, deployments) = Vice::new(app, user.0, user.1)
            .json(Method::GET, "/deployments", None)
            .await;
        let found = deployments
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"].as_str().and_then(|text| text.parse().ok()) == Some(id))
            .cloned()
            .unwrap();
        if found["state"] == "done" || found["state"] == "failed" || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn environment_pages_show_the_callers_own_with_passwords_masked(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = ("alice", "alice-password");
    let bob = ("bob", "bob-password-1");
    create_environment(
        &Vice::new(&app, alice.0, alice.1),
        "Alice's lab",
        "https://lab.example:5000",
        "alice-env-secret",
    )
    .await;
    create_environment(
        &Vice::new(&app, bob.0, bob.1),
        "Bob's cluster",
        "https://bob.example",
        "bob-env-secret",
    )
    .await;

    let (status, html) = app.page(Some(alice), "/environments").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Alice&#x27;s lab") || html.contains("Alice's lab"),
        "{html}"
    );
    assert!(html.contains("basic rsync 3"), "{html}");
    assert!(html.contains("https://lab.example:5000"));
    assert!(
        html.contains("<td data-label=\"Password\" class=\"password\">********</td>"),
        "{html}"
    );
    assert!(!html.contains("alice-env-secret"));
    assert!(!html.contains("Bob"), "another user's environment is shown");

    // Registered through the page's form (no WASM): the same record ViCE lists.
    let created = post_form(
        &app,
        alice,
        "/api/ui/environments/create",
        &[
            ("environment[title]", "Export folder"),
            ("environment[management_type]", "basic"),
            ("environment[management_software]", ""),
            ("environment[management_version]", ""),
            ("environment[runtime_type]", "container"),
            ("environment[runtime_software]", "podman"),
            ("environment[runtime_version]", "5"),
            ("environment[location]", "file:///srv/exports"),
            ("environment[username]", "ops"),
            ("environment[password]", "form-env-secret"),
        ],
    )
    .await;
    assert!(created.status().is_redirection(), "{}", created.status());
    let (_, listed) = Vice::new(&app, alice.0, alice.1)
        .json(Method::GET, "/environments", None)
        .await;
    let registered = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "Export folder")
        .expect("the form's environment is not in ViCE's list");
    assert_eq!(registered["runtimetechnology"]["software"], "podman");
    assert_eq!(registered["credentials"]["password"], "********");
    let id: i64 = registered["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        app.core.environment_password(id).await.unwrap().as_deref(),
        Some("form-env-secret")
    );
    let (_, html) = app.page(Some(alice), "/environments").await;
    assert!(html.contains("Export folder") && html.contains("container podman 5"));
    assert!(!html.contains("form-env-secret"));

    // A broken rule is refused with its message, and nothing is stored.
    let refused = reqwest::Client::new()
        .post(app.url("/api/ui/environments/create"))
        .basic_auth(alice.0, Some(alice.1))
        .form(&[
            ("environment[title]", "Grid"),
            ("environment[management_type]", "grid"),
            ("environment[runtime_type]", "container"),
            ("environment[location]", "x"),
            ("environment[username]", ""),
            ("environment[password]", ""),
            ("environment[management_software]", ""),
            ("environment[management_version]", ""),
            ("environment[runtime_software]", ""),
            ("environment[runtime_version]", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("managementlayer.type"));
    let (_, html) = app.page(Some(alice), "/environments").await;
    assert!(html.contains("2 environments"), "{html}");

    // Deleting: never another's (404, kept), one's own through the row's form.
    let id_text = id.to_string();
    let stolen = reqwest::Client::new()
        .post(app.url("/api/ui/environments/delete"))
        .basic_auth(bob.0, Some(bob.1))
        .form(&[("id", id_text.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 404);
    let (_, html) = app.page(Some(alice), "/environments").await;
    assert!(html.contains(&format!(
        "<input type=\"hidden\" name=\"id\" value=\"{id}\""
    )));
    let deleted = post_form(
        &app,
        alice,
        "/api/ui/environments/delete",
        &[("id", &id_text)],
    )
    .await;
    assert!(deleted.status().is_redirection(), "{}", deleted.status());
    let (status, _) = Vice::new(&app, alice.0, alice.1)
        .json(Method::GET, &format!("/environment/{id}"), None)
        .await;
    assert_eq!(status, 404);
    let (_, html) = app.page(Some(alice), "/environments").await;
    assert!(
        html.contains("1 environment<") && !html.contains("Export folder"),
        "{html}"
    );

    // Nobody signed in: asked to sign in, shown nothing.
    let (status, html) = app.page(None, "/environments").await;
    assert_eq!(status, 401);
    assert!(html.contains("to see your environments"));
    assert!(!html.contains("lab.example"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deploying_from_the_image_page_shows_each_state(#[case] backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let export_root = root.path().to_path_buf();
    let app = TestApp::spawn_with(backend, move |args| args.export_root = Some(export_root)).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = ("alice", "alice-password");
    let bob = ("bob", "bob-password-1");
    let vice = Vice::new(&app, alice.0, alice.1);

    let bytes = iso_bytes(2 * 1024 * 1024);
    let uploaded = app.upload(alice.0, alice.1, "lab.iso", bytes.clone()).await;
    assert_eq!(uploaded.status(), 201);
    let body: Value = uploaded.json().await.unwrap();
    let image_id = body["images"][0]["id"].as_i64().unwrap();
    let folder = format!("file://{}", root.path().display());
    let into_folder = create_environment(&vice, "Export folder", &folder, "pw-1").await;
    let into_cloud =
        create_environment(&vice, "OpenStack", "https://openstack.example:5000", "pw-2").await;

    // The image page offers the owner's environments, and nobody else anything.
    let (_, html) = app.page(Some(alice), &format!("/image/{image_id}")).await;
    assert!(html.contains("name=\"environment_id\""), "{html}");
    assert!(html.contains(&format!("<option value=\"{into_cloud}\">OpenStack")));
    let (status, html) = app.page(Some(bob), &format!("/image/{image_id}")).await;
    assert_eq!(status, 404);
    assert!(!html.contains("environment_id"));

    // Deploy as the page's form posts it: the browser is sent to the deployments.
    for (environment, title) in [(into_folder, "to the folder"), (into_cloud, "to the cloud")] {
        let deployed = post_form(
            &app,
            alice,
            "/api/ui/deploy",
            &[
                ("image_id", &image_id.to_string()),
                ("environment_id", &environment.to_string()),
                ("title", title),
            ],
        )
        .await;
        assert!(deployed.status().is_redirection(), "{}", deployed.status());
        assert_eq!(deployed.headers()["location"], "/deployments");
    }
    let (_, listed) = vice.json(Method::GET, "/deployments", None).await;
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    let done = wait_until_settled(&app, alice, ids[0]).await;
    let failed = wait_until_settled(&app, alice, ids[1]).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(std::fs::read(root.path().join("lab.iso")).unwrap(), bytes);
    assert_eq!(failed["state"], "failed", "{failed}");

    let (status, html) = app.page(Some(alice), "/deployments").await;
    assert_eq!(status, 200);
    for expected in [
        "2 deployments",
        "to the folder",
        &format!("<a href=\"/image/{image_id}\">lab.iso</a>"),
        "Export folder",
        "<span class=\"state state-done\">done</span>",
        "<span class=\"state state-failed\">failed</span>",
        "target not supported",
    ] {
        assert!(html.contains(expected), "{expected} missing from {html}");
    }
    assert!(!html.contains("pw-1") && !html.contains("pw-2"));

    // A deployment's record is deleted from its row; what it copied stays.
    let failed_id = ids[1].to_string();
    let deleted = post_form(
        &app,
        alice,
        "/api/ui/deployments/delete",
        &[("id", &failed_id)],
    )
    .await;
    assert!(deleted.status().is_redirection(), "{}", deleted.status());
    let (status, _) = vice
        .json(Method::GET, &format!("/deployment/{failed_id}"), None)
        .await;
    assert_eq!(status, 404);
    let (_, html) = app.page(Some(alice), "/deployments").await;
    assert!(
        html.contains("1 deployment<") && !html.contains("to the cloud"),
        "{html}"
    );
    assert!(root.path().join("lab.iso").exists());

    // Bob sees none of them, and cannot deploy Alice's image or into her environment.
    let (_, html) = app.page(Some(bob), "/deployments").await;
    assert!(html.contains("No deployments yet"), "{html}");
    let refused = reqwest::Client::new()
        .post(app.url("/api/ui/deploy"))
        .basic_auth(bob.0, Some(bob.1))
        .form(&[
            ("image_id", image_id.to_string()),
            ("environment_id", into_folder.to_string()),
            ("title", "stolen".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let stolen = reqwest::Client::new()
        .post(app.url("/api/ui/deployments/delete"))
        .basic_auth(bob.0, Some(bob.1))
        .form(&[("id", ids[0].to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), 404);
    let (status, html) = app.page(None, "/deployments").await;
    assert_eq!(status, 401);
    assert!(html.contains("to see your deployments"));
}
