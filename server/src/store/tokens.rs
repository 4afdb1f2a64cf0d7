//! API tokens. Only their SHA-256 is stored: a leaked database yields no token.

use std::future::Future;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::rows::{from_row_by_name, TokenOwner};

/// A token as its owner may see it: when it was made, expires, was last used.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}
from_row_by_name!(TokenRow {
    id,
    created_at,
    expires_at,
    last_used_at
});
use super::sql::{Arg, Sql};
use super::{reader, with_pool, Db};

/// The stored form of a token (or of the browser session that issued one):
/// its SHA-256, so that the database holds no usable token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Db {
    /// Runs `write`, a write of the `users` or `api_tokens` a token's owner
    /// is read from, to its end in a task of its own, then forgets the
    /// token owners kept, unless it answered that it changed nothing: before
    /// its caller answers anyone, and also when its caller stopped waiting
    /// (or the write failed: it may have committed all the same).
    pub(super) async fn write_credentials<T, F>(&self, write: F) -> Result<T, sqlx::Error>
    where
        T: Written + Send + 'static,
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        let forgetting = self.tokens.forgetting();
        let task = tokio::spawn(
            async move {
                let written = write.await;
                if matches!(&written, Ok(written) if !written.changed_any()) {
                    forgetting.nothing_changed();
                }
                written
            }
            .in_current_span(),
        );
        match task.await {
            Ok(written) => written,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // The runtime is shutting down.
                Err(_) => Err(sqlx::Error::PoolClosed),
            },
        }
    }

    /// Records a token (and the session that issued it, if any); answers its id.
    #[tracing::instrument(skip_all, err)]
    /// Stores a token for a user whose account is still enabled and at
    /// `credentials_version` (the one its requester proved themselves
    /// against); `None` when it no longer is.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_token(
        &self,
        user_id: i64,
        credentials_version: i64,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        session_hash: Option<&str>,
    ) -> Result<Option<i64>, sqlx::Error> {
        const INSERT: &str = "INSERT INTO api_tokens \
             (user_id, token_hash, created_at, expires_at, session_hash) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM users \
             WHERE id = $1 AND credentials_version = $6 AND disabled = $7) RETURNING id";
        // After the user's row is locked: a revocation under way (a reset
        // password, a disabled account) is waited for and then seen, and
        // one that comes later waits for this token and deletes it. The
        // check alone read the row as committed before the revocation, and
        // the revocation's delete missed a token not yet committed.
        let lock = self.user_lock();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(user_id).execute(&mut *tx).await?;
            let id = sqlx::query_scalar::<_, i64>(INSERT)
                .bind(user_id)
                .bind(token_hash)
                .bind(now)
                .bind(expires_at)
                .bind(session_hash)
                .bind(credentials_version)
                .bind(false)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Notes that a token was used now, unless a use after `stale_before`
    /// was noted already (by this request's look-up or another server).
    #[tracing::instrument(skip_all, err)]
    pub async fn touch_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        stale_before: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        const TOUCH: &str = "UPDATE api_tokens SET last_used_at = $1 \
             WHERE token_hash = $2 AND (last_used_at IS NULL OR last_used_at < $3)";
        let touched = with_pool!(self, pool => {
            sqlx::query(TOUCH)
                .bind(now)
                .bind(token_hash)
                .bind(stale_before)
                .execute(pool)
                .await
                .map(|_| ())
        });
        if touched.is_ok() {
            self.tokens.used(token_hash, now);
        }
        touched
    }

    /// A user's unexpired tokens, newest first (never the token itself).
    #[tracing::instrument(skip(self), err)]
    pub async fn tokens_of(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<TokenRow>, sqlx::Error> {
        const SELECT: &str = "SELECT id, created_at, expires_at, last_used_at FROM api_tokens \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at DESC, id DESC";
        with_pool!(self, pool => {
            sqlx::query_as::<_, TokenRow>(SELECT)
                .bind(user_id)
                .bind(now)
                .fetch_all(pool)
                .await
        })
    }

    /// Forgets one of a user's tokens by id; answers whether there was one.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_token_of(&self, user_id: i64, id: i64) -> Result<bool, sqlx::Error> {
        let db = self.clone();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user_id)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() > 0)
            })
        })
        .await
    }

    /// Forgets the tokens one browser session issued; answers how many.
    #[tracing::instrument(skip_all, err)]
    pub async fn delete_session_tokens(&self, session_hash: &str) -> Result<u64, sqlx::Error> {
        let db = self.clone();
        let session_hash = session_hash.to_owned();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                sqlx::query("DELETE FROM api_tokens WHERE session_hash = $1")
                    .bind(session_hash)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            })
        })
        .await
    }

    /// Deletes the tokens that have expired; answers how many.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_expired_tokens(&self, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
        let db = self.clone();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                sqlx::query("DELETE FROM api_tokens WHERE expires_at <= $1")
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            })
        })
        .await
    }

    /// The owner of an unexpired token, and when the token was last used:
    /// what every request signed with a token needs. Kept for the next
    /// requests signed with it, while no credential changes (token_cache.rs).
    #[tracing::instrument(skip_all, err)]
    pub async fn user_by_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenOwner>, sqlx::Error> {
        if let Some(owner) = self.tokens.owner(token_hash, now) {
            return Ok(Some(owner));
        }
        let start = self.tokens.lookup_start();
        let found = self.look_up_token(token_hash, now).await?;
        if let Some(owner) = &found {
            self.tokens.keep(start, token_hash, owner);
        }
        Ok(found)
    }

    /// [`Self::user_by_token`] in the database: one query.
    async fn look_up_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenOwner>, sqlx::Error> {
        const SELECT: &str =
            "SELECT u.id, u.username, u.password_hash, u.email, u.full_name, u.role, \
             u.disabled, u.created_at, u.credentials_version, t.last_used_at, t.expires_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.expires_at > $2";
        if let Some(reader) = &self.reader {
            let select = Sql {
                text: SELECT.to_owned(),
                args: vec![Arg::Text(token_hash.to_owned()), Arg::Time(now)],
                planned_per_values: false,
            };
            return reader
                .look_up(move |connection| {
                    reader::first_row(connection, &select, TokenOwner::from_rusqlite)
                })
                .await;
        }
        with_pool!(self, pool => {
            sqlx::query_as::<_, TokenOwner>(SELECT)
                .bind(token_hash)
                .bind(now)
                .fetch_optional(pool)
                .await
        })
    }

    /// Forgets a token; answers whether there was one.
    #[tracing::instrument(skip_all, err)]
    pub async fn delete_token(&self, token_hash: &str) -> Result<bool, sqlx::Error> {
        let db = self.clone();
        let token_hash = token_hash.to_owned();
        self.write_credentials(async move {
            with_pool!(db, pool => {
                sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected() > 0)
            })
        })
        .await
    }
}

/// What a write of credentials answers, read for whether it changed any.
pub(super) trait Written {
    fn changed_any(&self) -> bool;
}

/// Whether there was such a row.
impl Written for bool {
    fn changed_any(&self) -> bool {
        *self
    }
}

/// How many rows.
impl Written for u64 {
    fn changed_any(&self) -> bool {
        *self > 0
    }
}

impl Written for () {
    fn changed_any(&self) -> bool {
        true
    }
}

impl Db {
    /// The fingerprint of the secret key the database is served with: the
    /// first server's, recorded now if none is.
    #[tracing::instrument(skip(self, fingerprint), err)]
    pub async fn record_key_fingerprint(
        &self,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<String, sqlx::Error> {
        const RECORD: &str = "INSERT INTO key_fingerprint (id, fingerprint, recorded_at) \
             VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING";
        with_pool!(self, pool => {
            sqlx::query(RECORD).bind(fingerprint).bind(now).execute(pool).await?;
        });
        self.recorded_key_fingerprint()
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Records `new` in place of `old`, if `old` is still the one recorded.
    #[tracing::instrument(skip(self), err)]
    pub async fn replace_key_fingerprint(
        &self,
        old: &str,
        new: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        const REPLACE: &str = "UPDATE key_fingerprint SET fingerprint = $1, recorded_at = $2 \
             WHERE id = 1 AND fingerprint = $3";
        with_pool!(self, pool => {
            sqlx::query(REPLACE)
                .bind(new)
                .bind(now)
                .bind(old)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Which catalog this database is: a random id, recorded now if none is.
    #[tracing::instrument(skip(self), err)]
    pub async fn catalog_identity(&self) -> Result<String, sqlx::Error> {
        const RECORD: &str = "INSERT INTO catalog_identity (id, catalog) VALUES (1, $1) \
             ON CONFLICT (id) DO NOTHING";
        const RECORDED: &str = "SELECT catalog FROM catalog_identity WHERE id = 1";
        let fresh = format!("{:032x}", rand::random::<u128>());
        with_pool!(self, pool => {
            sqlx::query(RECORD).bind(&fresh).execute(pool).await?;
            sqlx::query_scalar::<_, String>(RECORDED).fetch_one(pool).await
        })
    }

    /// The fingerprint of the secret key the database is served with now.
    #[tracing::instrument(skip(self), err)]
    pub async fn recorded_key_fingerprint(&self) -> Result<Option<String>, sqlx::Error> {
        const RECORDED: &str = "SELECT fingerprint FROM key_fingerprint WHERE id = 1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(RECORDED).fetch_optional(pool).await
        })
    }
}
