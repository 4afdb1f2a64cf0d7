//! How Depot's own endpoints render a [`CoreError`]: JSON `{"error", "status"}`.

use app::error::CoreError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// A core error on its way to a Depot-native client.
#[derive(Debug)]
pub struct ApiError(pub CoreError);

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        Self(error)
    }
}

/// The status each core error answers with.
pub fn status_of(error: &CoreError) -> StatusCode {
    match error {
        CoreError::Invalid(_) => StatusCode::BAD_REQUEST,
        CoreError::Unauthenticated | CoreError::BadCredentials => StatusCode::UNAUTHORIZED,
        CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
        CoreError::NotFound(_) => StatusCode::NOT_FOUND,
        CoreError::Conflict(_) => StatusCode::CONFLICT,
        CoreError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        CoreError::Transport(_) => StatusCode::BAD_GATEWAY,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let body = Json(serde_json::json!({ "error": self.0.to_string(), "status": status.as_u16() }));
        if status == StatusCode::UNAUTHORIZED {
            (status, [(header::WWW_AUTHENTICATE, "Basic realm=\"depot\"")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}
