//! Image bytes over HTTP: `POST /api/upload` (multipart, streamed to the blob
//! store) and `GET /api/images/{id}/download` (streamed, with `Range`); and
//! any other path under `/api`, a 404 in the API's JSON rather than the UI's
//! page.

use std::net::IpAddr;
use std::sync::Arc;

use app::error::CoreError;
use app::model::{Image, Viewer};
use app::ports::ClientAddress;
use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::any;
use axum::{Extension, Json};
use futures_util::TryStreamExt;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::download_places::held;
use super::openapi::{ErrorBody, IMAGES};
use super::{ApiError, ApiPath, BodyLength};
use crate::core::UploadMeta;
use crate::state::AppState;

/// The longest text field (label, flags) an upload form may carry.
const MAX_TEXT_FIELD: usize = 4096;

pub fn router() -> OpenApiRouter<AppState> {
    // The body is streamed to disk and limited by the core, not buffered.
    let (schemas, paths, upload) = routes!(upload);
    OpenApiRouter::new()
        .routes((schemas, paths, super::streamed_form(upload)))
        .routes(routes!(download))
        // Every other path under `/api`, whatever the method. Static routes win
        // over a catch-all (matchit), so `/api/tokens` and the UI's server
        // functions, each registered at its own `/api/ui/...` path by
        // `leptos_routes_with_context`, are untouched.
        .route("/api/{*rest}", any(not_found))
}

/// The upload form, as `curl -F` sends it.
#[allow(dead_code)] // Describes the form; the handler reads it field by field.
#[derive(utoipa::ToSchema)]
struct UploadForm {
    /// A label for every image of the form.
    label: Option<String>,
    /// `true`, `on` or `1` makes the images public (administrators only).
    public: Option<String>,
    /// A file (the field may come several times), each its own image,
    /// named by its file name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The images an upload made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UploadedImages {
    pub images: Vec<Image>,
}

/// A path under `/api` that names no endpoint: 404 in the API's JSON.
async fn not_found(uri: Uri) -> ApiError {
    ApiError(CoreError::not_found(format!("resource {}", uri.path())))
}

pub(super) fn bad_form(error: MultipartError) -> ApiError {
    ApiError(CoreError::invalid(format!(
        "unreadable upload form: {}",
        super::form_guard::reason(&error)
    )))
}

/// Reads a small text field, refusing one that is not small.
pub(super) async fn text_field(mut field: Field<'_>) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_TEXT_FIELD {
            return Err(ApiError(CoreError::invalid(
                "a form field is longer than 4096 bytes",
            )));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError(CoreError::invalid("a form field is not UTF-8")))
}

/// Whether the client is a browser posting the plain HTML form (no script).
pub(super) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Takes `label`, `public` and one or more `file` fields, in that order; each
/// file becomes one image. Answers 201 with `{"images": [...]}`, or a redirect
/// to the first image for a browser without script.
#[utoipa::path(post, path = "/api/upload", tag = IMAGES,
    request_body(content = UploadForm, content_type = "multipart/form-data",
        description = "`label` and `public` before the files they apply to"),
    responses(
        (status = 201, description = "The images made, one per file; Location names the first",
            body = UploadedImages, links(
                ("downloadImage" = (operation_id = "downloadImage",
                    parameters(("id" = "$response.body#/images/0/id")))),
            )),
        (status = 303, description = "A browser posting the plain form (Accept: text/html) \
            goes to the first image's page"),
        (status = 400, description = "An unreadable form, an unknown field, no file, or a \
            file that is no image", body = ErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
        (status = 403, description = "Only administrators publish public images", body = ErrorBody),
        (status = 409, description = "The caller has an image of that name already, or owns as \
            many images as an account may", body = ErrorBody),
        (status = 413, description = "Larger than the upload limit or what is left of the quota",
            body = ErrorBody),
    ))]
async fn upload(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    BodyLength(length): BodyLength,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    viewer.require_user()?;
    let mut form = form?;
    let mut meta = UploadMeta::default();
    let mut created: Vec<Image> = Vec::new();
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        match field.name().unwrap_or_default() {
            "label" => meta.label = text_field(field).await?,
            "public" => {
                meta.public = matches!(text_field(field).await?.as_str(), "true" | "on" | "1")
            }
            "file" => {
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let meta = UploadMeta {
                    file_name,
                    ..meta.clone()
                };
                let body = field.map_err(|error| super::form_guard::reason(&error));
                // Each file is shorter than the whole form.
                created.push(state.core.upload(&viewer, meta, body, length).await?);
            }
            other => {
                return Err(ApiError(CoreError::invalid(format!(
                    "unknown form field '{other}' (expected label, public, file)"
                ))))
            }
        }
    }
    let Some(first) = created.first() else {
        return Err(ApiError(CoreError::invalid("the form has no 'file' field")));
    };
    let location = format!("/image/{}", first.id);
    if wants_html(&headers) {
        return Ok(Redirect::to(&location).into_response());
    }
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(serde_json::json!({ "images": created })),
    )
        .into_response())
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266).
fn content_disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(name, NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The one byte range to send, `Ok(None)` for the whole file, or `Err` for a 416.
fn requested_range(headers: &HeaderMap, etag: &str, length: u64) -> Result<Option<(u64, u64)>, ()> {
    use http_range_header::{EndPosition, StartPosition};
    let Some(range) = headers.get(header::RANGE).and_then(|r| r.to_str().ok()) else {
        return Ok(None);
    };
    // `If-Range` with another validator: the client's copy is stale, send it all.
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        if if_range.as_bytes() != etag.as_bytes() {
            return Ok(None);
        }
    }
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        return Ok(None); // A header we cannot read is ignored, as RFC 9110 allows.
    };
    let [only] = parsed.ranges.as_slice() else {
        return Ok(None); // Several ranges: the whole file is a valid answer.
    };
    match (&only.start, &only.end) {
        // Its last byte before its first: no valid range, so the header is
        // ignored (RFC 9110, 14.1.1), not unsatisfiable.
        (StartPosition::Index(first), EndPosition::Index(last)) if last < first => Ok(None),
        // A suffix longer than the file is the whole file (14.1.1): of an
        // empty one, its nothing, all of it.
        (StartPosition::FromLast(_), _) if length == 0 => Ok(None),
        (StartPosition::FromLast(suffix), _) if *suffix >= length => Ok(Some((0, length - 1))),
        // No other range of an empty file can be satisfied (14.1.1);
        // http-range-header would make `bytes=0-` its first byte.
        _ if length == 0 => Err(()),
        _ => match parsed.validate(length) {
            Ok(ranges) => Ok(Some((*ranges[0].start(), *ranges[0].end()))),
            Err(_) => Err(()),
        },
    }
}

/// The headers a download honours (described; `content_response` reads them).
#[allow(dead_code)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct DownloadHeaders {
    /// One byte range, `bytes=start-end`.
    #[param(rename = "Range")]
    range: Option<String>,
    /// The ETag the range is of.
    #[param(rename = "If-Range")]
    if_range: Option<String>,
    /// ETags the client has.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

/// Streams an image's bytes, honouring `Range`, `If-Range` and `If-None-Match`.
#[utoipa::path(get, path = "/api/images/{id}/download", tag = IMAGES, operation_id = "downloadImage",
    params(
        ("id" = i64, Path, description = "The image's id"),
        DownloadHeaders,
    ),
    responses(
        (status = 200, description = "The whole file, as application/octet-stream; ETag is \
            its SHA-256"),
        (status = 206, description = "The range asked for, as application/octet-stream"),
        (status = 304, description = "The client's copy is current"),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 404, description = "No such image the caller may see, or one without bytes",
            body = ErrorBody),
        (status = 416, description = "The range is outside the file", body = ErrorBody),
        (status = 429, description = "The caller (a user, or an address for a caller not \
            signed in) receives as many downloads at once as it may (`Retry-After`)",
            body = ErrorBody),
    ),
    security((), ("basic" = []), ("bearer" = []), ("session" = [])))]
async fn download(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    client: Option<Extension<ClientAddress>>,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = client.map(|Extension(ClientAddress(address))| address);
    Ok(content_response(&state, &viewer, client, id, &headers).await?)
}

/// An image's bytes as a download: whole or a `Range`, with `ETag` (the
/// SHA-256, honouring `If-None-Match` and `If-Range`), `Content-Length` and
/// `Content-Disposition`. Every dialect that serves bytes answers with this.
/// The bytes count among the downloads the caller (`viewer`, from `client`)
/// receives at once, 429 past its cap, until the last of them is sent.
pub async fn content_response(
    state: &AppState,
    viewer: &Viewer,
    client: Option<IpAddr>,
    id: i64,
    headers: &HeaderMap,
) -> Result<Response, CoreError> {
    // Taken first: a client past its cap costs no read of the catalog, nor
    // a file opened. (Given back at once by a 304 or a 416.)
    let place = match &state.downloads {
        Some(places) => places.take(viewer, client)?.map(Arc::new),
        None => None,
    };
    let (image, blob) = state.core.open_content(viewer, id).await?;
    let length = blob.size();
    let etag = format!("\"{}\"", image.sha256.as_deref().unwrap_or_default());
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }

    let (status, start, count) = match requested_range(headers, &etag, length) {
        Ok(Some((start, end))) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Ok(None) => (StatusCode::OK, 0, length),
        Err(()) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{length}"))],
                ErrorBody::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "the range is outside the file",
                ),
            )
                .into_response())
        }
    };
    // Sent from the file by the kernel (the server speaks HTTP/1.1 only:
    // HTTP/2 would copy the start of every frame out of the mapped bytes,
    // where a page that cannot be read would kill the server).
    let bytes = blob
        .send(start, count)
        .await
        .map_err(crate::core::io_error)?;
    let body = match place {
        Some(place) => Body::from_stream(bytes.map_ok(move |chunk| held(chunk, &place))),
        None => Body::from_stream(bytes),
    };

    let mut response = Response::new(body);
    *response.status_mut() = status;
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Whatever the bytes are, they never run as a page of Depot's origin.
    response_headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    response_headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&image.name),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{length}", start + count - 1);
        if let Ok(value) = HeaderValue::from_str(&range) {
            response_headers.insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        let tag = "\"abc\"";
        assert_eq!(requested_range(&with(&[]), tag, 100), Ok(None));
        assert_eq!(
            requested_range(&with(&[(header::RANGE, "bytes=10-19")]), tag, 100),
            Ok(Some((10, 19)))
        );
        assert_eq!(
            requested_range(&with(&[(header::RANGE, "bytes=-10")]), tag, 100),
            Ok(Some((90, 99)))
        );
        assert_eq!(
            requested_range(&with(&[(header::RANGE, "bytes=200-")]), tag, 100),
            Err(())
        );
        assert_eq!(
            requested_range(&with(&[(header::RANGE, "pages=1")]), tag, 100),
            Ok(None)
        );
        // A suffix longer than the file is all of it (an ISO reader asks
        // for a small file's last 64 KiB); a reversed range or several
        // overlapping ones are ignored.
        assert_eq!(
            requested_range(&with(&[(header::RANGE, "bytes=-1000")]), tag, 100),
            Ok(Some((0, 99)))
        );
        for ignored in ["bytes=10-5", "bytes=0-10,5-20", "bytes=0-1,2-3"] {
            assert_eq!(
                requested_range(&with(&[(header::RANGE, ignored)]), tag, 100),
                Ok(None),
                "{ignored}"
            );
        }
        assert_eq!(
            requested_range(&with(&[(header::RANGE, "bytes=-5")]), tag, 0),
            Ok(None)
        );
        assert_eq!(
            requested_range(&with(&[(header::RANGE, "bytes=0-")]), tag, 0),
            Err(())
        );
        let stale = with(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, "\"old\"")]);
        assert_eq!(requested_range(&stale, tag, 100), Ok(None));
    }

    #[test]
    fn disposition_keeps_unicode_names_and_an_ascii_fallback() {
        let value = content_disposition("disk é.iso");
        assert_eq!(
            value.to_str().unwrap(),
            "attachment; filename=\"disk _.iso\"; filename*=UTF-8''disk%20%C3%A9%2Eiso"
        );
    }
}
