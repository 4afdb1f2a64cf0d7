//! `/api/tokens`: bearer tokens for scripts. `POST` issues one to the caller
//! (signed in by session or Basic credentials, never by a token), `GET` lists the caller's
//! (never the tokens themselves), `DELETE /api/tokens/{id}` revokes one at
//! once, on every server: each request checks the token against the database.

use app::model::{NewToken, Viewer};
use app::ports::SESSION_USER_KEY;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Serialize;
use tower_sessions::Session;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{ErrorBody, TOKENS};
use super::{ApiError, ApiPath};
use crate::core::TokenInfo;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
}

/// The caller's tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// The browser session the caller is signed in through, if that is how:
/// tokens it issues are revoked when it signs out (VSS's
/// `/auth/request-token` too).
pub(crate) async fn signing_session(
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

/// Issues a bearer token to the caller, valid for 24 hours; its secret is
/// shown this once. One issued through a browser session is revoked when
/// that session signs out.
#[utoipa::path(post, path = "/api/tokens", tag = TOKENS,
    responses(
        (status = 201, description = "The token, shown this once", body = NewToken, links(
            ("revokeToken" = (operation_id = "revokeToken",
                parameters(("id" = "$response.body#/id")))),
        )),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
        (status = 403, description = "A cross-site request, or one signed with a token (a \
            token makes no further tokens)", body = ErrorBody),
        (status = 429, description = "Too many tokens issued to this account just now", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    session: Session,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let user = viewer.require_user()?;
    let from_session = signing_session(&headers, &session, &viewer).await;
    let issued = state
        .core
        .issue_token(user, from_session.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewToken {
            id: issued.id,
            token: issued.token,
            expires_at: issued.expires_at,
        }),
    ))
}

/// The caller's unexpired tokens: id, created, expires, last used (never
/// the secrets).
#[utoipa::path(get, path = "/api/tokens", tag = TOKENS,
    responses(
        (status = 200, description = "The caller's tokens", body = TokenList),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens: Vec<TokenInfo> = state.core.list_tokens(&viewer).await?;
    Ok(Json(TokenList { tokens }))
}

/// Revokes one of the caller's tokens at once, on every server; another
/// user's is not found.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = TOKENS, operation_id = "revokeToken",
    params(("id" = i64, Path, description = "The token's id, from the listing")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No credentials, or wrong ones", body = ErrorBody),
        (status = 403, description = "A cross-site request", body = ErrorBody),
        (status = 404, description = "No such token of the caller's", body = ErrorBody),
    ))]
async fn revoke(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.revoke_token_id(&viewer, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
