//! Quota reservations: bytes promised to uploads in flight. A reservation is
//! granted in the same transaction that counts what the user already holds,
//! under a lock on the user's row, so that two uploads can never both be
//! promised the same free bytes.

use super::{with_tx, Backend, Db, Tx};

/// A request for room under a quota.
#[derive(Debug, Clone)]
pub struct QuotaAsk<'a> {
    pub user_id: i64,
    /// The reservation being grown, if it exists already.
    pub reservation: Option<i64>,
    /// Fewer bytes than this is a refusal.
    pub needed: i64,
    /// As many bytes as this is what the upload would like.
    pub wanted: i64,
    pub quota: i64,
    /// Bytes the user holds that the database does not know of (their
    /// personal store's files).
    pub outside: i64,
    /// Images in this data store are copies of personal-store files,
    /// already counted in `outside`.
    pub personal_data_store: &'a str,
    pub now_ms: i64,
    pub expires_ms: i64,
}

/// What a user's records hold: their uploaded images (not the copies of
/// their personal store's files), the files deployed for them, and the
/// unexpired reservations other than `$4`.
const USAGE: &str = "SELECT CAST(\
     (SELECT COALESCE(SUM(size), 0) FROM images WHERE owner_id = $1 AND data_store <> $2) \
     + (SELECT COALESCE(SUM(size), 0) FROM deployed_files WHERE user_id = $1) \
     + (SELECT COALESCE(SUM(bytes), 0) FROM quota_reservations \
        WHERE user_id = $1 AND expires_at > $3 AND id <> $4) AS BIGINT)";

impl Db {
    /// Holds a user's quota still until the lock is used: meanwhile no
    /// reservation of theirs can be granted or let go, here or on another
    /// server sharing the database (PostgreSQL: a lock on the user's row;
    /// SQLite: the database's write lock). What lies outside the database,
    /// the personal store's files, can so be counted in the same step.
    #[tracing::instrument(skip(self), err)]
    pub async fn lock_quota(&self, user_id: i64) -> Result<QuotaLock, sqlx::Error> {
        let lock = match self.backend() {
            Backend::Postgres => "SELECT id FROM users WHERE id = $1 FOR UPDATE",
            Backend::Sqlite => "UPDATE users SET id = id WHERE id = $1",
        };
        let mut tx = self.begin().await?;
        with_tx!(&mut tx, conn => {
            sqlx::query(lock).bind(user_id).execute(&mut **conn).await?;
        });
        Ok(QuotaLock { tx, user_id })
    }

    /// What a user's records hold now (see [`USAGE`]).
    #[tracing::instrument(skip(self), err)]
    pub async fn quota_usage(
        &self,
        user_id: i64,
        personal_data_store: &str,
        now_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        super::with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(USAGE)
                .bind(user_id)
                .bind(personal_data_store)
                .bind(now_ms)
                .bind(0_i64)
                .fetch_one(pool)
                .await
        })
    }

    /// Lets go of a reservation.
    #[tracing::instrument(skip(self), err)]
    pub async fn release_quota(&self, id: i64) -> Result<(), sqlx::Error> {
        super::with_pool!(self, pool => {
            sqlx::query("DELETE FROM quota_reservations WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Deletes the reservations of uploads that stopped without a word.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_expired_reservations(&self, now_ms: i64) -> Result<u64, sqlx::Error> {
        super::with_pool!(self, pool => {
            sqlx::query("DELETE FROM quota_reservations WHERE expires_at <= $1")
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
    }
}

/// A user's quota, held by [`Db::lock_quota`]; dropped unused, it lets go.
pub struct QuotaLock {
    tx: Tx,
    user_id: i64,
}

impl QuotaLock {
    /// Grants between `needed` and `wanted` bytes, or `None` when fewer than
    /// `needed` are free; answers the reservation's id and the bytes granted.
    pub async fn reserve(mut self, ask: &QuotaAsk<'_>) -> Result<Option<(i64, i64)>, sqlx::Error> {
        debug_assert_eq!(ask.user_id, self.user_id);
        const GROW: &str =
            "UPDATE quota_reservations SET bytes = $1, expires_at = $2 WHERE id = $3 RETURNING id";
        const NEW: &str = "INSERT INTO quota_reservations (user_id, bytes, expires_at) \
             VALUES ($1, $2, $3) RETURNING id";
        let granted = with_tx!(&mut self.tx, conn => {
            let used = sqlx::query_scalar::<_, i64>(USAGE)
                .bind(self.user_id)
                .bind(ask.personal_data_store)
                .bind(ask.now_ms)
                .bind(ask.reservation.unwrap_or(0))
                .fetch_one(&mut **conn)
                .await?;
            let available = ask.quota.saturating_sub(used).saturating_sub(ask.outside);
            if available < ask.needed {
                None
            } else {
                let bytes = ask.wanted.min(available);
                let grown = match ask.reservation {
                    Some(id) => sqlx::query_scalar::<_, i64>(GROW)
                        .bind(bytes)
                        .bind(ask.expires_ms)
                        .bind(id)
                        .fetch_optional(&mut **conn)
                        .await?,
                    None => None,
                };
                let id = match grown {
                    Some(id) => id,
                    None => sqlx::query_scalar::<_, i64>(NEW)
                        .bind(self.user_id)
                        .bind(bytes)
                        .bind(ask.expires_ms)
                        .fetch_one(&mut **conn)
                        .await?,
                };
                Some((id, bytes))
            }
        });
        if granted.is_some() {
            self.tx.commit().await?;
        }
        Ok(granted)
    }

    /// Lets go of one of the user's reservations.
    pub async fn release(mut self, id: i64) -> Result<(), sqlx::Error> {
        const DELETE: &str = "DELETE FROM quota_reservations WHERE id = $1 AND user_id = $2";
        with_tx!(&mut self.tx, conn => {
            sqlx::query(DELETE).bind(id).bind(self.user_id).execute(&mut **conn).await?;
        });
        self.tx.commit().await
    }
}
