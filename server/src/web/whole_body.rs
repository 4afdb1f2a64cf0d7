//! Reading a small request body whole, up to a limit, before its handler
//! (a WebDAV request's XML, a server function's form): what the handler
//! would read anyway, with the failures told apart.

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;

/// Why a body could not be read whole.
pub enum Unread {
    /// It runs past the limit (413).
    TooLong,
    /// It broke off (400): what the innermost error says, such as the
    /// client timeout's message.
    BrokeOff(String),
}

/// `body` whole, if it ends within `limit` bytes.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, Unread> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(Unread::TooLong),
        Err(error) => {
            let mut last: &(dyn std::error::Error + 'static) = &*error;
            while let Some(source) = last.source() {
                last = source;
            }
            Err(Unread::BrokeOff(last.to_string()))
        }
    }
}
