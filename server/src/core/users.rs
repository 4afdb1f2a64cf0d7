//! Accounts as an administrator manages them: list, create, change role,
//! disable or enable, reset a password. Every rule here is the admin's
//! only; nobody else reaches these functions.

use app::error::CoreError;
use app::model::{PasswordReset, Role, UserChange, UserInfo, UserPage, Viewer};

use super::auth::generate_password;
use super::{db_error, Core};
use crate::store::{AccountChange, AccountChanged, UserRow};

/// Accounts per page of the admin's listing, at most.
pub const MAX_USER_PAGE: u64 = 200;

fn require_admin(viewer: &Viewer) -> Result<i64, CoreError> {
    viewer
        .require_admin("manage accounts")
        .map(|admin| admin.id)
}

/// The administrator, for a change that hands out access (an account with
/// a password, a new password, admin rights, an account enabled again):
/// never on a token's word alone, or a stolen token could make a way in
/// that outlives its revocation.
fn require_admin_by_password(viewer: &Viewer, what: &str) -> Result<i64, CoreError> {
    let admin = viewer.require_admin("manage accounts")?;
    admin.require_proven_by_password(what)?;
    Ok(admin.id)
}

/// What an account made by an administrator is made under: their id and
/// the credentials version they proved (`Db::insert_user_by`).
fn still_admin(viewer: &Viewer) -> Option<(i64, i64)> {
    viewer
        .principal()
        .map(|admin| (admin.id, admin.credentials_version))
}

fn info(row: UserRow) -> Result<UserInfo, CoreError> {
    let role = Role::parse(&row.role).map_err(|_| CoreError::Internal)?;
    Ok(UserInfo {
        id: row.id,
        username: row.username,
        role,
        disabled: row.disabled,
        created_at: row.created_at,
    })
}

impl Core {
    /// A page of every account, by username.
    pub async fn list_users(
        &self,
        viewer: &Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<UserPage, CoreError> {
        require_admin(viewer)?;
        let limit = limit.clamp(1, MAX_USER_PAGE);
        let (rows, total) = self.db.list_users(limit, offset).await.map_err(db_error)?;
        Ok(UserPage {
            items: rows.into_iter().map(info).collect::<Result<_, _>>()?,
            total: total.max(0) as u64,
            limit,
            offset,
        })
    }

    /// Creates an account for someone else.
    pub async fn create_account(
        &self,
        viewer: &Viewer,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<UserInfo, CoreError> {
        require_admin_by_password(viewer, "create accounts")?;
        let id = self
            .create_user_by(still_admin(viewer), username, password, role)
            .await?;
        tracing::info!(
            user = id,
            role = role.as_str(),
            "an administrator created an account"
        );
        info(self.user_profile(id).await?)
    }

    /// Creates a plain user's account with its email and full name (ViCE's
    /// `createUser`); answers its id.
    pub async fn create_account_with_profile(
        &self,
        viewer: &Viewer,
        username: &str,
        password: &str,
        email: &str,
        full_name: &str,
    ) -> Result<i64, CoreError> {
        require_admin_by_password(viewer, "create accounts")?;
        if email.len() > 320 || full_name.len() > 320 {
            return Err(CoreError::invalid(
                "email and full name are at most 320 bytes",
            ));
        }
        app::model::plain_text("the email", email)?;
        app::model::plain_text("the full name", full_name)?;
        let id = self
            .create_user_by(still_admin(viewer), username, password, Role::User)
            .await?;
        self.db
            .set_user_profile(id, email, full_name)
            .await
            .map_err(db_error)?;
        tracing::info!(user = id, "an administrator created an account");
        Ok(id)
    }

    /// Makes an account an admin or a plain user, or disables or enables
    /// it. An admin cannot demote or disable themselves, so that the last
    /// admin never locks everyone out by a slip.
    pub async fn change_account(
        &self,
        viewer: &Viewer,
        id: i64,
        change: UserChange,
    ) -> Result<UserInfo, CoreError> {
        let admin_id = match change {
            UserChange::Role(Role::Admin) | UserChange::Enabled => {
                require_admin_by_password(viewer, "make administrators or enable accounts")?
            }
            UserChange::Role(Role::User) | UserChange::Disabled => require_admin(viewer)?,
        };
        if id == admin_id && change != UserChange::Role(Role::Admin) {
            return Err(CoreError::invalid(
                "you cannot demote or disable your own account",
            ));
        }
        let change_as = match change {
            UserChange::Role(role) => AccountChange::Role(role),
            UserChange::Enabled => AccountChange::Enable,
            // Sessions, tokens and keys end for good: enabling the account
            // again does not bring back whoever held them.
            UserChange::Disabled => AccountChange::Disable,
        };
        self.change_as(viewer, id, change_as).await?;
        if change == UserChange::Disabled {
            self.login_guard.forget_user(id);
        }
        tracing::info!(user = id, ?change, "an administrator changed an account");
        info(self.user_profile(id).await?)
    }

    /// Makes an administrator's change to an account, written only while
    /// they are still an administrator, with the credentials they proved
    /// (their viewer was read as the request began: another administrator
    /// may have demoted them since, or reset their password).
    async fn change_as(
        &self,
        viewer: &Viewer,
        id: i64,
        change: AccountChange,
    ) -> Result<(), CoreError> {
        let admin = viewer.require_admin("manage accounts")?;
        match self
            .db
            .change_account_as((admin.id, admin.credentials_version), id, change)
            .await
            .map_err(db_error)?
        {
            AccountChanged::Done => Ok(()),
            AccountChanged::NoSuchAccount => Err(CoreError::not_found(format!("user {id}"))),
            AccountChanged::NotAnAdmin => Err(CoreError::Forbidden(
                "you are no longer an administrator".into(),
            )),
        }
    }

    /// Gives an account a new generated password, shown to the admin once;
    /// its sessions, tokens and API keys end.
    pub async fn reset_password(
        &self,
        viewer: &Viewer,
        id: i64,
    ) -> Result<PasswordReset, CoreError> {
        require_admin_by_password(viewer, "reset passwords")?;
        let password = generate_password();
        let hash = {
            let (password, cost) = (password.clone(), self.limits().password_cost);
            tokio::task::spawn_blocking(move || super::auth::hash_password(&password, cost))
                .await
                .map_err(|_| CoreError::Internal)??
        };
        // The new hash, the end of every session, token and key, at once.
        self.change_as(viewer, id, AccountChange::Password(hash))
            .await?;
        self.login_guard.forget_user(id);
        tracing::info!(user = id, "an administrator reset a password");
        let username = self.user_profile(id).await?.username;
        Ok(PasswordReset { username, password })
    }
}
