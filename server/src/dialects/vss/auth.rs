//! `POST /auth/request-token`: an access token for HTTP Basic credentials.

use app::model::Viewer;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::Serialize;
use tower_sessions::Session;

use super::error::{VssError, VssErrorBody};
use super::views::image_time;
use crate::core::TOKEN_TTL;
use crate::state::AppState;

/// The token answer; pyvss reads `token` (and decodes it for `otp`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    /// Seconds it is valid for.
    pub duration: u64,
    /// When it expires, in seconds since the epoch.
    pub exp: i64,
    #[schema(example = "2026-12-01 Tue 18:00:00 UTC")]
    pub exp_date: String,
    pub token: String,
    #[serde(rename = "type")]
    #[schema(example = "ACCESS")]
    pub kind: &'static str,
}

/// Any body is ignored: pyvss sends `{"otp": null}`, curl sends none.
#[utoipa::path(post, path = "/auth/request-token", tag = "tokens",
    security(("basic" = [])),
    responses(
        (status = 200, description = "A token for the credentials", body = TokenView),
        (status = 401, description = "No credentials, or wrong ones", body = VssErrorBody),
        (status = 403, description = "Asked with a token: a token makes no further tokens",
            body = VssErrorBody),
    ))]
pub async fn request_token(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    session: Session,
) -> Result<Json<TokenView>, VssError> {
    let user = viewer.require_user()?;
    // Asked through a browser session (not Basic), the token goes when
    // the session signs out, as `/api/tokens`' does.
    let from_session = crate::web::tokens::signing_session(&headers, &session, &viewer).await;
    let issued = state
        .core
        .issue_token(user, from_session.as_deref())
        .await?;
    Ok(Json(TokenView {
        duration: TOKEN_TTL.as_secs(),
        exp: issued.expires_at.timestamp(),
        exp_date: image_time(issued.expires_at),
        token: issued.token,
        kind: "ACCESS",
    }))
}
