//! `POST /api/tokens`: a bearer token for the caller (signed in by session or
//! Basic credentials), for scripts.

use app::model::Viewer;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};

use super::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/tokens", post(create))
}

/// Issues a token that expires after [`crate::core::TOKEN_TTL`].
async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = viewer.require_user()?;
    let issued = state.core.issue_token(user).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": issued.token, "expires_at": issued.expires_at })),
    ))
}
