//! Who is calling: resolved once per request from, in order, an
//! `Authorization` header (Bearer token; Basic with a password, or with a
//! token as the username and an empty password, as HTTPie's `-a TOKEN` sends)
//! or the browser session. The result is a [`Viewer`] in the request's
//! extensions; handlers and server functions read it from there.

use app::error::CoreError;
use app::model::Viewer;
use app::ports::{ClientAddress, SESSION_CREDENTIALS_KEY, SESSION_USER_KEY};
use axum::extract::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::net::IpAddr;
use tower_sessions::Session;

use super::ApiError;
use crate::serve::Peer;
use crate::state::AppState;

/// Credentials carried by an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    Bearer(String),
    Basic {
        username: String,
        password: String,
    },
    /// A header in another scheme, or one that does not decode: the caller
    /// is anonymous, never signed in by a cookie sent beside it (a token
    /// asked for that way would not be tied to the session, and would
    /// outlive its signing out).
    Unreadable,
}

fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(header::AUTHORIZATION)?;
    Some(readable_credentials(value).unwrap_or(Credentials::Unreadable))
}

/// What an `Authorization` header says, if it is a Bearer or Basic one
/// that decodes.
fn readable_credentials(value: &header::HeaderValue) -> Option<Credentials> {
    let (scheme, rest) = value.to_str().ok()?.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials::Bearer(rest.trim().to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (username, password) = decoded.split_once(':')?;
        return Some(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        });
    }
    None
}

async fn viewer_of(
    state: &AppState,
    headers: &HeaderMap,
    session: &Session,
    client: Option<IpAddr>,
) -> Result<Viewer, CoreError> {
    let core = &state.core;
    match credentials(headers) {
        Some(Credentials::Bearer(token)) => core.viewer_from_token(&token).await,
        Some(Credentials::Basic { username, password }) if password.is_empty() => {
            core.viewer_from_token(&username).await
        }
        Some(Credentials::Basic { username, password }) => {
            match core.login_from(&username, &password, client).await {
                Ok(principal) => Ok(Viewer::User(principal)),
                Err(CoreError::BadCredentials) => Ok(Viewer::Anonymous),
                Err(error) => Err(error),
            }
        }
        Some(Credentials::Unreadable) => Ok(Viewer::Anonymous),
        None => match session.get::<i64>(SESSION_USER_KEY).await {
            Ok(Some(id)) => {
                let version = session
                    .get::<i64>(SESSION_CREDENTIALS_KEY)
                    .await
                    .ok()
                    .flatten();
                core.viewer_from_session(id, version).await
            }
            Ok(None) => Ok(Viewer::Anonymous),
            Err(error) => {
                tracing::warn!(%error, "unreadable session");
                Ok(Viewer::Anonymous)
            }
        },
    }
}

/// Paths that are the same for everyone: no credential is checked for them,
/// so that health checks and static assets never pay for a password check.
fn needs_no_viewer(path: &str) -> bool {
    path == "/healthz" || path == "/readyz" || path == "/favicon.ico" || path.starts_with("/pkg/")
}

/// The address of the client: the TCP peer, unless it is a trusted proxy;
/// then the last address of `X-Forwarded-For` that is not one. Each proxy
/// appends the address it was reached from, so what stands before the
/// first untrusted one from the right is what a client wrote itself. An
/// entry that is no address ends the walk where it is.
fn client_of(request: &Request, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = peer_of(request)?;
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<&str> = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        let Ok(address) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = address.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

/// The TCP peer's address.
fn peer_of(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|ConnectInfo(Peer(address))| address.ip().to_canonical())
}

/// The headers a proxy sets to tell how the client reached it, which
/// absolute links are built from (VSS's): taken from a trusted proxy only,
/// or any client could have the server's answers (and a cache in front of
/// it) link to a host of its choosing.
const FORWARDED_ORIGIN: [&str; 3] = ["x-forwarded-host", "x-forwarded-proto", "forwarded"];

/// Middleware: puts the caller's [`Viewer`] (and address) into the request.
pub async fn resolve_viewer(
    State(state): State<AppState>,
    session: Session,
    mut request: Request,
    next: Next,
) -> Response {
    let from_proxy = peer_of(&request)
        .is_some_and(|peer| state.trusted_proxies.iter().any(|net| net.contains(&peer)));
    if !from_proxy {
        for name in FORWARDED_ORIGIN {
            request.headers_mut().remove(name);
        }
    }
    let client = client_of(&request, &state.trusted_proxies);
    if let Some(client) = client {
        request.extensions_mut().insert(ClientAddress(client));
    }
    if needs_no_viewer(request.uri().path()) {
        request.extensions_mut().insert(Viewer::Anonymous);
        return next.run(request).await;
    }
    match viewer_of(&state, request.headers(), &session, client).await {
        Ok(viewer) => {
            request.extensions_mut().insert(viewer);
            next.run(request).await
        }
        Err(error) => ApiError(error).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn reads_bearer_and_basic() {
        assert_eq!(
            credentials(&headers("Bearer abc")),
            Some(Credentials::Bearer("abc".into()))
        );
        // "alice:pa:ss" — a colon may appear in the password.
        assert_eq!(
            credentials(&headers("Basic YWxpY2U6cGE6c3M=")),
            Some(Credentials::Basic {
                username: "alice".into(),
                password: "pa:ss".into()
            })
        );
        // "TOKEN:" — HTTPie's `-a TOKEN`.
        assert_eq!(
            credentials(&headers("basic VE9LRU46")),
            Some(Credentials::Basic {
                username: "TOKEN".into(),
                password: String::new()
            })
        );
    }

    #[test]
    fn tells_what_it_cannot_read_from_no_header() {
        for unreadable in ["Basic !!!", "Digest x", "Bearer", "Basic dXNlcg=="] {
            assert_eq!(
                credentials(&headers(unreadable)),
                Some(Credentials::Unreadable),
                "{unreadable}"
            );
        }
        assert_eq!(credentials(&HeaderMap::new()), None);
    }
}
