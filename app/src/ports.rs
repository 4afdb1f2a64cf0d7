//! What the UI's server functions need from the server: the [`Catalog`] port
//! and the caller of the current request. The server implements the port and
//! provides it as Leptos context; server functions cannot be generic, so they
//! take it as a trait object.

use std::net::IpAddr;
use std::sync::Arc;

use leptos::prelude::use_context;

use crate::error::CoreError;
use crate::model::{
    ApiKeys, Deployment, Environment, EnvironmentSpec, Image, ImageEdit, ImagePage, ImageType,
    NewApiKey, NewToken, Paged, PasswordReset, Principal, Role, StoreListing, SyncInfo, TenantInfo,
    TokenInfo, UserChange, UserInfo, UserPage, Viewer,
};
use crate::query::Query;

/// The session key under which the signed-in user's id is kept.
pub const SESSION_USER_KEY: &str = "depot.user_id";

/// The session key under which the credentials version the user signed in
/// with is kept: a password reset or a disabled account ends the session.
pub const SESSION_CREDENTIALS_KEY: &str = "depot.credentials_version";

/// The domain core, as the UI sees it.
#[async_trait::async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// A page of the images the viewer may see that match the query.
    async fn list_images(&self, viewer: &Viewer, query: Query) -> Result<ImagePage, CoreError>;

    /// One image, if the viewer may see it.
    async fn get_image(&self, viewer: &Viewer, id: i64) -> Result<Image, CoreError>;

    /// Checks a username and password for a client at `client`, to start a
    /// browser session; failures are slow, throttled and do not say which
    /// part was wrong, and one account's sign-ins are throttled too.
    async fn login(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Principal, CoreError>;

    /// Revokes the access tokens issued through one browser session.
    async fn revoke_session_tokens(&self, session: &str) -> Result<(), CoreError>;

    /// The viewer's unexpired access tokens (never their secrets).
    async fn list_tokens(&self, viewer: &Viewer) -> Result<Vec<TokenInfo>, CoreError>;

    /// Issues an access token to the viewer, through a browser session if `session` says which.
    async fn create_token(
        &self,
        viewer: &Viewer,
        session: Option<&str>,
    ) -> Result<NewToken, CoreError>;

    /// Revokes one of the viewer's tokens.
    async fn revoke_token(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError>;

    /// One folder of the viewer's personal store.
    async fn list_store(&self, viewer: &Viewer, path: &str) -> Result<StoreListing, CoreError>;

    /// Makes a folder `name` in the folder `path` of the viewer's store.
    async fn make_store_folder(
        &self,
        viewer: &Viewer,
        path: &str,
        name: &str,
    ) -> Result<(), CoreError>;

    /// Deletes a file or an empty folder of the viewer's store.
    async fn delete_store_entry(&self, viewer: &Viewer, path: &str) -> Result<(), CoreError>;

    /// Submits a sync of the viewer's store (`VM` or `ISO`) to the job queue.
    async fn sync_store(&self, viewer: &Viewer, kind: &str) -> Result<SyncInfo, CoreError>;

    /// The viewer's latest sync requests, newest first.
    async fn recent_syncs(&self, viewer: &Viewer) -> Result<Vec<SyncInfo>, CoreError>;

    /// The viewer's Coopr API keys and tenants.
    async fn list_api_keys(&self, viewer: &Viewer) -> Result<ApiKeys, CoreError>;

    /// Issues the viewer a Coopr API key for one of their tenants (any, for an admin).
    async fn create_api_key(&self, viewer: &Viewer, tenant: &str) -> Result<NewApiKey, CoreError>;

    /// Revokes one of the viewer's Coopr API keys.
    async fn revoke_api_key(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError>;

    /// Deletes an image its owner (or an admin) may change, and its bytes
    /// when no other record shares them.
    async fn delete_image(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError>;

    /// Changes an image's name, label, description (and visibility, for an
    /// admin) if it is still at the version the editor saw.
    async fn edit_image(
        &self,
        viewer: &Viewer,
        id: i64,
        edit: ImageEdit,
    ) -> Result<Image, CoreError>;

    /// Every Coopr tenant, for an admin.
    async fn tenants(&self, viewer: &Viewer) -> Result<Vec<TenantInfo>, CoreError>;

    /// Creates a tenant, for an admin.
    async fn create_tenant(&self, viewer: &Viewer, name: &str) -> Result<(), CoreError>;

    /// Deletes a tenant with its image types, members and keys, for an admin.
    async fn delete_tenant(&self, viewer: &Viewer, name: &str) -> Result<(), CoreError>;

    /// Makes a user a member of a tenant, for an admin.
    async fn add_tenant_member(
        &self,
        viewer: &Viewer,
        tenant: &str,
        username: &str,
    ) -> Result<(), CoreError>;

    /// Takes a user out of a tenant (their keys for it end), for an admin.
    async fn remove_tenant_member(
        &self,
        viewer: &Viewer,
        tenant: &str,
        username: &str,
    ) -> Result<(), CoreError>;

    /// A tenant's image types, for an admin.
    async fn tenant_image_types(
        &self,
        viewer: &Viewer,
        tenant: &str,
    ) -> Result<Vec<ImageType>, CoreError>;

    /// Creates (or, with `replace`, replaces) an image type in a tenant, for an admin.
    async fn save_image_type(
        &self,
        viewer: &Viewer,
        tenant: &str,
        image_type: ImageType,
        replace: bool,
    ) -> Result<(), CoreError>;

    /// Deletes an image type from a tenant, for an admin.
    async fn remove_image_type(
        &self,
        viewer: &Viewer,
        tenant: &str,
        name: &str,
    ) -> Result<(), CoreError>;

    /// A page of every account, for an admin.
    async fn list_users(
        &self,
        viewer: &Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<UserPage, CoreError>;

    /// Creates an account, for an admin.
    async fn create_account(
        &self,
        viewer: &Viewer,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<UserInfo, CoreError>;

    /// Changes an account's role or disables/enables it, for an admin.
    async fn change_account(
        &self,
        viewer: &Viewer,
        id: i64,
        change: UserChange,
    ) -> Result<UserInfo, CoreError>;

    /// Gives an account a new generated password (answered once), for an admin.
    async fn reset_password(&self, viewer: &Viewer, id: i64) -> Result<PasswordReset, CoreError>;

    /// A page of the viewer's execution environments (everyone's for an admin),
    /// without passwords.
    async fn list_environments(
        &self,
        viewer: &Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<Paged<Environment>, CoreError>;

    /// Registers an environment of the viewer's; its password is sealed before it is stored.
    async fn create_environment(
        &self,
        viewer: &Viewer,
        spec: EnvironmentSpec,
    ) -> Result<Environment, CoreError>;

    /// Removes an environment of the viewer's, and the deployments into it.
    async fn delete_environment(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError>;

    /// A page of the viewer's deployments (everyone's for an admin), newest first.
    async fn list_deployments(
        &self,
        viewer: &Viewer,
        limit: u64,
        offset: u64,
    ) -> Result<Paged<Deployment>, CoreError>;

    /// Where the viewer may deploy an image: `None` when they may not deploy it.
    async fn deploy_targets(
        &self,
        viewer: &Viewer,
        image_id: i64,
    ) -> Result<Option<Vec<Environment>>, CoreError>;

    /// Deploys one of the viewer's images into one of their environments, through the job queue.
    async fn deploy(
        &self,
        viewer: &Viewer,
        image_id: i64,
        environment_id: i64,
        title: &str,
    ) -> Result<Deployment, CoreError>;

    /// Removes the record of a deployment of the viewer's (not what it copied).
    async fn delete_deployment(&self, viewer: &Viewer, id: i64) -> Result<(), CoreError>;
}

pub type SharedCatalog = Arc<dyn Catalog>;

/// The address of the client that sent the request, as the server's
/// middleware saw it (put into the request's extensions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

/// The client address of the request being served, if known.
pub fn client_address() -> Option<IpAddr> {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<ClientAddress>().copied())
        .map(|client| client.0)
}

/// The catalog and the viewer of the request being served.
pub fn request_context() -> Result<(SharedCatalog, Viewer), CoreError> {
    let catalog = use_context::<SharedCatalog>().ok_or(CoreError::Internal)?;
    let viewer = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Viewer>().cloned())
        .unwrap_or_default();
    Ok((catalog, viewer))
}

/// The browser session of the request being served.
pub fn session() -> Result<tower_sessions::Session, CoreError> {
    use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<tower_sessions::Session>().cloned())
        .ok_or(CoreError::Internal)
}

/// Gives a failed server function the status its error deserves (not
/// server_fn's blanket 500), then passes the result on. A plain HTML form
/// post (no WASM) keeps Leptos's redirect back to the form, which then shows
/// the error.
pub fn respond<T>(result: Result<T, CoreError>) -> Result<T, CoreError> {
    let plain_form = use_context::<http::request::Parts>().is_some_and(|parts| {
        parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
    });
    if plain_form {
        return result;
    }
    if let Err(error) = &result {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(status) = http::StatusCode::from_u16(error.http_status()) {
                response.set_status(status);
            }
        }
    }
    result
}
