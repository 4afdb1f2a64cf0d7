//! VSS errors: `{"status", "error", "message"}` with a JSON content type
//! (pyvss reads all three, and fails on an error that is not JSON).

use app::error::CoreError;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::web::status_of;

/// A core error on its way to a VSS client.
#[derive(Debug)]
pub struct VssError(pub CoreError);

impl From<CoreError> for VssError {
    fn from(error: CoreError) -> Self {
        Self(error)
    }
}

fn body(status: StatusCode, message: String) -> Response {
    let error = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let body = serde_json::json!({ "status": status.as_u16(), "error": error, "message": message });
    (status, Json(body)).into_response()
}

impl IntoResponse for VssError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let mut response = body(status, self.0.to_string());
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"depot\""),
            );
        }
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

/// A path under `/v2` that names no resource: 404 in VSS's shape, whatever
/// the method, rather than the UI's page.
pub async fn not_found(uri: Uri) -> Response {
    VssError(CoreError::not_found(format!("resource {}", uri.path()))).into_response()
}

/// `OPTIONS`: the methods a resource answers, in `Allow`.
pub fn allow(
    methods: &'static str,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move || {
        std::future::ready(
            (
                StatusCode::OK,
                [(header::ALLOW, HeaderValue::from_static(methods))],
            )
                .into_response(),
        )
    }
}
