//! Tenants, API keys and image types: Coopr's records. A caller acts inside
//! one tenant, proven by a key that was issued to them for it; they see and
//! change that tenant's image types only.

use app::error::CoreError;
use app::model::{ApiKeyInfo, ApiKeys, ImageType, NewApiKey, Principal, Username, Viewer};
use base64::Engine;
use chrono::Utc;
use rand::RngCore;

use super::auth::token_digest;
use super::{db_error, Core};
use crate::store::{is_unique_violation, ImageTypeRow, KeyStored};

/// The most image types one tenant keeps: its list carries them all.
const IMAGE_TYPES_PER_TENANT: i64 = 1000;

/// The most API keys one account may hold, in all its tenants: each is a
/// row kept until revoked, and the tokens page lists them all.
pub const MAX_API_KEYS: i64 = 50;

/// A user acting inside one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantCaller {
    pub user: Principal,
    pub tenant_id: i64,
    pub tenant: String,
}

/// A newly issued key, shown once.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: String,
    pub tenant_created: bool,
}

fn image_type_of(row: ImageTypeRow) -> Result<ImageType, CoreError> {
    let providermap = serde_json::from_str(&row.providermap).map_err(|_| {
        tracing::error!(name = %row.name, "unreadable providermap in image_types");
        CoreError::Internal
    })?;
    Ok(ImageType {
        name: row.name,
        description: row.description,
        providermap,
    })
}

fn row_of(image_type: &ImageType) -> ImageTypeRow {
    ImageTypeRow {
        name: image_type.name.clone(),
        description: image_type.description.clone(),
        // A JSON map always serializes.
        providermap: serde_json::Value::Object(image_type.providermap.clone()).to_string(),
    }
}

impl Core {
    /// Issues an API key for `username` in `tenant`, creating the tenant if
    /// needed (the operator's `depot apikey create`).
    pub async fn issue_api_key(
        &self,
        username: &str,
        tenant: &str,
    ) -> Result<IssuedKey, CoreError> {
        if !app::model::is_image_type_name(tenant) {
            return Err(CoreError::invalid(
                "a tenant name is letters, digits, '-', '.' or '_'",
            ));
        }
        let username = Username::parse(username)?;
        let user = self
            .db
            .user_by_name(username.as_str())
            .await
            .map_err(db_error)?
            .ok_or_else(|| CoreError::not_found(format!("user '{}'", username.as_str())))?;
        let (tenant_id, tenant_created) = self
            .db
            .ensure_tenant(tenant, Utc::now())
            .await
            .map_err(db_error)?;
        let key = self
            .store_api_key(tenant_id, user.id, user.credentials_version, true)
            .await?;
        Ok(IssuedKey {
            key,
            tenant_created,
        })
    }

    /// Makes a key and stores its digest; refused if the account changed
    /// (disabled, password reset) since its version was read, or (without
    /// `join`) if the user is not a member of the tenant.
    async fn store_api_key(
        &self,
        tenant_id: i64,
        user_id: i64,
        credentials_version: i64,
        join: bool,
    ) -> Result<String, CoreError> {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let key = format!(
            "cpr_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let stored = self
            .db
            .insert_api_key(
                tenant_id,
                user_id,
                credentials_version,
                join,
                &token_digest(&key),
                MAX_API_KEYS,
                Utc::now(),
            )
            .await
            .map_err(db_error)?;
        match stored {
            KeyStored::Stored => Ok(key),
            KeyStored::Refused => Err(CoreError::Forbidden(
                "the account changed or left the tenant meanwhile; try again".into(),
            )),
            KeyStored::TooMany => Err(CoreError::Conflict(format!(
                "the account has {MAX_API_KEYS} API keys, the most it may; revoke one first"
            ))),
        }
    }

    /// The API keys of every user, or of one (for `depot apikey list`).
    pub async fn list_api_keys(
        &self,
        username: Option<&str>,
    ) -> Result<Vec<crate::store::ApiKeyListing>, CoreError> {
        self.db.api_keys(username).await.map_err(db_error)
    }

    /// Revokes an API key: the next request that sends it is refused.
    pub async fn revoke_api_key(&self, id: i64) -> Result<(), CoreError> {
        if self.db.delete_api_key(id).await.map_err(db_error)? {
            Ok(())
        } else {
            Err(CoreError::not_found(format!("API key {id}")))
        }
    }

    /// The caller's own API keys and the tenants they belong to.
    pub async fn own_api_keys(&self, viewer: &Viewer) -> Result<ApiKeys, CoreError> {
        let user = viewer.require_user()?;
        let keys = self
            .db
            .api_keys(Some(&user.username))
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|row| ApiKeyInfo {
                id: row.id,
                tenant: row.tenant,
                created_at: row.created_at,
            })
            .collect();
        let tenants = self.db.tenants_of(user.id).await.map_err(db_error)?;
        Ok(ApiKeys { keys, tenants })
    }

    /// Issues the caller a key for a tenant they belong to. Only an
    /// administrator has one for another tenant (created if need be): a key
    /// is what lets its holder read and change a tenant's image types, and
    /// an administrator's works only while they are one. It makes them no
    /// member, or a demotion would leave them every tenant they had a key
    /// for.
    pub async fn issue_own_api_key(
        &self,
        viewer: &Viewer,
        tenant: &str,
    ) -> Result<NewApiKey, CoreError> {
        let user = viewer.require_user()?;
        user.require_proven_by_password("issue an API key")?;
        let tenant = tenant.trim();
        if !app::model::is_image_type_name(tenant) {
            return Err(CoreError::invalid(
                "a tenant name is letters, digits, '-', '.' or '_'",
            ));
        }
        let not_member = || {
            CoreError::Forbidden(format!(
                "you are not a member of tenant '{tenant}'; an administrator adds you"
            ))
        };
        let tenant_id = if viewer.is_admin() {
            self.db
                .ensure_tenant(tenant, Utc::now())
                .await
                .map_err(db_error)?
                .0
        } else {
            // Looked up, never made: a tenant deleted meanwhile stays deleted.
            self.db
                .tenant_id(tenant)
                .await
                .map_err(db_error)?
                .ok_or_else(not_member)?
        };
        let key = self
            .store_api_key(tenant_id, user.id, user.credentials_version, false)
            .await
            .map_err(|error| match error {
                CoreError::Forbidden(_) if !viewer.is_admin() => not_member(),
                other => other,
            })?;
        tracing::info!(user = user.id, %tenant, "issued a Coopr API key");
        Ok(NewApiKey {
            tenant: tenant.to_owned(),
            key,
        })
    }

    /// Revokes one of the caller's API keys; another user's is not found.
    pub async fn revoke_own_api_key(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError> {
        let user = viewer.require_user()?;
        if self
            .db
            .delete_api_key_of(user.id, id)
            .await
            .map_err(db_error)?
        {
            Ok(())
        } else {
            Err(CoreError::not_found(format!("API key {id}")))
        }
    }

    /// Checks the three Coopr headers together: the key must have been issued
    /// to this user for this tenant. Any mismatch is the same 401.
    pub async fn tenant_caller(
        &self,
        username: &str,
        tenant: &str,
        key: &str,
    ) -> Result<TenantCaller, CoreError> {
        let row = self
            .db
            .api_key(&token_digest(key))
            .await
            .map_err(db_error)?;
        match row {
            Some(row) if row.username == username && row.tenant == tenant => {
                let user = Principal {
                    id: row.user_id,
                    username: row.username,
                    role: app::model::Role::parse(&row.role).map_err(|_| CoreError::Internal)?,
                    credentials_version: row.credentials_version,
                    from_token: true,
                };
                Ok(TenantCaller {
                    user,
                    tenant_id: row.tenant_id,
                    tenant: row.tenant,
                })
            }
            _ => Err(CoreError::Unauthenticated),
        }
    }

    pub async fn list_image_types(
        &self,
        caller: &TenantCaller,
    ) -> Result<Vec<ImageType>, CoreError> {
        let rows = self
            .db
            .image_types(caller.tenant_id)
            .await
            .map_err(db_error)?;
        rows.into_iter().map(image_type_of).collect()
    }

    pub async fn get_image_type(
        &self,
        caller: &TenantCaller,
        name: &str,
    ) -> Result<ImageType, CoreError> {
        let row = self
            .db
            .image_type(caller.tenant_id, name)
            .await
            .map_err(db_error)?;
        match row {
            Some(row) => image_type_of(row),
            None => Err(CoreError::not_found(format!("image type '{name}'"))),
        }
    }

    /// Creates an image type; a name already used in the tenant is a conflict.
    pub async fn create_image_type(
        &self,
        caller: &TenantCaller,
        image_type: &ImageType,
    ) -> Result<(), CoreError> {
        let inserted = self
            .db
            .insert_image_type(
                caller.tenant_id,
                &row_of(image_type),
                IMAGE_TYPES_PER_TENANT,
                Utc::now(),
            )
            .await
            .map_err(|error| {
                if is_unique_violation(&error) {
                    CoreError::Conflict(format!(
                        "an image type named '{}' already exists",
                        image_type.name
                    ))
                } else {
                    db_error(error)
                }
            })?;
        if !inserted {
            return Err(CoreError::Conflict(format!(
                "the tenant has {IMAGE_TYPES_PER_TENANT} image types; delete one to add another"
            )));
        }
        Ok(())
    }

    /// Replaces the image type `name` with a whole new object of that name.
    pub async fn update_image_type(
        &self,
        caller: &TenantCaller,
        name: &str,
        image_type: &ImageType,
    ) -> Result<(), CoreError> {
        if image_type.name != name {
            return Err(CoreError::invalid(format!(
                "the body names '{}' but the URL names '{name}'",
                image_type.name
            )));
        }
        let updated = self
            .db
            .update_image_type(caller.tenant_id, &row_of(image_type), Utc::now())
            .await
            .map_err(db_error)?;
        if updated {
            Ok(())
        } else {
            Err(CoreError::not_found(format!("image type '{name}'")))
        }
    }

    pub async fn delete_image_type(
        &self,
        caller: &TenantCaller,
        name: &str,
    ) -> Result<(), CoreError> {
        let deleted = self
            .db
            .delete_image_type(caller.tenant_id, name)
            .await
            .map_err(db_error)?;
        if deleted {
            Ok(())
        } else {
            Err(CoreError::not_found(format!("image type '{name}'")))
        }
    }
}
