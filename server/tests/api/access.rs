//! Who may do what: tokens, Basic credentials, private images.

use rstest::rstest;
use serde_json::Value;

use depot_server::blob::Area;

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};

async fn token_for(app: &TestApp, user: &str, password: &str) -> String {
    let response = reqwest::Client::new()
        .post(app.url("/api/tokens"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn tokens_work_as_bearer_and_as_basic_username(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = token_for(&app, "admin", ADMIN_PASSWORD).await;
    let client = reqwest::Client::new();
    let me = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().text().await.unwrap()
    };
    let bearer = me(client.post(app.url("/api/ui/me")).bearer_auth(&token)).await;
    assert!(bearer.contains("\"username\":\"admin\""), "{bearer}");
    let basic = me(client
        .post(app.url("/api/ui/me"))
        .basic_auth(&token, Some("")))
    .await;
    assert!(basic.contains("\"username\":\"admin\""), "{basic}");
    let forged = me(client
        .post(app.url("/api/ui/me"))
        .bearer_auth(format!("{token}x")))
    .await;
    assert_eq!(forged, "null");

    // The token is stored hashed: looking it up as if it were its own
    // digest finds nobody.
    let stored_in_clear = app
        .core
        .db()
        .user_by_token(&token, chrono::Utc::now())
        .await
        .unwrap();
    assert!(stored_in_clear.is_none());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn private_images_are_invisible_to_other_users(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let created: Value = app
        .upload("alice", "alice-password", "secret.img", random_bytes(4096))
        .await
        .json()
        .await
        .unwrap();
    let id = created["images"][0]["id"].as_i64().unwrap();
    let download = app.url(&format!("/api/images/{id}/download"));
    let client = reqwest::Client::new();

    let by_bob = client
        .get(&download)
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_bob.status(), 404);
    let anonymous = client.get(&download).send().await.unwrap();
    assert_eq!(anonymous.status(), 404);
    let by_alice = client
        .get(&download)
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_alice.status(), 200);
    let by_admin = client
        .get(&download)
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(by_admin.status(), 200);

    let list = |user: &'static str, password: &'static str| {
        client
            .post(app.url("/api/ui/images"))
            .basic_auth(user, Some(password))
            .form(&[
                ("params[q]", ""),
                ("params[mine]", "false"),
                ("params[sort][column]", "Created"),
                ("params[page]", "1"),
            ])
            .send()
    };
    let bobs: Value = list("bob", "bob-password-1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bobs["total"], 0, "{bobs}");
    let alices: Value = list("alice", "alice-password")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alices["total"], 1, "{alices}");
    assert_eq!(alices["items"][0]["name"], "secret.img");

    let detail = client
        .post(app.url("/api/ui/image"))
        .basic_auth("bob", Some("bob-password-1"))
        .form(&[("id", id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(detail.status(), 404);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn only_admins_publish_and_anonymous_callers_cannot_upload(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("carol", "carol-password").await;
    let form = reqwest::multipart::Form::new().text("public", "true").part(
        "file",
        reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("x.img"),
    );
    let response = reqwest::Client::new()
        .post(app.url("/api/upload"))
        .basic_auth("carol", Some("carol-password"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let anonymous = reqwest::Client::new()
        .post(app.url("/api/upload"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![1]).file_name("y.img"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    assert!(app.stored(Area::Blobs).await.is_empty());
}
