//! Accounts, for administrators: list, create, change role, disable or
//! enable, reset a password; the same core functions as `depot user`.

use leptos::prelude::*;

use crate::error::CoreError;
use crate::model::{PasswordReset, Role, UserChange, UserInfo, UserPage};

/// A page (1-based) of every account, by username; 403 for anyone but an admin.
#[server(prefix = "/api/ui", endpoint = "users")]
pub async fn list_users(page: u64) -> Result<UserPage, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    let offset = page
        .max(1)
        .saturating_sub(1)
        .saturating_mul(crate::api::LIST_PAGE_SIZE);
    crate::ports::respond(
        catalog
            .list_users(&viewer, crate::api::LIST_PAGE_SIZE, offset)
            .await,
    )
}

/// Creates an account; `admin` is the form's checkbox.
#[server(prefix = "/api/ui", endpoint = "users/create")]
pub async fn create_user(
    username: String,
    password: String,
    admin: Option<String>,
) -> Result<UserInfo, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    let role = if admin.is_some() {
        Role::Admin
    } else {
        Role::User
    };
    crate::ports::respond(
        catalog
            .create_account(&viewer, username.trim(), &password, role)
            .await,
    )
}

/// What a row's buttons ask for.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub fn parse_change(action: &str) -> Result<UserChange, CoreError> {
    Ok(match action {
        "make-admin" => UserChange::Role(Role::Admin),
        "make-user" => UserChange::Role(Role::User),
        "disable" => UserChange::Disabled,
        "enable" => UserChange::Enabled,
        other => {
            return Err(CoreError::invalid(format!(
                "unknown change '{other}' (make-admin, make-user, disable or enable)"
            )))
        }
    })
}

/// Makes an account an admin or a plain user, or disables or enables it.
#[server(prefix = "/api/ui", endpoint = "users/change")]
pub async fn change_user(id: i64, action: String) -> Result<UserInfo, CoreError> {
    use crate::ports::respond;
    let change = respond(parse_change(&action))?;
    let (catalog, viewer) = crate::ports::request_context()?;
    respond(catalog.change_account(&viewer, id, change).await)
}

/// Gives an account a new generated password, answered this once; the
/// account's sessions and tokens end.
#[server(prefix = "/api/ui", endpoint = "users/reset-password")]
pub async fn reset_password(id: i64) -> Result<PasswordReset, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.reset_password(&viewer, id).await)
}
