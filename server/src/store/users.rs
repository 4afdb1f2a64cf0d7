//! User accounts.

use chrono::{DateTime, Utc};

use super::rows::UserRow;
use super::{with_pool, Db};

const USER_SELECT: &str = "SELECT id, username, password_hash, email, full_name, role FROM users";

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
}
