//! Signing in and out of the browser session.

use leptos::prelude::*;

use crate::error::CoreError;
use crate::model::Principal;

/// Checks the credentials, starts a fresh session and sends the browser home.
#[server(prefix = "/api/ui", endpoint = "login")]
pub async fn login(username: String, password: String) -> Result<Principal, CoreError> {
    use crate::ports::{
        client_address, request_context, respond, session, SESSION_CREDENTIALS_KEY,
        SESSION_USER_KEY,
    };
    let (catalog, _) = request_context()?;
    let principal = respond(catalog.login(&username, &password, client_address()).await)?;
    let session = session()?;
    // The session signed in before (another account's, on a shared
    // machine) ends here: the tokens it issued go with it, as on sign-out,
    // rather than outlive the sign-out of the session that follows.
    // (A session that was signed in: its record read, not an id that a
    // request sent along with other credentials merely names.)
    let signed_in_before = session.get::<i64>(SESSION_USER_KEY).await.ok().flatten();
    if let (Some(before), Some(_)) = (session.id(), signed_in_before) {
        respond(catalog.revoke_session_tokens(&before.to_string()).await)?;
    }
    // A new id on every sign-in, so that a session id planted before cannot be reused.
    session.cycle_id().await.map_err(|_| CoreError::Internal)?;
    session
        .insert(SESSION_USER_KEY, principal.id)
        .await
        .map_err(|_| CoreError::Internal)?;
    session
        .insert(SESSION_CREDENTIALS_KEY, principal.credentials_version)
        .await
        .map_err(|_| CoreError::Internal)?;
    leptos_axum::redirect("/");
    Ok(principal)
}

/// Ends the browser session, and revokes the access tokens it issued.
#[server(prefix = "/api/ui", endpoint = "logout")]
pub async fn logout() -> Result<(), CoreError> {
    let session = crate::ports::session()?;
    let id = session.id();
    // The session ends first, whatever happens to its tokens.
    session.flush().await.map_err(|_| CoreError::Internal)?;
    if let Some(id) = id {
        let (catalog, _) = crate::ports::request_context()?;
        catalog.revoke_session_tokens(&id.to_string()).await?;
    }
    leptos_axum::redirect("/login");
    Ok(())
}

/// The signed-in user, if any.
#[server(prefix = "/api/ui", endpoint = "me")]
pub async fn current_user() -> Result<Option<Principal>, CoreError> {
    let (_, viewer) = crate::ports::request_context()?;
    Ok(viewer.principal().cloned())
}
