//! User accounts.

use chrono::{DateTime, Utc};

use super::rows::UserRow;
use super::{with_pool, Db};

const USER_SELECT: &str =
    "SELECT id, username, password_hash, email, full_name, role, disabled, created_at, \
     sessions_valid_from FROM users";

impl Db {
    #[tracing::instrument(skip(self), err)]
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
        let text = format!("{USER_SELECT} WHERE username = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&text).bind(username).fetch_optional(pool).await
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        let text = format!("{USER_SELECT} WHERE id = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(&text).bind(id).fetch_optional(pool).await
        })
    }

    pub async fn count_users(&self) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(pool).await
        })
    }

    /// Inserts a user; a taken username comes back as a unique violation.
    #[tracing::instrument(skip(self, password_hash), err)]
    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, sqlx::Error> {
        const INSERT: &str = "INSERT INTO users (username, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(INSERT)
                .bind(username)
                .bind(password_hash)
                .bind(role)
                .bind(now)
                .fetch_one(pool)
                .await
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn set_user_profile(
        &self,
        id: i64,
        email: &str,
        full_name: &str,
    ) -> Result<(), sqlx::Error> {
        const UPDATE: &str = "UPDATE users SET email = $1, full_name = $2 WHERE id = $3";
        with_pool!(self, pool => {
            sqlx::query(UPDATE)
                .bind(email)
                .bind(full_name)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// A page of the accounts in username order, and how many there are.
    #[tracing::instrument(skip(self), err)]
    pub async fn list_users(
        &self,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<UserRow>, i64), sqlx::Error> {
        let text = format!(
            "{USER_SELECT} ORDER BY username LIMIT {} OFFSET {}",
            super::sql::bounded(limit),
            super::sql::bounded(offset)
        );
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, UserRow>(&text).fetch_all(pool).await?;
            let total = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?;
            Ok((rows, total))
        })
    }

    /// Sets an account's role; `false` when there is no such account.
    #[tracing::instrument(skip(self), err)]
    pub async fn set_user_role(&self, id: i64, role: &str) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(role)
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Disables or enables an account; `false` when there is no such account.
    #[tracing::instrument(skip(self), err)]
    pub async fn set_user_disabled(&self, id: i64, disabled: bool) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                .bind(disabled)
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Replaces an account's password hash; `false` when there is no such account.
    #[tracing::instrument(skip(self, password_hash), err)]
    pub async fn set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
    ) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Ends the user's browser sessions signed in before `now`.
    #[tracing::instrument(skip(self), err)]
    pub async fn end_sessions(&self, id: i64, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE users SET sessions_valid_from = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }
}
