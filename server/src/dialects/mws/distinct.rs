//! `/mws/rest/distinct/images/{field}`: the distinct values of one field
//! among the images the caller may read (and that match `query`).

use app::model::Viewer;
use app::query::{Condition, Field};
use axum::extract::{Path, RawQuery, State};
use axum::Extension;

use super::error::MwsError;
use super::parse;
use super::views::{self, ListView, MwsJson};
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
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
