//! `/v2/imagetypes` and `/v2/imagetypes/{name}`.

use app::error::CoreError;
use app::model::ImageType;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;

use super::caller::Caller;
use super::error::{CooprError, CooprErrorBody, CooprPath};
use crate::state::AppState;
use crate::web::whole_body::{Unread, WholeBody};

const TAG: &str = "image types";

/// A whole image type from a JSON body, whatever its `Content-Type`.
fn image_type(body: Result<WholeBody, Unread>) -> Result<ImageType, CooprError> {
    let body = body.map_err(CoreError::from)?;
    let json: serde_json::Value = serde_json::from_slice(&body.bytes)
        .map_err(|error| CoreError::invalid(format!("the body is not valid JSON: {error}")))?;
    Ok(ImageType::parse(&json)?)
}

/// List All Image Types of the tenant. The list takes no parameters: a
/// query string is the seed's "resource uri specified incorrectly", 400,
/// rather than a filter silently ignored.
#[utoipa::path(get, path = "/v2/imagetypes", tag = TAG,
    responses(
        (status = 200, description = "The tenant's image types", body = Vec<ImageType>),
        (status = 400, description = "The URI is specified incorrectly (the list takes no \
            query parameters)", body = CooprErrorBody),
        (status = 401, description = "A Coopr header missing, or a key not issued to that \
            user for that tenant", body = CooprErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ImageType>>, CooprError> {
    if query.is_some_and(|query| !query.is_empty()) {
        return Err(CoreError::invalid("GET /v2/imagetypes takes no query parameters").into());
    }
    Ok(Json(state.core.list_image_types(&caller).await?))
}

/// Create an Image Type: 200, or 400 when the name is taken or a field is wrong.
#[utoipa::path(post, path = "/v2/imagetypes", tag = TAG,
    request_body(content = ImageType, description = "JSON, whatever the Content-Type \
        (curl's `-d` sends a form type)"),
    responses(
        (status = 200, description = "Created: the image type stored", body = ImageType, links(
            ("viewImageType" = (operation_id = "viewImageType",
                parameters(("name" = "$response.body#/name")))),
            ("updateImageType" = (operation_id = "updateImageType",
                parameters(("name" = "$response.body#/name")))),
            ("deleteImageType" = (operation_id = "deleteImageType",
                parameters(("name" = "$response.body#/name")))),
        )),
        (status = 400, description = "Not JSON, a field missing or wrong, or the name is \
            taken", body = CooprErrorBody),
        (status = 401, description = "Wrong or missing Coopr credentials", body = CooprErrorBody),
        (status = 413, description = "The body is too large", body = CooprErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    body: Result<WholeBody, Unread>,
) -> Result<Json<ImageType>, CooprError> {
    let image_type = image_type(body)?;
    state.core.create_image_type(&caller, &image_type).await?;
    Ok(Json(image_type))
}

/// View an Image Type: 404 when the tenant has none of that name.
#[utoipa::path(get, path = "/v2/imagetypes/{name}", tag = TAG, operation_id = "viewImageType",
    params(("name" = String, Path, description = "The image type's name")),
    responses(
        (status = 200, description = "The image type", body = ImageType),
        (status = 401, description = "Wrong or missing Coopr credentials", body = CooprErrorBody),
        (status = 404, description = "The tenant has no image type of that name",
            body = CooprErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CooprPath(name): CooprPath<String>,
) -> Result<Json<ImageType>, CooprError> {
    Ok(Json(state.core.get_image_type(&caller, &name).await?))
}

/// Update an Image Type with the whole object; an unknown name is a 400, as
/// the seed documents.
#[utoipa::path(put, path = "/v2/imagetypes/{name}", tag = TAG, operation_id = "updateImageType",
    params(("name" = String, Path, description = "The image type's name")),
    request_body(content = ImageType, description = "The whole image type, as JSON"),
    responses(
        (status = 200, description = "Updated: the image type stored", body = ImageType),
        (status = 400, description = "Not JSON, a field missing or wrong, or no image type \
            of that name", body = CooprErrorBody),
        (status = 401, description = "Wrong or missing Coopr credentials", body = CooprErrorBody),
        (status = 413, description = "The body is too large", body = CooprErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CooprPath(name): CooprPath<String>,
    body: Result<WholeBody, Unread>,
) -> Result<Json<ImageType>, CooprError> {
    let image_type = image_type(body)?;
    match state
        .core
        .update_image_type(&caller, &name, &image_type)
        .await
    {
        Ok(()) => Ok(Json(image_type)),
        Err(CoreError::NotFound(what)) => Err(CooprError(CoreError::invalid(format!(
            "{what} does not exist"
        )))),
        Err(error) => Err(error.into()),
    }
}

/// Delete an Image Type: 200, or 404 when absent.
#[utoipa::path(delete, path = "/v2/imagetypes/{name}", tag = TAG, operation_id = "deleteImageType",
    params(("name" = String, Path, description = "The image type's name")),
    responses(
        (status = 200, description = "Deleted; the body is empty"),
        (status = 401, description = "Wrong or missing Coopr credentials", body = CooprErrorBody),
        (status = 404, description = "The tenant has no image type of that name",
            body = CooprErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    CooprPath(name): CooprPath<String>,
) -> Result<StatusCode, CooprError> {
    state.core.delete_image_type(&caller, &name).await?;
    Ok(StatusCode::OK)
}
