//! `/mws/rest/distinct/images/{field}`: the distinct values of one field
//! among the images the caller may read (and that match `query`).

use app::model::Viewer;
use app::query::{Condition, Field};
use axum::extract::{RawQuery, State};
use axum::Extension;

use super::error::{MwsError, MwsErrorBody, MwsPath};
use super::parse;
use super::views::{self, DistinctList, ListView, MwsJson};
use crate::state::AppState;

#[utoipa::path(get, path = "/mws/rest/distinct/images/{field}", tag = "images",
    params(
        ("field" = String, Path, description = "A field of the image (`name`, `osType`, …)"),
        ("api-version" = super::ApiVersion, Query, description = "3 (or latest)"),
        ("query" = Option<String>, Query, description = "A JSON query, as Get All Images takes"),
        ("max" = Option<u64>, Query, description = "At most this many values"),
        ("offset" = Option<u64>, Query, description = "Skip this many"),
        ("pretty" = Option<bool>, Query, description = "Indented JSON"),
    ),
    responses(
        (status = 200, description = "The distinct values among the images the caller may \
            read", body = DistinctList),
        (status = 400, description = "No such field, or a parameter malformed", body = MwsErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = MwsErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    MwsPath(name): MwsPath<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<MwsJson, MwsError> {
    let params = parse::params(raw_query.as_deref())?;
    viewer.require_user()?;
    let field = parse::field(&name)?;
    let condition = match &params.query {
        Some(text) => parse::condition(text)?,
        None => Condition::All(Vec::new()),
    };
    let (values, total) = state
        .core
        .distinct_values(&viewer, field, condition, params.max, params.offset)
        .await?;
    let results = values
        .into_iter()
        .map(|value| views::distinct_value(value, field == Field::Id))
        .collect();
    Ok(MwsJson::new(&ListView::new(total, results), params.pretty))
}
