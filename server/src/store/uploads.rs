//! Resumable uploads (tus): one row per upload, and its parts in order (one
//! per chunk received, kept by the blob store). A part is recorded in the
//! same transaction that moves the upload's offset on, and only if the
//! offset is still where the part began: two requests racing at one offset
//! cannot both be acknowledged.

use super::rows::from_row_by_name;
use super::{with_pool, Db};

/// One resumable upload as stored; `metadata` is a JSON object.
#[derive(Debug, Clone)]
pub struct UploadRow {
    pub id: String,
    pub owner_id: i64,
    pub length: i64,
    pub received: i64,
    pub metadata: String,
    pub reservation_id: Option<i64>,
    pub image_id: Option<i64>,
    pub completing_at: Option<i64>,
    pub created_at: i64,
    pub expires_at: i64,
}
from_row_by_name!(UploadRow {
    id,
    owner_id,
    length,
    received,
    metadata,
    reservation_id,
    image_id,
    completing_at,
    created_at,
    expires_at
});

/// One part: bytes `[start, start + size)` of the upload, which the blob
/// store keeps under `name`.
#[derive(Debug, Clone)]
pub struct PartRow {
    pub start: i64,
    pub size: i64,
    pub name: String,
}
from_row_by_name!(PartRow { start, size, name });

const SELECT: &str = "SELECT id, owner_id, length, received, metadata, reservation_id, \
     image_id, completing_at, created_at, expires_at FROM resumable_uploads";

/// How many uploads a user (`$1`) has in progress.
const OPEN_UPLOADS: &str =
    "SELECT COUNT(*) FROM resumable_uploads WHERE owner_id = $1 AND image_id IS NULL";

/// Lets go of the quota reserved for an upload (`$1`) that the completion
/// claimed at `$2` still holds, in the transaction that [`FINISH`]es it:
/// its bytes count as the record from that commit on. Let go afterwards,
/// a crash in between counted them twice until the reservation expired.
pub(super) const RELEASE_RESERVATION: &str = "DELETE FROM quota_reservations WHERE id = \
     (SELECT reservation_id FROM resumable_uploads \
     WHERE id = $1 AND image_id IS NULL AND completing_at = $2)";

/// Makes an upload (`$2`) image `$1`'s, if the completion claimed at `$3`
/// still holds it; its parts are then forgotten ([`FORGET_PARTS`]), and the
/// caller removes them from the blob store.
pub(super) const FINISH: &str = "UPDATE resumable_uploads SET image_id = $1, \
     reservation_id = NULL WHERE id = $2 AND image_id IS NULL AND completing_at = $3";
pub(super) const FORGET_PARTS: &str = "DELETE FROM resumable_parts WHERE upload_id = $1";

/// What came of recording an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadRecorded {
    Recorded,
    /// Its owner has as many open as they may: nothing was recorded.
    TooMany,
    /// Its reservation lapsed before it was recorded (a stalled database):
    /// nothing was recorded.
    ReservationLapsed,
}

impl Db {
    /// Records an upload, unless its owner has `open_at_most` open, and
    /// makes its reservation last as long, unless that lapsed meanwhile.
    #[tracing::instrument(skip(self, upload), err)]
    pub async fn insert_upload(
        &self,
        upload: &UploadRow,
        open_at_most: i64,
    ) -> Result<UploadRecorded, sqlx::Error> {
        const INSERT: &str = "INSERT INTO resumable_uploads (id, owner_id, length, received, \
             metadata, reservation_id, image_id, created_at, expires_at) \
             VALUES ($1, $2, $3, 0, $4, $5, NULL, $6, $7)";
        // Counted after the owner's row is locked: uploads created side by
        // side cannot pass the bound together.
        let lock = self.user_lock();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(upload.owner_id).execute(&mut *tx).await?;
            let open = sqlx::query_scalar::<_, i64>(OPEN_UPLOADS)
                .bind(upload.owner_id)
                .fetch_one(&mut *tx)
                .await?;
            if open >= open_at_most {
                return Ok(UploadRecorded::TooMany);
            }
            sqlx::query(INSERT)
                .bind(&upload.id)
                .bind(upload.owner_id)
                .bind(upload.length)
                .bind(&upload.metadata)
                .bind(upload.reservation_id)
                .bind(upload.created_at)
                .bind(upload.expires_at)
                .execute(&mut *tx)
                .await?;
            if let Some(reservation) = upload.reservation_id {
                // Its reservation, made to last until the upload is
                // recorded, lasts as long as the upload from the same
                // commit; one that lapsed meanwhile may have given its room
                // to another write. By the clock now, under the lock: it may
                // have lapsed since the upload's creation began.
                let carried = sqlx::query_scalar::<_, i64>(super::quota::RENEW_RESERVATION)
                    .bind(upload.expires_at)
                    .bind(reservation)
                    .bind(chrono::Utc::now().timestamp_millis())
                    .fetch_optional(&mut *tx)
                    .await?;
                if carried.is_none() {
                    return Ok(UploadRecorded::ReservationLapsed);
                }
            }
            tx.commit().await?;
            Ok(UploadRecorded::Recorded)
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn upload(&self, id: &str) -> Result<Option<UploadRow>, sqlx::Error> {
        let query = format!("{SELECT} WHERE id = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, UploadRow>(&query).bind(id).fetch_optional(pool).await
        })
    }

    /// The parts of an upload, in order.
    #[tracing::instrument(skip(self), err)]
    pub async fn upload_parts(&self, id: &str) -> Result<Vec<PartRow>, sqlx::Error> {
        const PARTS: &str =
            "SELECT start, size, name FROM resumable_parts WHERE upload_id = $1 ORDER BY start";
        with_pool!(self, pool => {
            sqlx::query_as::<_, PartRow>(PARTS).bind(id).fetch_all(pool).await
        })
    }

    /// Makes an upload image `image_id`'s, if this server's completion
    /// (`claimed_at`) still holds it; answers whether it did.
    #[tracing::instrument(skip(self), err)]
    pub async fn finish_upload(
        &self,
        id: &str,
        image_id: i64,
        claimed_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.begin().await?;
        let finished = tx.finish_upload(id, image_id, claimed_at).await?;
        // Not finished here: rolled back, the reservation with it.
        if finished {
            tx.commit().await?;
        }
        Ok(finished)
    }

    /// Deletes an upload and its parts' rows; answers its reservation, for
    /// the caller to let go of.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_upload(&self, id: &str) -> Result<Option<i64>, sqlx::Error> {
        const DELETE: &str = "DELETE FROM resumable_uploads WHERE id = $1 RETURNING reservation_id";
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar::<_, Option<i64>>(DELETE)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .flatten())
        })
    }

    /// Which of `ids` are uploads the database knows.
    #[tracing::instrument(skip(self, ids), err)]
    pub async fn known_uploads(&self, ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
        const KNOWN: &str = "SELECT id FROM resumable_uploads WHERE id = $1";
        let mut known = Vec::new();
        for id in ids {
            let found = with_pool!(self, pool => {
                sqlx::query_scalar::<_, String>(KNOWN).bind(id).fetch_optional(pool).await
            })?;
            known.extend(found);
        }
        Ok(known)
    }

    /// Claims the completion of a complete upload for this server, unless
    /// another claimed or renewed its claim after `stale` (ms); answers
    /// whether it did.
    #[tracing::instrument(skip(self), err)]
    pub async fn claim_completion(
        &self,
        id: &str,
        now_ms: i64,
        stale: i64,
    ) -> Result<bool, sqlx::Error> {
        const CLAIM: &str = "UPDATE resumable_uploads \
             SET completing_at = $1, completion_renewed_at = NULL \
             WHERE id = $2 AND image_id IS NULL AND received = length \
             AND (completing_at IS NULL OR COALESCE(completion_renewed_at, completing_at) < $3)";
        with_pool!(self, pool => {
            sqlx::query(CLAIM)
                .bind(now_ms)
                .bind(id)
                .bind(stale)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Renews the completion claimed at `claimed_at` at `now_ms`, and keeps
    /// the upload and its reservation at least until `keep_until` unless
    /// they expired already (the room of an expired one may be another's
    /// now); `false` once the claim is another's, or the upload is done.
    #[tracing::instrument(skip(self), err)]
    pub async fn renew_completion(
        &self,
        id: &str,
        claimed_at: i64,
        now_ms: i64,
        keep_until: i64,
    ) -> Result<bool, sqlx::Error> {
        // The reservation first, then the upload, as the landing that
        // finishes the upload takes them: in the other order, the two
        // could each wait for the other's row.
        const RESERVATION: &str = "UPDATE quota_reservations SET expires_at = \
             CASE WHEN expires_at < $1 AND expires_at > $2 THEN $1 ELSE expires_at END \
             WHERE id = (SELECT reservation_id FROM resumable_uploads \
             WHERE id = $3 AND image_id IS NULL AND completing_at = $4)";
        const RENEW: &str = "UPDATE resumable_uploads SET completion_renewed_at = $1, \
             expires_at = CASE WHEN expires_at < $2 AND expires_at > $1 THEN $2 \
             ELSE expires_at END \
             WHERE id = $3 AND image_id IS NULL AND completing_at = $4";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(RESERVATION)
                .bind(keep_until)
                .bind(now_ms)
                .bind(id)
                .bind(claimed_at)
                .execute(&mut *tx)
                .await?;
            let renewed = sqlx::query(RENEW)
                .bind(now_ms)
                .bind(keep_until)
                .bind(id)
                .bind(claimed_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            // Not renewed: rolled back, the reservation's expiry with it.
            if renewed {
                tx.commit().await?;
            }
            Ok(renewed)
        })
    }

    /// Lets go of a completion that failed, for the next request to retry,
    /// unless another server took it over meanwhile.
    #[tracing::instrument(skip(self), err)]
    pub async fn release_completion(&self, id: &str, claimed_at: i64) -> Result<(), sqlx::Error> {
        const RELEASE: &str = "UPDATE resumable_uploads SET completing_at = NULL \
             WHERE id = $1 AND image_id IS NULL AND completing_at = $2";
        with_pool!(self, pool => {
            sqlx::query(RELEASE)
                .bind(id)
                .bind(claimed_at)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// How many uploads a user has in progress.
    #[tracing::instrument(skip(self), err)]
    pub async fn open_uploads_of(&self, owner_id: i64) -> Result<i64, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(OPEN_UPLOADS).bind(owner_id).fetch_one(pool).await
        })
    }

    /// How many parts an upload has.
    #[tracing::instrument(skip(self), err)]
    pub async fn upload_part_count(&self, id: &str) -> Result<i64, sqlx::Error> {
        const COUNT: &str = "SELECT COUNT(*) FROM resumable_parts WHERE upload_id = $1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(COUNT).bind(id).fetch_one(pool).await
        })
    }

    /// The uploads past their expiry.
    #[tracing::instrument(skip(self), err)]
    pub async fn expired_uploads(&self, now_ms: i64) -> Result<Vec<String>, sqlx::Error> {
        const EXPIRED: &str = "SELECT id FROM resumable_uploads WHERE expires_at <= $1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(EXPIRED).bind(now_ms).fetch_all(pool).await
        })
    }
}

/// A part to record: `[start, start + size)` of `upload_id`, kept as `name`.
#[derive(Debug, Clone, Copy)]
pub struct NewPart<'a> {
    pub upload_id: &'a str,
    pub start: i64,
    pub size: i64,
    pub name: &'a str,
}

impl Db {
    /// Records a part of an upload, moving its offset to the part's end and
    /// its expiry (and its reservation's) to `expires_at`, if the offset is
    /// still the part's start; answers whether it was.
    #[tracing::instrument(skip(self), err)]
    pub async fn append_part(
        &self,
        part: NewPart<'_>,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        const MOVE: &str = "UPDATE resumable_uploads SET received = $1, expires_at = $2 \
             WHERE id = $3 AND received = $4 AND image_id IS NULL";
        const PART: &str = "INSERT INTO resumable_parts (upload_id, start, size, name) \
             VALUES ($1, $2, $3, $4)";
        // The upload's reservation lives as long as the upload.
        const RESERVATION: &str = "UPDATE quota_reservations SET expires_at = $1 \
             WHERE id = (SELECT reservation_id FROM resumable_uploads WHERE id = $2)";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = sqlx::query(MOVE)
                .bind(part.start + part.size)
                .bind(expires_at)
                .bind(part.upload_id)
                .bind(part.start)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if moved != 1 {
                return Ok(false);
            }
            sqlx::query(PART)
                .bind(part.upload_id)
                .bind(part.start)
                .bind(part.size)
                .bind(part.name)
                .execute(&mut *tx)
                .await?;
            sqlx::query(RESERVATION)
                .bind(expires_at)
                .bind(part.upload_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Moves the expiry of an upload not yet an image (and its
    /// reservation's) to `expires_at`, if that is later; one expired by
    /// `now` stays so (its reservation's room may have gone to others).
    #[tracing::instrument(skip(self), err)]
    pub async fn keep_upload(
        &self,
        id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        const UPLOAD: &str = "UPDATE resumable_uploads SET expires_at = $1 \
             WHERE id = $2 AND image_id IS NULL AND expires_at < $1 AND expires_at > $3";
        const RESERVATION: &str = "UPDATE quota_reservations SET expires_at = $1 \
             WHERE id = (SELECT reservation_id FROM resumable_uploads WHERE id = $2) \
             AND expires_at < $1 AND expires_at > $3";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for statement in [UPLOAD, RESERVATION] {
                sqlx::query(statement)
                    .bind(expires_at)
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
