//! Answers compressed where it pays: pages, JSON and XML go brotli or gzip
//! to a client that accepts it, smaller than they are; image bytes and
//! ranges go as they are.

use rstest::rstest;

use crate::helpers::{ova_bytes, Backend, TestApp};

const ALICE: (&str, &str) = ("alice", "alice-password");

/// The body's bytes and its `Content-Encoding`, asked with `accept`.
async fn fetch(
    app: &TestApp,
    path: &str,
    accept: Option<&str>,
    extra: &[(&str, &str)],
) -> (Vec<u8>, Option<String>) {
    let mut request = reqwest::Client::new()
        .get(app.url(path))
        .basic_auth(ALICE.0, Some(ALICE.1));
    if let Some(accept) = accept {
        request = request.header("accept-encoding", accept);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|value| value.to_str().unwrap().to_owned());
    (response.bytes().await.unwrap().to_vec(), encoding)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn pages_and_documents_are_compressed_image_bytes_are_not(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    for path in ["/", "/api/openapi.json", "/api/openapi/vice.json"] {
        let (plain, none) = fetch(&app, path, None, &[]).await;
        assert_eq!(none, None, "{path}");
        for (accept, expected) in [("br", "br"), ("gzip", "gzip"), ("gzip, deflate, br", "br")] {
            let (packed, encoding) = fetch(&app, path, Some(accept), &[]).await;
            assert_eq!(encoding.as_deref(), Some(expected), "{path} {accept}");
            assert!(
                packed.len() * 2 < plain.len(),
                "{path} {accept}: {} of {} bytes",
                packed.len(),
                plain.len()
            );
        }
    }

    // An image's bytes, whole or a range, go as they are.
    let bytes = ova_bytes();
    let uploaded = app
        .upload(ALICE.0, ALICE.1, "small.ova", bytes.clone())
        .await;
    assert_eq!(uploaded.status(), 201);
    let image: serde_json::Value = uploaded.json().await.unwrap();
    let download = format!("/api/images/{}/download", image["images"][0]["id"]);
    let (whole, encoding) = fetch(&app, &download, Some("gzip, br"), &[]).await;
    assert_eq!((encoding, whole), (None, bytes.clone()));
    let (range, encoding) =
        fetch(&app, &download, Some("gzip"), &[("range", "bytes=0-2047")]).await;
    assert_eq!((encoding, range), (None, bytes[..2048].to_vec()));

    // The personal store's answers (WebDAV's XML listings included) go as
    // they are, whole.
    let listing = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            app.url("/store/"),
        )
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("depth", "1")
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 207);
    assert!(listing.headers().get("content-encoding").is_none());
    let xml = listing.text().await.unwrap();
    assert!(xml.contains("multistatus"), "{xml}");
}
