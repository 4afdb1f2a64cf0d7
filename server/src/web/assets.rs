//! The UI's build output under `/pkg`: the hydration script, the WASM bundle
//! and the stylesheet.
//!
//! Pages name them under a version, `/pkg/{version}/depot.wasm`, the content
//! hash of the whole folder as the server found it at start. A versioned file
//! never changes, so it is sent with `Cache-Control: immutable` and a browser
//! asks for it once per release; an upgrade changes the version, so no
//! browser mixes an old bundle with a new page. The hash is of the bytes, not
//! of times, so several servers given the same build name the same version.
//!
//! Versioned files are sent precompressed (brotli or gzip, whichever the
//! client takes) when the build left `.br` and `.gz` siblings beside them
//! (`cargo leptos build --release --precompress`) and each sibling, unpacked
//! at start, is its original byte for byte: a sibling left by an earlier
//! build is never sent for a newer file, whatever the files' times say.
//! Anything else under `/pkg` (the unversioned names, for a page rendered
//! before the server restarted) is sent as it is, with `Cache-Control:
//! no-cache`.
//!
//! The folder is read once, at start; a deployment replaces it and restarts
//! the server, as `cargo leptos watch` does.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use app::pieces::WasmPieces;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use crate::state::AppState;

/// The URL folder of the build output, and its folder under the site root.
pub const PKG: &str = "pkg";

/// What `cargo leptos build --split` names the map from each lazily loaded
/// function to the files of the WASM it needs.
const SPLIT_MANIFEST: &str = "__wasm_split_manifest.json";

/// The extensions of the precompressed files the build writes.
const SIBLINGS: [&str; 2] = ["br", "gz"];

/// A year: what `immutable` is paired with, for caches that ignore it.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The build output as found at start.
#[derive(Debug, Clone)]
pub struct SiteAssets {
    folder: PathBuf,
    version: String,
    precompressed: bool,
    /// Which pieces of the WASM each lazily loaded page needs, when the
    /// build split it (`cargo leptos build --split`).
    pieces: Option<WasmPieces>,
}

impl SiteAssets {
    /// Hashes `{site_root}/pkg`. A missing folder is an empty build (a server
    /// run without the UI built still serves the API).
    pub fn scan(site_root: &Path) -> std::io::Result<Self> {
        let folder = site_root.join(PKG);
        let mut files = Vec::new();
        if folder.is_dir() {
            list_files(&folder, &mut files, 0)?;
        }
        files.sort();
        // Every file served goes into the version, the siblings included.
        let mut hash = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        for path in &files {
            let relative = path.strip_prefix(&folder).unwrap_or(path);
            // The name and the length first, so that files cannot run together.
            let name = relative.to_string_lossy();
            hash.update((name.len() as u64).to_le_bytes());
            hash.update(name.as_bytes());
            hash.update(std::fs::metadata(path)?.len().to_le_bytes());
            let mut file = std::fs::File::open(path)?;
            loop {
                let read = file.read(&mut buffer)?;
                if read == 0 {
                    break;
                }
                hash.update(&buffer[..read]);
            }
        }
        let siblings: Vec<&PathBuf> = files.iter().filter(|path| is_sibling(path)).collect();
        let mut wrong = Vec::new();
        for sibling in &siblings {
            if !unpacks_to_its_original(sibling)? {
                wrong.push(sibling.display().to_string());
            }
        }
        if !wrong.is_empty() {
            tracing::warn!(
                files = %wrong.join(", "),
                "precompressed files that are not their originals compressed: the UI's files \
                 are sent uncompressed until the build is run again"
            );
        }
        let version = hex::encode(&hash.finalize()[..8]);
        let pieces = read_split_manifest(&folder.join(SPLIT_MANIFEST))
            .map(|map| WasmPieces::new(format!("/{PKG}/{version}"), map));
        Ok(Self {
            folder,
            version,
            precompressed: !siblings.is_empty() && wrong.is_empty(),
            pieces,
        })
    }

    /// What a page rendered on the server needs to name the pieces of the
    /// WASM its lazily loaded views use, when the build split it.
    pub fn wasm_pieces(&self) -> Option<WasmPieces> {
        self.pieces.clone()
    }

    /// What pages name the build output's folder: `pkg/{version}`.
    pub fn pkg_dir(&self) -> String {
        format!("{PKG}/{}", self.version)
    }

    /// Serves `/pkg/{version}/{file}` (immutable) and `/pkg/{file}` (no-cache).
    pub fn router(self) -> Router<AppState> {
        let assets = Arc::new(self);
        Router::new().route(
            &format!("/{PKG}/{{*path}}"),
            get(move |request: Request| serve(assets.clone(), request)),
        )
    }
}

/// The split build's map, if the build was split; one that cannot be read
/// costs the pages their hints, not their working.
fn read_split_manifest(path: &Path) -> Option<HashMap<String, Vec<String>>> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text)
        .inspect_err(|error| {
            tracing::warn!(%error, path = %path.display(), "cannot read the split build's map");
        })
        .ok()
}

/// How deep the build output's folders go, at most (wasm-bindgen's
/// `snippets/{crate}/` is two); deeper ones, or a loop of links, are left out.
const MAX_DEPTH: usize = 4;

/// The files under `folder`, following links as ServeDir does, so that
/// whatever it can send is in the version.
fn list_files(folder: &Path, files: &mut Vec<PathBuf>, depth: usize) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue; // A dangling link: nothing to send.
        };
        if metadata.is_dir() && depth < MAX_DEPTH {
            list_files(&path, files, depth + 1)?;
        } else if metadata.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

fn is_sibling(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .is_some_and(|extension| SIBLINGS.contains(&extension))
        && path.with_extension("").is_file()
}

/// Whether a `.br` or `.gz` file unpacks to the file beside it, exactly.
fn unpacks_to_its_original(sibling: &Path) -> std::io::Result<bool> {
    let original = std::fs::read(sibling.with_extension(""))?;
    let packed = std::fs::File::open(sibling)?;
    let mut reader: Box<dyn Read> = match sibling.extension().and_then(|e| e.to_str()) {
        Some("br") => Box::new(brotli::Decompressor::new(packed, 64 * 1024)),
        _ => Box::new(flate2::read::GzDecoder::new(packed)),
    };
    // One byte more than the original: a longer stream is not a match.
    let mut unpacked = Vec::with_capacity(original.len() + 1);
    let read = (&mut reader)
        .take(original.len() as u64 + 1)
        .read_to_end(&mut unpacked);
    Ok(read.is_ok() && unpacked == original)
}

async fn serve(assets: Arc<SiteAssets>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path()
        .strip_prefix(&format!("/{PKG}/"))
        .unwrap_or_default()
        .to_owned();
    let (versioned, file) = match path.split_once('/') {
        Some((version, file)) if version == assets.version => (true, file.to_owned()),
        _ => (false, path),
    };
    // ServeDir resolves the path against the folder and refuses `..`.
    parts.uri = match format!("/{file}").parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return axum::http::StatusCode::NOT_FOUND.into_response(),
    };
    let request = Request::from_parts(parts, body);
    // A folder is no file: no index page, and no redirect to a path this
    // handler would not recognise.
    let files = ServeDir::new(&assets.folder).append_index_html_on_directories(false);
    let served = if versioned && assets.precompressed {
        files
            .precompressed_br()
            .precompressed_gzip()
            .oneshot(request)
            .await
    } else {
        files.oneshot(request).await
    };
    let mut response = match served {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    // ServeDir answers 500 to a name too long or a loop of links: for a
    // request that names no file of the build, that is a 404.
    if response.status().is_server_error() {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    }
    let status = response.status();
    if status.is_success() || status == axum::http::StatusCode::NOT_MODIFIED {
        let headers = response.headers_mut();
        let policy = if versioned { IMMUTABLE } else { "no-cache" };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
        if versioned && assets.precompressed {
            // ServeDir does not say it, and a shared cache must know that
            // the bytes depend on what the client accepts.
            headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
    }
    response
}
