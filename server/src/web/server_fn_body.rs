//! The bodies of the UI's server functions (`/api/ui/...`), read whole
//! before they run. Leptos reads such a body itself and answers any failure
//! to read it as its own (500): a client that stopped sending midway, or one
//! past the size a server function takes. Read here first, those get the
//! answers the rest of the API gives: 400 saying why, or 413.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::whole_body::{self, Unread};
use app::error::CoreError;

/// Where the server functions are: leptos_axum registers each at its own
/// path under it.
const SERVER_FUNCTIONS: &str = "/api/ui/";

/// The longest body a server function takes: axum's default body limit,
/// which Leptos applied when it read the body itself. Their forms are a few
/// fields.
const MAX_BODY: usize = 2 * 1024 * 1024;

/// Middleware: reads a server function's body, or answers why it cannot.
pub async fn read_first(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with(SERVER_FUNCTIONS) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let refused = match whole_body::read(body, MAX_BODY).await {
        Ok(bytes) => {
            return next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(Unread::TooLong) => {
            CoreError::TooLarge(format!("a form of the UI takes at most {MAX_BODY} bytes"))
        }
        Err(Unread::BrokeOff(reason)) => {
            CoreError::invalid(format!("reading the form failed: {reason}"))
        }
    };
    ApiError(refused).into_response()
}
