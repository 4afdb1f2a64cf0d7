//! Coopr's records: tenants, their members' API keys, their image types.

use app::model::Role;
use chrono::{DateTime, Utc};

use super::rows::from_row_by_name;
use super::{count_reaches, with_pool, Db};

/// Who an API key belongs to, in which tenant.
#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub user_id: i64,
    pub username: String,
    pub role: String,
    pub credentials_version: i64,
    pub tenant_id: i64,
    pub tenant: String,
}
from_row_by_name!(ApiKeyRow {
    user_id,
    username,
    role,
    credentials_version,
    tenant_id,
    tenant
});

/// An API key as an operator lists it (never the key itself).
#[derive(Debug, Clone)]
pub struct ApiKeyListing {
    pub id: i64,
    pub username: String,
    pub tenant: String,
    pub created_at: DateTime<Utc>,
}
from_row_by_name!(ApiKeyListing {
    id,
    username,
    tenant,
    created_at
});

/// A tenant as an administrator lists it.
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub image_types: i64,
    pub members: Vec<String>,
}
from_row_by_name!(TenantRow { id, name, created_at, image_types } default { members });

/// One image type as stored; `providermap` is JSON text.
#[derive(Debug, Clone)]
pub struct ImageTypeRow {
    pub name: String,
    pub description: String,
    pub providermap: String,
}
from_row_by_name!(ImageTypeRow {
    name,
    description,
    providermap
});

/// Whether an error is a unique-constraint violation (a taken name).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|error| error.is_unique_violation())
}

/// What [`Db::insert_api_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStored {
    Stored,
    /// The account changed, or is no member of the tenant (any more).
    Refused,
    /// The user has as many keys as they may.
    TooMany,
}

impl Db {
    /// Every API key, or one user's, oldest first.
    #[tracing::instrument(skip(self), err)]
    pub async fn api_keys(
        &self,
        username: Option<&str>,
    ) -> Result<Vec<ApiKeyListing>, sqlx::Error> {
        const SELECT: &str = "SELECT k.id, u.username, t.name AS tenant, k.created_at \
             FROM api_keys k JOIN users u ON u.id = k.user_id JOIN tenants t ON t.id = k.tenant_id \
             WHERE ($1 IS NULL OR u.username = $1) ORDER BY k.id";
        with_pool!(self, pool => {
            sqlx::query_as::<_, ApiKeyListing>(SELECT)
                .bind(username)
                .fetch_all(pool)
                .await
        })
    }

    /// The tenants a user is a member of, by name.
    #[tracing::instrument(skip(self), err)]
    pub async fn tenants_of(&self, user_id: i64) -> Result<Vec<String>, sqlx::Error> {
        const SELECT: &str = "SELECT t.name FROM tenants t \
             JOIN tenant_members m ON m.tenant_id = t.id WHERE m.user_id = $1 ORDER BY t.name";
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, String>(SELECT).bind(user_id).fetch_all(pool).await
        })
    }

    /// Deletes one of a user's API keys; answers whether there was one.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_api_key_of(&self, user_id: i64, id: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM api_keys WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
    }

    /// Every tenant with its members' names (comma-separated, sorted) and
    /// its number of image types, by name.
    #[tracing::instrument(skip(self), err)]
    pub async fn tenants(&self) -> Result<Vec<TenantRow>, sqlx::Error> {
        const SELECT: &str = "SELECT t.id, t.name, t.created_at, \
             (SELECT COUNT(*) FROM image_types it WHERE it.tenant_id = t.id) AS image_types \
             FROM tenants t ORDER BY t.name";
        const MEMBERS: &str = "SELECT m.tenant_id, u.username FROM tenant_members m \
             JOIN users u ON u.id = m.user_id ORDER BY u.username";
        with_pool!(self, pool => {
            let mut tenants = sqlx::query_as::<_, TenantRow>(SELECT).fetch_all(pool).await?;
            let members = sqlx::query_as::<_, (i64, String)>(MEMBERS).fetch_all(pool).await?;
            for (tenant_id, username) in members {
                if let Some(tenant) = tenants.iter_mut().find(|t| t.id == tenant_id) {
                    tenant.members.push(username);
                }
            }
            Ok(tenants)
        })
    }

    /// A tenant's id by name.
    #[tracing::instrument(skip(self), err)]
    pub async fn tenant_id(&self, name: &str) -> Result<Option<i64>, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT id FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await
        })
    }

    /// Deletes a tenant with its members, keys and image types; answers
    /// whether there was one.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_tenant(&self, name: &str) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM tenants WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
    }

    /// Makes a user a member of a tenant (again is fine).
    #[tracing::instrument(skip(self), err)]
    pub async fn add_tenant_member(&self, tenant_id: i64, user_id: i64) -> Result<(), sqlx::Error> {
        const MEMBER: &str = "INSERT INTO tenant_members (tenant_id, user_id) VALUES ($1, $2) \
             ON CONFLICT (tenant_id, user_id) DO NOTHING";
        with_pool!(self, pool => {
            sqlx::query(MEMBER).bind(tenant_id).bind(user_id).execute(pool).await.map(|_| ())
        })
    }

    /// Takes a user out of a tenant, with the keys they had for it; answers
    /// whether they were a member.
    #[tracing::instrument(skip(self), err)]
    pub async fn remove_tenant_member(
        &self,
        tenant_id: i64,
        user_id: i64,
    ) -> Result<bool, sqlx::Error> {
        // A key being stored for them waits, or is waited for (see
        // `insert_api_key`).
        let lock = self.user_lock();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(user_id).execute(&mut *tx).await?;
            let removed = sqlx::query("DELETE FROM tenant_members WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            sqlx::query("DELETE FROM api_keys WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(removed)
        })
    }

    /// Deletes an API key by id; answers whether there was one.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_api_key(&self, id: i64) -> Result<bool, sqlx::Error> {
        with_pool!(self, pool => {
            sqlx::query("DELETE FROM api_keys WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
    }

    /// The tenant's id, creating the tenant first if it does not exist.
    #[tracing::instrument(skip(self), err)]
    pub async fn ensure_tenant(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool), sqlx::Error> {
        const INSERT: &str = "INSERT INTO tenants (name, created_at) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id";
        const SELECT: &str = "SELECT id FROM tenants WHERE name = $1";
        with_pool!(self, pool => {
            let created = sqlx::query_scalar::<_, i64>(INSERT)
                .bind(name)
                .bind(now)
                .fetch_optional(pool)
                .await?;
            match created {
                Some(id) => Ok((id, true)),
                None => sqlx::query_scalar::<_, i64>(SELECT)
                    .bind(name)
                    .fetch_one(pool)
                    .await
                    .map(|id| (id, false)),
            }
        })
    }

    /// Stores a key for a user in a tenant, if the account is still enabled
    /// and at `credentials_version`; `join` makes them a member first (an
    /// operator's key), otherwise they must be one already, or an
    /// administrator (whose key works while they are one: [`Self::api_key`]).
    /// Stores nothing when the user has `at_most` keys already.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip(self, key_hash), err)]
    pub async fn insert_api_key(
        &self,
        tenant_id: i64,
        user_id: i64,
        credentials_version: i64,
        join: bool,
        key_hash: &str,
        at_most: i64,
        now: DateTime<Utc>,
    ) -> Result<KeyStored, sqlx::Error> {
        const KEPT: &str = "SELECT COUNT(*) FROM (SELECT 1 FROM api_keys WHERE user_id = $1 \
             LIMIT $2) AS kept";
        const MEMBER: &str = "INSERT INTO tenant_members (tenant_id, user_id) VALUES ($1, $2) \
             ON CONFLICT (tenant_id, user_id) DO NOTHING";
        const KEY: &str = "INSERT INTO api_keys (tenant_id, user_id, key_hash, created_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM users \
             WHERE id = $2 AND credentials_version = $5 AND disabled = $6) \
             AND (EXISTS (SELECT 1 FROM tenant_members WHERE tenant_id = $1 AND user_id = $2) \
             OR EXISTS (SELECT 1 FROM users WHERE id = $2 AND role = $7))";
        // After the user's row is locked, as a token is stored
        // (`insert_token`): a revocation or a removal from the tenant under
        // way is waited for, and then seen.
        let lock = self.user_lock();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(user_id).execute(&mut *tx).await?;
            if count_reaches!(tx, KEPT, user_id, at_most)? {
                return Ok(KeyStored::TooMany);
            }
            if join {
                sqlx::query(MEMBER).bind(tenant_id).bind(user_id).execute(&mut *tx).await?;
            }
            let stored = sqlx::query(KEY)
                .bind(tenant_id)
                .bind(user_id)
                .bind(key_hash)
                .bind(now)
                .bind(credentials_version)
                .bind(false)
                .bind(Role::Admin.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            tx.commit().await?;
            Ok(if stored { KeyStored::Stored } else { KeyStored::Refused })
        })
    }

    /// The owner and tenant of a key, if it exists and its owner is still
    /// enabled and a member of the tenant or an administrator: an
    /// administrator's key opens any tenant, and no longer once they are
    /// demoted (an administrator's key never made them a member).
    #[tracing::instrument(skip_all, err)]
    pub async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, sqlx::Error> {
        const SELECT: &str = "SELECT u.id AS user_id, u.username, u.role, u.credentials_version, \
             t.id AS tenant_id, \
             t.name AS tenant FROM api_keys k \
             JOIN users u ON u.id = k.user_id \
             JOIN tenants t ON t.id = k.tenant_id \
             LEFT JOIN tenant_members m ON m.tenant_id = k.tenant_id AND m.user_id = k.user_id \
             WHERE k.key_hash = $1 AND u.disabled = $2 AND (m.user_id IS NOT NULL OR u.role = $3)";
        with_pool!(self, pool => {
            sqlx::query_as::<_, ApiKeyRow>(SELECT)
                .bind(key_hash)
                .bind(false)
                .bind(Role::Admin.as_str())
                .fetch_optional(pool)
                .await
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn image_types(&self, tenant_id: i64) -> Result<Vec<ImageTypeRow>, sqlx::Error> {
        const SELECT: &str = "SELECT name, description, providermap FROM image_types \
             WHERE tenant_id = $1 ORDER BY name";
        with_pool!(self, pool => {
            sqlx::query_as::<_, ImageTypeRow>(SELECT).bind(tenant_id).fetch_all(pool).await
        })
    }

    #[tracing::instrument(skip(self), err)]
    pub async fn image_type(
        &self,
        tenant_id: i64,
        name: &str,
    ) -> Result<Option<ImageTypeRow>, sqlx::Error> {
        const SELECT: &str = "SELECT name, description, providermap FROM image_types \
             WHERE tenant_id = $1 AND name = $2";
        with_pool!(self, pool => {
            sqlx::query_as::<_, ImageTypeRow>(SELECT)
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(pool)
                .await
        })
    }

    /// Inserts an image type unless the tenant has `at_most` already
    /// (`false`); a taken name comes back as a unique violation.
    #[tracing::instrument(skip(self, row), err)]
    pub async fn insert_image_type(
        &self,
        tenant_id: i64,
        row: &ImageTypeRow,
        at_most: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        const INSERT: &str = "INSERT INTO image_types \
             (tenant_id, name, description, providermap, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $5 WHERE (SELECT COUNT(*) FROM \
             (SELECT 1 FROM image_types WHERE tenant_id = $1 LIMIT $6) AS kept) < $6";
        // Counted after the tenant's row is locked: on PostgreSQL, inserts
        // side by side would each count without the others' rows and pass
        // the cap together.
        let lock = self.tenant_lock();
        with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(lock).bind(tenant_id).execute(&mut *tx).await?;
            let inserted = sqlx::query(INSERT)
                .bind(tenant_id)
                .bind(&row.name)
                .bind(&row.description)
                .bind(&row.providermap)
                .bind(now)
                .bind(at_most)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            tx.commit().await?;
            Ok(inserted)
        })
    }

    /// Replaces an image type; `false` when there is none of that name.
    #[tracing::instrument(skip(self, row), err)]
    pub async fn update_image_type(
        &self,
        tenant_id: i64,
        row: &ImageTypeRow,
        now: DateTime<Utc>,
    ) -> Result<bool, sqlx::Error> {
        const UPDATE: &str = "UPDATE image_types SET description = $1, providermap = $2, \
             updated_at = $3 WHERE tenant_id = $4 AND name = $5";
        with_pool!(self, pool => {
            sqlx::query(UPDATE)
                .bind(&row.description)
                .bind(&row.providermap)
                .bind(now)
                .bind(tenant_id)
                .bind(&row.name)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }

    /// Deletes an image type; `false` when there is none of that name.
    #[tracing::instrument(skip(self), err)]
    pub async fn delete_image_type(&self, tenant_id: i64, name: &str) -> Result<bool, sqlx::Error> {
        const DELETE: &str = "DELETE FROM image_types WHERE tenant_id = $1 AND name = $2";
        with_pool!(self, pool => {
            sqlx::query(DELETE)
                .bind(tenant_id)
                .bind(name)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() == 1)
        })
    }
}
