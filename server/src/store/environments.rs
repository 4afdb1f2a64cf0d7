//! ViCE execution environments. `cred_password` holds only ciphertext.

use chrono::{DateTime, Utc};

use super::deployments::holds_its_file;
use super::rows::from_row_by_name;
use super::{count_reaches, with_pool, Backend, Db};

/// One environment as stored.
#[derive(Clone)]
pub struct EnvironmentRow {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub mgmt_type: String,
    pub mgmt_software: String,
    pub mgmt_version: String,
    pub rt_type: String,
    pub rt_software: String,
    pub rt_version: String,
    pub location: String,
    pub cred_username: String,
    /// Nonce and ciphertext, hex; never the password itself.
    pub cred_password: Option<String>,
    pub cred_specifics: String,
    /// The owner's username.
    pub owner: String,
}
from_row_by_name!(EnvironmentRow {
    id,
    user_id,
    title,
    mgmt_type,
    mgmt_software,
    mgmt_version,
    rt_type,
    rt_software,
    rt_version,
    location,
    cred_username,
    cred_password,
    cred_specifics,
    owner
});

impl std::fmt::Debug for EnvironmentRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentRow")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// The columns a write sets.
pub struct EnvironmentColumns<'a> {
    pub title: &'a str,
    pub mgmt_type: &'a str,
    pub mgmt_software: &'a str,
    pub mgmt_version: &'a str,
    pub rt_type: &'a str,
    pub rt_software: &'a str,
    pub rt_version: &'a str,
    pub location: &'a str,
    pub cred_username: &'a str,
    /// `None` keeps the stored ciphertext on an update.
    pub cred_password: Option<&'a str>,
    pub cred_specifics: &'a str,
}

const SELECT: &str = "SELECT id, user_id, title, mgmt_type, mgmt_software, mgmt_version, \
     rt_type, rt_software, rt_version, location, cred_username, cred_password, cred_specifics, \
     (SELECT username FROM users WHERE users.id = environments.user_id) AS owner \
     FROM environments";

impl Db {
    #[tracing::instrument(skip_all, err)]
    pub async fn insert_environment(
        &self,
        user_id: i64,
        columns: &EnvironmentColumns<'_>,
        at_most: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, sqlx::Error> {
        // Counted after the user's row is locked, as deployments are: no
        // two inserts of one user's see the same count.
        let lock = self.user_lock();
        const COUNT: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM environments \
             WHERE user_id = $1 LIMIT $2) AS kept";
        const INSERT: &str = "INSERT INTO environments (user_id, title, mgmt_type, \
             mgmt_software, mgmt_version, rt_type, rt_software, rt_version, location, \
             cred_username, cred_password, cred_specifics, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(user_id).execute(&mut *tx).await?;
            if count_reaches!(tx, COUNT, user_id, at_most)? {
                return Ok(None);
            }
            let id = sqlx::query_scalar::<_, i64>(INSERT)
                .bind(user_id)
                .bind(columns.title)
                .bind(columns.mgmt_type)
                .bind(columns.mgmt_software)
                .bind(columns.mgmt_version)
                .bind(columns.rt_type)
                .bind(columns.rt_software)
                .bind(columns.rt_version)
                .bind(columns.location)
                .bind(columns.cred_username)
                .bind(columns.cred_password)
                .bind(columns.cred_specifics)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(id))
        })
    }

    /// Replaces an environment's attributes; `false` when there is none.
    #[tracing::instrument(skip_all, fields(id), err)]
    pub async fn update_environment(
        &self,
        id: i64,
        columns: &EnvironmentColumns<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE environments SET title = $1, mgmt_type = $2, \
             mgmt_software = $3, mgmt_version = $4, rt_type = $5, rt_software = $6, \
             rt_version = $7, location = $8, cred_username = $9, \
             cred_password = COALESCE($10, cred_password), cred_specifics = $11, \
             updated_at = $12 WHERE id = $13";
        with_pool!(self, pool => {
            sqlx::query(UPDATE)
                .bind(columns.title)
                .bind(columns.mgmt_type)
                .bind(columns.mgmt_software)
                .bind(columns.mgmt_version)
                .bind(columns.rt_type)
                .bind(columns.rt_software)
                .bind(columns.rt_version)
                .bind(columns.location)
                .bind(columns.cred_username)
                .bind(columns.cred_password)
                .bind(columns.cred_specifics)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn environment(&self, id: i64) -> Result<Option<EnvironmentRow>, sqlx::Error> {
        let text = format!("{SELECT} WHERE id = $1");
        with_pool!(self, pool => {
            sqlx::query_as::<_, EnvironmentRow>(&text).bind(id).fetch_optional(pool).await
        })
    }

    /// One page of a user's environments (everyone's for `None`), by id,
    /// and how many there are.
    #[tracing::instrument(skip(self), err)]
    pub async fn environments_page(
        &self,
        user_id: Option<i64>,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<EnvironmentRow>, i64), sqlx::Error> {
        let text = format!(
            "{SELECT} WHERE ($1 IS NULL OR user_id = $1) ORDER BY id LIMIT {} OFFSET {}",
            super::sql::bounded(limit),
            super::sql::bounded(offset)
        );
        const COUNT: &str = "SELECT COUNT(*) FROM environments WHERE ($1 IS NULL OR user_id = $1)";
        with_pool!(self, pool => {
            let rows = sqlx::query_as::<_, EnvironmentRow>(&text).bind(user_id).fetch_all(pool).await?;
            let total = sqlx::query_scalar::<_, i64>(COUNT).bind(user_id).fetch_one(pool).await?;
            Ok((rows, total))
        })
    }

    /// A user's environments (all of them for `None`), optionally of one
    /// management-layer and runtime-technology type.
    #[tracing::instrument(skip(self), err)]
    pub async fn environments(
        &self,
        user_id: Option<i64>,
        mgmt_type: Option<&str>,
        rt_type: Option<&str>,
    ) -> Result<Vec<EnvironmentRow>, sqlx::Error> {
        let text = format!(
            "{SELECT} WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR mgmt_type = $2) \
             AND ($3 IS NULL OR rt_type = $3) ORDER BY id"
        );
        with_pool!(self, pool => {
            sqlx::query_as::<_, EnvironmentRow>(&text)
                .bind(user_id)
                .bind(mgmt_type)
                .bind(rt_type)
                .fetch_all(pool)
                .await
        })
    }

    /// Of the environments `ids` names, those of a user (any user's for
    /// `None`): one query, its placeholders counted from `ids`, never
    /// formatted from them.
    #[tracing::instrument(skip(self), err)]
    pub async fn environments_among(
        &self,
        user_id: Option<i64>,
        ids: &[i64],
    ) -> Result<Vec<EnvironmentRow>, sqlx::Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
        let text = format!(
            "{SELECT} WHERE ($1 IS NULL OR user_id = $1) AND id IN ({}) ORDER BY id",
            placeholders.join(", ")
        );
        with_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, EnvironmentRow>(&text).bind(user_id);
            for id in ids {
                query = query.bind(*id);
            }
            query.fetch_all(pool).await
        })
    }

    /// Deletes an environment, and with it its deployments (anyone's: an
    /// administrator deploys into users' environments), unless one of them
    /// holds a file there or is writing one: the file stayed, counted
    /// against its owner's quota, with no deployment left whose deletion
    /// would remove it.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_environment(&self, id: i64) -> Result<DeletedEnvironment, sqlx::Error> {
        // PostgreSQL: the environment locked first (a new deployment into it
        // waits, its foreign key checked against the row), then its
        // deployments, so that none begins running between the check and
        // the cascade that deletes it (each statement reads as of its
        // start; the cascade, later). SQLite's one writer does that already.
        let locks: &[&str] = match self.backend() {
            Backend::Postgres => &[
                "SELECT id FROM environments WHERE id = $1 FOR UPDATE",
                "SELECT id FROM deployments WHERE environment_id = $1 FOR UPDATE",
            ],
            Backend::Sqlite => &[],
        };
        const DELETE: &str = concat!(
            "DELETE FROM environments WHERE id = $1 AND NOT EXISTS \
             (SELECT 1 FROM deployments d WHERE d.environment_id = $1 AND (d.state = 'running' \
             OR (d.written_path IS NOT NULL AND ",
            holds_its_file!("d", "d.user_id"),
            ")))"
        );
        const THERE: &str = "SELECT COUNT(*) FROM environments WHERE id = $1";
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for lock in locks {
                sqlx::query(lock).bind(id).execute(&mut *tx).await?;
            }
            let deleted = sqlx::query(DELETE)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if deleted {
                tx.commit().await?;
                return Ok(DeletedEnvironment::Deleted);
            }
            let there = sqlx::query_scalar::<_, i64>(THERE)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            Ok(if there == 1 {
                DeletedEnvironment::HoldsFiles
            } else {
                DeletedEnvironment::Gone
            })
        })
    }
}

/// What came of an environment's deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletedEnvironment {
    Deleted,
    /// There was none (deleted meanwhile).
    Gone,
    /// One of its deployments holds a file in it or is writing one:
    /// nothing was deleted.
    HoldsFiles,
}
