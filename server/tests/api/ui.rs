//! The browser's view: server-rendered pages, sign-in, sessions.

use std::time::{Duration, Instant};

use rstest::rstest;

use depot_server::blob::Area;

use crate::helpers::{markup, Backend, TestApp, ADMIN_PASSWORD};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn pages_render_on_the_server(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);

    let catalog = reqwest::get(app.url("/")).await.unwrap();
    assert_eq!(catalog.status(), 200);
    let html = markup(&catalog.text().await.unwrap());
    assert!(html.contains("<h1>Catalog</h1>"), "{html}");
    assert!(
        html.contains("/depot.js") && html.contains("/pkg/"),
        "no hydration script"
    );

    let login = reqwest::get(app.url("/login"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(markup(&login).contains("<label for=\"password\">Password</label>"));

    let missing = reqwest::get(app.url("/no/such/page")).await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn sign_in_sets_a_safe_session_cookie_and_sign_out_ends_it(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = app.browser();
    let response = form_sign_in(&browser, &app).await;
    assert_eq!(response.headers()["location"], "/");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("depot_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");

    let me = who_am_i(browser.post(app.url("/api/ui/me"))).await;
    assert!(me.contains("\"username\":\"admin\""), "{me}");
    // What the database holds of the session signs nobody in: a copy of
    // it (a backup, a replica) holds no cookie.
    let session = cookie.split(';').next().unwrap();
    let stored = stored_session_ids(&app).await;
    assert_eq!(stored.len(), 1);
    for id in stored {
        assert!(!session.ends_with(&format!("={id}")), "{session}");
        let forged = reqwest::Client::new()
            .post(app.url("/api/ui/me"))
            .header("cookie", format!("depot_session={id}"));
        assert_eq!(who_am_i(forged).await, "null");
    }
    let page = browser
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Sign out"),
        "the page does not show the signed-in user"
    );

    browser
        .post(app.url("/api/ui/logout"))
        .send()
        .await
        .unwrap();
    let me = who_am_i(browser.post(app.url("/api/ui/me"))).await;
    assert_eq!(me, "null");
}

/// What the `me` server function, asked so, answers: the signed-in user
/// as JSON, or `null`.
async fn who_am_i(asked: reqwest::RequestBuilder) -> String {
    asked.send().await.unwrap().text().await.unwrap()
}

/// The admin signed in through the sign-in form, posted plainly as a
/// browser without WASM posts it: the answer, a redirection.
async fn form_sign_in(client: &reqwest::Client, app: &TestApp) -> reqwest::Response {
    let response = client
        .post(app.url("/api/ui/login"))
        .header("accept", "text/html")
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    response
}

/// Over TLS (`--secure-cookies`) the session cookie is `__Host-` prefixed
/// and `Secure`, which a sibling subdomain cannot set; the server reads it
/// under that name.
#[tokio::test]
async fn a_secure_session_cookie_is_host_only() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| args.secure_cookies = true).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = form_sign_in(&client, &app).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-depot_session="), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let me = who_am_i(
        reqwest::Client::new()
            .post(app.url("/api/ui/me"))
            .header("cookie", session),
    )
    .await;
    assert!(me.contains("\"username\":\"admin\""), "{me}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn failed_sign_ins_are_slow_and_do_not_say_what_was_wrong(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut answers = Vec::new();
    for (username, password) in [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)] {
        let started = Instant::now();
        let response = app
            .browser()
            .post(app.url("/api/ui/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "answered too fast"
        );
        assert_eq!(response.status(), 401);
        assert!(response.headers().get("set-cookie").is_none());
        answers.push(response.text().await.unwrap());
    }
    assert_eq!(answers[0], answers[1], "the answers tell the cases apart");
    let error: app::error::CoreError = serde_json::from_str(&answers[0]).unwrap();
    assert_eq!(error.to_string(), "invalid username or password");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_image_page_deletes_for_its_owner_after_a_confirmation(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let made: serde_json::Value = app
        .upload(
            "alice",
            "alice-password",
            "mine.img",
            crate::helpers::random_bytes(5000),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = made["images"][0]["id"].as_i64().unwrap();
    let path = format!("/image/{id}");
    let (_, page) = app.page(Some(("alice", "alice-password")), &path).await;
    assert!(page.contains("Delete image"), "{page}");
    // Another user cannot delete it (to them it does not exist).
    let post = |user: &'static str, password: &'static str, confirm: Option<&'static str>| {
        let mut form = vec![("id", id.to_string())];
        if let Some(confirm) = confirm {
            form.push(("confirm", confirm.to_owned()));
        }
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(app.url("/api/ui/images/delete"))
            .basic_auth(user, Some(password))
            .form(&form)
            .send()
    };
    assert_eq!(
        post("bob", "bob-password-1", Some("yes"))
            .await
            .unwrap()
            .status(),
        404
    );
    // Without the confirmation nothing happens.
    assert_eq!(
        post("alice", "alice-password", None)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        app.page(Some(("alice", "alice-password")), &path).await.0,
        200
    );
    let deleted = post("alice", "alice-password", Some("yes")).await.unwrap();
    assert!(deleted.status().is_success() || deleted.status().is_redirection());
    assert_eq!(
        app.page(Some(("alice", "alice-password")), &path).await.0,
        404
    );
    assert!(app.stored(Area::Blobs).await.is_empty());
}

/// A server function asked with arguments that do not decode (an id that
/// is no number, a field missing) is the caller's mistake: 400, not the
/// server's 500.
#[tokio::test]
async fn server_functions_answer_undecodable_arguments_with_400() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (function, form) in [
        ("image", vec![("id", "abc")]),
        ("image", vec![]),
        ("images/edit", vec![("id", "1"), ("version", "x")]),
    ] {
        let answer = reqwest::Client::new()
            .post(app.url(&format!("/api/ui/{function}")))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{function} {form:?}");
    }
}

/// What answers a caller is kept by no shared cache: a page, or anything
/// answered to credentials, nowhere (gone once its session signs out); an
/// anonymous download only by the caller's browser, which asks again each
/// time.
#[tokio::test]
async fn answers_for_a_caller_are_kept_by_no_shared_cache() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let uploaded: serde_json::Value = app
        .upload("admin", ADMIN_PASSWORD, "private.img", vec![7; 4096])
        .await
        .json()
        .await
        .unwrap();
    let id = uploaded["images"][0]["id"].as_i64().unwrap();
    let client = reqwest::Client::new();
    for (path, expected) in [
        (format!("/image/{id}"), "no-store"),
        ("/".to_owned(), "no-store"),
        (format!("/api/images/{id}/download"), "private, no-store"),
        ("/api/tokens".to_owned(), "private, no-store"),
    ] {
        let answer = client
            .get(app.url(&path))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.headers()["cache-control"], expected, "{path}");
    }
    let anonymous = client.get(app.url("/v2/iso")).send().await.unwrap();
    assert_eq!(anonymous.headers()["cache-control"], "private, no-cache");
}

/// What the `sessions` table holds as ids.
async fn stored_session_ids(app: &TestApp) -> Vec<String> {
    const IDS: &str = "SELECT id FROM sessions";
    match app.core.db().pool() {
        depot_server::store::Pool::Sqlite(pool) => {
            sqlx::query_scalar(IDS).fetch_all(pool).await.unwrap()
        }
        depot_server::store::Pool::Postgres(pool) => {
            sqlx::query_scalar(IDS).fetch_all(pool).await.unwrap()
        }
    }
}
