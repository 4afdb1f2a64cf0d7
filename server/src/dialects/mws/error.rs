//! MWS errors: `{"messages": ["..."]}` with the status of the core error.

use app::error::CoreError;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::web::status_of;

/// A core error on its way to an MWS client.
#[derive(Debug)]
pub struct MwsError(pub CoreError);

impl From<CoreError> for MwsError {
    fn from(error: CoreError) -> Self {
        Self(error)
    }
}

impl IntoResponse for MwsError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let body = Json(serde_json::json!({ "messages": [self.0.to_string()] }));
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

/// A method the resource does not have: 405 in MWS's shape.
pub async fn method_not_allowed(method: Method) -> Response {
    let body = serde_json::json!({
        "messages": [format!("{method} is not supported on this resource")]
    });
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// A path under `/mws` that names no resource: 404 in MWS's shape, whatever
/// the method, rather than the UI's page.
pub async fn not_found(uri: Uri) -> Response {
    MwsError(CoreError::not_found(format!("resource {}", uri.path()))).into_response()
}
