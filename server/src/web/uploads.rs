//! Resumable uploads over the tus 1.0 protocol (tus.io) at `/api/uploads`,
//! so that tus-js-client, Uppy, tuspy and tusd's clients work unchanged:
//! the core protocol (`HEAD` for the offset, `PATCH` to append) and the
//! creation (with `Upload-Metadata`: `filename`, `label`, `public`, `image`),
//! creation-with-upload, termination, expiration and checksum (`sha1`,
//! `sha256`) extensions. Credentials as on every API path; an upload is its
//! creator's (another user gets 404). Once complete, `GET` on the upload's
//! URL answers `{"image": {...}}`.

use std::collections::HashMap;

use app::error::CoreError;
use app::model::Viewer;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{ErrorBody, RawBytes, TusVersion, UPLOADS};
use super::ApiError;
use crate::core::{AppendError, Appended, Checksum, Resumable, ResumableMeta};
use crate::state::AppState;

const TUS_VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";
const CHECKSUMS: &str = "sha1,sha256";
const OFFSET_STREAM: &str = "application/offset+octet-stream";
/// The `Upload-Metadata` keys Depot reads.
const KNOWN_KEYS: [&str; 5] = ["filename", "name", "label", "public", "image"];

/// The longest `Upload-Metadata` taken.
const MAX_METADATA: usize = 4096;

static TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
static UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
static UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
static UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, describe_uploads))
        .routes(routes!(
            describe_upload,
            offset,
            append,
            terminate,
            show,
            overridden
        ))
        // Bodies are streamed into chunks, bounded by the upload's length.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(protocol_version))
}

/// Every request of the protocol must speak its version (412 otherwise,
/// naming the versions spoken): all but `OPTIONS` and Depot's own `GET` of
/// the finished image.
async fn protocol_version(request: Request, next: Next) -> Response {
    let spoken = request
        .headers()
        .get(&TUS_RESUMABLE)
        .is_some_and(|version| version == TUS_VERSION);
    let exempt = matches!(*request.method(), Method::OPTIONS | Method::GET);
    if spoken || exempt {
        return next.run(request).await;
    }
    let mut refused = tus_error(
        StatusCode::PRECONDITION_FAILED,
        "this server speaks tus 1.0.0 (send Tus-Resumable: 1.0.0)",
    );
    refused
        .headers_mut()
        .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    refused
}

/// The outermost layer: every answer under `/api/uploads` names the
/// protocol's version, the refusals of the layers in front of the routes
/// (a cross-site 403, a throttled sign-in's 429) included, since tus
/// clients read it before the status.
pub async fn name_the_protocol(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let tus = path == "/api/uploads" || path.starts_with("/api/uploads/");
    let mut response = next.run(request).await;
    if tus {
        response
            .headers_mut()
            .insert(TUS_RESUMABLE.clone(), HeaderValue::from_static(TUS_VERSION));
    }
    response
}

/// An error in the API's JSON with a status tus defines.
fn tus_error(status: StatusCode, message: &str) -> Response {
    (status, ErrorBody::new(status, message)).into_response()
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError(CoreError::invalid(message.into()))
}

/// The image a complete upload became.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadedImage {
    pub image: app::model::Image,
}

/// The upload's id, as its URL names it.
const ID: &str = "The upload's id, from the Location its creation answered";

/// `OPTIONS /api/uploads`: what this server speaks.
#[utoipa::path(options, path = "/api/uploads", tag = UPLOADS,
    responses((status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size and \
        Tus-Checksum-Algorithm name what this server speaks")),
    security(()))]
async fn describe_uploads(state: State<AppState>) -> Response {
    describe(state).await
}

/// `OPTIONS /api/uploads/{id}`: what this server speaks.
#[utoipa::path(options, path = "/api/uploads/{id}", tag = UPLOADS,
    params(("id" = String, Path, description = ID)),
    responses((status = 204, description = "Tus-Version, Tus-Extension, Tus-Max-Size and \
        Tus-Checksum-Algorithm name what this server speaks")),
    security(()))]
async fn describe_upload(state: State<AppState>) -> Response {
    describe(state).await
}

/// `OPTIONS`: what this server speaks.
async fn describe(State(state): State<AppState>) -> Response {
    let max = state.core.limits().max_upload_bytes.to_string();
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    headers.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    headers.insert(
        "tus-checksum-algorithm",
        HeaderValue::from_static(CHECKSUMS),
    );
    if let Ok(max) = HeaderValue::from_str(&max) {
        headers.insert("tus-max-size", max);
    }
    response
}

/// A header that must be a non-negative integer.
fn number(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|text| text.parse().ok())
            .map(Some)
            .ok_or_else(|| invalid(format!("{name} must be a non-negative integer"))),
    }
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs.
fn metadata(headers: &HeaderMap) -> Result<HashMap<String, String>, ApiError> {
    let Some(raw) = headers.get("upload-metadata") else {
        return Ok(HashMap::new());
    };
    let raw = raw
        .to_str()
        .map_err(|_| invalid("Upload-Metadata must be ASCII"))?;
    if raw.len() > MAX_METADATA {
        return Err(invalid("Upload-Metadata is longer than 4096 bytes"));
    }
    let mut pairs = HashMap::new();
    for pair in raw
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once(' ').unwrap_or((pair, ""));
        let value = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let value = match value {
            Some(value) => value,
            // Clients send keys of their own (a file type, a fingerprint),
            // binary as well as text: only the keys Depot reads must be text.
            None if !KNOWN_KEYS.contains(&key) => continue,
            None => {
                return Err(invalid(format!(
                    "Upload-Metadata '{key}' is not base64 of UTF-8"
                )))
            }
        };
        if pairs.insert(key.to_owned(), value).is_some() {
            return Err(invalid(format!("Upload-Metadata names '{key}' twice")));
        }
    }
    Ok(pairs)
}

/// What the upload becomes, from its metadata (`filename`, or `name` as
/// Uppy sends it; `label`; `public`; `image`, an existing image's id).
fn meta_of(mut pairs: HashMap<String, String>) -> Result<ResumableMeta, ApiError> {
    let file_name = pairs
        .remove("filename")
        .or_else(|| pairs.remove("name"))
        .unwrap_or_default();
    let image = match pairs.remove("image") {
        None => None,
        Some(id) => Some(
            id.parse::<i64>()
                .map_err(|_| invalid("Upload-Metadata 'image' must be an image id"))?,
        ),
    };
    if file_name.is_empty() && image.is_none() {
        return Err(invalid(
            "Upload-Metadata must name the file ('filename') or the image it is for ('image')",
        ));
    }
    Ok(ResumableMeta {
        file_name,
        label: pairs.remove("label").unwrap_or_default(),
        public: matches!(pairs.remove("public").as_deref(), Some("true" | "1" | "on")),
        image,
        begun_from: None,
    })
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
fn checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    let Some(raw) = headers.get("upload-checksum") else {
        return Ok(None);
    };
    let raw = raw
        .to_str()
        .map_err(|_| invalid("Upload-Checksum must be ASCII"))?;
    let (algorithm, digest) = raw
        .split_once(' ')
        .ok_or_else(|| invalid("Upload-Checksum is '<algorithm> <base64 digest>'"))?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        .map_err(|_| invalid("Upload-Checksum's digest is not base64"))?;
    match algorithm {
        "sha1" => Ok(Some(Checksum::Sha1(digest))),
        "sha256" => Ok(Some(Checksum::Sha256(digest))),
        other => Err(invalid(format!(
            "Upload-Checksum algorithm '{other}' is not one of {CHECKSUMS}"
        ))),
    }
}

/// An HTTP date, as `Upload-Expires` wants it.
fn http_date(at: DateTime<Utc>) -> HeaderValue {
    HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// The headers that tell where an upload stands.
fn standing(response: &mut Response, upload: &Resumable, offset: u64) {
    let headers = response.headers_mut();
    headers.insert(UPLOAD_OFFSET.clone(), HeaderValue::from(offset));
    headers.insert(UPLOAD_EXPIRES.clone(), http_date(upload.expires_at));
}

/// Whether the request carries bytes for the upload.
fn carries_bytes(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value == OFFSET_STREAM)
}

/// Appends a request's body at `offset`; answers the new offset (and
/// whether the body broke off), or the response tus gives for a refused
/// chunk.
async fn take_chunk(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    offset: u64,
    headers: &HeaderMap,
    body: Body,
) -> Result<Appended, Response> {
    let checksum = checksum(headers).map_err(IntoResponse::into_response)?;
    let body = body.into_data_stream();
    let (core, viewer, upload) = (state.core.clone(), viewer.clone(), id.to_owned());
    let appended = uncancelled("a chunk", id, async move {
        core.append_to_upload(&viewer, &upload, offset, body, checksum)
            .await
    })
    .await
    .map_err(IntoResponse::into_response)?;
    match appended {
        Ok(appended) => Ok(appended),
        Err(AppendError::Checksum) => Err(tus_error(
            StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
            "the chunk does not match its Upload-Checksum; it was not kept",
        )),
        Err(AppendError::Core(error)) => Err(ApiError(error).into_response()),
    }
}

/// `POST /api/uploads`: creates an upload of `Upload-Length` bytes (and
/// takes its first bytes if the request carries them).
#[utoipa::path(post, path = "/api/uploads", tag = UPLOADS,
    params(
        ("Tus-Resumable" = TusVersion, Header, description = "The protocol's version: 1.0.0"),
        ("Upload-Length" = u64, Header, description = "The file's length in bytes",
            example = 1024),
        ("Upload-Metadata" = String, Header, description = "Comma-separated \
            `key base64(value)`: `filename` (or `name`), `label`, `public`, or `image` (an \
            existing image whose bytes these become); `filename` or `image` is required",
            example = "filename ZGlzay5pc28="),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1` or `sha256` and \
            the base64 digest of the bytes sent with the creation"),
    ),
    request_body(content = RawBytes, content_type = "application/offset+octet-stream",
        description = "The first bytes (creation-with-upload), or none"),
    responses(
        (status = 201, description = "Created: Location is the upload's URL; Upload-Offset \
            what was taken; Upload-Expires when it lapses"),
        (status = 400, description = "A header missing or malformed", body = ErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
        (status = 404, description = "The image named by `image` is not the caller's", body = ErrorBody),
        (status = 409, description = "Too many uploads in progress, the image named is a copy \
            of a personal-store file, or the caller owns as many images as an account may",
            body = ErrorBody),
        (status = 412, description = "Tus-Resumable is not 1.0.0", body = ErrorBody),
        (status = 413, description = "Longer than the upload limit or what is left of the quota",
            body = ErrorBody),
        (status = 460, description = "The bytes sent do not match Upload-Checksum", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let created = async {
        // A malformed checksum is refused before anything is created.
        checksum(&headers)?;
        if headers.contains_key("upload-defer-length") {
            return Err(invalid(
                "Upload-Defer-Length is not supported: send Upload-Length",
            ));
        }
        let length = number(&headers, &UPLOAD_LENGTH)?
            .ok_or_else(|| invalid("Upload-Length is required"))?;
        let meta = meta_of(metadata(&headers)?)?;
        Ok(state.core.create_upload(&viewer, length, meta).await?)
    }
    .await;
    let upload = match created {
        Ok(upload) => upload,
        Err(error) => return error.into_response(),
    };
    let mut offset = 0;
    if carries_bytes(&headers) {
        // Refused, or broken off (its client gone, and with it the answer
        // that names the upload), the upload has no URL its client knows:
        // it must not linger, holding its room for a day.
        let refused = match take_chunk(&state, &viewer, &upload.id, 0, &headers, body).await {
            Ok(appended) if !appended.broke_off => {
                offset = appended.received;
                None
            }
            Ok(_) => Some(tus_error(
                StatusCode::BAD_REQUEST,
                "the request's body broke off: the upload was not made",
            )),
            Err(refused) => Some(refused),
        };
        if let Some(refused) = refused {
            if let Err(error) = state.core.terminate_upload(&viewer, &upload.id).await {
                tracing::warn!(%error, "cannot remove an upload whose first chunk was not taken");
            }
            return refused;
        }
    }
    let mut response = StatusCode::CREATED.into_response();
    standing(&mut response, &upload, offset);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/uploads/{}", upload.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// `HEAD`: where the upload stands.
#[utoipa::path(head, path = "/api/uploads/{id}", tag = UPLOADS,
    params(("id" = String, Path, description = ID), ("Tus-Resumable" = TusVersion, Header, description = "The protocol's version: 1.0.0")),
    responses(
        (status = 200, description = "Upload-Offset: the bytes taken so far; Upload-Length; \
            Upload-Expires"),
        (status = 401, description = "No credentials, or wrong ones"),
        (status = 404, description = "No such upload of the caller's (or it expired)"),
        (status = 412, description = "Tus-Resumable is not 1.0.0"),
    ))]
async fn offset(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    match state.core.upload_status(&viewer, &id).await {
        Ok(upload) => {
            let mut response = StatusCode::OK.into_response();
            standing(&mut response, &upload, upload.received);
            let headers = response.headers_mut();
            headers.insert(UPLOAD_LENGTH.clone(), HeaderValue::from(upload.length));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        // A HEAD answer has no body: the status says it.
        Err(error) => super::error::status_of(&error).into_response(),
    }
}

/// `PATCH`: bytes at `Upload-Offset`.
#[utoipa::path(patch, path = "/api/uploads/{id}", tag = UPLOADS,
    params(
        ("id" = String, Path, description = ID),
        ("Tus-Resumable" = TusVersion, Header, description = "The protocol's version: 1.0.0"),
        ("Upload-Offset" = u64, Header, description = "Where these bytes go: the offset \
            HEAD answers"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1` or `sha256` and \
            the base64 digest of this chunk"),
    ),
    request_body(content = RawBytes, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Taken: Upload-Offset is the new offset; the chunk that \
            completes the upload makes it an image"),
        (status = 400, description = "Upload-Offset missing or malformed, or the file is no \
            image", body = ErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
        (status = 404, description = "No such upload of the caller's (or it expired)",
            body = ErrorBody),
        (status = 409, description = "Upload-Offset is not the upload's offset, another chunk \
            is being written, or the upload is complete", body = ErrorBody),
        (status = 412, description = "Tus-Resumable is not 1.0.0", body = ErrorBody),
        (status = 413, description = "More bytes than the upload's length, or too many chunks",
            body = ErrorBody),
        (status = 415, description = "Content-Type is not application/offset+octet-stream",
            body = ErrorBody),
        (status = 460, description = "The chunk does not match Upload-Checksum; nothing was kept",
            body = ErrorBody),
    ))]
async fn append(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !carries_bytes(&headers) {
        return tus_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a PATCH carries Content-Type: application/offset+octet-stream",
        );
    }
    let offset = match number(&headers, &UPLOAD_OFFSET) {
        Ok(Some(offset)) => offset,
        Ok(None) => return invalid("Upload-Offset is required").into_response(),
        Err(error) => return error.into_response(),
    };
    let received = match take_chunk(&state, &viewer, &id, offset, &headers, body).await {
        Ok(appended) => appended.received,
        Err(refused) => return refused,
    };
    match state.core.upload_status(&viewer, &id).await {
        Ok(upload) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            standing(&mut response, &upload, received);
            response
        }
        Err(error) => ApiError(error).into_response(),
    }
}

/// `POST` with `X-HTTP-Method-Override` (for clients behind proxies that
/// pass only `GET` and `POST`): the method it names.
#[utoipa::path(post, path = "/api/uploads/{id}", tag = UPLOADS,
    params(
        ("id" = String, Path, description = ID),
        ("Tus-Resumable" = TusVersion, Header, description = "The protocol's version: 1.0.0"),
        ("X-HTTP-Method-Override" = String, Header, description = "PATCH, DELETE or HEAD"),
    ),
    request_body(content = RawBytes, content_type = "application/offset+octet-stream",
        description = "As the method named would take"),
    responses(
        (status = 200, description = "As HEAD answers"),
        (status = 204, description = "As PATCH or DELETE answer"),
        (status = 400, description = "As the method named answers", body = ErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
        (status = 404, description = "No such upload of the caller's", body = ErrorBody),
        (status = 405, description = "No method, or one other than PATCH, DELETE or HEAD",
            body = ErrorBody),
        (status = 409, description = "As PATCH answers", body = ErrorBody),
        (status = 412, description = "Tus-Resumable is not 1.0.0", body = ErrorBody),
        (status = 413, description = "As PATCH answers", body = ErrorBody),
        (status = 415, description = "As PATCH answers", body = ErrorBody),
        (status = 460, description = "As PATCH answers", body = ErrorBody),
    ))]
async fn overridden(
    state: State<AppState>,
    viewer: Extension<Viewer>,
    id: Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let method = headers
        .get("x-http-method-override")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_uppercase();
    match method.as_str() {
        "PATCH" => append(state, viewer, id, headers, body).await,
        "DELETE" => terminate(state, viewer, id).await,
        "HEAD" => offset(state, viewer, id).await,
        _ => tus_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST to an upload names PATCH, DELETE or HEAD in X-HTTP-Method-Override",
        ),
    }
}

/// `DELETE`: the upload is terminated; its bytes and reservation go.
#[utoipa::path(delete, path = "/api/uploads/{id}", tag = UPLOADS,
    params(("id" = String, Path, description = ID), ("Tus-Resumable" = TusVersion, Header, description = "The protocol's version: 1.0.0")),
    responses(
        (status = 204, description = "Terminated: nothing of it is left"),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
        (status = 404, description = "No such upload of the caller's", body = ErrorBody),
        (status = 412, description = "Tus-Resumable is not 1.0.0", body = ErrorBody),
    ))]
async fn terminate(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    match state.core.terminate_upload(&viewer, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => ApiError(error).into_response(),
    }
}

/// `GET`: the image a complete upload became.
#[utoipa::path(get, path = "/api/uploads/{id}", tag = UPLOADS,
    params(("id" = String, Path, description = ID)),
    responses(
        (status = 200, description = "The image the upload became", body = UploadedImage),
        (status = 400, description = "The file is no image (the upload is then gone)",
            body = ErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
        (status = 404, description = "No such upload of the caller's", body = ErrorBody),
        (status = 409, description = "The upload is not complete yet", body = ErrorBody),
        (status = 413, description = "The file does not fit what is left of the quota",
            body = ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<UploadedImage>, ApiError> {
    // It may make the image: a client gone midway (a proxy's timeout) left
    // the upload claimed, and no image, for the claim's hour.
    let (core, upload) = (state.core.clone(), id.clone());
    let image = uncancelled("an upload's completion", &id, async move {
        core.uploaded_image(&viewer, &upload).await
    })
    .await??;
    Ok(Json(UploadedImage { image }))
}

/// Runs `work` on a task of its own, which the request cannot cancel: a
/// client that goes as soon as its last byte is sent (a page reloaded)
/// makes hyper drop the request's future, and with it, halfway, the
/// keeping of a chunk the server has whole, or the making of the image,
/// leaving the upload claimed and no image until the claim lapses. A task
/// that failed (`what`'s, for `upload`) is the server's error.
async fn uncancelled<T: Send + 'static>(
    what: &'static str,
    upload: &str,
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work).await.map_err(|error| {
        tracing::error!(%error, upload, "{what}'s task failed");
        ApiError(CoreError::Internal)
    })
}
