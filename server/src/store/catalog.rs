//! The catalog's pages: one page of the images matching a query and how
//! many match in all, on either database, pages and totals kept while the
//! catalog holds still (see [`super::kept`]).

use std::sync::Arc;

use app::query::Query;

use super::kept::{CatalogVersion, Kept, KeptCache, KeptFigures};
use super::rows::ImageRow;
use super::sql;
use super::{bind_args, reader, Db, Pool};

/// How the totals and the pages of the catalog were found:
/// kept, or read from the database (see [`super::kept`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeptCatalog {
    pub counts: KeptFigures,
    pub pages: KeptFigures,
}

/// The catalog's version a page or count statement ends with (its last two
/// columns, see [`sql::select_images`]).
fn catalog_version(row: &sqlx::postgres::PgRow) -> Result<CatalogVersion, sqlx::Error> {
    use sqlx::Row;
    Ok(CatalogVersion {
        changes: row.try_get(row.len() - 2)?,
        started: row.try_get(row.len() - 1)?,
    })
}

/// The catalog's version on SQLite (migration 0016), as the snapshot of
/// `connection`'s transaction sees it; `None` if its row is gone.
fn sqlite_catalog_version(
    connection: &rusqlite::Connection,
) -> rusqlite::Result<Option<CatalogVersion>> {
    use rusqlite::OptionalExtension;
    connection
        .prepare_cached(sql::SQLITE_CATALOG_VERSION)?
        .query_row([], |row| row.get(0))
        .optional()
        .map(|changes| {
            changes.map(|changes| CatalogVersion {
                changes,
                started: 0,
            })
        })
}

/// On SQLite, what `kept` holds for `key` if it was read at `version` (the
/// snapshot's own), or what `read` reads now, kept at `version` with its
/// weight in bytes. The version costs nothing to ask for on SQLite, read in
/// the same snapshot, so nothing is read without asking first (on
/// PostgreSQL, a query moving from version to version is).
fn kept_or_read<T: Clone>(
    kept: &KeptCache<T>,
    key: &sql::Sql,
    version: Option<CatalogVersion>,
    read: impl FnOnce() -> rusqlite::Result<(T, usize)>,
) -> rusqlite::Result<T> {
    if let Some(version) = version {
        if let Some(found) = kept.get(key).filter(|found| found.version == version) {
            kept.served();
            return Ok(found.value);
        }
    }
    let (value, bytes) = read()?;
    kept.read();
    if let Some(version) = version {
        kept.keep(key, bytes, || Kept::new(version, value.clone(), false));
    }
    Ok(value)
}

/// How many images match in all, if a page of `rows` at `offset` tells: a
/// page that is not full ends the list (unless it is empty past the end,
/// where the total may be anything below the offset).
fn total_from_page(limit: u64, offset: u64, rows: usize) -> Option<i64> {
    let short = (rows as u64) < limit;
    (short && (rows > 0 || offset == 0))
        .then(|| offset.saturating_add(rows as u64).min(i64::MAX as u64) as i64)
}

impl Db {
    /// One page of the images matching `query`, and how many match in all.
    #[tracing::instrument(skip_all, err)]
    pub async fn list_images(&self, query: &Query) -> Result<(Vec<ImageRow>, i64), sqlx::Error> {
        let (page, count) = sql::select_images(self.backend(), query);
        let (limit, offset) = (query.limit, query.offset);
        let known_total = move |rows: usize| total_from_page(limit, offset, rows);
        if let Some(reader) = &self.reader {
            let (pages, counts) = (self.pages.clone(), self.counts.clone());
            return reader
                .read(page.planned_per_values, move |connection| {
                    // One snapshot for the version, the page and its count.
                    let snapshot = connection.unchecked_transaction()?;
                    let version = sqlite_catalog_version(&snapshot)?;
                    let rows = kept_or_read(&pages, &page, version, || {
                        let rows = reader::rows(&snapshot, &page, ImageRow::from_rusqlite)?;
                        let bytes = rows.iter().map(ImageRow::bytes).sum();
                        Ok((Arc::from(rows), bytes))
                    })?;
                    let total = match known_total(rows.len()) {
                        Some(total) => total,
                        None => kept_or_read(&counts, &count, version, || {
                            let total = reader::first_row(&snapshot, &count, |row| row.get(0))?
                                .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                            Ok((total, 0))
                        })?,
                    };
                    snapshot.commit()?;
                    Ok((rows.to_vec(), total))
                })
                .await;
        }
        let pool = match &self.pool {
            Pool::Postgres(pool) => {
                return self
                    .list_images_on_postgres(pool, page, count, known_total)
                    .await
            }
            Pool::Sqlite(pool) => pool,
        };
        // The page and its count side by side (see below).
        let rows =
            bind_args!(sqlx::query_as::<_, ImageRow>(&page.text), &page.args).fetch_all(pool);
        let counted =
            bind_args!(sqlx::query_scalar::<_, i64>(&count.text), &count.args).fetch_one(pool);
        let (rows, counted) = tokio::try_join!(rows, counted)?;
        let total = known_total(rows.len()).unwrap_or(counted);
        Ok((rows, total))
    }

    /// A page on PostgreSQL, it and its count kept across requests while
    /// the catalog does not change (see [`super::kept`]).
    async fn list_images_on_postgres(
        &self,
        pool: &sqlx::PgPool,
        page: sql::Sql,
        count: sql::Sql,
        known_total: impl Fn(usize) -> Option<i64>,
    ) -> Result<(Vec<ImageRow>, i64), sqlx::Error> {
        let kept_page = self.pages.get(&page);
        if let Some(kept_page) = kept_page.as_ref().filter(|kept| !kept.moving) {
            // One small row rather than a hundred large ones.
            let version =
                catalog_version(&sqlx::query(sql::CATALOG_VERSION).fetch_one(pool).await?)?;
            if version == kept_page.version {
                self.pages.served();
                let rows = kept_page.value.to_vec();
                let total = match known_total(rows.len()) {
                    Some(total) => total,
                    None => self.total_at(pool, &count, version).await?,
                };
                return Ok((rows, total));
            }
            // The catalog changed since: read again, below.
        }
        let read_page = async {
            let rows = bind_args!(sqlx::query(&page.text), &page.args)
                .fetch_all(pool)
                .await?;
            let version = rows.first().map(catalog_version).transpose()?;
            let rows = rows
                .iter()
                .map(<ImageRow as sqlx::FromRow<_>>::from_row)
                .collect::<Result<Vec<_>, _>>()?;
            self.pages.read();
            if let Some(version) = version {
                // Moving until two reads in a row see the same catalog.
                let moving = kept_page
                    .as_ref()
                    .is_some_and(|kept| kept.version != version);
                let bytes = rows.iter().map(ImageRow::bytes).sum();
                self.pages.keep(&page, bytes, || {
                    Kept::new(version, rows.as_slice().into(), moving)
                });
            }
            Ok::<_, sqlx::Error>((rows, version))
        };
        let kept_count = self.counts.get(&count);
        let Some(kept_count) = kept_count.filter(|kept| !kept.moving) else {
            // The page and its count side by side, each on a connection of
            // its own: a request waits for the slower of the two, not for
            // both in turn (counting 10,000 records takes as long as
            // reading the page). The count is wasted when the page turns
            // out short, but then it counted no more than the page read.
            let ((rows, _), (total, version)) =
                tokio::try_join!(read_page, self.count(pool, &count))?;
            let moving = kept_count.is_some_and(|kept| kept.version != version);
            self.counts
                .keep(&count, 0, || Kept::new(version, total, moving));
            let total = known_total(rows.len()).unwrap_or(total);
            return Ok((rows, total));
        };
        let (rows, version) = read_page.await?;
        if let Some(total) = known_total(rows.len()) {
            return Ok((rows, total));
        }
        if version == Some(kept_count.version) {
            self.counts.served();
            return Ok((rows, kept_count.value));
        }
        // The catalog changed since: counted again, after the page; the
        // query's next pages count beside theirs until it holds still.
        let (total, version) = self.count(pool, &count).await?;
        self.counts
            .keep(&count, 0, || Kept::new(version, total, true));
        Ok((rows, total))
    }

    /// How many images match `count` at the catalog's `version`: kept, or
    /// counted now (and kept, moving if the catalog has moved on since).
    async fn total_at(
        &self,
        pool: &sqlx::PgPool,
        count: &sql::Sql,
        version: CatalogVersion,
    ) -> Result<i64, sqlx::Error> {
        if let Some(kept) = self.counts.get(count) {
            if kept.version == version {
                self.counts.served();
                return Ok(kept.value);
            }
        }
        let (total, counted_at) = self.count(pool, count).await?;
        self.counts.keep(count, 0, || {
            Kept::new(counted_at, total, counted_at != version)
        });
        Ok(total)
    }

    /// Counts on PostgreSQL, with the catalog's version the count saw.
    async fn count(
        &self,
        pool: &sqlx::PgPool,
        count: &sql::Sql,
    ) -> Result<(i64, CatalogVersion), sqlx::Error> {
        use sqlx::Row;
        let row = bind_args!(sqlx::query(&count.text), &count.args)
            .fetch_one(pool)
            .await?;
        self.counts.read();
        Ok((row.try_get::<i64, _>(0)?, catalog_version(&row)?))
    }

    /// How the totals and pages of the catalog were found, since start-up.
    pub fn kept_figures(&self) -> KeptCatalog {
        KeptCatalog {
            counts: self.counts.figures(),
            pages: self.pages.figures(),
        }
    }
}
