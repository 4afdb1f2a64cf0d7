//! Coopr's tenants and their image types as an administrator manages them
//! from the browser: the same rules as the `/v2` dialect (which acts inside
//! the one tenant its key names), reached here by naming the tenant.

use app::error::CoreError;
use app::model::{is_image_type_name, ImageType, Principal, TenantInfo, Username, Viewer};
use chrono::Utc;

use super::coopr::TenantCaller;
use super::{db_error, Core};

fn require_admin(viewer: &Viewer) -> Result<&Principal, CoreError> {
    viewer.require_admin("manage tenants")
}

fn checked_name(name: &str) -> Result<&str, CoreError> {
    let name = name.trim();
    if is_image_type_name(name) {
        Ok(name)
    } else {
        Err(CoreError::invalid(
            "a tenant name is 1 to 255 letters, digits, '-', '.' or '_'",
        ))
    }
}

impl Core {
    /// Every tenant, with its members and how many image types it has.
    pub async fn tenants(&self, viewer: &Viewer) -> Result<Vec<TenantInfo>, CoreError> {
        require_admin(viewer)?;
        let rows = self.db.tenants().await.map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|row| TenantInfo {
                name: row.name,
                created_at: row.created_at,
                members: row.members,
                image_types: row.image_types,
            })
            .collect())
    }

    /// Creates a tenant; an existing name is a conflict.
    pub async fn create_tenant(&self, viewer: &Viewer, name: &str) -> Result<(), CoreError> {
        require_admin(viewer)?;
        let name = checked_name(name)?;
        let (_, created) = self
            .db
            .ensure_tenant(name, Utc::now())
            .await
            .map_err(db_error)?;
        if created {
            Ok(())
        } else {
            Err(CoreError::Conflict(format!(
                "tenant '{name}' already exists"
            )))
        }
    }

    /// Deletes a tenant, its image types, memberships and API keys.
    pub async fn delete_tenant(&self, viewer: &Viewer, name: &str) -> Result<(), CoreError> {
        require_admin(viewer)?;
        if self.db.delete_tenant(name).await.map_err(db_error)? {
            tracing::info!(tenant = name, "an administrator deleted a tenant");
            Ok(())
        } else {
            Err(CoreError::not_found(format!("tenant '{name}'")))
        }
    }

    /// Makes a user a member of a tenant, so that they may make API keys for it.
    pub async fn add_tenant_member(
        &self,
        viewer: &Viewer,
        tenant: &str,
        username: &str,
    ) -> Result<(), CoreError> {
        // Membership hands out access (the member's own keys outlive any
        // token): never on a token's word alone.
        require_admin(viewer)?.require_proven_by_password("add tenant members")?;
        let tenant_id = self.tenant_named(tenant).await?;
        let username = Username::parse(username.trim())?;
        let user = self
            .db
            .user_by_name(username.as_str())
            .await
            .map_err(db_error)?
            .ok_or_else(|| CoreError::not_found(format!("user '{}'", username.as_str())))?;
        self.db
            .add_tenant_member(tenant_id, user.id)
            .await
            .map_err(db_error)
    }

    /// Takes a user out of a tenant; the keys they had for it stop working.
    pub async fn remove_tenant_member(
        &self,
        viewer: &Viewer,
        tenant: &str,
        username: &str,
    ) -> Result<(), CoreError> {
        require_admin(viewer)?;
        let tenant_id = self.tenant_named(tenant).await?;
        let user = match Username::parse(username.trim()) {
            Ok(name) => self
                .db
                .user_by_name(name.as_str())
                .await
                .map_err(db_error)?,
            Err(_) => None,
        };
        let not_member =
            || CoreError::not_found(format!("member '{username}' of tenant '{tenant}'"));
        let user = user.ok_or_else(not_member)?;
        if self
            .db
            .remove_tenant_member(tenant_id, user.id)
            .await
            .map_err(db_error)?
        {
            Ok(())
        } else {
            Err(not_member())
        }
    }

    async fn tenant_named(&self, name: &str) -> Result<i64, CoreError> {
        self.db
            .tenant_id(name)
            .await
            .map_err(db_error)?
            .ok_or_else(|| CoreError::not_found(format!("tenant '{name}'")))
    }

    /// The admin, acting inside a tenant as a Coopr key would let them.
    async fn admin_in(&self, viewer: &Viewer, tenant: &str) -> Result<TenantCaller, CoreError> {
        let user = require_admin(viewer)?.clone();
        let tenant_id = self.tenant_named(tenant).await?;
        Ok(TenantCaller {
            user,
            tenant_id,
            tenant: tenant.to_owned(),
        })
    }

    /// A tenant's image types, by name.
    pub async fn tenant_image_types(
        &self,
        viewer: &Viewer,
        tenant: &str,
    ) -> Result<Vec<ImageType>, CoreError> {
        let caller = self.admin_in(viewer, tenant).await?;
        self.list_image_types(&caller).await
    }

    /// Creates an image type in a tenant, or (`replace`) replaces the one of that name.
    pub async fn save_image_type(
        &self,
        viewer: &Viewer,
        tenant: &str,
        image_type: &ImageType,
        replace: bool,
    ) -> Result<(), CoreError> {
        let caller = self.admin_in(viewer, tenant).await?;
        if replace {
            self.update_image_type(&caller, &image_type.name, image_type)
                .await
        } else {
            self.create_image_type(&caller, image_type).await
        }
    }

    /// Deletes an image type from a tenant.
    pub async fn remove_image_type(
        &self,
        viewer: &Viewer,
        tenant: &str,
        name: &str,
    ) -> Result<(), CoreError> {
        let caller = self.admin_in(viewer, tenant).await?;
        self.delete_image_type(&caller, name).await
    }
}
