//! The Environments and Deployments pages' listings: an admin sees
//! everyone's with an owner column, a user only theirs, a page at a time.

use reqwest::Method;
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};
use crate::vice::Vice;
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
