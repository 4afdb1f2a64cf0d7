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
//! (`cargo leptos build --release --precompress`), and when those siblings are
//! no older than the files themselves: a sibling left by an earlier build is
//! never sent for a newer file. Anything else under `/pkg` (the unversioned
//! names, for a page rendered before the server restarted) is sent as it is,
//! with `Cache-Control: no-cache`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

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

/// The extensions of precompressed siblings, never part of the version.
const SIBLINGS: [&str; 2] = ["br", "gz"];

/// A year: what `immutable` is paired with, for caches that ignore it.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The build output as found at start.
#[derive(Debug, Clone)]
pub struct SiteAssets {
    folder: PathBuf,
    version: String,
    precompressed: bool,
}

impl SiteAssets {
    /// Hashes `{site_root}/pkg`. A missing folder is an empty build (a server
    /// run without the UI built still serves the API).
    pub fn scan(site_root: &Path) -> std::io::Result<Self> {
        let folder = site_root.join(PKG);
        let mut files = Vec::new();
        if folder.is_dir() {
            list_files(&folder, &mut files)?;
        }
        files.sort();
        let mut hash = Sha256::new();
        let mut precompressed = false;
        let mut stale = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        for path in &files {
            if is_sibling(path) {
                precompressed = true;
                if sibling_is_stale(path)? {
                    stale.push(path.display().to_string());
                }
                continue;
            }
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
        if !stale.is_empty() {
            tracing::warn!(
                files = %stale.join(", "),
                "precompressed files older than what they compress: the UI's files are sent \
                 uncompressed until the build is run again"
            );
        }
        Ok(Self {
            folder,
            version: hex::encode(&hash.finalize()[..8]),
            precompressed: precompressed && stale.is_empty(),
        })
    }

    /// What pages name the build output's folder: `pkg/{version}`.
    pub fn pkg_dir(&self) -> String {
        format!("{PKG}/{}", self.version)
    }

    /// Whether versioned files go precompressed.
    pub fn precompressed(&self) -> bool {
        self.precompressed
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

fn list_files(folder: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(entry.path());
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

/// A sibling is stale when the file it compresses was written after it.
fn sibling_is_stale(sibling: &Path) -> std::io::Result<bool> {
    let modified =
        |path: &Path| -> std::io::Result<SystemTime> { std::fs::metadata(path)?.modified() };
    Ok(modified(&sibling.with_extension(""))? > modified(sibling)?)
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
