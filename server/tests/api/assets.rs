//! The UI's build output: named by its content, kept by browsers for good,
//! sent precompressed when the build left fresh `.br` and `.gz` files, and
//! never a stale one.

use std::io::Write;
use std::path::Path;

use crate::helpers::{random_bytes, Backend, TestApp};

const SCRIPT: &[u8] = b"export default function init() {}\nexport function hydrate() {}\n";
const STYLES: &[u8] = b"body { margin: 0 }\n";

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut packed = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut packed, 4096, 9, 22);
        writer.write_all(bytes).unwrap();
    }
    packed
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut writer = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    writer.write_all(bytes).unwrap();
    writer.finish().unwrap()
}

/// A site as `cargo leptos build --release --precompress` leaves it, in
/// `root/site`, its bundle compressed from `packed`, and a file beside it
/// that must not be reachable.
fn site(root: &Path, wasm: &[u8], packed: &[u8]) {
    std::fs::write(root.join("secret.txt"), b"not for the web").unwrap();
    let root = root.join("site");
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("depot.js"), SCRIPT).unwrap();
    std::fs::write(pkg.join("depot.css"), STYLES).unwrap();
    std::fs::write(pkg.join("depot.wasm"), wasm).unwrap();
    std::fs::write(pkg.join("depot.wasm.br"), brotli(packed)).unwrap();
    std::fs::write(pkg.join("depot.wasm.gz"), gzip(packed)).unwrap();
    // wasm-bindgen's inline snippets, which the script imports by relative paths.
    std::fs::create_dir_all(pkg.join("snippets/app-0")).unwrap();
    std::fs::write(pkg.join("snippets/app-0/inline0.js"), SCRIPT).unwrap();
}

async fn serving(root: &Path) -> TestApp {
    let root = root.join("site");
    TestApp::spawn_with(Backend::Sqlite, |args| args.site_root = Some(root)).await
}

/// The folder the home page names its scripts, styles and bundle under.
async fn pkg_folder(app: &TestApp) -> String {
    let html = reqwest::get(app.url("/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = html.find("/pkg/").expect("the page names no build output") + "/pkg/".len();
    let version = &html[start..start + 16];
    assert!(
        version.bytes().all(|byte| byte.is_ascii_hexdigit()),
        "{version}"
    );
    let folder = format!("/pkg/{version}");
    for file in ["depot.js", "depot.wasm", "depot.css"] {
        assert!(html.contains(&format!("{folder}/{file}")), "{file}: {html}");
    }
    assert!(
        !html.contains("\"/pkg/depot."),
        "an unversioned name: {html}"
    );
    folder
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// `GET path` written on the wire byte for byte; the status and the body.
async fn raw_get(app: &TestApp, path: &str) -> (u16, String) {
    app.sent_as_is(&format!("GET {path} HTTP/1.1\r\n"), b"")
        .await
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap())
}

#[tokio::test]
async fn the_ui_files_are_named_by_their_content_and_kept_for_good() {
    let site_root = tempfile::tempdir().unwrap();
    // Text compresses, as a bundle does.
    let wasm = "fn hydrate() {} ".repeat(12_000).into_bytes();
    site(site_root.path(), &wasm, &wasm);
    let (packed_br, packed_gz) = (brotli(&wasm), gzip(&wasm));
    let app = serving(site_root.path()).await;
    let folder = pkg_folder(&app).await;

    for (file, bytes) in [
        ("depot.js", SCRIPT),
        ("depot.css", STYLES),
        ("depot.wasm", &wasm),
        ("snippets/app-0/inline0.js", SCRIPT),
    ] {
        let response = get(&app, &format!("{folder}/{file}"), &[]).await;
        assert_eq!(response.status(), 200, "{file}");
        assert_eq!(
            header(&response, "cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{file}"
        );
        assert_eq!(header(&response, "content-encoding"), None, "{file}");
        assert_eq!(response.bytes().await.unwrap(), bytes, "{file}");
    }

    // The build's compressed files, to the clients that take them.
    let bundle = format!("{folder}/depot.wasm");
    for (accept, encoding, bytes) in [
        ("br", "br", &packed_br),
        ("gzip", "gzip", &packed_gz),
        ("gzip, deflate, br", "br", &packed_br),
    ] {
        let response = get(&app, &bundle, &[("accept-encoding", accept)]).await;
        assert_eq!(response.status(), 200, "{accept}");
        assert_eq!(
            header(&response, "content-encoding"),
            Some(encoding),
            "{accept}"
        );
        assert_eq!(header(&response, "content-type"), Some("application/wasm"));
        assert!(header(&response, "vary").is_some_and(|vary| vary.contains("accept-encoding")));
        assert_eq!(
            header(&response, "cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(response.bytes().await.unwrap(), bytes, "{accept}");
    }

    // A browser revalidating gets no body.
    let first = get(&app, &bundle, &[]).await;
    let modified = header(&first, "last-modified").unwrap().to_owned();
    let again = get(&app, &bundle, &[("if-modified-since", &modified)]).await;
    assert_eq!(again.status(), 304);

    // Another version, or a way out of the folder, is not there. Sent as
    // they are written: a client library would resolve the dots itself.
    for path in [
        "/pkg/0123456789abcdef/depot.wasm".to_owned(),
        format!("{folder}/no-such-file.js"),
        format!("{folder}/"),
        format!("{folder}/snippets"),
        format!("{folder}/../../../secret.txt"),
        format!("{folder}/%2e%2e/%2e%2e/%2e%2e/secret.txt"),
        format!("{folder}/..%2F..%2F..%2Fsecret.txt"),
        "/pkg/../../secret.txt".to_owned(),
        "/pkg/%2e%2e/%2e%2e/secret.txt".to_owned(),
        "/pkg/..%5c..%5csecret.txt".to_owned(),
    ] {
        let (status, body) = raw_get(&app, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("not for the web"), "{path}");
    }

    // The unversioned names, for a page older than the server: never kept,
    // never the build's compressed files.
    let plain = get(&app, "/pkg/depot.wasm", &[("accept-encoding", "br")]).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(header(&plain, "cache-control"), Some("no-cache"));
    assert_eq!(header(&plain, "content-encoding"), Some("br"));
    assert_ne!(plain.bytes().await.unwrap(), packed_br);
    let plain = get(&app, "/pkg/depot.js", &[]).await;
    assert_eq!(header(&plain, "cache-control"), Some("no-cache"));
    assert_eq!(plain.bytes().await.unwrap(), SCRIPT);

    // Another server given the same build names the same version; a new
    // build, another one, and the old one is gone there.
    assert_eq!(pkg_folder(&serving(site_root.path()).await).await, folder);
    std::fs::write(
        site_root.path().join("site/pkg/depot.wasm"),
        random_bytes(1000),
    )
    .unwrap();
    // Its compressed files are now another's: the next test's case.
    let rebuilt = serving(site_root.path()).await;
    let new_folder = pkg_folder(&rebuilt).await;
    assert_ne!(new_folder, folder);
    assert_eq!(get(&rebuilt, &bundle, &[]).await.status(), 404);
}

#[tokio::test]
async fn a_compressed_file_that_is_not_its_original_is_never_sent() {
    let site_root = tempfile::tempdir().unwrap();
    let wasm = random_bytes(200_000);
    // The bundle rebuilt, its compressed files left from the build before,
    // their times reset as a copy does.
    let earlier = random_bytes(200_000);
    site(site_root.path(), &wasm, &earlier);
    let app = serving(site_root.path()).await;
    let folder = pkg_folder(&app).await;

    for accept in ["br", "gzip"] {
        let response = get(
            &app,
            &format!("{folder}/depot.wasm"),
            &[("accept-encoding", accept)],
        )
        .await;
        assert_eq!(response.status(), 200);
        let body = response.bytes().await.unwrap();
        assert_ne!(body, brotli(&earlier), "{accept}");
        assert_ne!(body, gzip(&earlier), "{accept}");
    }
    let plain = get(&app, &format!("{folder}/depot.wasm"), &[]).await;
    assert_eq!(plain.bytes().await.unwrap(), wasm);

    // A name no file system takes is a 404, not a server error.
    let long = format!("{folder}/{}.js", "x".repeat(300));
    assert_eq!(get(&app, &long, &[]).await.status(), 404);
}

/// A `Range` of many ranges is answered with the whole file, as any may be:
/// checking ranges against each other costs their count squared, so the
/// server does not read thousands of them. A few are read as usual (the
/// UI's files take one range; several are refused, 416).
#[tokio::test]
async fn a_range_of_many_ranges_gets_the_whole_file() {
    let site_root = tempfile::tempdir().unwrap();
    let wasm = "fn hydrate() {} ".repeat(2_000).into_bytes();
    site(site_root.path(), &wasm, &wasm);
    let app = serving(site_root.path()).await;
    let file = format!("{}/depot.wasm", pkg_folder(&app).await);
    let ranges = |count: usize| {
        let each: Vec<String> = (0..count).map(|n| format!("{}-{}", 2 * n, 2 * n)).collect();
        format!("bytes={}", each.join(","))
    };
    let one = get(&app, &file, &[("range", "bytes=0-9")]).await;
    assert_eq!(one.status(), 206);
    assert_eq!(one.bytes().await.unwrap(), wasm[..10]);
    assert_eq!(
        get(&app, &file, &[("range", &ranges(2))]).await.status(),
        416
    );
    // As many as fit in a request's head (64 KiB).
    let many = get(&app, &file, &[("range", &ranges(5_000))]).await;
    assert_eq!(many.status(), 200);
    assert_eq!(many.bytes().await.unwrap(), wasm);
}
