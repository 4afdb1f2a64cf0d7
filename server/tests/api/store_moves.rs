//! A `COPY` or `MOVE` over an existing destination deletes it first
//! (RFC 4918's `Overwrite`): never when that deletes the source with it,
//! nor, in an object store, the files a move cut short had moved already.

use reqwest::{Method, StatusCode};
use rstest::rstest;

use crate::helpers::{Backend, TestApp};
use crate::store::User;

/// Alice's `COPY` or `MOVE` of `from` onto `to`, which it may overwrite.
async fn moved(app: &TestApp, method: &str, from: &str, to: &str) -> StatusCode {
    reqwest::Client::new()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(&format!("/store{from}")),
        )
        .basic_auth("alice", Some("alice-password"))
        .header("destination", format!("/store{to}"))
        .send()
        .await
        .unwrap()
        .status()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn an_overwrite_never_deletes_what_it_moves(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    for folder in ["/a/", "/a/b/", "/c/", "/d/"] {
        assert_eq!(alice.dav("MKCOL", folder, None).await.0, 201);
    }
    for file in ["/a/b/x.iso", "/c/y.iso", "/d/z.iso"] {
        assert_eq!(alice.dav("PUT", file, Some(vec![1; 100])).await.0, 201);
    }
    // Onto a folder that holds the source (it went with the folder), or
    // onto something inside it (that went, and nothing came).
    for (method, from, to) in [
        ("MOVE", "/a/b", "/a"),
        ("COPY", "/a/b", "/a"),
        ("MOVE", "/a", "/a/b"),
        ("COPY", "/a", "/a/b"),
        ("MOVE", "/a", "/a/b/x.iso"),
    ] {
        assert_eq!(
            moved(&app, method, from, to).await,
            409,
            "{method} {from} {to}"
        );
        assert_eq!(
            alice.dav("GET", "/a/b/x.iso", None).await.0,
            200,
            "{method} {from} {to}"
        );
    }
    // A folder onto a folder: replaced where a move is one step (a local
    // store); refused where it is copies then deletes (an object store).
    let status = moved(&app, "MOVE", "/c", "/d").await;
    if backend == Backend::Shared {
        assert_eq!(status, 409);
        assert_eq!(alice.dav("GET", "/d/z.iso", None).await.0, 200);
        assert_eq!(alice.dav("GET", "/c/y.iso", None).await.0, 200);
    } else {
        assert!(status.is_success(), "{status}");
        assert_eq!(alice.dav("GET", "/d/y.iso", None).await.0, 200);
    }
}
