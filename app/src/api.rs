//! Server functions of the UI. They live under `/api/ui`, a prefix no dialect
//! uses, and only translate between the UI and the [`crate::ports::Catalog`].

/// Items per page of the Users, Environments and Deployments listings.
pub const LIST_PAGE_SIZE: u64 = 50;

mod auth;
mod deployments;
mod environments;
mod images;
mod store;
mod tenants;
mod tokens;
mod users;

pub use auth::{current_user, CurrentUser, Login, Logout};
pub use deployments::{
    delete_deployment, deploy_image, deploy_targets, list_deployments, DeleteDeployment,
    DeployImage,
};
pub use environments::{
    create_environment, delete_environment, list_environments, CreateEnvironment,
    DeleteEnvironment, EnvironmentForm,
};
pub use images::{
    delete_image, edit_image, get_image, list_images, CatalogParams, CatalogSort, DeleteImage,
    EditImage, SortColumn, Visibility, PAGE_SIZES, UI_PAGE_SIZE,
};
pub use store::{
    delete_store_entry, list_store, make_store_folder, recent_syncs, sync_store, DeleteStoreEntry,
    MakeStoreFolder, SyncStore,
};
pub use tenants::{
    add_tenant_member, create_tenant, delete_image_type, delete_tenant, list_tenants,
    remove_tenant_member, save_image_type, tenant_image_types, AddTenantMember, CreateTenant,
    DeleteImageType, DeleteTenant, RemoveTenantMember, SaveImageType,
};
pub use tokens::{
    create_api_key, create_token, list_api_keys, list_tokens, revoke_api_key, revoke_token,
    CreateApiKey, CreateToken, RevokeApiKey, RevokeToken,
};
pub use users::{
    change_user, create_user, list_users, reset_password, ChangeUser, CreateUser, ResetPassword,
};
