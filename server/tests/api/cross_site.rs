//! Browsers' credentials never carry a cross-site request, and user files
//! are never active content on Depot's origin; pages send the usual
//! security headers with a policy fitting the WASM app.

use rstest::rstest;
use serde_json::Value;

use depot_server::blob::Area;

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn cross_site_requests_change_nothing_and_scripts_are_unaffected(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = app.browser();

    // Login CSRF: a form on another site cannot sign the browser in.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "null"),
    ] {
        let planted = browser
            .post(app.url("/api/ui/login"))
            .header("accept", "text/html")
            .header(name, value)
            .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(planted.status(), 403, "{name}: {value}");
        assert!(planted.headers().get("set-cookie").is_none());
    }
    // The same form from Depot's own page signs in.
    let own = browser
        .post(app.url("/api/ui/login"))
        .header("accept", "text/html")
        .header("origin", format!("http://{}", app.address))
        .header("sec-fetch-site", "same-origin")
        .form(&[("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert!(own.status().is_redirection(), "{}", own.status());

    // With the session cookie (or Basic credentials a browser cached), a
    // cross-site upload or delete is refused and stores or removes nothing.
    let form = || {
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(random_bytes(1000)).file_name("x.img"),
        )
    };
    let riding = browser
        .post(app.url("/api/upload"))
        .header("sec-fetch-site", "cross-site")
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(riding.status(), 403);
    let cached_basic = reqwest::Client::new()
        .post(app.url("/api/upload"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("origin", "https://evil.example")
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(cached_basic.status(), 403);
    assert!(app.stored(Area::Blobs).await.is_empty());

    // A script (no Origin, no Sec-Fetch-Site) is unaffected.
    let uploaded = app
        .upload("admin", ADMIN_PASSWORD, "script.img", random_bytes(1000))
        .await;
    assert_eq!(uploaded.status(), 201);
    let body: Value = uploaded.json().await.unwrap();
    let id = body["images"][0]["id"].as_i64().unwrap();
    let delete = browser
        .delete(app.url(&format!("/v1/image/{id}")))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 403);
    let still = reqwest::Client::new()
        .get(app.url(&format!("/api/images/{id}/download")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);
    // Reading from another site is not refused (links to Depot work).
    let read = browser
        .get(app.url("/v2/image"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn pages_send_security_headers_and_user_files_stay_inert(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = reqwest::get(app.url("/")).await.unwrap();
    let headers = page.headers().clone();
    let policy = headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("'wasm-unsafe-eval'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // The page's inline scripts carry the policy's nonce.
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the policy")
        .to_owned();
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "{html}");

    // A page a user put in their store is a sandboxed download.
    let client = reqwest::Client::new();
    let put = client
        .put(app.url("/store/evil.html"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .body("<script>alert(document.cookie)</script>")
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let got = client
        .get(app.url("/store/evil.html"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(got.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert!(got.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert_eq!(got.headers()["x-content-type-options"], "nosniff");

    // So are image downloads.
    let uploaded: Value = app
        .upload(
            "admin",
            ADMIN_PASSWORD,
            "page.html",
            b"<html>hi</html>".to_vec(),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = uploaded["images"][0]["id"].as_i64().unwrap();
    let download = client
        .get(app.url(&format!("/api/images/{id}/download")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert!(download.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    assert!(download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
}

/// A page's alert shows a failed form's error from its query (Leptos's way
/// for browsers without script): a link from elsewhere carrying one is sent
/// to the page without it (the page's script reads the address bar too), so
/// nobody else's words show there as Depot's; and never to another site
/// (`//host/` in a path is one). And a browser's page is never a Basic
/// challenge, whose password the browser would send ahead of its session
/// ever after (signing out would sign nobody out).
#[tokio::test]
async fn pages_show_no_planted_errors_and_ask_browsers_for_no_password() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // {"Invalid":"Depot has moved to depot-login.example"}, as Leptos writes it.
    let error = "eyJJbnZhbGlkIjoiRGVwb3QgaGFzIG1vdmVkIHRvIGRlcG90LWxvZ2luLmV4YW1wbGUifQ%3D%3D";
    let query = format!("a=1%202&__path=%2Fapi%2Fui%2Flogin&__err={error}");
    let page = |path: String, headers: Vec<(&'static str, String)>| {
        let mut asked = client.get(app.url(&path));
        for (name, value) in headers {
            asked = asked.header(name, value);
        }
        async move {
            let answer = asked.send().await.unwrap();
            let location = answer
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned());
            (answer.status(), location, answer.text().await.unwrap())
        }
    };
    let host = app
        .url("/")
        .split("://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    // After a form's own redirect, the page shows its error.
    for (name, value) in [
        ("sec-fetch-site", "same-origin".to_owned()),
        ("referer", format!("http://{host}/login")),
    ] {
        let (status, _, html) = page(format!("/login?{query}"), vec![(name, value)]).await;
        assert_eq!(status, 200, "{name}");
        assert!(
            html.contains("Depot has moved"),
            "{name}: the form's error is not shown"
        );
    }
    for headers in [
        vec![("sec-fetch-site", "cross-site".to_owned())],
        vec![("sec-fetch-site", "same-site".to_owned())],
        vec![("referer", "https://depot-login.example/x".to_owned())],
        vec![],
    ] {
        let (status, location, _) = page(format!("/login?{query}"), headers.clone()).await;
        assert_eq!(status, 303, "{headers:?}");
        assert_eq!(location.as_deref(), Some("/login?a=1%202"), "{headers:?}");
    }
    let (status, location, _) = page(format!("//depot-login.example/login?{query}"), vec![]).await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some("/depot-login.example/login?a=1%202")
    );

    let navigated = client
        .get(app.url("/store"))
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-site", "none")
        .send()
        .await
        .unwrap();
    assert_eq!(navigated.status(), 401);
    assert!(!navigated.headers().contains_key("www-authenticate"));
    // Nor does a page's own request (the upload page's, its session gone
    // meanwhile): the browser would ask for a password and send it from
    // then on, ahead of any session.
    let from_a_page = client
        .post(app.url("/api/upload"))
        .header("sec-fetch-mode", "cors")
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(from_a_page.status(), 401);
    assert!(!from_a_page.headers().contains_key("www-authenticate"));
    // Node's `fetch` sends a mode, and no site: a script, challenged.
    let from_node = client
        .get(app.url("/store"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert!(from_node.headers().contains_key("www-authenticate"));
    let from_a_client = client.get(app.url("/store")).send().await.unwrap();
    assert!(from_a_client.headers().contains_key("www-authenticate"));
}
