//! JSON or XML, both ways: requests by `Content-Type`, answers by `Accept`.
//! XML documents are rooted at the seed's model names (`Image`, `User`,
//! `RuntimeStats`, ...); a list wraps its items (`<Images><Image>…`).

use app::error::CoreError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How a body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

fn mentions_xml(headers: &HeaderMap, name: header::HeaderName) -> Option<bool> {
    let value = headers.get(name)?.to_str().ok()?.to_ascii_lowercase();
    Some(value.contains("xml") && !value.starts_with("application/json"))
}

/// The format of a request's body.
pub fn request_format(headers: &HeaderMap) -> Format {
    match mentions_xml(headers, header::CONTENT_TYPE) {
        Some(true) => Format::Xml,
        _ => Format::Json,
    }
}

/// The format the client asked for (JSON unless it prefers XML).
pub fn response_format(headers: &HeaderMap) -> Format {
    match mentions_xml(headers, header::ACCEPT) {
        Some(true) => Format::Xml,
        _ => Format::Json,
    }
}

/// Reads a body in the given format; anything unreadable is invalid input.
pub fn decode<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, CoreError> {
    match format {
        Format::Json => serde_json::from_slice(bytes)
            .map_err(|error| CoreError::invalid(format!("invalid JSON body: {error}"))),
        Format::Xml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| CoreError::invalid("the XML body is not UTF-8"))?;
            quick_xml::de::from_str(text)
                .map_err(|error| CoreError::invalid(format!("invalid XML body: {error}")))
        }
    }
}

/// An answer in the negotiated format.
pub struct Reply {
    status: StatusCode,
    format: Format,
    body: String,
}

impl Reply {
    /// `value` as the document `root` (XML) or as plain JSON.
    pub fn new(format: Format, status: StatusCode, root: &str, value: &impl Serialize) -> Self {
        let body = match format {
            Format::Json => serde_json::to_string(value).map_err(|error| error.to_string()),
            Format::Xml => quick_xml::se::to_string_with_root(root, value)
                .map(|xml| format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{xml}"))
                .map_err(|error| error.to_string()),
        };
        match body {
            Ok(body) => Self {
                status,
                format,
                body,
            },
            Err(error) => {
                tracing::error!(%error, "cannot encode an answer");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    format: Format::Json,
                    body: r#"{"code":500,"message":"internal error"}"#.into(),
                }
            }
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let content_type = match self.format {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
        };
        (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            self.body,
        )
            .into_response()
    }
}
