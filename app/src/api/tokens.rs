//! The signed-in user's access tokens: list, create (the secret shown
//! once), revoke; the same core functions as `/api/tokens`. And their
//! Coopr API keys, likewise, as `depot apikey` makes them.

use leptos::prelude::*;

use crate::error::CoreError;
use crate::model::{ApiKeys, NewApiKey, NewToken, TokenInfo};

/// The viewer's unexpired tokens; 401 for nobody.
#[server(prefix = "/api/ui", endpoint = "tokens")]
pub async fn list_tokens() -> Result<Vec<TokenInfo>, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.list_tokens(&viewer).await)
}

/// Issues a token through the browser session, which revokes it on sign-out.
#[server(prefix = "/api/ui", endpoint = "tokens/create")]
pub async fn create_token() -> Result<NewToken, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    let session = crate::ports::session()
        .ok()
        .and_then(|session| session.id())
        .map(|id| id.to_string());
    crate::ports::respond(catalog.create_token(&viewer, session.as_deref()).await)
}

/// Revokes one of the viewer's tokens: it stops working at once.
#[server(prefix = "/api/ui", endpoint = "tokens/revoke")]
pub async fn revoke_token(id: i64) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.revoke_token(&viewer, id).await)
}

/// The viewer's Coopr API keys and the tenants they may make keys for.
#[server(prefix = "/api/ui", endpoint = "apikeys")]
pub async fn list_api_keys() -> Result<ApiKeys, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.list_api_keys(&viewer).await)
}

/// Issues a Coopr API key for one of the viewer's tenants; shown once.
#[server(prefix = "/api/ui", endpoint = "apikeys/create")]
pub async fn create_api_key(tenant: String) -> Result<NewApiKey, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.create_api_key(&viewer, &tenant).await)
}

/// Revokes one of the viewer's Coopr API keys.
#[server(prefix = "/api/ui", endpoint = "apikeys/revoke")]
pub async fn revoke_api_key(id: i64) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.revoke_api_key(&viewer, id).await)
}
