//! Accounts as an administrator manages them from the Users page (its
//! server functions over HTTP): create, promote, disable, enable, reset a
//! password; and every credential of a disabled or reset account failing,
//! for good (enabling the account again brings back its password only).

use rstest::rstest;
use serde_json::Value;

use crate::helpers::{ui_call, Backend, TestApp, ADMIN_PASSWORD};

const ADMIN: (&str, &str) = ("admin", ADMIN_PASSWORD);

/// The status of a request that needs a signed-in user, made with Basic credentials.
async fn basic_status(app: &TestApp, user: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url("/api/tokens"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn bearer_status(app: &TestApp, token: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url("/api/tokens"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A signed-in browser session of `user`.
async fn browser_of(app: &TestApp, user: &str, password: &str) -> reqwest::Client {
    let browser = app.browser();
    let signed_in = browser
        .post(app.url("/api/ui/login"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200, "{user} cannot sign in");
    browser
}

async fn session_user(app: &TestApp, browser: &reqwest::Client) -> Value {
    browser
        .post(app.url("/api/ui/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn coopr_status(app: &TestApp, user: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url("/v2/imagetypes"))
        .header("Coopr-UserID", user)
        .header("Coopr-TenantID", "lab")
        .header("Coopr-ApiKey", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn only_an_admin_manages_accounts_and_input_is_checked(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let anonymous = reqwest::Client::new()
        .post(app.url("/api/ui/users"))
        .form(&[("page", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let alice = ("alice", "alice-password");
    assert_eq!(ui_call(&app, alice, "users", &[("page", "1")]).await.0, 403);
    let (status, _) = ui_call(
        &app,
        alice,
        "users/create",
        &[("username", "mallory"), ("password", "mallory-pass")],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        ui_call(
            &app,
            alice,
            "users/change",
            &[("id", "1"), ("action", "disable")]
        )
        .await
        .0,
        403
    );
    assert_eq!(
        ui_call(&app, alice, "users/reset-password", &[("id", "1")])
            .await
            .0,
        403
    );

    let (status, listed) = ui_call(&app, ADMIN, "users", &[("page", "1")]).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["total"], 2);
    let names: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "alice"]);
    assert!(
        !listed.to_string().contains("argon2"),
        "a listing leaks a password hash"
    );

    for (username, password, reason) in [
        ("alice", "long-enough", "taken"),
        ("bad name", "long-enough", "a username is"),
        ("carol", "short", "at least 8"),
        ("carol", &"p".repeat(1025), "at most 1024"),
    ] {
        let (status, answer) = ui_call(
            &app,
            ADMIN,
            "users/create",
            &[("username", username), ("password", password)],
        )
        .await;
        assert!(
            status == 400 || status == 409,
            "{username}: {status} {answer}"
        );
        assert!(answer.to_string().contains(reason), "{answer}");
    }
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "users/change",
            &[("id", "999"), ("action", "disable")]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "users/change",
            &[("id", "2"), ("action", "explode")]
        )
        .await
        .0,
        400
    );

    // An admin never locks themselves out by a slip.
    let admin_id = listed["items"][0]["id"].to_string();
    for action in ["disable", "make-user"] {
        let (status, answer) = ui_call(
            &app,
            ADMIN,
            "users/change",
            &[("id", &admin_id), ("action", action)],
        )
        .await;
        assert_eq!(status, 400, "{action}: {answer}");
    }
    assert_eq!(basic_status(&app, ADMIN.0, ADMIN.1).await, 200);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_disabled_account_has_no_working_credential_until_enabled(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, carol) = ui_call(
        &app,
        ADMIN,
        "users/create",
        &[("username", "carol"), ("password", "carol-password")],
    )
    .await;
    assert_eq!(status, 200, "{carol}");
    assert_eq!(carol["role"], "user");
    let id = carol["id"].to_string();

    // Every way Carol can act: password (verified, then remembered), a
    // browser session, a token, a Coopr API key.
    assert_eq!(basic_status(&app, "carol", "carol-password").await, 200);
    let browser = browser_of(&app, "carol", "carol-password").await;
    assert_eq!(session_user(&app, &browser).await["username"], "carol");
    let token: Value = reqwest::Client::new()
        .post(app.url("/api/tokens"))
        .basic_auth("carol", Some("carol-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    assert_eq!(bearer_status(&app, &token).await, 200);
    let key = app.core.issue_api_key("carol", "lab").await.unwrap().key;
    assert_eq!(coopr_status(&app, "carol", &key).await, 200);

    let (status, disabled) = ui_call(
        &app,
        ADMIN,
        "users/change",
        &[("id", &id), ("action", "disable")],
    )
    .await;
    assert_eq!(status, 200, "{disabled}");
    assert_eq!(disabled["disabled"], true);
    // The password was remembered a moment ago; it opens nothing now, and
    // is answered as a wrong one is (the right one does not show itself
    // by a quicker or other answer).
    assert_eq!(basic_status(&app, "carol", "carol-password").await, 401);
    let started = std::time::Instant::now();
    assert_eq!(basic_status(&app, "carol", "carol-passwore").await, 401);
    let wrong_took = started.elapsed();
    let started = std::time::Instant::now();
    assert_eq!(basic_status(&app, "carol", "carol-password").await, 401);
    assert!(
        started.elapsed() >= wrong_took.min(std::time::Duration::from_millis(250)),
        "the right password of a disabled account was answered sooner"
    );
    assert_eq!(session_user(&app, &browser).await, Value::Null);
    assert_eq!(bearer_status(&app, &token).await, 401);
    assert_eq!(coopr_status(&app, "carol", &key).await, 401);
    let refused = app
        .browser()
        .post(app.url("/api/ui/login"))
        .form(&[("username", "carol"), ("password", "carol-password")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    // Enabled again: the password and the key work; what was ended stays ended.
    let (status, _) = ui_call(
        &app,
        ADMIN,
        "users/change",
        &[("id", &id), ("action", "enable")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(basic_status(&app, "carol", "carol-password").await, 200);
    assert_eq!(coopr_status(&app, "carol", &key).await, 401);
    assert_eq!(bearer_status(&app, &token).await, 401);
    assert_eq!(session_user(&app, &browser).await, Value::Null);

    // Made an admin, Carol manages accounts too.
    assert_eq!(
        ui_call(&app, ("carol", "carol-password"), "users", &[("page", "1")])
            .await
            .0,
        403
    );
    let (status, promoted) = ui_call(
        &app,
        ADMIN,
        "users/change",
        &[("id", &id), ("action", "make-admin")],
    )
    .await;
    assert_eq!((status, promoted["role"].as_str()), (200, Some("admin")));
    assert_eq!(
        ui_call(&app, ("carol", "carol-password"), "users", &[("page", "1")])
            .await
            .0,
        200
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_reset_password_replaces_the_old_one_everywhere_at_once(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("dave", "dave-password").await;
    // Verified, so remembered for a minute, signed in in a browser, with a
    // token and a Coopr key.
    assert_eq!(basic_status(&app, "dave", "dave-password").await, 200);
    let browser = browser_of(&app, "dave", "dave-password").await;
    let key = app.core.issue_api_key("dave", "lab").await.unwrap().key;
    assert_eq!(coopr_status(&app, "dave", &key).await, 200);
    let token: Value = reqwest::Client::new()
        .post(app.url("/api/tokens"))
        .basic_auth("dave", Some("dave-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let (_, listed) = ui_call(&app, ADMIN, "users", &[("page", "1")]).await;
    let dave = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["username"] == "dave")
        .unwrap()["id"]
        .to_string();

    // A request that proved the old password just before the reset, and
    // asks for a token just after it, gets none.
    let proved_before = app.core.login("dave", "dave-password").await.unwrap();
    let (status, reset) = ui_call(&app, ADMIN, "users/reset-password", &[("id", &dave)]).await;
    assert_eq!(status, 200, "{reset}");
    assert_eq!(reset["username"], "dave");
    let new_password = reset["password"].as_str().unwrap().to_owned();
    assert!(new_password.len() >= 16);

    assert_eq!(basic_status(&app, "dave", "dave-password").await, 401);
    assert_eq!(session_user(&app, &browser).await, Value::Null);
    assert_eq!(bearer_status(&app, &token).await, 401);
    assert_eq!(coopr_status(&app, "dave", &key).await, 401);
    assert!(app.core.issue_token(&proved_before, None).await.is_err());
    assert_eq!(basic_status(&app, "dave", &new_password).await, 200);
    let browser = browser_of(&app, "dave", &new_password).await;
    assert_eq!(session_user(&app, &browser).await["username"], "dave");
}

/// Servers sharing a new database, started at the same time, each make
/// sure of the `admin` account: one makes it, and every one starts; with
/// `--demo`, the catalog is seeded once.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn servers_started_together_on_a_new_database_all_start(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    crate::helpers::execute(&app, "DELETE FROM users").await;
    let password = Some(ADMIN_PASSWORD);
    let (a, b) = tokio::join!(
        app.core.ensure_admin(password),
        app.core.ensure_admin(password)
    );
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(basic_status(&app, ADMIN.0, ADMIN.1).await, 200);
    // With `--demo`, both find the catalog empty: it is seeded once.
    let (a, b) = tokio::join!(app.core.seed_demo_catalog(), app.core.seed_demo_catalog());
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    let alone = TestApp::spawn_with(backend, |args| args.demo = true).await;
    let seeded = alone.core.db().count_images().await.unwrap();
    assert_eq!(app.core.db().count_images().await.unwrap(), seeded);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn two_administrators_demoting_each_other_leave_one(#[case] backend: Backend) {
    use app::model::{Role, UserChange, Viewer};
    let app = TestApp::spawn(backend).await;
    let root = app
        .core
        .create_user("root", "root-password", Role::Admin)
        .await
        .unwrap();
    // Both callers read as administrators as their requests began (each
    // demoting the other at once); the first change lands before the
    // second is written.
    let admin_principal = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    let admin = admin_principal.id;
    let as_admin = Viewer::User(admin_principal);
    let as_root = Viewer::User(app.core.login("root", "root-password").await.unwrap());
    app.core
        .change_account(&as_root, admin, UserChange::Role(Role::User))
        .await
        .unwrap();
    let refused = app
        .core
        .change_account(&as_admin, root, UserChange::Role(Role::User))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("no longer an administrator"),
        "{refused}"
    );
    for late in [UserChange::Disabled, UserChange::Role(Role::Admin)] {
        assert!(app
            .core
            .change_account(&as_admin, root, late)
            .await
            .is_err());
    }
    assert!(app.core.reset_password(&as_admin, root).await.is_err());
    // Nor is an account made by the one demoted (an administrator made so
    // would keep them one).
    let made = app
        .core
        .create_account(&as_admin, "backdoor", "backdoor-password", Role::Admin)
        .await;
    assert!(made.is_err());
    assert_eq!(
        basic_status(&app, "backdoor", "backdoor-password").await,
        401
    );
    // Root is still an administrator, with the password they had.
    assert_eq!(basic_status(&app, "root", "root-password").await, 200);
    let (status, _) = ui_call(&app, ("root", "root-password"), "users", &[("page", "1")]).await;
    assert_eq!(status, 200);
}
