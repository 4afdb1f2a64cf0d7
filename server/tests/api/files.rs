//! Image bytes: streamed uploads, ranged downloads, dedup, limits, and
//! interrupted uploads that leave nothing behind.

use std::time::Duration;

use rstest::rstest;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use depot_server::blob::Area;

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn an_upload_downloads_back_identical_with_ranges_and_etag(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bytes = random_bytes(3 * 1024 * 1024 + 17);
    let sha = hex::encode(Sha256::digest(&bytes));
    let response = app
        .upload("admin", ADMIN_PASSWORD, "disk é.img", bytes.clone())
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let image = &body["images"][0];
    assert_eq!(location, format!("/image/{}", image["id"]));
    assert_eq!(image["sha256"], sha.as_str());
    assert_eq!(image["size"], bytes.len());
    assert_eq!(image["format"], "raw");
    assert_eq!(image["kind"], "disk");
    assert_eq!(image["name"], "disk é.img");

    let url = app.url(&format!("/api/images/{}/download", image["id"]));
    let whole = admin_get(&url, &[]).await;
    assert_eq!(whole.status(), 200);
    let headers = whole.headers().clone();
    assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
    assert_eq!(headers["etag"], format!("\"{sha}\"").as_str());
    assert_eq!(headers["accept-ranges"], "bytes");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("filename*=UTF-8''disk%20%C3%A9%2Eimg"));
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &bytes[..]);

    let part = admin_get(&url, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 1000-1999/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[1000..2000]);

    let beyond = admin_get(&url, &[("range", &format!("bytes={}-", bytes.len() + 5))]).await;
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{}", bytes.len()).as_str()
    );

    let cached = admin_get(&url, &[("if-none-match", &format!("\"{sha}\""))]).await;
    assert_eq!(cached.status(), 304);
}

/// An empty file has no byte to send: a range of it is 416 (`*/0`), never
/// a 206 of a byte it does not have, on local disk or object store; without
/// a range, or with a suffix range (the one kind RFC 9110 counts as
/// satisfiable: the whole file, empty), it downloads whole, empty.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_range_of_an_empty_file_is_unsatisfiable(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .upload("admin", ADMIN_PASSWORD, "empty.img", Vec::new())
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let url = app.url(&format!("/api/images/{}/download", body["images"][0]["id"]));
    for range in ["bytes=0-", "bytes=0-0"] {
        let answer = admin_get(&url, &[("range", range)]).await;
        assert_eq!(answer.status(), 416, "{range}");
        assert_eq!(answer.headers()["content-range"], "bytes */0", "{range}");
    }
    for range in [None, Some("bytes=-1")] {
        let headers: Vec<(&str, &str)> = range.iter().map(|range| ("range", *range)).collect();
        let whole = admin_get(&url, &headers).await;
        assert_eq!(whole.status(), 200, "{range:?}");
        assert!(whole.bytes().await.unwrap().is_empty());
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn identical_content_is_stored_once(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let bytes = random_bytes(100_000);
    for name in ["a.img", "b.img"] {
        assert_eq!(
            app.upload("admin", ADMIN_PASSWORD, name, bytes.clone())
                .await
                .status(),
            201
        );
    }
    assert_eq!(app.stored(Area::Blobs).await.len(), 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn the_format_comes_from_the_bytes_and_unsafe_disks_are_refused(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut iso = vec![0u8; 40_000];
    iso[0x8001..0x8006].copy_from_slice(b"CD001");
    let response = app
        .upload("admin", ADMIN_PASSWORD, "named-like-a.img", iso)
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["images"][0]["format"], "iso");
    assert_eq!(body["images"][0]["kind"], "iso");

    let mut qcow2 = vec![0u8; 512];
    qcow2[..4].copy_from_slice(b"QFI\xfb");
    qcow2[4..8].copy_from_slice(&3u32.to_be_bytes());
    qcow2[8..16].copy_from_slice(&512u64.to_be_bytes());
    let refused = app
        .upload("admin", ADMIN_PASSWORD, "linked.qcow2", qcow2)
        .await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("backing file"),
        "{body}"
    );
    assert_eq!(
        app.stored(Area::Blobs).await.len(),
        1,
        "the refused file was kept"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn quotas_and_size_limits_refuse_with_413_and_keep_nothing(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| {
        args.user_quota_bytes = Some(150_000);
        args.max_upload_bytes = 120_000;
    })
    .await;
    let too_big = app
        .upload("admin", ADMIN_PASSWORD, "big.img", random_bytes(130_000))
        .await;
    assert_eq!(too_big.status(), 413);
    assert_eq!(
        app.upload("admin", ADMIN_PASSWORD, "ok.img", random_bytes(100_000))
            .await
            .status(),
        201
    );
    let over_quota = app
        .upload("admin", ADMIN_PASSWORD, "more.img", random_bytes(60_000))
        .await;
    assert_eq!(over_quota.status(), 413);
    let body: Value = over_quota.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("bytes"), "{body}");
    assert_eq!(app.stored(Area::Blobs).await.len(), 1);
    assert!(app.stored(Area::Staging).await.is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_connection_cut_mid_upload_leaves_no_record_and_no_file(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let boundary = "depot-test-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.img\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let declared = head.len() + 20 * 1024 * 1024;
    let credentials = base64_basic("admin", ADMIN_PASSWORD);
    let request = format!(
        "POST /api/upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {declared}\r\n\r\n{head}",
        app.address
    );
    let mut socket = tokio::net::TcpStream::connect(app.address).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    socket
        .write_all(&random_bytes(9 * 1024 * 1024))
        .await
        .unwrap();
    socket.flush().await.unwrap();
    // Let the server write part of it to its temporary file (or, on an
    // object store, send its first part of a multipart upload), then hang up.
    let mut saw_partial = false;
    for _ in 0..50 {
        if !app.stored(Area::Staging).await.is_empty() {
            saw_partial = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_partial, "the upload never reached the temporary folder");
    drop(socket);

    let left = app.stored_once_settled(Area::Staging).await;
    assert!(left.is_empty(), "a partial file was left: {left:?}");
    assert!(app.stored(Area::Blobs).await.is_empty());
    assert_eq!(images_listed(&app).await, 0);
}

/// Downloads from the object store that clients ask for and then take
/// nothing of: what the server holds for them stays within its room for
/// segments fetched ahead (64 MiB), where each held three 8 MiB segments
/// (twelve of them 384 MiB), and every one of them began.
#[tokio::test]
async fn stalled_downloads_from_the_object_store_hold_little_memory() {
    let app = TestApp::spawn(Backend::Shared).await;
    let response = app
        .upload("admin", ADMIN_PASSWORD, "large.img", random_bytes(40 << 20))
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let credentials = base64_basic("admin", ADMIN_PASSWORD);
    let request = format!(
        "GET /api/images/{}/download HTTP/1.1\r\nHost: depot\r\nAuthorization: Basic {credentials}\r\n\r\n",
        body["images"][0]["id"]
    );
    let before = resident_kib();
    let mut stalled = Vec::new();
    for _ in 0..12 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(64 << 10).unwrap();
        let mut connection = socket.connect(app.address).await.unwrap();
        connection.write_all(request.as_bytes()).await.unwrap();
        let mut head = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut connection, &mut head)
            .await
            .unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "a download past the room begins");
        stalled.push(connection);
    }
    // What the server fetches ahead for them, given the time to.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = resident_kib().saturating_sub(before) >> 10;
    println!("{grown} MiB more for 12 stalled downloads");
    assert!(grown < 160, "{grown} MiB more for 12 stalled downloads");
    drop(stalled);
}

/// The test process's resident memory (the server runs in it), in KiB:
/// under cargo-nextest, as the test command runs them, each test is a
/// process of its own.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// How many images the catalog holds, as the admin sees it.
pub(crate) async fn images_listed(app: &TestApp) -> u64 {
    let viewer = admin_viewer(app).await;
    let page = app.core.list_images(&viewer, app::query::Query::new(1));
    page.await.unwrap().total
}

async fn admin_viewer(app: &TestApp) -> app::model::Viewer {
    let principal = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    app::model::Viewer::User(principal)
}

/// `url` asked by the admin, with `headers`.
async fn admin_get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut asked = reqwest::Client::new()
        .get(url)
        .basic_auth("admin", Some(ADMIN_PASSWORD));
    for (name, value) in headers {
        asked = asked.header(*name, *value);
    }
    asked.send().await.unwrap()
}
