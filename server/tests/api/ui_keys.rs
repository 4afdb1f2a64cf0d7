//! Coopr API keys from the Tokens page (its server functions over HTTP): a
//! user makes keys for their own tenants only, sees and revokes only theirs.

use rstest::rstest;

use crate::helpers::{ui_call, Backend, TestApp, ADMIN_PASSWORD};

async fn coopr_status(app: &TestApp, user: &str, tenant: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url("/v2/imagetypes"))
        .header("Coopr-UserID", user)
        .header("Coopr-TenantID", tenant)
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
async fn api_keys_are_made_for_the_users_own_tenants_and_revoked_by_their_owner(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = ("alice", "alice-password");
    let bob = ("bob", "bob-password-1");

    let (status, listed) = ui_call(&app, alice, "apikeys", &[]).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed, serde_json::json!({ "keys": [], "tenants": [] }));
    // A key is a way into a tenant: nobody makes one for a tenant they are not in.
    let (status, refused) = ui_call(&app, alice, "apikeys/create", &[("tenant", "lab")]).await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused.to_string().contains("not a member"), "{refused}");

    // An operator's `depot apikey create` makes Alice a member of `lab`.
    let key_of_alice = app.core.issue_api_key("alice", "lab").await.unwrap().key;
    let (status, made) = ui_call(&app, alice, "apikeys/create", &[("tenant", "lab")]).await;
    assert_eq!(status, 200, "{made}");
    assert_eq!(made["tenant"], "lab");
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(coopr_status(&app, "alice", "lab", &key).await, 200);

    let (_, listed) = ui_call(&app, alice, "apikeys", &[]).await;
    assert_eq!(listed["tenants"], serde_json::json!(["lab"]));
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(!listed.to_string().contains(&key), "a listing shows a key");
    let newest = keys.last().unwrap()["id"].to_string();

    // Bob sees none of them and cannot revoke Alice's.
    let (_, his) = ui_call(&app, bob, "apikeys", &[]).await;
    assert_eq!(his["keys"], serde_json::json!([]));
    assert_eq!(
        ui_call(&app, bob, "apikeys/revoke", &[("id", &newest)])
            .await
            .0,
        404
    );
    assert_eq!(coopr_status(&app, "alice", "lab", &key).await, 200);
    assert_eq!(
        ui_call(&app, alice, "apikeys/revoke", &[("id", &newest)])
            .await
            .0,
        200
    );
    assert_eq!(coopr_status(&app, "alice", "lab", &key).await, 401);

    // Keys are rows kept until revoked: an account holds at most 50.
    for _ in 1..50 {
        let (status, made) = ui_call(&app, alice, "apikeys/create", &[("tenant", "lab")]).await;
        assert_eq!(status, 200, "{made}");
    }
    let (status, refused) = ui_call(&app, alice, "apikeys/create", &[("tenant", "lab")]).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused.to_string().contains("50 API keys"), "{refused}");
    let (_, listed) = ui_call(&app, alice, "apikeys", &[]).await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 50);
    let newest = keys.last().unwrap()["id"].to_string();
    let (status, _) = ui_call(&app, alice, "apikeys/revoke", &[("id", &newest)]).await;
    assert_eq!(status, 200);
    let (status, made) = ui_call(&app, alice, "apikeys/create", &[("tenant", "lab")]).await;
    assert_eq!(status, 200, "{made}");

    // An admin may open a new tenant with their own key.
    let admin = ("admin", ADMIN_PASSWORD);
    let (status, made) = ui_call(&app, admin, "apikeys/create", &[("tenant", "ops")]).await;
    assert_eq!(status, 200, "{made}");
    let key = made["key"].as_str().unwrap();
    assert_eq!(coopr_status(&app, "admin", "ops", key).await, 200);
    let (status, _) = ui_call(&app, admin, "apikeys/create", &[("tenant", "no spaces")]).await;
    assert_eq!(status, 400);

    // An administrator's key opens a tenant while they are one: it made
    // them no member, so a demotion leaves them none of the tenants they
    // had keys for (it left them all, for good).
    let (_, listed) = ui_call(&app, admin, "apikeys", &[]).await;
    assert_eq!(listed["tenants"], serde_json::json!([]));
    app.core
        .create_user("root", "root-password", app::model::Role::Admin)
        .await
        .unwrap();
    let admin_id = app.core.login("admin", ADMIN_PASSWORD).await.unwrap().id;
    let (status, demoted) = ui_call(
        &app,
        ("root", "root-password"),
        "users/change",
        &[("id", &admin_id.to_string()), ("action", "make-user")],
    )
    .await;
    assert_eq!(status, 200, "{demoted}");
    assert_eq!(coopr_status(&app, "admin", "ops", key).await, 401);
    let (status, refused) = ui_call(&app, admin, "apikeys/create", &[("tenant", "ops")]).await;
    assert_eq!(status, 403, "{refused}");
    // A member's key is a member's, whoever made it: the operator's
    // `depot apikey create` makes its user a member.
    assert_eq!(coopr_status(&app, "alice", "lab", &key_of_alice).await, 200);
}
