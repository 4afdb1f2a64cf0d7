//! `/v2/imagetypes` and `/v2/imagetypes/{name}`.

use app::error::CoreError;
use app::model::ImageType;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::caller::Caller;
use super::error::CooprError;
use crate::state::AppState;

/// A whole image type from a JSON body, whatever its `Content-Type`.
fn image_type(bytes: Result<Bytes, BytesRejection>) -> Result<ImageType, CooprError> {
    let bytes = bytes.map_err(|rejection| crate::dialects::body_error(&rejection))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|error| CoreError::invalid(format!("the body is not valid JSON: {error}")))?;
    Ok(ImageType::parse(&json)?)
}

/// List All Image Types of the tenant.
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Vec<ImageType>>, CooprError> {
    Ok(Json(state.core.list_image_types(&caller).await?))
}

/// Create an Image Type: 200, or 400 when the name is taken or a field is wrong.
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<ImageType>, CooprError> {
    let image_type = image_type(bytes)?;
    state.core.create_image_type(&caller, &image_type).await?;
    Ok(Json(image_type))
}

/// View an Image Type: 404 when the tenant has none of that name.
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<ImageType>, CooprError> {
    Ok(Json(state.core.get_image_type(&caller, &name).await?))
}

/// Update an Image Type with the whole object; an unknown name is a 400, as
/// the seed documents.
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<ImageType>, CooprError> {
    let image_type = image_type(bytes)?;
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
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, CooprError> {
    state.core.delete_image_type(&caller, &name).await?;
    Ok(StatusCode::OK)
}
