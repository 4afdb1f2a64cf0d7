//! `/v1/images` and `/v1/image/{id}`.

use app::error::CoreError;
use app::model::{ContentType, Image, ViceImageDraft, ViceImageSpec, ViceImageType, Viewer};
use app::query::{Direction, Field, Query, MAX_PAGE};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use serde::Deserialize;
use serde_json::Value;

use super::codec::{Negotiated, Reply, ViceBody};
use super::error::{ViceErrorBody, VicePath, ViceResult};
use super::views::{Done, ImageView, OriginId, Origins};
use crate::state::AppState;

const TAG: &str = "images";

/// An image as clients send it, in either spelling of the seed's fields
/// (`imagetype` or `image-type`, ...); `userid` is the server's to set.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = ImageWrite, xml(name = "Image"))]
pub struct ImageBody {
    /// Names the image on `PUT /v1/images`; ignored on `POST`.
    #[schema(value_type = Option<String>)]
    id: Option<Value>,
    title: Option<String>,
    #[serde(alias = "image-type")]
    #[schema(value_type = Option<ViceImageType>)]
    imagetype: Option<String>,
    #[serde(alias = "content-type")]
    #[schema(value_type = Option<ContentType>)]
    contenttype: Option<String>,
    imported: Option<bool>,
    /// The environment it came from: `{"id"}` (a whole environment is
    /// taken for its `id`), or the id itself.
    #[serde(rename = "originEnvironment")]
    #[schema(value_type = Option<OriginId>)]
    origin_environment: Option<Value>,
    #[serde(rename = "environmentReference")]
    environment_reference: Option<String>,
    /// A JSON object, or a string holding one.
    #[schema(value_type = Option<String>, example = "{}")]
    specifics: Option<Value>,
}

/// A JSON or XML scalar as text (ids come as numbers or strings).
fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        Value::Object(map) => map.get("$text").and_then(text_of),
        _ => None,
    }
}

impl ImageBody {
    fn spec(self) -> Result<ViceImageSpec, CoreError> {
        let origin = self
            .origin_environment
            .as_ref()
            .and_then(|origin| match origin {
                Value::Object(fields) => fields.get("id").and_then(text_of),
                other => text_of(other),
            });
        // XML text comes through as a string or as `{"$text": …}`.
        let specifics = self.specifics.map(|specifics| match &specifics {
            Value::Object(fields) if fields.len() == 1 && fields.contains_key("$text") => {
                fields["$text"].clone()
            }
            _ => specifics,
        });
        ViceImageSpec::parse(ViceImageDraft {
            title: self.title,
            image_type: self.imagetype,
            content_type: self.contenttype,
            imported: self.imported,
            origin_environment: origin,
            environment_reference: self.environment_reference,
            specifics,
        })
    }
}

/// An id from a path: anything that is not one names no image.
pub fn image_id(raw: &str) -> Result<i64, CoreError> {
    raw.parse::<i64>()
        .map_err(|_| CoreError::not_found(format!("image {raw}")))
}

/// The origin environments of `images` the caller may read. Should the
/// look-up fail, each origin is shown as its id: the answer (often to a
/// write already done) is not lost for a detail of it.
pub async fn origins(state: &AppState, viewer: &Viewer, images: &[Image]) -> Origins {
    let ids = images.iter().filter_map(|image| {
        let origin = image.vice.origin_environment.as_deref()?;
        origin.parse::<i64>().ok()
    });
    match state.core.readable_environments(viewer, ids).await {
        Ok(origins) => origins,
        Err(error) => {
            tracing::warn!(%error, "origin environments not read; showing their ids");
            Origins::new()
        }
    }
}

/// One image, as an answer.
pub async fn reply(
    state: &AppState,
    viewer: &Viewer,
    format: super::codec::Format,
    status: StatusCode,
    image: &Image,
) -> ViceResult {
    let origins = origins(state, viewer, std::slice::from_ref(image)).await;
    Ok(Reply::new(
        format,
        status,
        "Image",
        &ImageView::new(image, &origins),
    ))
}

/// List available images (`findImages`): the public ones, and the caller's
/// own when signed in; at most 1000, oldest first.
#[utoipa::path(get, path = "/v1/images", tag = TAG, operation_id = "findImages",
    security((), ("basic" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "An array of images.", body = Vec<ImageView>),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
) -> ViceResult {
    let query = Query::new(MAX_PAGE).sort_by(Field::Id, Direction::Asc);
    let page = state.core.list_images(&viewer, query).await?;
    let origins = origins(&state, &viewer, &page.items).await;
    let images: Vec<ImageView> = page
        .items
        .iter()
        .map(|image| ImageView::new(image, &origins))
        .collect();
    Ok(Reply::list(format, "Images", "Image", &images))
}

/// Create a new image (`createImage`): 201.
#[utoipa::path(post, path = "/v1/images", tag = TAG, operation_id = "createImage",
    request_body(content = ImageBody, description = "The image; the server assigns `id` \
        and `userid`"),
    responses(
        (status = 201, description = "Created", body = ImageView, links(
            ("getImage" = (operation_id = "getImage",
                parameters(("imageId" = "$response.body#/id")))),
            ("uploadImage" = (operation_id = "uploadImage",
                parameters(("imageId" = "$response.body#/id")))),
            ("downloadImage" = (operation_id = "downloadImage",
                parameters(("imageId" = "$response.body#/id")))),
            ("deleteImage" = (operation_id = "deleteImage",
                parameters(("imageId" = "$response.body#/id")))),
        )),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 405, description = "Invalid input", body = ViceErrorBody),
        (status = 413, description = "The body is too large", body = ViceErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    body: ViceResult<ViceBody<ImageBody>>,
) -> ViceResult {
    viewer.require_user()?;
    let ViceBody(body) = body?;
    let image = state.core.create_vice_image(&viewer, body.spec()?).await?;
    reply(&state, &viewer, format, StatusCode::CREATED, &image).await
}

/// Update an existing image (`updateImage`): 201 "Updated"; the body's `id`
/// names it.
#[utoipa::path(put, path = "/v1/images", tag = TAG, operation_id = "updateImage",
    request_body(content = ImageBody, description = "The image, named by its `id`"),
    responses(
        (status = 201, description = "Updated", body = ImageView),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 403, description = "Not the caller's image", body = ViceErrorBody),
        (status = 404, description = "Element not found", body = ViceErrorBody),
        (status = 405, description = "Invalid input", body = ViceErrorBody),
        (status = 413, description = "The body is too large", body = ViceErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    body: ViceResult<ViceBody<ImageBody>>,
) -> ViceResult {
    viewer.require_user()?;
    let ViceBody(body) = body?;
    let id = body
        .id
        .as_ref()
        .and_then(text_of)
        .ok_or_else(|| CoreError::invalid("id is required to update an image"))?;
    let id = image_id(&id)?;
    let image = state
        .core
        .update_vice_image(&viewer, id, body.spec()?)
        .await?;
    reply(&state, &viewer, format, StatusCode::CREATED, &image).await
}

/// Get an image by id (`getImage`).
#[utoipa::path(get, path = "/v1/image/{imageId}", tag = TAG, operation_id = "getImage",
    params(("imageId" = String, Path, description = "The image's id")),
    responses(
        (status = 200, description = "successful operation", body = ImageView),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 404, description = "Element not found", body = ViceErrorBody),
        (status = 405, description = "The path does not decode", body = ViceErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    VicePath(id): VicePath<String>,
) -> ViceResult {
    viewer.require_user()?;
    let image = state.core.get_image(&viewer, image_id(&id)?).await?;
    reply(&state, &viewer, format, StatusCode::OK, &image).await
}

/// Delete an image (`deleteImage`): 200.
#[utoipa::path(delete, path = "/v1/image/{imageId}", tag = TAG, operation_id = "deleteImage",
    params(("imageId" = String, Path, description = "The image's id")),
    responses(
        (status = 200, description = "successful operation", body = Done),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 403, description = "Not the caller's image", body = ViceErrorBody),
        (status = 404, description = "Element not found", body = ViceErrorBody),
        (status = 405, description = "The path does not decode", body = ViceErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    VicePath(id): VicePath<String>,
) -> ViceResult {
    let id = image_id(&id)?;
    state.core.delete_image(&viewer, id).await?;
    let done = Done {
        code: 200,
        message: format!("image {id} deleted"),
    };
    Ok(Reply::new(format, StatusCode::OK, "Response", &done))
}
