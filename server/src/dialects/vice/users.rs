//! `/v1/user`: the signed-in user, and (for admins) new accounts.

use app::error::CoreError;
use app::model::Viewer;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use serde::Deserialize;
use utoipa::ToSchema;

use super::codec::{Negotiated, Reply, ViceBody};
use super::error::{ViceErrorBody, ViceResult};
use super::views::UserView;
use crate::state::AppState;

const TAG: &str = "users";

/// A user as clients send one (the seed's `User`); `id` is ignored.
#[derive(Default, Deserialize, ToSchema)]
#[schema(as = UserWrite, xml(name = "User"))]
#[serde(default)]
pub struct UserBody {
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
#[utoipa::path(get, path = "/v1/user", tag = TAG, operation_id = "getUser",
    responses(
        (status = 200, description = "successful operation", body = UserView),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
) -> ViceResult {
    let user = viewer.require_user()?;
    let row = state.core.user_profile(user.id).await?;
    Ok(Reply::new(format, StatusCode::OK, "User", &view(row)))
}

/// Create a new user in the system (`createUser`): admins only, 200.
#[utoipa::path(post, path = "/v1/user", tag = TAG, operation_id = "createUser",
    request_body(content = UserBody, description = "`username` and `password` are required"),
    responses(
        (status = 200, description = "successful operation", body = UserView),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 403, description = "The caller is not an administrator", body = ViceErrorBody),
        (status = 405, description = "Invalid input", body = ViceErrorBody),
        (status = 409, description = "The user name is taken", body = ViceErrorBody),
        (status = 413, description = "The body is too large", body = ViceErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    body: ViceResult<ViceBody<UserBody>>,
) -> ViceResult {
    viewer.require_user()?;
    let ViceBody(body) = body?;
    let username = body
        .username
        .ok_or_else(|| CoreError::invalid("username is required"))?;
    let password = body
        .password
        .ok_or_else(|| CoreError::invalid("password is required"))?;
    let id = state
        .core
        .create_account_with_profile(
            &viewer,
            &username,
            &password,
            body.email.as_deref().unwrap_or_default(),
            body.fullname.as_deref().unwrap_or_default(),
        )
        .await?;
    let row = state.core.user_profile(id).await?;
    Ok(Reply::new(format, StatusCode::OK, "User", &view(row)))
}
