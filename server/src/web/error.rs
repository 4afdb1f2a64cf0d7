//! How Depot's own endpoints render a [`CoreError`]: JSON `{"error", "status"}`.

use app::error::CoreError;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::PathRejection;
use axum::extract::FromRequestParts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The body of every error Depot's own endpoints answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person to read.
    #[schema(example = "image 42 not found")]
    pub error: String,
    /// The response's status code, again.
    #[schema(example = 404)]
    pub status: u16,
}

impl ErrorBody {
    /// The body for `status`, saying `error`.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Json<Self> {
        Json(Self {
            error: error.into(),
            status: status.as_u16(),
        })
    }
}

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
        let mut response = (status, ErrorBody::new(status, self.0.to_string())).into_response();
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

/// A path parameter that does not parse (an id that is no number) is the
/// client's mistake: 400 in the API's JSON, like every other refusal.
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self(CoreError::invalid(rejection.body_text()))
    }
}

/// A body that is no readable multipart form: 400 in the API's JSON.
impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        Self(CoreError::invalid(rejection.body_text()))
    }
}

/// `axum::extract::Path` for Depot's own endpoints: a refusal is an
/// [`ApiError`], not axum's plain text.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
