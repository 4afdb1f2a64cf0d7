//! What a browser downloads to show and hydrate the catalog: the page, the
//! hydration script, the WASM bundle and the styles, in bytes as sent to a
//! browser that accepts brotli and gzip (and to one that accepts neither),
//! with how long it may keep each. A benchmark, not a test: it prints figures.
//!
//! `cargo bench --profile release -p depot-server --bench browser` after
//! `cargo leptos build --release --precompress`; `DEPOT_BENCH_BIN` sets the
//! server binary, `DEPOT_SITE_ROOT` the built site (the workspace's
//! `target/site` by default).

mod common;

/// What the bundle (script and WASM) may weigh as sent.
const GOAL_BYTES: usize = 250_000;

/// What Chromium sends.
const BROWSER_ENCODINGS: &str = "gzip, deflate, br, zstd";

struct Sent {
    bytes: usize,
    encoding: String,
    cache: String,
}

async fn fetch(client: &reqwest::Client, url: &str, encodings: Option<&str>) -> (Sent, Vec<u8>) {
    let mut request = client.get(url);
    if let Some(encodings) = encodings {
        request = request.header("accept-encoding", encodings);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let (encoding, cache) = (header("content-encoding"), header("cache-control"));
    let body = response.bytes().await.unwrap().to_vec();
    let sent = Sent {
        bytes: body.len(),
        encoding,
        cache,
    };
    (sent, body)
}

#[tokio::main]
async fn main() {
    let site_root = std::env::var_os("DEPOT_SITE_ROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site"));
    let data = tempfile::tempdir().unwrap();
    let (_server, base) = common::start_server(
        data.path(),
        "bench-admin-password",
        &[("DEPOT_SITE_ROOT", site_root.display().to_string())],
    )
    .await;
    // No automatic decompression: the bytes counted are the bytes sent.
    let client = reqwest::Client::new();
    let (_, page) = fetch(&client, &format!("{base}/"), None).await;
    let page = String::from_utf8(page).unwrap();
    let start = page.find("/pkg/").expect("the page names no build output");
    let folder = &page[start..start + "/pkg/".len() + 16];
    println!(
        "what a browser downloads for the catalog ({}; site {})\n",
        common::server_binary().display(),
        site_root.display()
    );
    println!(
        "{:<28} {:>11} {:>11} {:>9}   cache-control",
        "", "plain", "as sent", "encoding"
    );
    // Every file of the build the page names: its script and styles, and,
    // when the build was split, the loader of the WASM's pieces and the
    // pieces the catalog needs, named so the browser fetches them at once.
    let mut paths = vec!["/".to_owned()];
    for (at, _) in page.match_indices(folder) {
        let end = page[at..]
            .find(['"', '\'', ' ', '>'])
            .map_or(page.len(), |end| at + end);
        let path = page[at..end].to_owned();
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    let wasm = format!("{folder}/depot.wasm");
    if !paths.contains(&wasm) {
        // Fetched by the script rather than named by the page.
        paths.push(wasm);
    }
    let mut bundle = 0;
    for path in paths {
        let url = format!("{base}{path}");
        let (plain, _) = fetch(&client, &url, None).await;
        let (sent, _) = fetch(&client, &url, Some(BROWSER_ENCODINGS)).await;
        println!(
            "{:<28} {:>11} {:>11} {:>9}   {}",
            path.replace(folder, "/pkg/{version}"),
            plain.bytes,
            sent.bytes,
            sent.encoding,
            sent.cache
        );
        if path.ends_with(".js") || path.ends_with(".wasm") {
            bundle += sent.bytes;
        }
    }
    println!(
        "\nhydrate bundle (script + WASM) as sent: {bundle} bytes; goal {GOAL_BYTES} ({:.2}x the goal)",
        bundle as f64 / GOAL_BYTES as f64
    );
}
