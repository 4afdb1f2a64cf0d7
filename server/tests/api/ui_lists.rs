//! The Environments and Deployments pages' listings: an admin sees
//! everyone's with an owner column, a user only theirs, a page at a time.

use reqwest::Method;
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{ui_call, Backend, TestApp, ADMIN_PASSWORD};
use crate::vice::{iso_bytes, Vice};
use crate::vice_environments::seed_environment;

async fn listing(app: &TestApp, user: (&str, &str), page: &str) -> Value {
    reqwest::Client::new()
        .post(app.url("/api/ui/environments"))
        .basic_auth(user.0, Some(user.1))
        .form(&[("page", page)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_admin_pages_through_everyones_environments_with_their_owners(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let bob = Vice::new(&app, "bob", "bob-password-1");
    for _ in 0..50 {
        let (status, _) = alice
            .json(
                Method::POST,
                "/environments",
                Some(&seed_environment("pw-123456")),
            )
            .await;
        assert_eq!(status, 201);
    }
    bob.json(
        Method::POST,
        "/environments",
        Some(&seed_environment("pw-123456")),
    )
    .await;

    let admin = ("admin", ADMIN_PASSWORD);
    let first = listing(&app, admin, "1").await;
    assert_eq!(first["total"], 51, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 50);
    assert_eq!(first["items"][0]["owner"], "alice");
    let second = listing(&app, admin, "2").await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["owner"], "bob");
    assert!(
        !second.to_string().contains("pw-123456"),
        "a listing shows a password"
    );

    let theirs = listing(&app, ("bob", "bob-password-1"), "1").await;
    assert_eq!(theirs["total"], 1);
    let (_, page) = app.page(Some(admin), "/environments?page=2").await;
    assert!(
        page.contains("Page 2 of 2")
            && page.contains("data-label=\"Owner\" class=\"owner\">bob</td>"),
        "{page}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_admin_pages_through_everyones_deployments_newest_first(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let (_, image) = alice
        .json(
            Method::POST,
            "/images",
            Some(&serde_json::json!({"title": "paged", "contenttype": "disk-raw"})),
        )
        .await;
    let image_id = image["id"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new().part(
        "upfile",
        reqwest::multipart::Part::bytes(iso_bytes(64 * 1024)).file_name("disk.iso"),
    );
    let uploaded = alice
        .request(Method::POST, &format!("/image/{image_id}/file"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);
    let mut environment = seed_environment("pw-123456");
    environment["credentials"]["location"] = serde_json::json!("https://cloud.example:5000/v3");
    environment["managementlayer"]["type"] = serde_json::json!("cloudcomputing");
    let (_, created) = alice
        .json(Method::POST, "/environments", Some(&environment))
        .await;
    let environment_id = created["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for _ in 0..51 {
        let (status, deployment) = alice
            .json(
                Method::POST,
                "/deploy",
                Some(&serde_json::json!({"environmentId": environment_id, "imageid": image_id})),
            )
            .await;
        assert_eq!(status, 201, "{deployment}");
        ids.push(deployment["id"].as_str().unwrap().parse::<i64>().unwrap());
    }

    let admin = ("admin", ADMIN_PASSWORD);
    let (status, first) = ui_call(&app, admin, "deployments", &[("page", "1")]).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["total"], 51);
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    assert_eq!(items[0]["id"], *ids.last().unwrap(), "newest first");
    assert_eq!(items[0]["owner"], "alice");
    let (_, second) = ui_call(&app, admin, "deployments", &[("page", "2")]).await;
    assert_eq!(second["items"][0]["id"], ids[0]);
    let (status, _) = ui_call(&app, ("nobody", "x"), "deployments", &[("page", "1")]).await;
    assert_eq!(status, 401);
}
