//! `/mws/rest/images` and `/mws/rest/images/{id|name}`.

use app::model::Viewer;
use app::query::{Query, MAX_PAGE};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::Extension;
use serde_json::json;

use super::error::MwsError;
use super::parse::{self, Params};
use super::views::{self, ListView, MwsJson};
use crate::state::AppState;

/// Reads the global parameters and requires a signed-in caller.
fn begin(viewer: &Viewer, raw_query: Option<&str>) -> Result<Params, MwsError> {
    let params = parse::params(raw_query)?;
    viewer.require_user()?;
    Ok(params)
}

/// The body of a write, however it failed to arrive.
fn body(bytes: Result<Bytes, BytesRejection>) -> Result<Bytes, MwsError> {
    bytes.map_err(|rejection| MwsError(crate::dialects::body_error(&rejection)))
}

/// Get All Images: `query`, `sort`, `max`, `offset`, `fields`, `exclude-fields`.
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw_query): RawQuery,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    let mut query = Query::new(params.max.min(MAX_PAGE)).offset(params.offset);
    if let Some(text) = &params.query {
        query = query.filter(parse::condition(text)?);
    }
    if let Some(text) = &params.sort {
        query.sort = parse::sort(text)?;
    }
    let page = state.core.list_images(&viewer, query).await?;
    let results = page
        .items
        .iter()
        .map(|image| views::image(image, &params))
        .collect();
    Ok(MwsJson::new(
        &ListView::new(page.total, results),
        params.pretty,
    ))
}

/// Get Single Image, by id or by name.
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(key): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    let image = state.core.find_image(&viewer, &key).await?;
    Ok(MwsJson::new(&views::image(&image, &params), params.pretty))
}

/// Create Single Image: 201, `Location`, and the image as Get shows it.
pub async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw_query): RawQuery,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    // `version` is read-only; on a create there is nothing to check it against.
    let (draft, _version) = parse::image_body(&body(bytes)?)?;
    let image = state.core.create_provisioning_image(&viewer, draft).await?;
    let location = format!("/mws/rest/images/{}", image.id);
    Ok(MwsJson::new(&views::image(&image, &params), params.pretty).created(location))
}

/// Modify Single Image: the fields sent change; a stale `version` is a 409.
pub async fn update(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(key): Path<String>,
    RawQuery(raw_query): RawQuery,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    let (draft, version) = parse::image_body(&body(bytes)?)?;
    let image = state
        .core
        .update_provisioning_image(&viewer, &key, draft, version)
        .await?;
    Ok(MwsJson::new(&views::image(&image, &params), params.pretty))
}

/// Delete Single Image: answers `{}`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(key): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<MwsJson, MwsError> {
    let params = begin(&viewer, raw_query.as_deref())?;
    let image = state.core.find_image(&viewer, &key).await?;
    state.core.delete_image(&viewer, image.id).await?;
    Ok(MwsJson::new(&json!({}), params.pretty))
}
