//! ViCE errors: `{"code", "message"}` (XML root `Error`) on every non-2xx.
//! The registry answers invalid input with 405, not 400.
//!
//! A handler (or an extractor) refuses with a [`ViceError`], which does not
//! know the client's format; [`negotiate`], the layer around every ViCE
//! route, writes it in the format the request accepts. So each refusal is
//! written in one place, whatever refused.

use app::error::CoreError;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Request};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::codec::{response_format, Format, Reply};
use crate::web::status_of;

/// The body of every ViCE error (XML root `Error`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Error, xml(name = "Error"))]
pub struct ViceErrorBody {
    #[schema(example = 404)]
    pub code: u16,
    #[schema(example = "image 42 not found")]
    pub message: String,
}

/// A refusal on its way to a ViCE client, in whichever format it accepts,
/// with when to try again, if it says.
#[derive(Debug, Clone)]
pub struct ViceError(ViceErrorBody, Option<u64>);

/// What a ViCE handler answers.
pub type ViceResult<T = Reply> = Result<T, ViceError>;

impl ViceError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(
            ViceErrorBody {
                code: status.as_u16(),
                message: message.into(),
            },
            None,
        )
    }

    /// Bad input where the seed documents 400 (`uploadImage`), not 405.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.0.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The answer in the client's format.
    fn render(self, format: Format) -> Response {
        let status = self.status();
        let mut response = Reply::new(format, status, "Error", &self.0).into_response();
        if let Some(seconds) = self.1 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"depot\""),
            );
        }
        response
    }
}

impl From<CoreError> for ViceError {
    fn from(error: CoreError) -> Self {
        let status = match error {
            CoreError::Invalid(_) => StatusCode::METHOD_NOT_ALLOWED,
            ref other => status_of(other),
        };
        let mut refusal = Self::new(status, error.to_string());
        refusal.1 = error.retry_after();
        refusal
    }
}

/// A path that does not decode is invalid input, ViCE's 405.
impl From<PathRejection> for ViceError {
    fn from(rejection: PathRejection) -> Self {
        CoreError::invalid(rejection.body_text()).into()
    }
}

/// Carried to [`negotiate`] in the response's extensions; JSON if, against
/// the router's shape, nothing renders it.
impl IntoResponse for ViceError {
    fn into_response(self) -> Response {
        let mut response = self.clone().render(Format::Json);
        response.extensions_mut().insert(self);
        response
    }
}

/// The layer around the ViCE routes: a refusal is written in the format the
/// request accepts.
pub async fn negotiate(request: Request, next: Next) -> Response {
    let format = response_format(request.headers());
    let mut response = next.run(request).await;
    match response.extensions_mut().remove::<ViceError>() {
        Some(error) => error.render(format),
        None => response,
    }
}

/// `axum::extract::Path`, refusing in ViCE's error body.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ViceError))]
pub struct VicePath<T>(pub T);

/// A method the resource does not have.
pub async fn method_not_allowed(method: Method) -> ViceError {
    ViceError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not supported on this resource"),
    )
}

/// A path under `/v1` that names no resource: 404 in the negotiated format,
/// whatever the method, rather than the UI's page.
pub async fn not_found(uri: Uri) -> ViceError {
    CoreError::not_found(format!("resource {}", uri.path())).into()
}
