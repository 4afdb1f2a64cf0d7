//! The bodies of the UI's server functions (`/api/ui/...`), read whole
//! before they run. Leptos reads such a body itself and answers any failure
//! to read it as its own (500): a client that stopped sending midway, or one
//! past the size a server function takes. Read here first, those get the
//! answers the rest of the API gives: 400 saying why, or 413.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::whole_body::{self, MAX_ANONYMOUS_BODY, MAX_BODY};
use crate::state::AppState;
use app::model::Viewer;

/// Where the server functions are: leptos_axum registers each at its own
/// path under it.
const SERVER_FUNCTIONS: &str = "/api/ui/";

/// Middleware: reads a server function's body, or answers why it cannot.
/// The body's share of the server's budget is held until the function has
/// answered.
pub async fn read_first(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with(SERVER_FUNCTIONS) {
        return next.run(request).await;
    }
    // A caller who has not signed in sends a sign-in form at most.
    let limit = match request.extensions().get::<Viewer>() {
        Some(Viewer::Anonymous) => MAX_ANONYMOUS_BODY,
        _ => MAX_BODY,
    };
    let (parts, body) = request.into_parts();
    match whole_body::read(body, limit, &state.bodies).await {
        Ok(whole) => {
            let response = next.run(Request::from_parts(parts, whole.to_body())).await;
            drop(whole);
            response
        }
        Err(unread) => ApiError(unread.into()).into_response(),
    }
}
