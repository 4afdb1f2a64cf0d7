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
    StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let body =
            Json(serde_json::json!({ "error": self.0.to_string(), "status": status.as_u16() }));
        if status == StatusCode::UNAUTHORIZED {
            (
                status,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"depot\"")],
                body,
            )
                .into_response()
        } else {
            (status, body).into_response()
        }
    }
}
