//! Transactions that span several statements, and the blob lock: the one
//! place where a record is attached to stored bytes or bytes are let go.
//!
//! Attaching a record to a blob and deleting a blob both hold the blob's row
//! in `blobs` locked (on PostgreSQL a row lock taken by an upsert; on SQLite
//! the database's write lock, which the upsert takes), so the two never
//! interleave: a blob's row is forgotten only when no record uses it at that
//! moment (its copy is removed once that is committed), and a record is
//! attached only to a blob whose row names a copy that is there.

use app::model::InspectionAttributes;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Sqlite, Transaction};

use super::images::{inserted_id, NameScope, NewImage};
use super::insert::{
    bound_insert, networks_json, InsertArgs, INSERT_IMAGE, INSERT_IMAGE_CLAIMING, INSERT_LINK,
    LOCK_LINKED,
};
use super::rows::ImageRow;
use super::{Db, Pool};

/// An open transaction on either backend.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs the same sqlx code against whichever transaction `$tx` holds; the
/// body reaches the connection as `&mut **$conn`.
macro_rules! with_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite($conn) => $body,
            $crate::store::Tx::Postgres($conn) => $body,
        }
    };
}
pub(crate) use with_tx;

impl Pool {
    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        match self {
            Self::Sqlite(pool) => pool.begin().await.map(Tx::Sqlite),
            Self::Postgres(pool) => pool.begin().await.map(Tx::Postgres),
        }
    }
}

impl Db {
    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
    }

    /// Takes the lock of the blob with this digest (creating its row, which
    /// names no generation yet), for the length of the returned transaction.
    #[tracing::instrument(skip(self), err)]
    pub async fn lock_blob(&self, sha256: &str) -> Result<BlobLock, sqlx::Error> {
        const UPSERT: &str = "INSERT INTO blobs (sha256, created_at, generation) \
             VALUES ($1, $2, NULL) \
             ON CONFLICT (sha256) DO UPDATE SET created_at = blobs.created_at \
             RETURNING generation";
        let mut tx = self.begin().await?;
        let now_ms = Utc::now().timestamp_millis();
        let generation = with_tx!(&mut tx, conn => {
            sqlx::query_scalar::<_, Option<String>>(UPSERT)
                .bind(sha256)
                .bind(now_ms)
                .fetch_one(&mut **conn)
                .await?
        });
        Ok(BlobLock {
            tx,
            sha256: sha256.to_owned(),
            generation,
        })
    }

    /// The generation of the blob's bytes its records read, as committed
    /// (none while no row names one).
    #[tracing::instrument(skip(self), err)]
    pub async fn blob_generation(&self, sha256: &str) -> Result<Option<String>, sqlx::Error> {
        const SELECT: &str = "SELECT generation FROM blobs WHERE sha256 = $1";
        let found = super::with_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<String>>(SELECT)
                .bind(sha256)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.flatten())
    }

    /// The blobs some record uses, each with the generation they read.
    #[tracing::instrument(skip(self), err)]
    pub async fn referenced_blobs(&self) -> Result<Vec<(String, String)>, sqlx::Error> {
        const SELECT: &str = "SELECT b.sha256, b.generation FROM blobs b \
             WHERE b.generation IS NOT NULL \
             AND EXISTS (SELECT 1 FROM images i WHERE i.sha256 = b.sha256)";
        super::with_pool!(self, pool => {
            sqlx::query_as::<_, (String, String)>(SELECT).fetch_all(pool).await
        })
    }

    /// The bytes of the blobs the records hold, each blob once, and of the
    /// parts of the uploads in progress.
    #[tracing::instrument(skip(self), err)]
    pub async fn stored_bytes(&self) -> Result<i64, sqlx::Error> {
        const SUM: &str = "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM ( \
             SELECT sha256 AS held, MAX(size) AS size FROM images \
             WHERE sha256 IS NOT NULL AND size IS NOT NULL GROUP BY sha256 \
             UNION ALL SELECT upload_id AS held, size FROM resumable_parts \
             ) AS stored";
        super::with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(SUM).fetch_one(pool).await
        })
    }
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
    }

    /// Lets go of a quota reservation in the transaction that records the
    /// bytes it held room for: from that commit on, they count as the
    /// record, and a crash right after cannot count them twice.
    pub async fn release_quota(&mut self, reservation: i64) -> Result<(), sqlx::Error> {
        with_tx!(self, conn => {
            sqlx::query(super::quota::RELEASE)
                .bind(reservation)
                .execute(&mut **conn)
                .await
                .map(|_| ())
        })
    }

    /// Makes resumable upload `upload` record `id`'s, in the transaction
    /// that records it, if the completion claimed at `claimed_at` still
    /// holds the upload, letting go of its reservation and forgetting its
    /// parts' rows; answers whether it did (if not, another server
    /// completes it, and nothing here may land: the caller rolls back).
    pub async fn finish_upload(
        &mut self,
        upload: &str,
        id: i64,
        claimed_at: i64,
    ) -> Result<bool, sqlx::Error> {
        use super::uploads::{FINISH, FORGET_PARTS, RELEASE_RESERVATION};
        with_tx!(self, conn => {
            sqlx::query(RELEASE_RESERVATION)
                .bind(upload)
                .bind(claimed_at)
                .execute(&mut **conn)
                .await?;
            let finished = sqlx::query(FINISH)
                .bind(id)
                .bind(upload)
                .bind(claimed_at)
                .execute(&mut **conn)
                .await?
                .rows_affected()
                == 1;
            if finished {
                sqlx::query(FORGET_PARTS).bind(upload).execute(&mut **conn).await?;
            }
            Ok(finished)
        })
    }

    /// Inserts a record (and a hypervisor's links) and returns its id;
    /// `None` when its owner holds as many images as they may.
    pub async fn insert_image(&mut self, new: &NewImage) -> Result<Option<i64>, sqlx::Error> {
        Ok(inserted_id(
            self.insert_image_if_name_free(new, None).await?,
        ))
    }

    /// Inserts a record (and a hypervisor's links) unless an image `unique`
    /// reads already has its name, or its owner holds as many images as they
    /// may, in which case nothing is stored and the answer is `None`. The check and the insert are one statement, and on
    /// PostgreSQL they run under a lock on the name held until commit, so
    /// two transactions cannot both find a name free and both take it.
    ///
    /// The answer is the row as stored (its defaults, its timestamps as the
    /// database keeps them), without the owner's name, which the caller
    /// knows: it saves reading the record back.
    #[tracing::instrument(skip_all, err)]
    pub async fn insert_image_if_name_free(
        &mut self,
        new: &NewImage,
        unique: Option<NameScope>,
    ) -> Result<Option<ImageRow>, sqlx::Error> {
        let args = InsertArgs::of(new, unique);
        if let (Tx::Postgres(tx), false) = (&mut *self, new.virtualized.is_empty()) {
            sqlx::query(LOCK_LINKED)
                .bind(&new.virtualized)
                .execute(&mut **tx)
                .await?;
        }
        with_tx!(self, tx => {
            let row = bound_insert!(insert_sql(tx), args)
                .fetch_optional(&mut **tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            for image_id in &new.virtualized {
                sqlx::query(INSERT_LINK)
                    .bind(row.id)
                    .bind(image_id)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(Some(row))
        })
    }
}

/// On PostgreSQL, a record with no links to insert: one statement, which is
/// its own transaction (the name's lock is held until it commits): one round
/// trip, not three (`BEGIN`, the insert, `COMMIT`; four when the lock was a
/// statement of its own).
pub(super) async fn insert_alone_on_postgres(
    pool: &sqlx::PgPool,
    new: &NewImage,
    unique: Option<NameScope>,
) -> Result<Option<ImageRow>, sqlx::Error> {
    debug_assert!(new.virtualized.is_empty());
    let args = InsertArgs::of(new, unique);
    bound_insert!(INSERT_IMAGE_CLAIMING, args)
        .fetch_optional(pool)
        .await
}

/// The insert whose name check is right for `tx`'s database.
fn insert_sql<T: LockName>(_tx: &T) -> &'static str {
    T::INSERT_IMAGE
}

/// A transaction that can take the lock on an image name until it ends, so
/// that writers checking the same name for a rule take turns.
pub(super) trait LockName {
    /// The insert of an image record that checks its name under that lock.
    const INSERT_IMAGE: &'static str;

    async fn lock_name(&mut self, name: &str) -> Result<(), sqlx::Error>;
}

impl LockName for Transaction<'static, Postgres> {
    const INSERT_IMAGE: &'static str = INSERT_IMAGE_CLAIMING;

    /// An advisory lock: a row lock cannot do it, as the row that would
    /// conflict does not exist yet.
    async fn lock_name(&mut self, name: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(IMAGE_NAME_LOCKS)
            .bind(name)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

impl LockName for Transaction<'static, Sqlite> {
    const INSERT_IMAGE: &'static str = INSERT_IMAGE;

    /// None needed: SQLite has one writer, and a statement that checks and
    /// writes holds the write lock throughout.
    async fn lock_name(&mut self, _name: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

/// The first key of every image name's advisory lock, keeping them apart
/// from any other advisory locks taken in the same database.
/// (`depot_claim_image_name`, of migration 0015, takes it with the same keys.)
pub(super) const IMAGE_NAME_LOCKS: i32 = 0x6e61_6d65; // "name"

/// New bytes of an existing record, and what inspecting them found.
#[derive(Debug, Clone)]
pub struct NewContent<'a> {
    pub size: i64,
    pub format: &'a str,
    pub virtual_size: Option<i64>,
    pub inspection: &'a InspectionAttributes,
    pub guest_os: Option<&'a str>,
    pub now: DateTime<Utc>,
    /// The bytes (digest) the record must still have: else another change
    /// came first, and this one replaces nothing.
    pub replaces: Option<&'a str>,
    /// Whether the record's bytes are replaced if it is published by now
    /// (an administrator's change): an owner's upload that began before an
    /// administrator published the record replaces nothing.
    pub published_too: bool,
}

/// A blob's lock, held until [`BlobLock::commit`] (or dropped: rolled back).
pub struct BlobLock {
    pub(super) tx: Tx,
    pub(super) sha256: String,
    /// The generation its row names, as the lock was taken; none if the
    /// lock made the row.
    generation: Option<String>,
}

impl BlobLock {
    /// Inserts a record using this blob; `None` when its owner holds as
    /// many images as they may.
    pub async fn insert_image(&mut self, new: &NewImage) -> Result<Option<i64>, sqlx::Error> {
        self.tx.insert_image(new).await
    }

    /// Points a record at this blob (its file changed), bumping its
    /// version; answers whether it did (the record is there and still has
    /// the bytes it `replaces`).
    #[tracing::instrument(skip(self), err)]
    pub async fn set_image_content(
        &mut self,
        id: i64,
        content: &NewContent<'_>,
    ) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE images SET size = $1, sha256 = $2, format = $3, \
             virtual_size = $4, updated_at = $5, version = version + 1, \
             format_detail = $6, volume_label = $7, cpus = $8, memory_mib = $9, product = $10, \
             vendor = $11, product_version = $12, networks = $13, \
             os_type = COALESCE($14, os_type), synced_from = NULL \
             WHERE id = $15 AND sha256 IS NOT DISTINCT FROM $16 AND (NOT public OR $17)";
        let found = content.inspection;
        let networks = networks_json(&found.networks);
        with_tx!(&mut self.tx, conn => {
            sqlx::query(UPDATE)
                .bind(content.size)
                .bind(&self.sha256)
                .bind(content.format)
                .bind(content.virtual_size)
                .bind(content.now)
                .bind(&found.detail)
                .bind(&found.volume_label)
                .bind(found.cpus)
                .bind(found.memory_mib)
                .bind(&found.product)
                .bind(&found.vendor)
                .bind(&found.product_version)
                .bind(&networks)
                .bind(content.guest_os)
                .bind(id)
                .bind(content.replaces)
                .bind(content.published_too)
                .execute(&mut **conn)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Records what a synced image's new bytes were copied from (after
    /// [`BlobLock::insert_image`] or [`BlobLock::set_image_content`], which
    /// leave it unset: a record's bytes are a copy of nothing else).
    pub async fn set_synced_from(&mut self, id: i64, source: &str) -> Result<(), sqlx::Error> {
        const UPDATE: &str = "UPDATE images SET synced_from = $1 WHERE id = $2";
        with_tx!(&mut self.tx, conn => {
            sqlx::query(UPDATE)
                .bind(source)
                .bind(id)
                .execute(&mut **conn)
                .await
                .map(|_| ())
        })
    }

    /// Lets go of a quota reservation in the transaction that records the
    /// bytes it held room for (see [`Tx::release_quota`]).
    pub async fn release_quota(&mut self, reservation: i64) -> Result<(), sqlx::Error> {
        self.tx.release_quota(reservation).await
    }

    /// Makes resumable upload `upload` record `id`'s, in the transaction
    /// that records it (see [`Tx::finish_upload`]).
    pub async fn finish_upload(
        &mut self,
        upload: &str,
        id: i64,
        claimed_at: i64,
    ) -> Result<bool, sqlx::Error> {
        self.tx.finish_upload(upload, id, claimed_at).await
    }

    /// How many records use this blob now.
    pub async fn references(&mut self) -> Result<i64, sqlx::Error> {
        const COUNT: &str = "SELECT COUNT(*) FROM images WHERE sha256 = $1";
        with_tx!(&mut self.tx, conn => {
            sqlx::query_scalar::<_, i64>(COUNT).bind(&self.sha256).fetch_one(&mut **conn).await
        })
    }

    /// The generation of the blob's bytes its records read; none if nothing
    /// is published under the row yet.
    pub fn generation(&self) -> Option<&str> {
        self.generation.as_deref()
    }

    /// Makes the records read the blob's bytes of this generation.
    pub async fn set_generation(&mut self, generation: &str) -> Result<(), sqlx::Error> {
        with_tx!(&mut self.tx, conn => {
            sqlx::query("UPDATE blobs SET generation = $1 WHERE sha256 = $2")
                .bind(generation)
                .bind(&self.sha256)
                .execute(&mut **conn)
                .await
                .map(drop)?
        });
        self.generation = Some(generation.to_owned());
        Ok(())
    }

    /// Forgets the blob's row (its bytes are being removed).
    pub async fn forget(&mut self) -> Result<(), sqlx::Error> {
        with_tx!(&mut self.tx, conn => {
            sqlx::query("DELETE FROM blobs WHERE sha256 = $1")
                .bind(&self.sha256)
                .execute(&mut **conn)
                .await
                .map(|_| ())
        })
    }

    /// Commits what was done under the lock, and lets go of it.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}
