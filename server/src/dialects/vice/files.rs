//! `/v1/image/{id}/file`: the image's bytes, up (multipart `upfile`, streamed
//! through the same ingest as every upload) and down (with `Range`).

use app::error::CoreError;
use app::model::Viewer;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::TryStreamExt;

use super::codec::{response_format, Reply};
use super::error::{error_with, respond};
use super::images::image_id;
use super::views::ImageView;
use crate::state::AppState;

/// Upload a file as image (`uploadImage`): 200 with the image; 400 without
/// `upfile` or when the bytes are refused (unreadable, or an unsafe disk).
pub async fn upload(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let format = response_format(&headers);
    if viewer.principal().is_none() {
        return respond(format, Err(CoreError::Unauthenticated));
    }
    let id = match image_id(&id) {
        Ok(id) => id,
        Err(error) => return respond(format, Err(error)),
    };
    let bad_request = |message: String| error_with(format, StatusCode::BAD_REQUEST, message);
    let mut form = match form {
        Ok(form) => form,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return bad_request("the form has no 'upfile' field".into()),
            Err(error) => return bad_request(format!("unreadable upload form: {error}")),
        };
        if field.name() != Some("upfile") {
            continue;
        }
        let body = field.map_err(|error| error.to_string());
        let outcome = state
            .core
            .attach_file(&viewer, id, body)
            .await
            .map(|image| Reply::new(format, StatusCode::OK, "Image", &ImageView::from(&image)));
        // `uploadImage` documents 400, not the registry's usual 405, for bad input.
        return match outcome {
            Err(error @ CoreError::Invalid(_)) => bad_request(error.to_string()),
            outcome => respond(format, outcome),
        };
    }
}

/// Download a file as image (`downloadImage`).
pub async fn download(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let format = response_format(&headers);
    if viewer.principal().is_none() {
        return respond(format, Err(CoreError::Unauthenticated));
    }
    let outcome = match image_id(&id) {
        Ok(id) => crate::web::content_response(&state, &viewer, id, &headers).await,
        Err(error) => Err(error),
    };
    match outcome {
        Ok(response) => response.into_response(),
        Err(error) => respond(format, Err(error)),
    }
}
