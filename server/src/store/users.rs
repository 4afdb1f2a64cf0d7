//! User accounts.

use chrono::{DateTime, Utc};

use super::rows::UserRow;
use super::{with_pool, Db};

const USER_SELECT: &str =
    "SELECT id, username, password_hash, email, full_name, role, disabled, created_at, \
     credentials_version FROM users";

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

    /// Inserts a user; a taken username comes back as a unique violation,
    /// and `None` answers a name that a folder below the export root has
    /// (another user deploys there: the account would read their files).
    #[tracing::instrument(skip(self, password_hash), err)]
    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, sqlx::Error> {
        const INSERT: &str = "INSERT INTO users (username, password_hash, role, created_at) \
             SELECT $1, $2, $3, $4 WHERE NOT EXISTS \
             (SELECT 1 FROM export_folders WHERE name = $1) RETURNING id";
        let lock = self.name_lock();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(username).execute(&mut *tx).await?;
            let id = sqlx::query_scalar::<_, i64>(INSERT)
                .bind(username)
                .bind(password_hash)
                .bind(role)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id)
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
        let db = self.clone();
        let email = email.to_owned();
        let full_name = full_name.to_owned();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                sqlx::query(UPDATE)
                    .bind(email)
                    .bind(full_name)
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })
        })
        .await
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
        let db = self.clone();
        let role = role.to_owned();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                    .bind(role)
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Enables an account again; `false` when there is no such account.
    #[tracing::instrument(skip(self), err)]
    pub async fn enable_user(&self, id: i64) -> Result<bool, sqlx::Error> {
        let db = self.clone();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
                    .bind(false)
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() == 1)
            })
        })
        .await
    }

    /// Ends everything an account's holders proved before: bumps its
    /// credentials version (its browser sessions end), replaces its password
    /// hash (`Some`) or disables it (`disable`), and deletes its tokens and
    /// API keys, in one transaction. `false` when there is no such account.
    #[tracing::instrument(skip(self, password_hash), err)]
    pub async fn revoke_credentials(
        &self,
        id: i64,
        password_hash: Option<&str>,
        disable: bool,
    ) -> Result<bool, sqlx::Error> {
        let db = self.clone();
        let password_hash = password_hash.map(str::to_owned);
        self.write_credentials(async move {
            db.revoke_in_db(id, password_hash.as_deref(), disable).await
        })
        .await
    }

    /// [`Self::revoke_credentials`]' transaction.
    async fn revoke_in_db(
        &self,
        id: i64,
        password_hash: Option<&str>,
        disable: bool,
    ) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE users SET credentials_version = credentials_version + 1, \
             password_hash = COALESCE($1, password_hash), disabled = (disabled OR $2) \
             WHERE id = $3";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let found = sqlx::query(UPDATE)
                .bind(password_hash)
                .bind(disable)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !found {
                return Ok(false);
            }
            for delete in [
                "DELETE FROM api_tokens WHERE user_id = $1",
                "DELETE FROM api_keys WHERE user_id = $1",
            ] {
                sqlx::query(delete).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }
}
