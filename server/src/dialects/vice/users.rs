//! `/v1/user`: the signed-in user, and (for admins) new accounts.

use app::error::CoreError;
use app::model::{Role, Viewer};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde::Deserialize;

use super::codec::{decode, request_format, response_format, Reply};
use super::error::respond;
use super::views::UserView;
use crate::state::AppState;

/// A user as clients send one; `id` is ignored.
#[derive(Deserialize)]
#[serde(default)]
#[derive(Default)]
struct UserBody {
    username: Option<String>,
    password: Option<String>,
    email: Option<String>,
    fullname: Option<String>,
}

// A password must never reach a log line through `Debug`.
impl std::fmt::Debug for UserBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserBody")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn view(user: crate::store::UserRow) -> UserView {
    UserView {
        id: user.id.to_string(),
        username: user.username,
        email: user.email,
        fullname: user.full_name,
    }
}

/// Provide user information about the logged-in user (`getUser`).
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        let user = viewer.require_user()?;
        let row = state.core.user_profile(user.id).await?;
        Ok(Reply::new(format, StatusCode::OK, "User", &view(row)))
    }
    .await;
    respond(format, outcome)
}

/// Create a new user in the system (`createUser`): admins only, 200.
pub async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        if !viewer.is_admin() {
            return Err(CoreError::Forbidden(
                "only administrators create users".into(),
            ));
        }
        let bytes = bytes.map_err(|rejection| crate::dialects::body_error(&rejection))?;
        let body: UserBody = decode(request_format(&headers), &bytes)?;
        let username = body
            .username
            .ok_or_else(|| CoreError::invalid("username is required"))?;
        let password = body
            .password
            .ok_or_else(|| CoreError::invalid("password is required"))?;
        let id = state
            .core
            .create_user_with_profile(
                &username,
                &password,
                Role::User,
                body.email.as_deref().unwrap_or_default(),
                body.fullname.as_deref().unwrap_or_default(),
            )
            .await?;
        let row = state.core.user_profile(id).await?;
        Ok(Reply::new(format, StatusCode::OK, "User", &view(row)))
    }
    .await;
    respond(format, outcome)
}
