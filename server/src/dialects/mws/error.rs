//! MWS errors: `{"messages": ["..."]}` with the status of the core error.

use app::error::CoreError;
use axum::extract::rejection::PathRejection;
use axum::extract::FromRequestParts;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::web::status_of;

/// The body of every MWS error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MwsErrorBody {
    #[schema(example = json!(["image 42 not found"]))]
    pub messages: Vec<String>,
}

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
        let body = Json(MwsErrorBody {
            messages: vec![self.0.to_string()],
        });
        let mut response = if status == StatusCode::UNAUTHORIZED {
            (
                status,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"depot\"")],
                body,
            )
                .into_response()
        } else {
            (status, body).into_response()
        };
        crate::web::with_retry_after(&self.0, &mut response);
        response
    }
}

/// A method the resource does not have: 405 in MWS's shape.
pub async fn method_not_allowed(method: Method) -> Response {
    let body = MwsErrorBody {
        messages: vec![format!("{method} is not supported on this resource")],
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// A path under `/mws` that names no resource: 404 in MWS's shape, whatever
/// the method, rather than the UI's page.
pub async fn not_found(uri: Uri) -> Response {
    MwsError(CoreError::not_found(format!("resource {}", uri.path()))).into_response()
}

/// A path that does not decode is the client's mistake, in MWS's body.
impl From<PathRejection> for MwsError {
    fn from(rejection: PathRejection) -> Self {
        Self(CoreError::invalid(rejection.body_text()))
    }
}

/// `axum::extract::Path`, refusing in MWS's error body.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(MwsError))]
pub struct MwsPath<T>(pub T);
