//! `/v1/image/{id}/file`: the image's bytes, up (multipart `upfile`, streamed
//! through the same ingest as every upload) and down (with `Range`).

use app::error::CoreError;
use app::model::Viewer;
use app::ports::ClientAddress;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::TryStreamExt;

use super::codec::Negotiated;
use super::error::{ViceError, ViceErrorBody, VicePath, ViceResult};
use super::images::{image_id, reply};
use super::views::ImageView;
use crate::state::AppState;
use crate::web::{BodyLength, RawBytes};

const TAG: &str = "images";

/// The form `uploadImage` takes.
#[allow(dead_code)] // Describes a body; the handler streams it.
#[derive(utoipa::ToSchema)]
pub struct UploadForm {
    /// The file to upload.
    #[schema(value_type = String, format = Binary)]
    upfile: Vec<u8>,
}

/// Upload a file as image (`uploadImage`): 200 with the image; 400 without
/// `upfile` or when the bytes are refused (unreadable, or an unsafe disk).
#[utoipa::path(post, path = "/v1/image/{imageId}/file", tag = TAG, operation_id = "uploadImage",
    params(("imageId" = String, Path, description = "The image's id")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "successful operation", body = ImageView),
        (status = 400, description = "Bad request: no `upfile`, or bytes refused", body = ViceErrorBody),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 403, description = "Not the caller's image", body = ViceErrorBody),
        (status = 404, description = "Element not found", body = ViceErrorBody),
        (status = 405, description = "The path does not decode", body = ViceErrorBody),
        (status = 409, description = "The image is a copy of a personal-store file, whose bytes \
            it keeps", body = ViceErrorBody),
        (status = 413, description = "Over the size limit or the quota", body = ViceErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    VicePath(id): VicePath<String>,
    BodyLength(length): BodyLength,
    form: Result<Multipart, MultipartRejection>,
) -> ViceResult {
    viewer.require_user()?;
    let id = image_id(&id)?;
    let mut form = form.map_err(|rejection| ViceError::bad_request(rejection.body_text()))?;
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Err(ViceError::bad_request("the form has no 'upfile' field")),
            Err(error) => {
                return Err(ViceError::bad_request(format!(
                    "unreadable upload form: {}",
                    crate::web::form_reason(&error)
                )))
            }
        };
        if field.name() != Some("upfile") {
            continue;
        }
        let body = field.map_err(|error| error.to_string());
        // `uploadImage` documents 400, not the registry's usual 405, for bad input.
        let image = match state.core.attach_file(&viewer, id, body, length).await {
            Err(error @ CoreError::Invalid(_)) => {
                return Err(ViceError::bad_request(error.to_string()))
            }
            outcome => outcome?,
        };
        return reply(&state, &viewer, format, StatusCode::OK, &image).await;
    }
}

/// Download a file as image (`downloadImage`), with `Range`.
#[utoipa::path(get, path = "/v1/image/{imageId}/file", tag = TAG, operation_id = "downloadImage",
    params(
        ("imageId" = String, Path, description = "The image's id"),
        crate::web::DownloadHeaders,
    ),
    responses(
        (status = 200, description = "successful operation; ETag is its SHA-256", body = RawBytes,
            content_type = "application/octet-stream"),
        (status = 206, description = "The range asked for", body = RawBytes,
            content_type = "application/octet-stream"),
        (status = 304, description = "The client's copy is current"),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 404, description = "Element not found, or no bytes yet", body = ViceErrorBody),
        (status = 405, description = "The path does not decode", body = ViceErrorBody),
        (status = 416, description = "The range is outside the file (Depot's download \
            answer, JSON only)", body = crate::web::ErrorBody),
        (status = 429, description = "The caller receives as many downloads at once as it may \
            (`Retry-After`)", body = ViceErrorBody),
    ))]
pub async fn download(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    client: Option<Extension<ClientAddress>>,
    headers: HeaderMap,
    VicePath(id): VicePath<String>,
) -> ViceResult<Response> {
    viewer.require_user()?;
    let id = image_id(&id)?;
    let client = client.map(|Extension(ClientAddress(address))| address);
    let response = crate::web::content_response(&state, &viewer, client, id, &headers).await?;
    Ok(response.into_response())
}
