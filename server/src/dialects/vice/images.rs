//! `/v1/images` and `/v1/image/{id}`.

use app::error::CoreError;
use app::model::{ViceImageDraft, ViceImageSpec, Viewer};
use app::query::{Direction, Field, Query, MAX_PAGE};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;
use serde_json::Value;

use super::codec::{decode, request_format, response_format, Reply};
use super::error::respond;
use super::views::{Done, ImageList, ImageView};
use crate::state::AppState;

/// An image as clients send it, in either spelling of the seed's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ImageBody {
    /// Read on `PUT /v1/images` only, to name the image.
    id: Option<Value>,
    title: Option<String>,
    #[serde(alias = "image-type")]
    imagetype: Option<String>,
    #[serde(alias = "content-type")]
    contenttype: Option<String>,
    imported: Option<bool>,
    #[serde(rename = "originEnvironment")]
    origin_environment: Option<Value>,
    #[serde(rename = "environmentReference")]
    environment_reference: Option<String>,
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
    fn read(headers: &HeaderMap, bytes: Result<Bytes, BytesRejection>) -> Result<Self, CoreError> {
        let bytes = bytes.map_err(|rejection| crate::dialects::body_error(&rejection))?;
        decode(request_format(headers), &bytes)
    }

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

/// List available images (`findImages`).
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        let query = Query::new(MAX_PAGE).sort_by(Field::Id, Direction::Asc);
        let page = state.core.list_images(&viewer, query).await?;
        let images: Vec<ImageView> = page.items.iter().map(ImageView::from).collect();
        Ok(match format {
            super::codec::Format::Json => Reply::new(format, StatusCode::OK, "Images", &images),
            super::codec::Format::Xml => {
                Reply::new(format, StatusCode::OK, "Images", &ImageList { images })
            }
        })
    }
    .await;
    respond(format, outcome)
}

/// Create a new image (`createImage`): 201.
pub async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        let spec = ImageBody::read(&headers, bytes)?.spec()?;
        let image = state.core.create_vice_image(&viewer, spec).await?;
        Ok(Reply::new(
            format,
            StatusCode::CREATED,
            "Image",
            &ImageView::from(&image),
        ))
    }
    .await;
    respond(format, outcome)
}

/// Update an existing image (`updateImage`): 201 "Updated"; the body's `id`
/// names it.
pub async fn update(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        let body = ImageBody::read(&headers, bytes)?;
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
        Ok(Reply::new(
            format,
            StatusCode::CREATED,
            "Image",
            &ImageView::from(&image),
        ))
    }
    .await;
    respond(format, outcome)
}

/// Get an image by id (`getImage`).
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        let image = state.core.get_image(&viewer, image_id(&id)?).await?;
        Ok(Reply::new(
            format,
            StatusCode::OK,
            "Image",
            &ImageView::from(&image),
        ))
    }
    .await;
    respond(format, outcome)
}

/// Delete an image (`deleteImage`): 200.
pub async fn delete(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        let id = image_id(&id)?;
        state.core.delete_image(&viewer, id).await?;
        let done = Done {
            code: 200,
            message: format!("image {id} deleted"),
        };
        Ok(Reply::new(format, StatusCode::OK, "Response", &done))
    }
    .await;
    respond(format, outcome)
}
