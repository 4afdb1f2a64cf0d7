//! Coopr tenants and their image types, for administrators: the same rules
//! as the `/v2` dialect, reached by naming the tenant.

use leptos::prelude::*;

use crate::error::CoreError;
use crate::model::{ImageType, TenantInfo};

/// Every tenant, with its members and image type count.
#[server(prefix = "/api/ui", endpoint = "tenants")]
pub async fn list_tenants() -> Result<Vec<TenantInfo>, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.tenants(&viewer).await)
}

#[server(prefix = "/api/ui", endpoint = "tenants/create")]
pub async fn create_tenant(name: String) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.create_tenant(&viewer, &name).await)
}

/// Deletes a tenant once the form's confirmation is ticked.
#[server(prefix = "/api/ui", endpoint = "tenants/delete")]
pub async fn delete_tenant(name: String, confirm: Option<String>) -> Result<(), CoreError> {
    use crate::ports::respond;
    if confirm.as_deref() != Some("yes") {
        return respond(Err(CoreError::invalid(format!(
            "tick \"Yes, delete {name}\" to confirm"
        ))));
    }
    let (catalog, viewer) = crate::ports::request_context()?;
    respond(catalog.delete_tenant(&viewer, &name).await)
}

#[server(prefix = "/api/ui", endpoint = "tenants/members/add")]
pub async fn add_tenant_member(tenant: String, username: String) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.add_tenant_member(&viewer, &tenant, &username).await)
}

/// Takes a user out of a tenant; the keys they had for it stop working.
#[server(prefix = "/api/ui", endpoint = "tenants/members/remove")]
pub async fn remove_tenant_member(tenant: String, username: String) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(
        catalog
            .remove_tenant_member(&viewer, &tenant, &username)
            .await,
    )
}

#[server(prefix = "/api/ui", endpoint = "tenants/image-types")]
pub async fn tenant_image_types(tenant: String) -> Result<Vec<ImageType>, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.tenant_image_types(&viewer, &tenant).await)
}

/// Creates an image type, or replaces the one of that name (`replace`).
/// `providermap` is JSON text, checked as the dialect checks a body.
#[server(prefix = "/api/ui", endpoint = "tenants/image-types/save")]
pub async fn save_image_type(
    tenant: String,
    name: String,
    description: String,
    providermap: String,
    replace: Option<String>,
) -> Result<(), CoreError> {
    use crate::ports::respond;
    let providermap: serde_json::Value = match serde_json::from_str(&providermap) {
        Ok(value) => value,
        Err(error) => {
            return respond(Err(CoreError::invalid(format!(
                "the provider map is not JSON: {error}"
            ))))
        }
    };
    let body = serde_json::json!({
        "name": name.trim(),
        "description": description,
        "providermap": providermap,
    });
    let image_type = respond(ImageType::parse(&body))?;
    let (catalog, viewer) = crate::ports::request_context()?;
    respond(
        catalog
            .save_image_type(&viewer, &tenant, image_type, replace.is_some())
            .await,
    )
}

#[server(prefix = "/api/ui", endpoint = "tenants/image-types/delete")]
pub async fn delete_image_type(tenant: String, name: String) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.remove_image_type(&viewer, &tenant, &name).await)
}
