//! Resumable uploads over tus 1.0 at `/api/uploads`, driven over HTTP as a
//! tus client does: create, append in chunks, break off and resume (on a
//! restarted server, or another server of the deployment), and every refusal
//! the protocol defines, each of which changes nothing.

use base64::Engine as _;
use reqwest::{Method, RequestBuilder, Response};
use rstest::rstest;
use serde_json::Value;
use sha2::Digest as _;

use crate::helpers::{random_bytes, Backend, TestApp};
use crate::vice::iso_bytes;

mod clients;
mod completion;
mod open;
mod replacing;
mod storage;

const ALICE: (&str, &str) = ("alice", "alice-password");

/// Base64, as tus's `Upload-Metadata` carries its values.
pub fn b64(text: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn tus(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    reqwest::Client::new()
        .request(method, app.url(path))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("tus-resumable", "1.0.0")
}

/// Creates an upload of `length` bytes; answers its path.
async fn create(app: &TestApp, length: usize, metadata: &str) -> String {
    let response = tus(app, Method::POST, "/api/uploads")
        .header("upload-length", length.to_string())
        .header("upload-metadata", metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["tus-resumable"], "1.0.0");
    assert!(response.headers().contains_key("upload-expires"));
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn patch(app: &TestApp, path: &str, offset: usize, bytes: Vec<u8>) -> Response {
    tus(app, Method::PATCH, path)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// The pieces of a body sent by hand, an error among them breaking it off;
/// it ends when the sender is dropped.
type Pieces = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// `request` with a body the test sends piece by piece: the sender, and
/// the request to await.
fn sent_by_hand(
    request: RequestBuilder,
) -> (
    Pieces,
    impl std::future::Future<Output = reqwest::Result<Response>> + 'static,
) {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|piece| (piece, receiver))
    });
    (
        sender,
        request.body(reqwest::Body::wrap_stream(body)).send(),
    )
}

/// A chunk at `offset` whose body the test sends piece by piece.
fn chunk_sent_by_hand(
    app: &TestApp,
    path: &str,
    offset: usize,
) -> (
    Pieces,
    impl std::future::Future<Output = reqwest::Result<Response>> + 'static,
) {
    sent_by_hand(
        tus(app, Method::PATCH, path)
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string()),
    )
}

/// Waits until the blob store holds `count` uploads' parts: chunks being
/// written hold their upload's writer by then.
async fn chunks_begun(app: &TestApp, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.stored(depot_server::blob::Area::Uploads).await.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "the chunks never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// While it lives, the published blobs' folder is a file: no blob can land,
/// and a completion fails on the server's side.
struct BlobsUnwritable {
    blobs: std::path::PathBuf,
    away: std::path::PathBuf,
}

impl BlobsUnwritable {
    fn new(app: &TestApp) -> Self {
        let blobs = app.data_dir.join("store").join("blobs");
        let away = app.data_dir.join("blobs-away");
        std::fs::rename(&blobs, &away).unwrap();
        std::fs::write(&blobs, b"not a folder").unwrap();
        Self { blobs, away }
    }
}

impl Drop for BlobsUnwritable {
    fn drop(&mut self) {
        std::fs::remove_file(&self.blobs).unwrap();
        std::fs::rename(&self.away, &self.blobs).unwrap();
    }
}

/// A PATCH with an `Upload-Checksum` (`<algorithm> <base64 digest>`).
async fn patch_checked(
    app: &TestApp,
    path: &str,
    offset: usize,
    bytes: &[u8],
    checksum: &str,
) -> Response {
    tus(app, Method::PATCH, path)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .header("upload-checksum", checksum)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
}

async fn offset_of(app: &TestApp, path: &str) -> u64 {
    let response = tus(app, Method::HEAD, path).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn an_upload_in_chunks_becomes_an_image(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let options = tus(&app, Method::OPTIONS, "/api/uploads")
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 204);
    assert_eq!(options.headers()["tus-version"], "1.0.0");
    let extensions = options.headers()["tus-extension"].to_str().unwrap();
    for extension in [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(
            extensions.split(',').any(|e| e == extension),
            "{extensions}"
        );
    }
    assert!(options.headers().contains_key("tus-max-size"));

    let iso = iso_bytes(300_000);
    let metadata = format!("filename {},label {}", b64(b"disc.iso"), b64(b"A disc"));
    let path = create(&app, iso.len(), &metadata).await;
    assert_eq!(offset_of(&app, &path).await, 0);
    let mut offset = 0;
    for piece in iso.chunks(100_000) {
        let response = patch(&app, &path, offset, piece.to_vec()).await;
        assert_eq!(response.status(), 204);
        offset += piece.len();
        assert_eq!(
            response.headers()["upload-offset"],
            offset.to_string().as_str()
        );
        assert_eq!(offset_of(&app, &path).await, offset as u64);
    }
    let finished: Value = tus(&app, Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let image = &finished["image"];
    assert_eq!(image["name"], "disc.iso");
    assert_eq!(image["label"], "A disc");
    assert_eq!(image["sha256"], sha256_hex(&iso));
    assert_eq!(image["size"], iso.len());
    let id = image["id"].as_i64().unwrap();
    let downloaded = reqwest::Client::new()
        .get(app.url(&format!("/api/images/{id}/download")))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(downloaded.as_ref(), iso.as_slice());
    // A complete upload takes no more bytes.
    assert_eq!(
        patch(&app, &path, iso.len(), b"more".to_vec())
            .await
            .status(),
        409
    );
    // The chunks are gone once the image has its own copy; nothing staged.
    let alice = app.core.login(ALICE.0, ALICE.1).await.unwrap();
    assert_eq!(
        app.core.quota_usage(alice.id).await.unwrap(),
        iso.len() as u64
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn creation_with_upload_and_checksums(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let bytes = random_bytes(50_000);
    let response = tus(&app, Method::POST, "/api/uploads")
        .header("upload-length", bytes.len().to_string())
        .header("upload-metadata", format!("filename {}", b64(b"disk.img")))
        .header("content-type", "application/offset+octet-stream")
        .body(bytes[..20_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["upload-offset"], "20000");
    let path = response.headers()["location"].to_str().unwrap().to_owned();

    // A chunk that does not match its checksum is not kept.
    let wrong = b64(&sha2::Sha256::digest(b"something else"));
    let refused = patch_checked(
        &app,
        &path,
        20000,
        &bytes[20_000..30_000],
        &format!("sha256 {wrong}"),
    )
    .await;
    assert_eq!(refused.status().as_u16(), 460);
    assert_eq!(offset_of(&app, &path).await, 20_000);
    // An algorithm it does not know: 400.
    let unknown = patch_checked(
        &app,
        &path,
        20000,
        &bytes[20_000..30_000],
        &format!("md5 {}", b64(b"x")),
    )
    .await;
    assert_eq!(unknown.status(), 400);
    // sha1 and sha256 that match are taken.
    let sha1 = b64(&sha1::Sha1::digest(&bytes[20_000..30_000]));
    let taken = patch_checked(
        &app,
        &path,
        20000,
        &bytes[20_000..30_000],
        &format!("sha1 {sha1}"),
    )
    .await;
    assert_eq!(taken.status(), 204);
    let sha256 = b64(&sha2::Sha256::digest(&bytes[30_000..]));
    let taken = patch_checked(
        &app,
        &path,
        30000,
        &bytes[30_000..],
        &format!("sha256 {sha256}"),
    )
    .await;
    assert_eq!(taken.status(), 204);
    let finished: Value = tus(&app, Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(finished["image"]["sha256"], sha256_hex(&bytes));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn protocol_errors_get_their_answers_and_change_nothing(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| {
        args.max_upload_bytes = 1_000_000;
        args.user_quota_bytes = Some(2_000_000);
    })
    .await;
    app.add_user(ALICE.0, ALICE.1).await;
    app.add_user("bob", "bob-password").await;
    let metadata = format!("filename {}", b64(b"disk.img"));
    let path = create(&app, 1000, &metadata).await;

    // No protocol version: 412, with the version spoken.
    let unversioned = reqwest::Client::new()
        .head(app.url(&path))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status(), 412);
    assert_eq!(unversioned.headers()["tus-version"], "1.0.0");
    // The wrong offset: 409.
    assert_eq!(patch(&app, &path, 10, random_bytes(10)).await.status(), 409);
    // The wrong content type: 415.
    let plain = tus(&app, Method::PATCH, &path)
        .header("content-type", "text/plain")
        .header("upload-offset", "0")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    // No offset: 400.
    let no_offset = tus(&app, Method::PATCH, &path)
        .header("content-type", "application/offset+octet-stream")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(no_offset.status(), 400);
    // Past the declared length: 413, nothing kept.
    assert_eq!(
        patch(&app, &path, 0, random_bytes(1001)).await.status(),
        413
    );
    assert_eq!(offset_of(&app, &path).await, 0);
    // Lengths: none, over the upload limit, over the quota.
    let no_length = tus(&app, Method::POST, "/api/uploads")
        .header("upload-metadata", &metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(no_length.status(), 400);
    for length in ["1000001", "-1", "lots"] {
        let refused = tus(&app, Method::POST, "/api/uploads")
            .header("upload-length", length)
            .header("upload-metadata", &metadata)
            .send()
            .await
            .unwrap();
        assert!(matches!(refused.status().as_u16(), 400 | 413), "{length}");
    }
    let first = create(&app, 900_000, &metadata).await;
    let second = create(&app, 900_000, &metadata).await;
    let over = tus(&app, Method::POST, "/api/uploads")
        .header("upload-length", "900000")
        .header("upload-metadata", &metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(
        over.status(),
        413,
        "three uploads were promised more than the quota"
    );
    // Terminating one frees its room.
    assert_eq!(
        tus(&app, Method::DELETE, &second)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        tus(&app, Method::HEAD, &second)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    create(&app, 900_000, &metadata).await;
    // Another user finds none of alice's uploads.
    let bob = reqwest::Client::new()
        .head(app.url(&first))
        .basic_auth("bob", Some("bob-password"))
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(bob.status(), 404);
    let bob_patch = reqwest::Client::new()
        .patch(app.url(&first))
        .basic_auth("bob", Some("bob-password"))
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(random_bytes(10))
        .send()
        .await
        .unwrap();
    assert_eq!(bob_patch.status(), 404);
    assert_eq!(offset_of(&app, &first).await, 0);
    // Nobody without credentials.
    let anonymous = reqwest::Client::new()
        .post(app.url("/api/uploads"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .header("upload-metadata", &metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["tus-resumable"], "1.0.0");
    // Another site's page may not start one; the refusal, made in front of
    // the routes, still names the protocol for the tus client to read.
    let cross_site = tus(&app, Method::POST, "/api/uploads")
        .header("origin", "https://elsewhere.example")
        .header("sec-fetch-site", "cross-site")
        .header("upload-length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(cross_site.headers()["tus-resumable"], "1.0.0");
    // Nothing else is named tus.
    let page = reqwest::get(app.url("/api/openapi.json")).await.unwrap();
    assert!(page.headers().get("tus-resumable").is_none());
}

/// Sends `bytes` at offset 0 in a body that breaks off after its first MiB;
/// answers the offset the server then keeps.
async fn cut_after_a_mib(app: &TestApp, path: &str, bytes: &[u8]) -> u64 {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(bytes[..1 << 20].to_vec()),
        Err(std::io::Error::other("the connection dropped")),
    ];
    let cut = tus(app, Method::PATCH, path)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await;
    assert!(cut.is_err(), "the body was cut");
    // The server sees the cut a moment after the client.
    let mut received = 0;
    for _ in 0..50 {
        received = offset_of(app, path).await;
        if received > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    received
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_cut_chunk_keeps_what_arrived_and_the_upload_resumes_elsewhere(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let iso = iso_bytes(3 << 20);
    let path = create(&app, iso.len(), &format!("filename {}", b64(b"cut.iso"))).await;
    assert_eq!(
        cut_after_a_mib(&app, &path, &iso).await,
        1 << 20,
        "what arrived was not kept"
    );
    // The rest goes to another server (or this one restarted).
    let other = app.spawn_again().await;
    let rest = patch(&other, &path, 1 << 20, iso[1 << 20..].to_vec()).await;
    assert_eq!(rest.status(), 204);
    let finished: Value = tus(&app, Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(finished["image"]["sha256"], sha256_hex(&iso));
}

/// A client that sends an upload's last chunk whole and goes at once (a page
/// reloaded) still leaves an image: the server keeps the chunk and makes the
/// image though nobody waits for the answer.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_last_chunk_whose_client_goes_at_once_still_makes_the_image(#[case] backend: Backend) {
    use tokio::io::AsyncWriteExt as _;

    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let iso = iso_bytes(4 << 20);
    let path = create(&app, iso.len(), &format!("filename {}", b64(b"gone.iso"))).await;
    let mut request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: depot\r\nAuthorization: Basic {}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        b64(format!("{}:{}", ALICE.0, ALICE.1).as_bytes()),
        iso.len()
    )
    .into_bytes();
    request.extend_from_slice(&iso);
    let mut client = tokio::net::TcpStream::connect(app.address).await.unwrap();
    client.write_all(&request).await.unwrap();
    drop(client);
    let mut sha256 = String::new();
    for _ in 0..200 {
        sha256 = image_sha256(&app, &path).await;
        if !sha256.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        sha256,
        sha256_hex(&iso),
        "the upload did not become the image"
    );
    assert_eq!(offset_of(&app, &path).await, iso.len() as u64);
}

/// The SHA-256 of the image a finished upload became.
async fn image_sha256(app: &TestApp, path: &str) -> String {
    let answer: Value = tus(app, Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["image"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// On the server that ingests an upload as it arrives, a cut chunk, a
/// chunk sent at a stale offset and one refused for its checksum leave the
/// image exactly the file, whether the ingest goes on or is dropped.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_upload_ingested_as_it_arrives_survives_cuts_and_refusals(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let iso = iso_bytes(4 << 20);
    let path = create(&app, iso.len(), &format!("filename {}", b64(b"live.iso"))).await;
    assert_eq!(cut_after_a_mib(&app, &path, &iso).await, 1 << 20);
    // A client that missed the cut's answer sends from 0 again: 409.
    assert_eq!(
        patch(&app, &path, 0, iso[..2 << 20].to_vec())
            .await
            .status(),
        409
    );
    let next = patch(&app, &path, 1 << 20, iso[1 << 20..2 << 20].to_vec()).await;
    assert_eq!(next.status(), 204);
    let rest = patch(&app, &path, 2 << 20, iso[2 << 20..].to_vec()).await;
    assert_eq!(rest.status(), 204);
    assert_eq!(image_sha256(&app, &path).await, sha256_hex(&iso));

    // The same again, with a chunk refused for its checksum in the middle.
    let second = iso_bytes(3 << 20);
    let path = create(
        &app,
        second.len(),
        &format!("filename {}", b64(b"again.iso")),
    )
    .await;
    assert_eq!(
        patch(&app, &path, 0, second[..1 << 20].to_vec())
            .await
            .status(),
        204
    );
    let wrong = b64(&sha2::Sha256::digest(b"something else"));
    let refused = patch_checked(
        &app,
        &path,
        1 << 20,
        &second[1 << 20..],
        &format!("sha256 {wrong}"),
    )
    .await;
    assert_eq!(refused.status().as_u16(), 460);
    assert_eq!(
        patch(&app, &path, 1 << 20, second[1 << 20..].to_vec())
            .await
            .status(),
        204
    );
    assert_eq!(image_sha256(&app, &path).await, sha256_hex(&second));
}

/// What clients send beyond the core: `X-HTTP-Method-Override` on `POST`,
/// metadata keys of their own with binary values; and an empty file is no
/// upload.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn overrides_foreign_metadata_and_empty_files(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let empty = tus(&app, Method::POST, "/api/uploads")
        .header("upload-length", "0")
        .header("upload-metadata", format!("filename {}", b64(b"empty.img")))
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status(), 400);
    let bytes = random_bytes(4096);
    let metadata = format!(
        "filename {},filetype {},fingerprint {},relativePath",
        b64(b"disk.img"),
        b64(b"application/octet-stream"),
        b64(&[0xff, 0xfe, 0x00])
    );
    let path = create(&app, bytes.len(), &metadata).await;
    let overridden = tus(&app, Method::POST, &path)
        .header("x-http-method-override", "PATCH")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(overridden.status(), 204);
    assert_eq!(overridden.headers()["upload-offset"], "4096");
    // The finished image, with or without the protocol's header.
    let finished: Value = reqwest::Client::new()
        .get(app.url(&path))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(finished["image"]["sha256"], sha256_hex(&bytes));
    // Completed once: more requests at its end change nothing.
    let again = patch(&app, &path, 4096, Vec::new()).await;
    assert_eq!(again.status(), 409);
    let listed: Value = reqwest::Client::new()
        .get(app.url("/mws/rest/images?api-version=3"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mine = listed["results"].as_array().map_or(0, |items| {
        items
            .iter()
            .filter(|item| item["name"] == "disk.img")
            .count()
    });
    assert_eq!(mine, 1, "{listed}");
}
