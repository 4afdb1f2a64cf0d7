//! Coopr errors: `{"status", "message"}`. Coopr answers a taken name with
//! 400, not 409.

use app::error::CoreError;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::web::status_of;

/// A core error on its way to a Coopr client.
#[derive(Debug)]
pub struct CooprError(pub CoreError);

impl From<CoreError> for CooprError {
    fn from(error: CoreError) -> Self {
        Self(error)
    }
}

fn body(status: StatusCode, message: String) -> Response {
    let body = serde_json::json!({ "status": status.as_u16(), "message": message });
    (status, Json(body)).into_response()
}

impl IntoResponse for CooprError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            CoreError::Conflict(_) => StatusCode::BAD_REQUEST,
            other => status_of(other),
        };
        body(status, self.0.to_string())
    }
}

/// A method the resource does not have.
pub async fn method_not_allowed(method: Method) -> Response {
    body(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on this resource"),
    )
}
