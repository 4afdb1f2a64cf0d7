//! Image records.

use app::query::Query;
use chrono::{DateTime, Utc};

use super::rows::ImageRow;
use super::sql::{self, IMAGE_SELECT};
use super::{bind_args, with_pool, Db};

/// A record about to be inserted.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub kind: &'static str,
    pub name: String,
    pub label: String,
    pub folder: String,
    pub data_store: String,
    pub path: String,
    pub public: bool,
    pub owner_id: Option<i64>,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub format: Option<&'static str>,
    pub virtual_size: Option<i64>,
    pub now: DateTime<Utc>,
}

impl Db {
    /// One page of the images matching `query`, and how many match in all.
    #[tracing::instrument(skip_all, err)]
    pub async fn list_images(&self, query: &Query) -> Result<(Vec<ImageRow>, i64), sqlx::Error> {
        let (page, count) = sql::select_images(self.backend(), query);
        with_pool!(self, pool => {
            let rows = bind_args!(sqlx::query_as::<_, ImageRow>(&page.text), page.args)
                .fetch_all(pool)
                .await?;
            // An empty first page needs no count; otherwise count separately.
            let total = if rows.is_empty() && query.offset == 0 {
                0
            } else {
                bind_args!(sqlx::query_scalar::<_, i64>(&count.text), count.args)
                    .fetch_one(pool)
                    .await?
            };
            Ok((rows, total))
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn image(&self, id: i64) -> Result<Option<ImageRow>, sqlx::Error> {
        let text = format!("{IMAGE_SELECT} WHERE i.id = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, ImageRow>(&text).bind(id).fetch_optional(pool).await
        })
    }

    /// Inserts a record and returns its id.
    #[tracing::instrument(skip_all, err)]
    pub async fn insert_image(&self, new: &NewImage) -> Result<i64, sqlx::Error> {
        const INSERT: &str = "INSERT INTO images (kind, name, label, folder, data_store, path, \
             public, owner_id, size, sha256, format, virtual_size, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(INSERT)
                .bind(new.kind)
                .bind(&new.name)
                .bind(&new.label)
                .bind(&new.folder)
                .bind(&new.data_store)
                .bind(&new.path)
                .bind(new.public)
                .bind(new.owner_id)
                .bind(new.size)
                .bind(&new.sha256)
                .bind(new.format)
                .bind(new.virtual_size)
                .bind(new.now)
                .fetch_one(pool)
                .await
        })
    }

    /// Bytes held by one user's images, for quotas.
    #[tracing::instrument(skip(self), err)]
    pub async fn bytes_owned_by(&self, owner_id: i64) -> Result<i64, sqlx::Error> {
        const SUM: &str =
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM images WHERE owner_id = $1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(SUM).bind(owner_id).fetch_one(pool).await
        })
    }

    /// How many records share one blob, so that the last one out removes it.
    #[tracing::instrument(skip(self), err)]
    pub async fn images_with_blob(&self, sha256: &str) -> Result<i64, sqlx::Error> {
        const COUNT: &str = "SELECT COUNT(*) FROM images WHERE sha256 = $1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(COUNT).bind(sha256).fetch_one(pool).await
        })
    }
}
