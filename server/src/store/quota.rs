//! Quota reservations: bytes promised to uploads in flight. A reservation is
//! granted in the same transaction that counts what the user already holds,
//! under a lock on the user's row, so that two uploads can never both be
//! promised the same free bytes.

use super::rows::from_row_by_name;
use super::{with_tx, Db};

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
    /// Bytes the user holds that this count does not read from the
    /// database: their personal store's files, and the synced copies no
    /// file backs (`Core::personal_store_bytes`).
    pub outside: i64,
    /// Images in this data store are copies of personal-store files,
    /// counted in `outside` (as their files, or on their own).
    pub personal_data_store: &'a str,
    /// The user's quota epoch read before `outside` was listed: bytes
    /// moved into the store after it may be missing from the listing, so
    /// their reservations still count.
    pub listed_epoch: i64,
    pub now_ms: i64,
    pub expires_ms: i64,
}

/// An image a sync made of a personal-store file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedCopy {
    pub id: i64,
    pub owner_id: i64,
    /// Its owner's name, then the file's folder in the store.
    pub folder: String,
    pub name: String,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    /// What it was copied from (see `core::sync::Source`); `None` for the
    /// copies made before that was recorded.
    pub synced_from: Option<String>,
}
from_row_by_name!(SyncedCopy {
    id,
    owner_id,
    folder,
    name,
    size,
    sha256,
    synced_from
});

/// What a user's records hold: their uploaded images (not the copies of
/// their personal store's files), the files deployed for them, and the
/// unexpired reservations other than `$4`, but for those moved into the
/// personal store by epoch `$5` (its listing holds their bytes).
const USAGE: &str = "SELECT CAST(\
     (SELECT COALESCE(SUM(size), 0) FROM images WHERE owner_id = $1 AND data_store <> $2) \
     + (SELECT COALESCE(SUM(size), 0) FROM deployed_files WHERE user_id = $1) \
     + (SELECT COALESCE(SUM(bytes), 0) FROM quota_reservations \
        WHERE user_id = $1 AND expires_at > $3 AND id <> $4 \
        AND (moved_at_epoch IS NULL OR moved_at_epoch > $5)) AS BIGINT)";

/// Lets go of a reservation (`$1`).
pub(super) const RELEASE: &str = "DELETE FROM quota_reservations WHERE id = $1";

/// Makes reservation `$2` last until `$1` if it has not lapsed by `$3`
/// (Unix milliseconds) nor been moved to a file's count; answers its id
/// when it did.
pub(super) const RENEW_RESERVATION: &str = "UPDATE quota_reservations SET expires_at = $1 \
     WHERE id = $2 AND expires_at > $3 AND moved_at_epoch IS NULL RETURNING id";

impl Db {
    /// Grants between `needed` and `wanted` bytes, or `None` when fewer than
    /// `needed` are free; answers the reservation's id and the bytes granted.
    #[tracing::instrument(skip(self), err)]
    pub async fn reserve_quota(
        &self,
        ask: &QuotaAsk<'_>,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let lock = self.user_lock();
        const GROW: &str =
            "UPDATE quota_reservations SET bytes = $1, expires_at = $2 WHERE id = $3 RETURNING id";
        const NEW: &str = "INSERT INTO quota_reservations (user_id, bytes, expires_at) \
             VALUES ($1, $2, $3) RETURNING id";
        let mut tx = self.begin().await?;
        let granted = with_tx!(&mut tx, conn => {
            sqlx::query(lock).bind(ask.user_id).execute(&mut **conn).await?;
            let used = sqlx::query_scalar::<_, i64>(USAGE)
                .bind(ask.user_id)
                .bind(ask.personal_data_store)
                .bind(ask.now_ms)
                .bind(ask.reservation.unwrap_or(0))
                .bind(ask.listed_epoch)
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
                        .bind(ask.user_id)
                        .bind(bytes)
                        .bind(ask.expires_ms)
                        .fetch_one(&mut **conn)
                        .await?,
                };
                Some((id, bytes))
            }
        });
        if granted.is_some() {
            tx.commit().await?;
        }
        Ok(granted)
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
                .bind(i64::MAX)
                .fetch_one(pool)
                .await
        })
    }

    /// The images a sync made of the user's personal-store files (those in
    /// `personal_data_store`), with what each was copied from.
    #[tracing::instrument(skip(self), err)]
    pub async fn synced_copies(
        &self,
        user_id: i64,
        personal_data_store: &str,
    ) -> Result<Vec<SyncedCopy>, sqlx::Error> {
        super::with_pool!(self, pool => {
            sqlx::query_as::<_, SyncedCopy>(
                "SELECT id, owner_id, folder, name, size, sha256, synced_from FROM images \
                 WHERE owner_id = $1 AND data_store = $2",
            )
            .bind(user_id)
            .bind(personal_data_store)
            .fetch_all(pool)
            .await
        })
    }

    /// Records what a synced image's bytes (digest `sha256`) were copied
    /// from, when a sync copied the same bytes again; not if they changed
    /// meanwhile.
    #[tracing::instrument(skip(self), err)]
    pub async fn set_synced_from(
        &self,
        id: i64,
        source: &str,
        sha256: &str,
    ) -> Result<(), sqlx::Error> {
        const UPDATE: &str = "UPDATE images SET synced_from = $1 WHERE id = $2 AND sha256 = $3";
        super::with_pool!(self, pool => {
            sqlx::query(UPDATE)
                .bind(source)
                .bind(id)
                .bind(sha256)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// The images a sync made of any user's personal-store files before
    /// their sources were kept (see [`SyncedCopy::synced_from`]).
    #[tracing::instrument(skip(self), err)]
    pub async fn unsourced_copies(
        &self,
        personal_data_store: &str,
    ) -> Result<Vec<SyncedCopy>, sqlx::Error> {
        const SELECT: &str = "SELECT id, owner_id, folder, name, size, sha256, synced_from \
             FROM images WHERE data_store = $1 AND owner_id IS NOT NULL AND synced_from IS NULL";
        super::with_pool!(self, pool => {
            sqlx::query_as::<_, SyncedCopy>(SELECT)
                .bind(personal_data_store)
                .fetch_all(pool)
                .await
        })
    }

    /// The user's quota epoch: how many reservations have been moved into
    /// their personal store (see [`Db::move_reservation_into_store`]).
    #[tracing::instrument(skip(self), err)]
    pub async fn quota_epoch(&self, user_id: i64) -> Result<i64, sqlx::Error> {
        super::with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT quota_epoch FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await
                .map(Option::unwrap_or_default)
        })
    }

    /// Marks a reservation whose bytes are now in the user's personal store
    /// as moved there, at a new epoch of the user's, until `expires_ms`. A
    /// count whose listing began before the move still counts it; one that
    /// began after does not (its listing holds the bytes).
    #[tracing::instrument(skip(self), err)]
    pub async fn move_reservation_into_store(
        &self,
        user_id: i64,
        id: i64,
        expires_ms: i64,
    ) -> Result<(), sqlx::Error> {
        const BUMP: &str =
            "UPDATE users SET quota_epoch = quota_epoch + 1 WHERE id = $1 RETURNING quota_epoch";
        const MOVE: &str = "UPDATE quota_reservations SET moved_at_epoch = $1, \
             expires_at = $2 WHERE id = $3 AND user_id = $4";
        let mut tx = self.begin().await?;
        with_tx!(&mut tx, conn => {
            let epoch = sqlx::query_scalar::<_, i64>(BUMP)
                .bind(user_id)
                .fetch_optional(&mut **conn)
                .await?;
            match epoch {
                Some(epoch) => {
                    sqlx::query(MOVE)
                        .bind(epoch)
                        .bind(expires_ms)
                        .bind(id)
                        .bind(user_id)
                        .execute(&mut **conn)
                        .await?;
                }
                // The user is gone, and their reservations with them.
                None => return Ok(()),
            }
        });
        tx.commit().await
    }

    /// Extends an unexpired, unmoved reservation to `expires_ms`; answers
    /// whether it was still there to extend.
    #[tracing::instrument(skip(self), err)]
    pub async fn renew_reservation(
        &self,
        id: i64,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        super::with_pool!(self, pool => {
            Ok(sqlx::query_scalar::<_, i64>(RENEW_RESERVATION)
                .bind(expires_ms)
                .bind(id)
                .bind(now_ms)
                .fetch_optional(pool)
                .await?
                .is_some())
        })
    }

    /// Keeps a reservation counting, unmoved, until `expires_ms`.
    #[tracing::instrument(skip(self), err)]
    pub async fn hold_reservation(&self, id: i64, expires_ms: i64) -> Result<(), sqlx::Error> {
        super::with_pool!(self, pool => {
            sqlx::query("UPDATE quota_reservations SET expires_at = $1 WHERE id = $2")
                .bind(expires_ms)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Lets go of a reservation.
    #[tracing::instrument(skip(self), err)]
    pub async fn release_quota(&self, id: i64) -> Result<(), sqlx::Error> {
        super::with_pool!(self, pool => {
            sqlx::query(RELEASE)
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
