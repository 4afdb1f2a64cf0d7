//! Reading a small request body whole, up to a limit, before its handler
//! (a WebDAV request's XML, a server function's form, a dialect's JSON or
//! XML): what the handler would read anyway, with the failures told apart.
//!
//! Such bodies are held in memory, so what they may hold together is
//! bounded: each is read into one buffer of its own (a body's frames kept
//! one by one, as `http_body_util`'s `collect` keeps them, cost 32 bytes
//! of bookkeeping for every chunk of a chunked body, and each frame kept
//! alive the whole read buffer it was cut from: a body sent one byte a
//! chunk took thirty times its size), and the buffers of every body being
//! read or handled share one [`BodyBudget`]. Past it a request is answered
//! 503 rather than an anonymous flood of slow bodies taking the server's
//! memory, as many connections from many addresses could.

use std::sync::Arc;

use app::error::CoreError;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::state::AppState;

/// The longest body a dialect's write or a server function takes: axum's
/// default body limit, which they had when axum read them. Their documents
/// and forms are a few fields.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// The bytes the server holds at once of bodies read whole.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// What is left of it now (for tests).
    pub fn available(&self) -> usize {
        self.0.available_permits()
    }
}

/// Why a body could not be read whole.
#[derive(Debug)]
pub enum Unread {
    /// It runs past the limit (413).
    TooLong { limit: usize },
    /// It broke off (400): what the innermost error says, such as the
    /// client timeout's message.
    BrokeOff(String),
    /// The bodies being read hold the whole budget (503).
    Busy,
}

impl From<Unread> for CoreError {
    fn from(unread: Unread) -> Self {
        match unread {
            Unread::TooLong { limit } => CoreError::TooLarge(format!(
                "a request's body may be at most {limit} bytes here"
            )),
            Unread::BrokeOff(reason) => {
                CoreError::invalid(format!("reading the request's body failed: {reason}"))
            }
            Unread::Busy => CoreError::Busy { retry_after: 1 },
        }
    }
}

/// In the API's JSON, for a handler that does not answer it itself.
impl axum::response::IntoResponse for Unread {
    fn into_response(self) -> axum::response::Response {
        super::ApiError(self.into()).into_response()
    }
}

/// A body read whole, holding its share of the budget as long as it lives.
pub struct WholeBody {
    pub bytes: Bytes,
    _share: Option<OwnedSemaphorePermit>,
}

impl WholeBody {
    /// The bytes, for a request handed on; the share stays with `self`.
    pub fn to_body(&self) -> Body {
        Body::from(self.bytes.clone())
    }
}

/// `body` whole, if it ends within `limit` bytes and the budget has room.
pub async fn read(body: Body, limit: usize, budget: &BodyBudget) -> Result<WholeBody, Unread> {
    let mut body = std::pin::pin!(body);
    let mut buffer = BytesMut::new();
    let mut share: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Unread::BrokeOff(innermost(&error)))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing a handler here reads
        };
        if buffer.len() + data.len() > limit {
            return Err(Unread::TooLong { limit });
        }
        buffer.reserve(data.len());
        let held = share.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
        if buffer.capacity() > held {
            let more = u32::try_from(buffer.capacity() - held).map_err(|_| Unread::Busy)?;
            let granted = budget
                .0
                .clone()
                .try_acquire_many_owned(more)
                .map_err(|_| Unread::Busy)?;
            match &mut share {
                Some(share) => share.merge(granted),
                None => share = Some(granted),
            }
        }
        buffer.extend_from_slice(&data);
    }
    Ok(WholeBody {
        bytes: buffer.freeze(),
        _share: share,
    })
}

/// What the innermost error of a chain says.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

/// A handler's body read whole, within [`MAX_BODY`] and the server's
/// budget; a handler takes `Result<WholeBody, Unread>` to answer a failure
/// in its dialect's own error body.
impl FromRequest<AppState> for WholeBody {
    type Rejection = Unread;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Unread> {
        read(request.into_body(), MAX_BODY, &state.bodies).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: usize, size: usize) -> Body {
        let frames = (0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![7; size])));
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_of_many_small_chunks_is_held_in_one_buffer_within_its_share() {
        let budget = BodyBudget::new(1 << 20);
        let whole = read(chunked(100_000, 1), 1 << 20, &budget).await.unwrap();
        assert_eq!(whole.bytes.len(), 100_000);
        let held = (1 << 20) - budget.available();
        assert!(
            (100_000..=2 * 100_000).contains(&held),
            "held {held} bytes of the budget for 100,000"
        );
        drop(whole);
        assert_eq!(
            budget.available(),
            1 << 20,
            "the share goes back with the body"
        );
    }

    #[tokio::test]
    async fn bodies_past_the_budget_are_refused_and_give_back_what_they_took() {
        let budget = BodyBudget::new(1 << 20);
        // Each holds at least its 640 KiB: the two do not fit in 1 MiB.
        let first = read(chunked(8, 80 << 10), 1 << 20, &budget).await.unwrap();
        let left = budget.available();
        let second = read(chunked(8, 80 << 10), 1 << 20, &budget).await;
        assert!(matches!(second, Err(Unread::Busy)));
        assert_eq!(budget.available(), left, "the refused body kept nothing");
        drop(first);
        assert!(read(chunked(8, 80 << 10), 1 << 20, &budget).await.is_ok());
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_too_long() {
        let budget = BodyBudget::new(1 << 20);
        let read = read(chunked(3, 1000), 2999, &budget).await;
        assert!(matches!(read, Err(Unread::TooLong { limit: 2999 })));
        assert_eq!(budget.available(), 1 << 20);
    }
}
