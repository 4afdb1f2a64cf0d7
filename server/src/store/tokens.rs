//! API tokens. Only their SHA-256 is stored: a leaked database yields no token.

use chrono::{DateTime, Utc};

use super::rows::UserRow;
use super::{with_pool, Db};

impl Db {
    #[tracing::instrument(skip_all, err)]
    pub async fn insert_token(
        &self,
        user_id: i64,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        const INSERT: &str =
            "INSERT INTO api_tokens (user_id, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)";
        with_pool!(self, pool => {
            sqlx::query(INSERT)
                .bind(user_id)
                .bind(token_hash)
                .bind(now)
                .bind(expires_at)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// The owner of an unexpired token.
    #[tracing::instrument(skip_all, err)]
    pub async fn user_by_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        const SELECT: &str =
            "SELECT u.id, u.username, u.password_hash, u.email, u.full_name, u.role \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.expires_at > $2";
        with_pool!(self, pool => {
            sqlx::query_as::<_, UserRow>(SELECT)
                .bind(token_hash)
                .bind(now)
                .fetch_optional(pool)
                .await
        })
    }

    /// Forgets a token; answers whether there was one.
    #[tracing::instrument(skip_all, err)]
    pub async fn delete_token(&self, token_hash: &str) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
    }
}
