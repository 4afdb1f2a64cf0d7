//! `/api/tokens`: bearer tokens for scripts. `POST` issues one to the caller
//! (signed in by session or Basic credentials), `GET` lists the caller's
//! (never the tokens themselves), `DELETE /api/tokens/{id}` revokes one at
//! once, on every server: each request checks the token against the database.

use app::model::Viewer;
use app::ports::SESSION_USER_KEY;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use tower_sessions::Session;

use super::ApiError;
use crate::core::TokenInfo;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", post(create).get(list))
        .route("/api/tokens/{id}", delete(revoke))
}

/// The browser session the caller is signed in through, if that is how:
/// tokens it issues are revoked when it signs out.
async fn signing_session(
    headers: &HeaderMap,
    session: &Session,
    viewer: &Viewer,
) -> Option<String> {
    if headers.contains_key(axum::http::header::AUTHORIZATION) {
        return None;
    }
    let user = session.get::<i64>(SESSION_USER_KEY).await.ok().flatten()?;
    (Some(user) == viewer.user_id())
        .then(|| session.id())
        .flatten()
        .map(|id| id.to_string())
}

/// Issues a token that expires after [`crate::core::TOKEN_TTL`].
async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    session: Session,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = viewer.require_user()?;
    let from_session = signing_session(&headers, &session, &viewer).await;
    let issued = state
        .core
        .issue_token(user, from_session.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": issued.id,
            "token": issued.token,
            "expires_at": issued.expires_at,
        })),
    ))
}

/// The caller's unexpired tokens: id, created, expires, last used.
async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Json<Value>, ApiError> {
    let tokens: Vec<TokenInfo> = state.core.list_tokens(&viewer).await?;
    Ok(Json(json!({ "tokens": tokens })))
}

/// Revokes one of the caller's tokens; another user's is a 404.
async fn revoke(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.revoke_token_id(&viewer, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
