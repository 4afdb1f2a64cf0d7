//! The export root's folders, each kept by one user, and the claims on the
//! files deployments write there, which count against their owners' quotas.

use chrono::{DateTime, Utc};

use super::{with_pool, Db};

impl Db {
    /// Who keeps a folder right below the export root: the user it was
    /// claimed for, or else the user named so; `None` when nobody does yet.
    #[tracing::instrument(skip(self), err)]
    pub async fn export_folder_keeper(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        const KEEPER: &str = "SELECT user_id FROM (\
             SELECT user_id, 0 AS rank FROM export_folders WHERE name = $1 \
             UNION ALL SELECT id, 1 FROM users WHERE username = $1) AS keepers \
             ORDER BY rank LIMIT 1";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(KEEPER).bind(name).fetch_optional(pool).await
        })
    }

    /// Whether a name right below the export root is kept by a user other
    /// than `user_id`, told apart from it by case or by trailing dots and
    /// spaces alone (as a file system that ignores them would): a folder
    /// they deploy into, or their username.
    #[tracing::instrument(skip(self), err)]
    pub async fn export_name_kept_by_another(
        &self,
        name: &str,
        user_id: i64,
    ) -> Result<bool, sqlx::Error> {
        const KEPT: &str = "SELECT 1 FROM export_folders \
             WHERE LOWER(RTRIM(name, '. ')) = LOWER($1) AND user_id <> $2 \
             UNION ALL SELECT 1 FROM users \
             WHERE LOWER(RTRIM(username, '. ')) = LOWER($1) AND id <> $2";
        let name = name.trim_end_matches(['.', ' ']);
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i32>(KEPT)
                .bind(name)
                .bind(user_id)
                .fetch_optional(pool)
                .await
                .map(|kept| kept.is_some())
        })
    }

    /// Claims a folder right below the export root for a user, unless
    /// another user keeps it; answers who keeps it.
    #[tracing::instrument(skip(self), err)]
    pub async fn claim_export_folder(
        &self,
        name: &str,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, sqlx::Error> {
        // Not for one user while another has the folder's name: an account
        // of that name made since the caller looked keeps it.
        const CLAIM: &str = "INSERT INTO export_folders (name, user_id, created_at) \
             SELECT $1, $2, $3 WHERE NOT EXISTS \
             (SELECT 1 FROM users WHERE username = $1 AND id <> $2) \
             ON CONFLICT (name) DO NOTHING";
        let lock = self.name_lock();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(name).execute(&mut *tx).await?;
            sqlx::query(CLAIM).bind(name).bind(user_id).bind(now).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        // The keeper: as claimed, or else the user named so.
        self.export_folder_keeper(name).await
    }

    /// Claims a path under the export root for a user, unless another user
    /// holds it; answers the holder and whether the claim is new.
    #[tracing::instrument(skip(self), err)]
    pub async fn claim_deployed_file(
        &self,
        path: &str,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool), sqlx::Error> {
        const CLAIM: &str = "INSERT INTO deployed_files (path, user_id, size, updated_at) \
             VALUES ($1, $2, 0, $3) ON CONFLICT (path) DO NOTHING RETURNING user_id";
        const HOLDER: &str = "SELECT user_id FROM deployed_files WHERE path = $1";
        with_pool!(self, pool => {
            let claimed = sqlx::query_scalar::<_, i64>(CLAIM)
                .bind(path)
                .bind(user_id)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            match claimed {
                Some(holder) => Ok((holder, true)),
                None => sqlx::query_scalar::<_, i64>(HOLDER)
                    .bind(path)
                    .fetch_one(pool)
                    .await
                    .map(|holder| (holder, false)),
            }
        })
    }

    /// Records the size of a file a deployment wrote for `user_id`, claimed
    /// again if a deletion of another deployment of it let its claim go
    /// meanwhile (never over another user's).
    #[tracing::instrument(skip(self), err)]
    pub async fn set_deployed_size(
        &self,
        path: &str,
        user_id: i64,
        size: i64,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        const UPSERT: &str = "INSERT INTO deployed_files (path, user_id, size, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (path) DO UPDATE SET size = excluded.size, \
             updated_at = excluded.updated_at WHERE deployed_files.user_id = excluded.user_id";
        with_pool!(self, pool => {
            sqlx::query(UPSERT)
                .bind(path)
                .bind(user_id)
                .bind(size)
                .bind(now)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }

    /// Gives up a claim that was made for nothing.
    #[tracing::instrument(skip(self), err)]
    pub async fn drop_deployed_claim(&self, path: &str, user_id: i64) -> Result<(), sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM deployed_files WHERE path = $1 AND user_id = $2 AND size = 0")
                .bind(path)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|_| ())
        })
    }
}
