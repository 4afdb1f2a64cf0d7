//! Coopr errors: `{"status", "message"}`. Coopr answers a taken name with
//! 400, not 409.

use app::error::CoreError;
use axum::extract::rejection::PathRejection;
use axum::extract::FromRequestParts;
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

/// The body of every Coopr error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CooprErrorBody {
    #[schema(example = 404)]
    pub status: u16,
    #[schema(example = "image type small.example not found")]
    pub message: String,
}

fn body(status: StatusCode, message: String) -> Response {
    let body = CooprErrorBody {
        status: status.as_u16(),
        message,
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for CooprError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            CoreError::Conflict(_) => StatusCode::BAD_REQUEST,
            other => status_of(other),
        };
        let mut response = body(status, self.0.to_string());
        crate::web::with_retry_after(&self.0, &mut response);
        response
    }
}

/// A method the resource does not have.
pub async fn method_not_allowed(method: Method) -> Response {
    body(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on this resource"),
    )
}

/// A path that does not decode is the client's mistake, in Coopr's body.
impl From<PathRejection> for CooprError {
    fn from(rejection: PathRejection) -> Self {
        Self(CoreError::invalid(rejection.body_text()))
    }
}

/// `axum::extract::Path`, refusing in Coopr's error body.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(CooprError))]
pub struct CooprPath<T>(pub T);
