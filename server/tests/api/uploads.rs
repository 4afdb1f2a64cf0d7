//! Resumable uploads over tus 1.0 at `/api/uploads`, driven over HTTP as a
//! tus client does: create, append in chunks, break off and resume (on a
//! restarted server, or another server of the deployment), and every refusal
//! the protocol defines, each of which changes nothing.

use base64::Engine as _;
use futures_util::StreamExt as _;
use reqwest::{Method, RequestBuilder, Response};
use rstest::rstest;
use serde_json::Value;
use sha2::Digest as _;

use crate::helpers::{random_bytes, Backend, TestApp};
use crate::vice::iso_bytes;

const ALICE: (&str, &str) = ("alice", "alice-password");

fn b64(text: &[u8]) -> String {
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

/// Runs a tus client's script from `end2end/tus/` against `app` and a second
/// server of its deployment; the script checks and says what went wrong.
async fn run_client(program: std::path::PathBuf, script: &str, app: &TestApp, other: &TestApp) {
    let script = format!("{}/../end2end/tus/{script}", env!("CARGO_MANIFEST_DIR"));
    let (url, other_url) = (app.url(""), other.url(""));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .arg(&script)
            .env("DEPOT_URL", url)
            .env("DEPOT_OTHER_URL", other_url)
            .env("DEPOT_USER", ALICE.0)
            .env("DEPOT_PASSWORD", ALICE.1)
            .output()
            .unwrap_or_else(|error| panic!("{program:?}: {error}; run scripts/setup.sh"))
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// tuspy, the tus project's Python client, unchanged: it uploads two
/// chunks through one server, and a new client resumes through another
/// (or the same one restarted) with checksums; the image is the file.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test(flavor = "multi_thread")]
async fn tuspy_uploads_and_resumes_elsewhere(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let other = app.spawn_again().await;
    run_client(crate::pyvss::python().into(), "test_tuspy.py", &app, &other).await;
}

/// tus-js-client, the tus project's JavaScript client, unchanged (the
/// version the upload page ships): its connection is cut in the middle of
/// a chunk, a new client resumes through another server (or the same one
/// restarted) from the server's offset, a dropped request is retried, and
/// the image is the file.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test(flavor = "multi_thread")]
async fn tus_js_client_is_cut_off_and_resumes_elsewhere(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let other = app.spawn_again().await;
    run_client("node".into(), "tus_js_client.mjs", &app, &other).await;
}

/// The browser runs the tus client the tests run: the page's copy is the
/// pinned npm package's own build, byte for byte.
#[test]
fn the_upload_page_ships_the_tested_tus_client() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let read = |path: &str| {
        std::fs::read(format!("{root}/{path}"))
            .unwrap_or_else(|error| panic!("{path}: {error}; run scripts/setup.sh"))
    };
    let shipped = read("public/vendor/tus-js-client/tus.min.js");
    let tested = read("end2end/node_modules/tus-js-client/dist/tus.min.js");
    assert!(
        shipped == tested,
        "public/vendor/tus-js-client is not the tus-js-client end2end/package.json pins: copy its dist/tus.min.js"
    );
}

/// An upload left past its expiry is gone: its chunks, its reservation,
/// and its URL (404), once the collector has run.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_expired_upload_frees_its_space(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(2_000_000)).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let alice = app.core.login(ALICE.0, ALICE.1).await.unwrap();
    let path = create(&app, 1_500_000, &format!("filename {}", b64(b"old.img"))).await;
    assert_eq!(
        patch(&app, &path, 0, random_bytes(500_000)).await.status(),
        204
    );
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 1_500_000);
    assert!(
        !app.stored(depot_server::blob::Area::Uploads)
            .await
            .is_empty(),
        "the chunk is kept"
    );

    // A day and more later.
    const AGE: &str = "UPDATE resumable_uploads SET expires_at = 0";
    match app.core.db() {
        depot_server::store::Db::Sqlite(pool) => {
            sqlx::query(AGE).execute(pool).await.unwrap();
        }
        depot_server::store::Db::Postgres(pool) => {
            sqlx::query(AGE).execute(pool).await.unwrap();
        }
    }
    assert_eq!(
        tus(&app, Method::HEAD, &path)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    app.core
        .collect_garbage(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 0);
    assert!(app
        .stored(depot_server::blob::Area::Uploads)
        .await
        .is_empty());
    assert!(app.stored(depot_server::blob::Area::Blobs).await.is_empty());
    assert_eq!(
        patch(&app, &path, 500_000, random_bytes(10)).await.status(),
        404
    );
}

/// Runs `statement` on the test's database.
async fn execute(app: &TestApp, statement: &str) {
    match app.core.db() {
        depot_server::store::Db::Sqlite(pool) => {
            sqlx::query(statement).execute(pool).await.unwrap();
        }
        depot_server::store::Db::Postgres(pool) => {
            sqlx::query(statement).execute(pool).await.unwrap();
        }
    }
}

/// What a crash between forgetting an upload and removing its bytes leaves
/// is removed by the collector; an upload it still knows keeps its bytes,
/// however old, and completes.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn the_collector_removes_parts_of_uploads_it_no_longer_knows(#[case] backend: Backend) {
    use depot_server::blob::Area;
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let kept = iso_bytes(2 << 20);
    let kept_path = create(&app, kept.len(), &format!("filename {}", b64(b"kept.iso"))).await;
    assert_eq!(
        patch(&app, &kept_path, 0, kept[..1 << 20].to_vec())
            .await
            .status(),
        204
    );
    let lost_path = create(&app, 3 << 20, &format!("filename {}", b64(b"lost.iso"))).await;
    assert_eq!(
        patch(&app, &lost_path, 0, random_bytes(1 << 20))
            .await
            .status(),
        204
    );
    let lost_id = lost_path.rsplit('/').next().unwrap();
    let lost_parts = |stored: &[String]| stored.iter().any(|name| name.contains(lost_id));
    assert!(lost_parts(&app.stored(Area::Uploads).await));
    // The row goes; the bytes stay (the server died in between).
    execute(
        &app,
        &format!("DELETE FROM resumable_uploads WHERE id = '{lost_id}'"),
    )
    .await;
    app.core
        .collect_garbage(std::time::Duration::ZERO)
        .await
        .unwrap();
    let stored = app.stored(Area::Uploads).await;
    assert!(!lost_parts(&stored), "{stored:?}");
    assert!(!stored.is_empty(), "the known upload's bytes stay");
    let rest = patch(&app, &kept_path, 1 << 20, kept[1 << 20..].to_vec()).await;
    assert_eq!(rest.status(), 204);
    assert_eq!(image_sha256(&app, &kept_path).await, sha256_hex(&kept));
    assert!(app.stored(Area::Uploads).await.is_empty());
}

/// Two requests sending a chunk at the same offset at once (a client that
/// retried too early, or two tabs): one is taken, the other is told the
/// offset moved on, and the image is exactly the chunks taken. On one
/// server the second waits for the first; on two servers of a shared store
/// the database takes the one that ends first.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn chunks_racing_at_one_offset_leave_the_file_whole(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let other = match backend {
        Backend::Shared => Some(app.spawn_beside(|_| {}).await),
        _ => None,
    };
    let iso = iso_bytes(4 << 20);
    let path = create(&app, iso.len(), &format!("filename {}", b64(b"race.iso"))).await;
    assert_eq!(
        patch(&app, &path, 0, iso[..1 << 20].to_vec())
            .await
            .status(),
        204
    );
    // The first racer's body arrives slowly; the second's, other bytes of
    // the same length, arrives meanwhile.
    let slow_pieces: Vec<Vec<u8>> = iso[1 << 20..2 << 20]
        .chunks(64 << 10)
        .map(<[u8]>::to_vec)
        .collect();
    let pieces = futures_util::stream::iter(slow_pieces).then(|piece| async move {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Ok::<_, std::io::Error>(piece)
    });
    let slow = tus(&app, Method::PATCH, &path)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", (1 << 20).to_string())
        .body(reqwest::Body::wrap_stream(pieces))
        .send();
    let other_bytes = vec![0xEE; 1 << 20];
    let fast = async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        patch(
            other.as_ref().unwrap_or(&app),
            &path,
            1 << 20,
            other_bytes.clone(),
        )
        .await
    };
    let (slow, fast) = tokio::join!(slow, fast);
    let statuses = (slow.unwrap().status().as_u16(), fast.status().as_u16());
    let mut expected = iso.clone();
    if other.is_some() {
        assert_eq!(statuses, (409, 204));
        expected[1 << 20..2 << 20].copy_from_slice(&other_bytes);
    } else {
        assert_eq!(statuses, (204, 409));
    }
    assert_eq!(offset_of(&app, &path).await, 2 << 20);
    let rest = patch(&app, &path, 2 << 20, iso[2 << 20..].to_vec()).await;
    assert_eq!(rest.status(), 204);
    assert_eq!(image_sha256(&app, &path).await, sha256_hex(&expected));
}
