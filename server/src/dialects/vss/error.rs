//! VSS errors: `{"status", "error", "message"}` with a JSON content type
//! (pyvss reads all three, and fails on an error that is not JSON).

use app::error::CoreError;
use axum::extract::rejection::PathRejection;
use axum::extract::FromRequestParts;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::web::status_of;

/// The body of every VSS error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VssErrorBody {
    #[schema(example = 404)]
    pub status: u16,
    #[schema(example = "not found")]
    pub error: String,
    #[schema(example = "image 42 not found")]
    pub message: String,
}

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
    let body = VssErrorBody {
        status: status.as_u16(),
        error,
        message,
    };
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

/// A path under `/v2` that names no resource: 404 in VSS's shape, whatever
/// the method, rather than the UI's page.
pub async fn not_found(uri: Uri) -> Response {
    VssError(CoreError::not_found(format!("resource {}", uri.path()))).into_response()
}

/// `OPTIONS`: the methods a resource answers, in `Allow`.
pub fn allow(
    methods: String,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move || std::future::ready((StatusCode::OK, [(header::ALLOW, methods.clone())]).into_response())
}

/// A path that does not decode is the client's mistake, in VSS's body.
impl From<PathRejection> for VssError {
    fn from(rejection: PathRejection) -> Self {
        Self(CoreError::invalid(rejection.body_text()))
    }
}

/// `axum::extract::Path`, refusing in VSS's error body.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(VssError))]
pub struct VssPath<T>(pub T);
