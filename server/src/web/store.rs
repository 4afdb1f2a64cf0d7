//! The personal store over WebDAV, at `/store/`: each user's own folder is
//! the root they see (VSS's "VSKEY-STOR"), so that curl, rclone, cadaver and
//! desktop file managers can put files there for a sync to pick up. Paths
//! are resolved by dav-server inside that folder; `..` cannot leave it.

use std::sync::{Arc, OnceLock};

use app::error::CoreError;
use app::model::{
    beyond_store_limits, Principal, StorePath, Viewer, MAX_STORE_NAME, MAX_STORE_PATH,
};
use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use dav_server::davpath::DavPath;
use dav_server::fs::FsError;
use dav_server::{DavConfig, DavHandler};
use futures_util::FutureExt;
use http_body_util::BodyExt;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::files::{bad_form, text_field, wants_html};
use super::store_quota::QuotaFs;
use super::whole_body::{BodyBudget, WholeBody};
use super::{ApiError, BodyLength};
use crate::core::EntryRefused;
use crate::state::AppState;

/// The most of a request's body dav-server reads into memory (any but a
/// `PUT`'s, which it streams), as it does.
const READ_BODY_LIMIT: usize = 64 << 10;

/// A request whose body dav-server would read whole (`PROPFIND`,
/// `PROPPATCH` and `LOCK` carry XML), read here first: dav-server builds
/// that XML into a tree by recursion, one call per level, so a body nesting
/// its elements thousands deep would overflow the stack and abort the whole
/// server. Refused past [`crate::nesting::MAX_DEPTH`], or naming a document
/// type (400, [`crate::nesting::webdav_refusal`]), or past
/// [`READ_BODY_LIMIT`] (413) as dav-server would.
async fn shallow_body(
    request: Request,
    budget: &BodyBudget,
) -> Result<(Request, Option<WholeBody>), Response> {
    if matches!(*request.method(), Method::PUT | Method::PATCH) {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let whole = match super::whole_body::read(body, READ_BODY_LIMIT, budget).await {
        Ok(whole) => whole,
        Err(unread) => return Err(refused(unread.into())),
    };
    if let Some(refusal) = crate::nesting::webdav_refusal(&whole.bytes) {
        return Err((StatusCode::BAD_REQUEST, format!("{refusal}\n")).into_response());
    }
    Ok((Request::from_parts(parts, whole.to_body()), Some(whole)))
}

/// The handler shared by every request; each gets its user's folder.
pub fn handler() -> DavHandler {
    DavHandler::builder()
        .strip_prefix("/store")
        .locksystem(dav_server::fakels::FakeLs::new())
        .build_handler()
}

pub fn router() -> Router<AppState> {
    Router::new()
        // The body is streamed into the store and limited by its file system.
        .route("/api/store/upload", super::streamed_form(post(upload)))
        .route("/store", any(serve))
        .route("/store/", any(serve))
        .route("/store/{*path}", any(serve))
        .layer(axum::middleware::from_fn(super::security::inert_files))
        .layer(axum::middleware::map_response(super::compress::as_is))
}

/// A refusal as WebDAV clients are answered: its status (with when to try
/// again, if it says) and its reason as text.
fn refused(error: CoreError) -> Response {
    let mut response = (super::status_of(&error), format!("{error}\n")).into_response();
    super::with_retry_after(&error, &mut response);
    response
}

/// 401 with a Basic challenge: WebDAV clients send credentials only when asked.
fn challenge() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "sign in to reach your store\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Depot store\""),
    );
    response
}

async fn serve(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    mut request: Request,
) -> Response {
    let Some(user) = viewer.principal() else {
        return challenge();
    };
    let Some(target) = inside_store(request.uri().path()) else {
        let message = "the path must be your store or a file or folder inside it (/store/…)\n";
        return (StatusCode::BAD_REQUEST, message).into_response();
    };
    // dav-server answers a `PROPFIND` of infinite depth (a walk of the
    // whole store in one request, as often as asked) to the litmus test
    // suite alone, which it knows by this header: no client here is that.
    request.headers_mut().remove("x-litmus");
    // A file written into the store (a `PUT`, a `PATCH` writing part of
    // one, a `COPY` or `MOVE`) is an upload: it takes one of its user's
    // upload places while it lasts, so that one account's many slow writes
    // (each holding a part's buffers on an object store) leave the others
    // room. A copy or move goes on after its client left (`QuotaFs`): its
    // place goes with it.
    let writes = matches!(request.method().as_str(), "PUT" | "PATCH" | "COPY" | "MOVE");
    let place = if writes {
        match state.core.store_write_place(user.id) {
            Ok(place) => Some(Arc::new(place)),
            Err(error) => return refused(error),
        }
    } else {
        None
    };
    // The body read whole keeps its share of the budget until dav-server
    // has answered.
    let (mut request, _whole) = match shallow_body(request, &state.bodies.signed_in).await {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    // A body announced larger than any upload may be is refused before a
    // byte is written (a chunked body is bounded by the disk alone).
    let BodyLength(announced) = BodyLength::of(request.headers());
    let limit = state.core.limits().max_upload_bytes;
    if announced.is_some_and(|length| length > limit) {
        let message = format!("a file may be at most {limit} bytes\n");
        return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    }
    let unreadable = super::dav_headers::unreadable_condition(request.headers());
    if let Some(name) =
        unreadable.or_else(|| super::dav_headers::unreachable_range(request.headers_mut()))
    {
        let message = format!("the {name} header is malformed\n");
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let if_paths = super::dav_headers::if_paths(request.headers());
    if if_paths.iter().any(|path| inside_store(path).is_none()) {
        let message = "an If header may name your store or what is inside it (/store/…) alone\n";
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let Ok(destination) = destination(request.headers()) else {
        let message = "the destination must be a file or folder inside your store (/store/…)\n";
        return (StatusCode::BAD_REQUEST, message).into_response();
    };
    // Refused before anything is written (a file of such a name failed as
    // its whole body had landed), measured inside the store as the store
    // measures them.
    if std::iter::once(&target)
        .chain(&destination)
        .any(|path| beyond_store_limits(path.as_bytes()))
    {
        let message = format!(
            "a file or folder name is at most {MAX_STORE_NAME} bytes, a path at most \
             {MAX_STORE_PATH}\n"
        );
        return (StatusCode::URI_TOO_LONG, message).into_response();
    }
    let files = match store_files(&state, user).await {
        Ok(files) => files.holding(place),
        Err(status) => return status.into_response(),
    };
    // `Overwrite: F` onto an entry that exists is dav-server's 412, with
    // nothing deleted.
    let overwrites = !super::dav_headers::keeps_destination(request.headers());
    if let Some(to) = destination.filter(|_| overwrites) {
        if let Some(refused) = refuse_before_overwrite(&files, request.method(), &target, &to).await
        {
            return refused;
        }
    }
    // dav-server answers a body that failed (the client gone, or stopped:
    // `serve::stall`) as a gateway's failure, 502 or 504; it is the
    // client's. What it wrote of a file is removed either way.
    let failed = Arc::new(OnceLock::new());
    let request = request.map(|body| {
        let failed = failed.clone();
        Body::new(body.map_err(move |error| {
            let _ = failed.set(error.to_string());
            error
        }))
    });
    // Whatever else dav-server might panic on is a 500, not a connection
    // closed without an answer. (Not in the answer's body, which hyper
    // reads after this: a panic there ends only that connection.)
    let handled = state.dav.handle_with(dav_config(&files, user), request);
    let Ok(response) = std::panic::AssertUnwindSafe(handled).catch_unwind().await else {
        tracing::error!("the WebDAV handler panicked");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let response = response.into_response();
    match failed.get() {
        Some(reason) => {
            let message = format!("reading the request's body failed: {reason}\n");
            (StatusCode::BAD_REQUEST, message).into_response()
        }
        None => response,
    }
}

/// A `COPY` or `MOVE` onto a file or folder that exists, refused (507 past
/// the quota, 413 past the upload limit, 414 too deep) before dav-server
/// deletes what is there to make way: see
/// [`QuotaFs::refuse_before_overwrite`].
async fn refuse_before_overwrite(
    files: &QuotaFs,
    method: &Method,
    from: &DavPath,
    to: &DavPath,
) -> Option<Response> {
    let moving = match method.as_str() {
        "MOVE" => true,
        "COPY" => false,
        _ => return None,
    };
    let refusal = files
        .refuse_before_overwrite(moving, from, to)
        .await
        .err()?;
    let (status, message) = match refusal {
        FsError::InsufficientStorage => (
            StatusCode::INSUFFICIENT_STORAGE,
            "no room for this in your store; nothing was replaced\n",
        ),
        FsError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the file is larger than an upload may be; nothing was replaced\n",
        ),
        FsError::PathTooLong => (
            StatusCode::URI_TOO_LONG,
            "files and folders are at most 32 deep, and their paths at most 1,024 bytes; \
             nothing was replaced\n",
        ),
        FsError::Forbidden => (
            StatusCode::CONFLICT,
            "the destination holds what would be moved or copied, or lies inside it; nothing \
             was replaced\n",
        ),
        FsError::Exists => (
            StatusCode::CONFLICT,
            "a folder stands at the destination, and in this store a move does not replace \
             one (it may hold files a move cut short had moved already): move into a new name, \
             or the files one by one; nothing was replaced\n",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot check this against your store; nothing was replaced\n",
        ),
    };
    Some((status, message).into_response())
}

/// A `COPY` or `MOVE` goes to a path inside the store, below its root:
/// anything else is refused here (dav-server panics on the root itself).
/// Answers the destination, if the request names one.
fn destination(headers: &HeaderMap) -> Result<Option<DavPath>, ()> {
    let Some(destination) = headers.get("destination") else {
        return Ok(None);
    };
    let refused = || Err(());
    let Ok(text) = destination.to_str() else {
        return refused();
    };
    // Read as dav-server reads it: a path as it is, or an absolute URL's
    // path (the URL parser's, which takes `\` for `/` and resolves dot
    // segments), then decoded and normalised. Checking the raw text
    // instead let `/store/a/..?x` through to the root.
    let path = if text.starts_with('/') {
        text.to_owned()
    } else {
        match url::Url::parse(text) {
            Ok(url) => url.path().to_owned(),
            Err(_) => return refused(),
        }
    };
    match inside_store(&path) {
        Some(inside) if inside.as_bytes() != b"/" => Ok(Some(inside)),
        _ => refused(),
    }
}

/// A request's path (`raw`, as sent) inside the store, read as dav-server
/// reads it (decoded, dot segments resolved): `None` unless it names the
/// store or something below it. dav-server's own check of its prefix,
/// `/store`, passes `/storeX/…` and `/store.../…` (what `/store/../storeX/…`
/// resolves to), and a local file system then joins what follows the
/// prefix but its first byte to the user's folder: `/…`, any file of the
/// server's, or `../…`, another user's store.
fn inside_store(raw: &str) -> Option<DavPath> {
    let mut path = DavPath::new(raw).ok()?;
    let whole = path.as_bytes();
    if whole != b"/store" && !whole.starts_with(b"/store/") {
        return None;
    }
    path.set_prefix("/store").ok()?;
    Some(path)
}

/// One user's folder, with their quota, for one request.
async fn store_files(state: &AppState, user: &Principal) -> Result<QuotaFs, StatusCode> {
    match state.core.personal().file_system(user.id).await {
        Ok(files) => Ok(QuotaFs::new(files, state.core.clone(), user.id)),
        Err(error) => {
            tracing::error!(%error, "cannot open a personal store");
            Err(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// The WebDAV view of `files`.
fn dav_config(files: &QuotaFs, user: &Principal) -> DavConfig {
    DavConfig::new()
        .filesystem(Box::new(files.clone()))
        .principal(user.username.clone())
}

/// `POST /api/store/upload`: the Store page's form (`folder`, then one or
/// more `file` fields). Each file is handed to WebDAV as a `PUT`, so that
/// the one write path (quota, upload limit, no partial file left) holds for
/// both. Answers 201 with the stored paths, or sends a browser without
/// script back to the folder.
async fn upload(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    let user = viewer.require_user()?;
    // An upload: one of its user's places while it lasts, as a `PUT`'s.
    let _place = state.core.store_write_place(user.id)?;
    let mut folder = StorePath::parse("")?;
    let mut folder_checked = false;
    let mut stored = Vec::new();
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        match field.name().unwrap_or_default() {
            "folder" => folder = StorePath::parse(&text_field(field).await?)?,
            "file" => {
                if !folder_checked {
                    state.core.check_store_folder(user, &folder).await?;
                    folder_checked = true;
                }
                let name = field.file_name().unwrap_or_default().to_owned();
                let path = folder.join(&name)?;
                put_into_store(&state, user, &path, field).await?;
                stored.push(path.as_string());
            }
            other => {
                return Err(ApiError(CoreError::invalid(format!(
                    "unknown form field '{other}' (expected folder, file)"
                ))))
            }
        }
    }
    if stored.is_empty() {
        return Err(ApiError(CoreError::invalid("the form has no 'file' field")));
    }
    if wants_html(&headers) {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("path", &folder.as_string());
        return Ok(Redirect::to(&format!("/personal-store?{}", query.finish())).into_response());
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "stored": stored })),
    )
        .into_response())
}

/// Streams one form field into the store at `path` through WebDAV.
async fn put_into_store(
    state: &AppState,
    user: &Principal,
    path: &StorePath,
    mut field: Field<'_>,
) -> Result<(), ApiError> {
    let files = store_files(state, user)
        .await
        .map_err(|_| ApiError(CoreError::Internal))?;
    let config = dav_config(&files, user);
    let uri: String = std::iter::once("/store".to_owned())
        .chain(
            path.parts()
                .iter()
                .map(|part| format!("/{}", utf8_percent_encode(part, NON_ALPHANUMERIC))),
        )
        .collect();
    // The field borrows the form, so it cannot become a body by itself: a
    // small channel carries its chunks to the PUT, both driven here.
    let (chunks, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = Body::from_stream(futures_util::stream::unfold(
        receiver,
        |mut receiver| async { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ));
    // Never over an existing file: a refused or broken upload must not
    // leave the old one truncated.
    let request = Request::builder()
        .method(Method::PUT)
        .uri(uri)
        .header(header::IF_NONE_MATCH, "*")
        .body(body)
        .map_err(|_| ApiError(CoreError::invalid("that file name cannot be stored")))?;
    // What failed reading the form, if anything did.
    let pump = async move {
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return None,
                Err(error) => {
                    // Only if the PUT still reads: one that refused the
                    // file first (quota, size, an existing file) says so.
                    let reason = super::form_guard::reason(&error);
                    let told = chunks.send(Err(std::io::Error::other(reason.clone())));
                    return told.await.is_ok().then_some(reason);
                }
            };
            // The PUT stopped reading (it refused the file): stop sending.
            if chunks.send(Ok(chunk)).await.is_err() {
                return None;
            }
        }
    };
    let (failed, response) = tokio::join!(pump, state.dav.handle_with(config, request));
    // dav-server answers a failed body as a gateway's failure (502); the
    // file it began is removed.
    if let Some(reason) = failed {
        return Err(ApiError(CoreError::invalid(format!(
            "reading the bytes failed: {reason}"
        ))));
    }
    match response.status() {
        status if status.is_success() => Ok(()),
        StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError(CoreError::TooLarge(format!(
            "'{}' is larger than the {} bytes a file may have",
            path.as_string(),
            state.core.limits().max_upload_bytes
        )))),
        StatusCode::INSUFFICIENT_STORAGE => Err(ApiError(CoreError::TooLarge(format!(
            "'{}' does not fit in your store: it would pass your quota, or the {} files \
             and folders a store may hold",
            path.as_string(),
            state.core.limits().max_store_entries
        )))),
        StatusCode::URI_TOO_LONG => Err(ApiError(CoreError::from(EntryRefused::TooDeep))),
        StatusCode::PRECONDITION_FAILED => Err(ApiError(CoreError::Conflict(format!(
            "'{}' is already in your store; delete it first to replace it",
            path.as_string()
        )))),
        StatusCode::CONFLICT | StatusCode::NOT_FOUND => {
            Err(ApiError(CoreError::not_found("that folder in your store")))
        }
        status if status.is_server_error() => {
            tracing::error!(%status, "the store failed to take a file from the upload form");
            Err(ApiError(CoreError::Internal))
        }
        status => {
            tracing::warn!(%status, "the store refused a file from the upload form");
            Err(ApiError(CoreError::invalid(format!(
                "the store refused '{}' (HTTP {})",
                path.as_string(),
                status.as_u16()
            ))))
        }
    }
}
