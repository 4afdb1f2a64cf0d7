//! The bodies of the UI's server functions (`/api/ui/...`), read whole
//! before they run. Leptos reads such a body itself and answers any failure
//! to read it as its own (500): a client that stopped sending midway, or one
//! past the size a server function takes. Read here first, those get the
//! answers the rest of the API gives: 400 saying why, or 413.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::whole_body::{self, Unread, MAX_ANONYMOUS_BODY, MAX_BODY};
use crate::state::AppState;
use app::error::CoreError;
use app::model::Viewer;
use app::ports::ClientAddress;

/// Where the server functions are: leptos_axum registers each at its own
/// path under it.
const SERVER_FUNCTIONS: &str = "/api/ui/";

/// The one server function a caller not signed in sends a form to.
const SIGN_IN: &str = <app::api::Login as leptos::server_fn::ServerFn>::PATH;

/// Middleware: reads a server function's body, or answers why it cannot.
/// The body's share of the server's budget is held until the function has
/// answered.
pub async fn read_first(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with(SERVER_FUNCTIONS) {
        return next.run(request).await;
    }
    // A caller who has not signed in sends a sign-in form at most, held
    // in the anonymous callers' share of the budget, a few at once from
    // one address.
    let anonymous = matches!(
        request.extensions().get::<Viewer>(),
        Some(Viewer::Anonymous)
    );
    let (limit, budget, place) = if anonymous {
        let client = request
            .extensions()
            .get::<ClientAddress>()
            .map(|ClientAddress(address)| *address);
        match state.bodies.anonymous_place(client) {
            Ok(place) => (MAX_ANONYMOUS_BODY, &state.bodies.anonymous, place),
            Err(unread) => return ApiError(unread.into()).into_response(),
        }
    } else {
        (MAX_BODY, &state.bodies.signed_in, None)
    };
    let (parts, body) = request.into_parts();
    let read = whole_body::read(body, limit, budget).await;
    // The place bounds the bodies an address has on their way; once read,
    // the body's bytes are held by the budget while the function runs.
    drop(place);
    match read {
        Ok(whole) => {
            let response = next.run(Request::from_parts(parts, whole.to_body())).await;
            drop(whole);
            callers_fault(response).await
        }
        // Any other form is a signed-in user's (one whose session lapsed,
        // say, editing a long description): they are to sign in, not
        // told it is too long.
        Err(Unread::TooLong { .. }) if anonymous && parts.uri.path() != SIGN_IN => {
            ApiError(CoreError::Unauthenticated).into_response()
        }
        Err(unread) => ApiError(unread.into()).into_response(),
    }
}

/// The longest error answer of a server function looked into.
const ERROR_ANSWER: usize = 64 << 10;

/// A server function whose arguments do not decode (a field missing, an id
/// that is no number) fails before it runs, and Leptos answers any such
/// failure 500. The error it answers with says whose it is (`Invalid` for
/// arguments, `app::error`): that error's status, the answer as it was.
async fn callers_fault(response: Response) -> Response {
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let short = http_body::Body::size_hint(response.body())
        .upper()
        .is_some_and(|length| length <= ERROR_ANSWER as u64);
    if !short {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, ERROR_ANSWER).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // Arguments server_fn could not read are `Invalid` (`app::error`):
    // any error the body names answers with its own status.
    // (`Transport`, what server_fn could not do itself, stays the server's.)
    match serde_json::from_slice::<CoreError>(&bytes) {
        Ok(CoreError::Transport(_)) | Err(_) => {}
        Ok(error) => parts.status = super::status_of(&error),
    }
    Response::from_parts(parts, Body::from(bytes))
}
