//! How Depot's own endpoints render a [`CoreError`]: JSON `{"error", "status"}`.

use app::error::CoreError;
use axum::http::{header, HeaderValue, StatusCode};
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
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"depot\""),
            );
        }
        with_retry_after(&self.0, &mut response);
        response
    }
}

/// Adds `Retry-After` to the answer of an error that says when to try again.
pub fn with_retry_after(error: &CoreError, response: &mut Response) {
    if let Some(seconds) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
}
