//! A file written into the personal store is an upload: a WebDAV `PUT`
//! (or `PATCH`, `COPY`, `MOVE`) takes one of its user's 8 upload places
//! while it lasts, so one account
//! holding many slow writes is refused a ninth (429, `Retry-After`) while
//! others write on; once one of its writes ends, it writes again.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::helpers::{Backend, TestApp};
use crate::store_entries::walkdir_partials;

const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password-1");

fn put(app: &TestApp, user: (&str, &str), name: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(Method::PUT, app.url(&format!("/store/{name}")))
        .basic_auth(user.0, Some(user.1))
}

#[tokio::test]
async fn a_users_slow_store_writes_hold_their_upload_places() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_user(ALICE.0, ALICE.1).await;
    app.add_user(BOB.0, BOB.1).await;
    let kept = put(&app, ALICE, "kept.img")
        .body(vec![5; 100])
        .send()
        .await
        .unwrap();
    assert!(kept.status().is_success(), "{}", kept.status());
    // Eight writes whose bodies come slowly.
    let mut senders = Vec::new();
    let mut writes = Vec::new();
    for n in 0..8 {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|piece| (piece, receiver))
        });
        sender.send(Ok(vec![1; 10])).await.unwrap();
        let write = put(&app, ALICE, &format!("slow{n}.img"))
            .body(reqwest::Body::wrap_stream(body))
            .send();
        writes.push(tokio::spawn(write));
        senders.push(sender);
    }
    // Once the eight have reached the server (each is writing its file
    // aside), a ninth is refused.
    let deadline = Instant::now() + Duration::from_secs(20);
    while walkdir_partials(&app) < 8 {
        assert!(Instant::now() < deadline, "the eight writes never began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ninth = put(&app, ALICE, "ninth.img")
        .body(vec![2; 100])
        .send()
        .await
        .unwrap();
    assert_eq!(ninth.status(), 429);
    // A partial update (SabreDAV's `PATCH`) writes too: refused alike.
    let patched = reqwest::Client::new()
        .request(Method::PATCH, app.url("/store/slow0.img"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("content-type", "application/x-sabredav-partialupdate")
        .header("x-update-range", "append")
        .body(vec![4; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 429);
    // So do a copy and a move, which go on after their client leaves (a
    // copy of a large file, asked for and dropped again and again, took
    // none before).
    for method in ["COPY", "MOVE"] {
        let copied = reqwest::Client::new()
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url("/store/kept.img"),
            )
            .basic_auth(ALICE.0, Some(ALICE.1))
            .header("destination", "/store/copied.img")
            .send()
            .await
            .unwrap();
        assert_eq!(copied.status(), 429, "{method}");
    }
    assert_eq!(ninth.headers()["retry-after"], "1");
    let bobs = put(&app, BOB, "bobs.img")
        .body(vec![3; 100])
        .send()
        .await
        .unwrap();
    assert!(bobs.status().is_success(), "{}", bobs.status());

    drop(senders);
    for write in writes {
        assert!(write.await.unwrap().unwrap().status().is_success());
    }
    let again = put(&app, ALICE, "ninth.img")
        .body(vec![2; 100])
        .send()
        .await
        .unwrap();
    assert!(again.status().is_success(), "{}", again.status());
}

/// A name longer than a store keeps (255 bytes; a path 1,024) is refused
/// before its body is written, with 414: it failed, a 500, once the whole
/// body had landed.
#[rstest::rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn names_longer_than_a_store_keeps_are_refused_before_the_body(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let longest = "n".repeat(255);
    let status = put(&app, ALICE, &longest)
        .body(vec![1; 10])
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);
    let deep = vec!["f".repeat(250); 5].join("/");
    for name in ["n".repeat(256), deep] {
        let status = put(&app, ALICE, &name)
            .body(vec![1; 10])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 414, "{}", name.len());
    }
    let copied = reqwest::Client::new()
        .request(
            Method::from_bytes(b"COPY").unwrap(),
            app.url(&format!("/store/{longest}")),
        )
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("destination", format!("/store/{}", "c".repeat(300)))
        .send()
        .await
        .unwrap();
    assert_eq!(copied.status(), 414);

    // The longest path is taken, and reached, and copied to, over WebDAV:
    // its limit is the store path's, not the request's with `/store/`.
    let dav = |method: &str, path: &str| {
        reqwest::Client::new()
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&format!("/store/{path}")),
            )
            .basic_auth(ALICE.0, Some(ALICE.1))
    };
    let mut folder = String::new();
    for letter in ["a", "b", "c", "d"] {
        folder += &letter.repeat(250);
        folder += "/";
        let made = dav("MKCOL", &folder).send().await.unwrap();
        assert_eq!(made.status(), 201);
    }
    let longest_path = format!("{folder}{}", "x".repeat(20));
    assert_eq!(longest_path.len(), 1024);
    let written = dav("PUT", &longest_path)
        .body(vec![2; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(written.status(), 201);
    let got = dav("GET", &longest_path).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let copied = dav("COPY", &longest_path)
        .header("destination", format!("/store/{folder}{}", "y".repeat(20)))
        .send()
        .await
        .unwrap();
    assert_eq!(copied.status(), 201);
    let too_long = format!("{folder}{}", "x".repeat(21));
    let refused = dav("PUT", &too_long)
        .body(vec![2; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 414);
}
