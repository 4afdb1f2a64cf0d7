//! JSON or XML, both ways: requests by `Content-Type`, answers by `Accept`.
//! XML documents are rooted at the seed's model names (`Image`, `User`,
//! `RuntimeStats`, ...); a list wraps its items (`<Images><Image>…`).

use std::convert::Infallible;

use app::error::CoreError;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::error::ViceError;
use crate::nesting;
use crate::state::AppState;
use crate::web::whole_body::CallersBody;

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

/// The format the client accepts its answer in, read from `Accept`.
pub struct Negotiated(pub Format);

impl<S: Send + Sync> FromRequestParts<S> for Negotiated {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(response_format(&parts.headers)))
    }
}

/// A body read in the format its `Content-Type` names; unreadable, too
/// large or malformed, it is refused in ViCE's error body.
pub struct ViceBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ViceBody<T> {
    type Rejection = ViceError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ViceError> {
        let format = request_format(request.headers());
        let CallersBody(whole) = CallersBody::from_request(request, state)
            .await
            .map_err(CoreError::from)?;
        Ok(Self(decode(format, &whole.bytes)?))
    }
}

/// Reads a body in the given format; anything unreadable, or nested deeper
/// than [`nesting::MAX_DEPTH`], is invalid input.
pub fn decode<T: DeserializeOwned>(format: Format, bytes: &[u8]) -> Result<T, CoreError> {
    match format {
        Format::Json => {
            if nesting::json_too_deep(bytes) {
                return Err(CoreError::invalid(nesting::too_deep()));
            }
            serde_json::from_slice(bytes)
                .map_err(|error| CoreError::invalid(format!("invalid JSON body: {error}")))
        }
        Format::Xml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| CoreError::invalid("the XML body is not UTF-8"))?;
            if nesting::xml_too_deep(bytes) {
                return Err(CoreError::invalid(nesting::too_deep()));
            }
            quick_xml::de::from_str(text)
                .map_err(|error| CoreError::invalid(format!("invalid XML body: {error}")))
        }
    }
}

/// `xml` with each character XML 1.0 does not allow (control characters
/// but tab and line ends; U+FFFE, U+FFFF) as U+FFFD: the serializer escapes
/// markup alone, and a caller's text echoed in a message made a document
/// no parser reads.
fn xml_characters_only(xml: String) -> String {
    let allowed = |c: char| !matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}');
    if xml.chars().all(allowed) {
        return xml;
    }
    xml.chars()
        .map(|c| if allowed(c) { c } else { '\u{fffd}' })
        .collect()
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
                .map(|xml| {
                    let xml = xml_characters_only(xml);
                    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{xml}")
                })
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

/// A list's items, each an element named `item` (XML).
struct Wrapped<'a, T> {
    item: &'static str,
    items: &'a [T],
}

impl<T: Serialize> Serialize for Wrapped<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut wrapper = serializer.serialize_struct("Wrapped", 1)?;
        wrapper.serialize_field(self.item, self.items)?;
        wrapper.end()
    }
}

impl Reply {
    /// A list: a plain array in JSON; `<{root}><{item}>…</{item}>…</{root}>`
    /// in XML.
    pub fn list<T: Serialize>(
        format: Format,
        root: &'static str,
        item: &'static str,
        items: &[T],
    ) -> Self {
        match format {
            Format::Json => Self::new(format, StatusCode::OK, root, &items),
            Format::Xml => Self::new(format, StatusCode::OK, root, &Wrapped { item, items }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nesting::MAX_DEPTH;
    use serde_json::Value;

    fn nested_json(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    fn nested_xml(levels: usize) -> String {
        format!(
            "<Image>{}x{}</Image>",
            "<specifics>".repeat(levels - 1),
            "</specifics>".repeat(levels - 1)
        )
    }

    /// A caller's text echoed in an answer (an error's message) holding a
    /// character XML does not allow still makes a document parsers read.
    #[test]
    fn an_xml_answer_holds_only_characters_xml_allows() {
        let message = serde_json::json!({"message": "not 'a\u{1}b\u{fffe}', tab\there"});
        let reply = Reply::new(Format::Xml, StatusCode::BAD_REQUEST, "Error", &message);
        let mut reader = quick_xml::Reader::from_str(&reply.body);
        let mut text = String::new();
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(quick_xml::events::Event::Text(found)) => {
                    text.push_str(&found.into_inner());
                }
                Ok(_) => {}
                Err(error) => panic!("{error}: {}", reply.body),
            }
        }
        assert!(!text.contains('\u{1}'), "{text:?}");
        assert!(text.contains("a\u{fffd}b\u{fffd}"), "{text:?}");
        assert!(text.contains("tab\there"), "{text:?}");
    }

    #[test]
    fn json_may_nest_32_levels_and_no_more() {
        assert!(decode::<Value>(Format::Json, nested_json(MAX_DEPTH).as_bytes()).is_ok());
        let error = decode::<Value>(Format::Json, nested_json(MAX_DEPTH + 1).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("deeper than 32 levels"), "{error}");
        // Far deeper than serde_json's own limit or the stack would allow.
        assert!(decode::<Value>(Format::Json, nested_json(100_000).as_bytes()).is_err());
        let objects = format!("{}1{}", r#"{"a":"#.repeat(40), "}".repeat(40));
        let error = decode::<Value>(Format::Json, objects.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("deeper than 32 levels"), "{error}");
    }

    #[test]
    fn brackets_in_json_strings_do_not_count() {
        let text = format!(
            r#"{{"title": "{}\"{}", "specifics": {{}}}}"#,
            "[".repeat(64),
            "{".repeat(64)
        );
        let value: Value = decode(Format::Json, text.as_bytes()).unwrap();
        assert_eq!(value["specifics"], serde_json::json!({}));
    }

    #[test]
    fn xml_may_nest_32_levels_and_no_more() {
        assert!(decode::<Value>(Format::Xml, nested_xml(MAX_DEPTH).as_bytes()).is_ok());
        let flat = format!("<a>{}</a>", "<b/>".repeat(3));
        assert!(!nesting::xml_too_deep(flat.as_bytes()));
        for text in [
            nested_xml(MAX_DEPTH + 1),
            // About 20 KB of nested elements, as a hostile client sends them.
            nested_xml(20_000 / "<specifics>".len()),
            // Never closed: refused before the reader reaches the end.
            "<a>".repeat(100_000),
        ] {
            let error = decode::<Value>(Format::Xml, text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(error.contains("deeper than 32 levels"), "{error}");
        }
        let empty_too_deep = format!(
            "{}<b/>{}",
            "<a>".repeat(MAX_DEPTH),
            "</a>".repeat(MAX_DEPTH)
        );
        assert!(nesting::xml_too_deep(empty_too_deep.as_bytes()));
    }

    #[test]
    fn malformed_xml_is_invalid_input() {
        let error = decode::<Value>(Format::Xml, b"<a></b>")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("invalid XML body"), "{error}");
    }
}
