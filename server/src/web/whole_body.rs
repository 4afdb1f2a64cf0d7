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

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use app::error::CoreError;
use app::model::Viewer;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::serve::per_address::{Counted, PerAddress};
use crate::state::AppState;

/// The longest body a dialect's write or a server function takes: axum's
/// default body limit, which they had when axum read them. Their documents
/// and forms are a few fields.
pub const MAX_BODY: usize = 2 * 1024 * 1024;

/// The longest an anonymous caller's form may be: the forms a caller who
/// has not signed in sends (signing in) are two fields. The longest
/// password (`MAX_PASSWORD_LEN` characters of four bytes each) takes 12 KiB
/// percent-encoded. The smaller it is, the more addresses a flood of slow
/// sign-in forms needs to fill the anonymous share of the budget.
pub const MAX_ANONYMOUS_BODY: usize = 16 << 10;

const _: () = assert!(crate::core::MAX_PASSWORD_LEN * 4 * 3 + 1024 <= MAX_ANONYMOUS_BODY);

/// How long a body read whole may take to arrive, however it trickles: the
/// client timeout cuts off a body that stops, this one that crawls while
/// it holds its share of the budget.
const READ_WITHIN: Duration = Duration::from_secs(30);

/// What a body's buffer is measured in: a body of a few bytes holds this
/// much of the budget, not more (a thousand one-byte bodies hold 4 MiB).
const STEP: usize = 4 << 10;

/// The room a buffer is grown to for `needed` bytes: an eighth more, in
/// whole steps (it holds of the budget what it holds, at most an eighth
/// and a step past its bytes, and a 2 MiB body is copied some forty times
/// as it grows, not five hundred).
fn room_for(needed: usize) -> usize {
    (needed + needed / 8).next_multiple_of(STEP)
}

/// How many bodies of callers not signed in one client address (an IPv6
/// client by its /64, its /48 four times as many) may have read at once:
/// the anonymous share is many addresses' to fill, not a few.
pub const ANONYMOUS_PER_ADDRESS: usize = 8;

/// What bodies read whole may hold: an eighth for anonymous callers'
/// (the sign-in forms of the UI, the only bodies read of a caller not
/// signed in), a few of them an address, the rest for signed-in callers',
/// so that no flood of slow anonymous bodies leaves a user's request
/// refused.
#[derive(Clone)]
pub struct BodyBudgets {
    pub signed_in: BodyBudget,
    pub anonymous: BodyBudget,
    /// Anonymous bodies being read, per client address.
    anonymous_readers: Arc<PerAddress>,
}

impl BodyBudgets {
    /// `bytes` in all.
    pub fn new(bytes: usize) -> Self {
        let anonymous = bytes / 8;
        Self {
            signed_in: BodyBudget::new(bytes - anonymous),
            anonymous: BodyBudget::new(anonymous),
            anonymous_readers: PerAddress::with_network_cap(ANONYMOUS_PER_ADDRESS),
        }
    }

    /// One of the [`ANONYMOUS_PER_ADDRESS`] places of `client` for a body
    /// of a caller not signed in, held as long as it lives; `Busy` when the
    /// address (or its IPv6 /48) holds them all.
    pub(crate) fn anonymous_place(
        &self,
        client: Option<IpAddr>,
    ) -> Result<Option<Counted>, Unread> {
        match client {
            Some(client) => self
                .anonymous_readers
                .count(client)
                .map(Some)
                .ok_or(Unread::Busy),
            None => Ok(None),
        }
    }
}

/// The bytes the server holds at once of bodies read whole.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let total = bytes.min(Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// What is left of it now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.bytes.available_permits()
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
    /// The caller has not signed in, where only a signed-in caller's body
    /// is taken (401): it is not read at all.
    Anonymous,
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
            Unread::Anonymous => CoreError::Unauthenticated,
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

/// `body` whole, if it ends within `limit` bytes and [`READ_WITHIN`], and
/// the budget has room.
pub async fn read(body: Body, limit: usize, budget: &BodyBudget) -> Result<WholeBody, Unread> {
    // A body longer than the whole budget could never be read: too long,
    // rather than refused for a busy server without end.
    let limit = limit.min(budget.total);
    match tokio::time::timeout(READ_WITHIN, gather(body, limit, budget)).await {
        Ok(read) => read,
        Err(_) => Err(Unread::BrokeOff(format!(
            "the body did not arrive within {} s",
            READ_WITHIN.as_secs()
        ))),
    }
}

async fn gather(body: Body, limit: usize, budget: &BodyBudget) -> Result<WholeBody, Unread> {
    let mut body = std::pin::pin!(body);
    // Grown by [`room_for`], exactly: what it holds of the budget is what
    // it holds, not a doubling's spare room.
    let mut buffer: Vec<u8> = Vec::new();
    let mut share: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| Unread::BrokeOff(innermost(&error)))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: nothing a handler here reads
        };
        let needed = buffer.len() + data.len();
        if needed > limit {
            return Err(Unread::TooLong { limit });
        }
        if needed > buffer.capacity() {
            let wanted = room_for(needed).min(limit);
            let held = share.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
            let more = u32::try_from(wanted.saturating_sub(held)).map_err(|_| Unread::Busy)?;
            if more > 0 {
                let granted = budget
                    .bytes
                    .clone()
                    .try_acquire_many_owned(more)
                    .map_err(|_| Unread::Busy)?;
                match &mut share {
                    Some(share) => share.merge(granted),
                    None => share = Some(granted),
                }
            }
            buffer.reserve_exact(wanted - buffer.len());
        }
        buffer.extend_from_slice(&data);
    }
    Ok(WholeBody {
        bytes: Bytes::from(buffer),
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

/// A handler's body read whole, within [`MAX_BODY`] and the signed-in
/// callers' budget (a handler's caller is known before its body is read:
/// see [`CallersBody`], and Coopr's headers); a handler takes `Result<WholeBody, Unread>` to answer a failure
/// in its dialect's own error body.
impl FromRequest<AppState> for WholeBody {
    type Rejection = Unread;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Unread> {
        read(request.into_body(), MAX_BODY, &state.bodies.signed_in).await
    }
}

/// A signed-in caller's body read whole, as [`WholeBody`]; an anonymous
/// caller's is not read at all ([`Unread::Anonymous`]), so that it holds
/// nothing of the budget where it could only be refused. (Coopr's callers
/// sign with headers of their own, not as a viewer: its bodies are
/// [`WholeBody`]s, read once the headers are checked.)
pub struct CallersBody(pub WholeBody);

impl FromRequest<AppState> for CallersBody {
    type Rejection = Unread;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Unread> {
        if matches!(
            request.extensions().get::<Viewer>(),
            Some(Viewer::Anonymous)
        ) {
            return Err(Unread::Anonymous);
        }
        Ok(Self(WholeBody::from_request(request, state).await?))
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
        assert_eq!(held, 100 << 10, "held for 100,000 bytes");
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
        // Each holds 432 KiB for its 384 KiB: a third does not fit in 1 MiB
        // beside two.
        let body = || chunked(6, 64 << 10);
        let first = read(body(), 1 << 20, &budget).await.unwrap();
        let _second = read(body(), 1 << 20, &budget).await.unwrap();
        let left = budget.available();
        assert_eq!(left, 160 << 10);
        let third = read(body(), 1 << 20, &budget).await;
        assert!(matches!(third, Err(Unread::Busy)));
        assert_eq!(budget.available(), left, "the refused body kept nothing");
        drop(first);
        assert!(read(body(), 1 << 20, &budget).await.is_ok());
    }

    #[tokio::test]
    async fn a_body_past_its_limit_is_too_long() {
        let budget = BodyBudget::new(1 << 20);
        let read = read(chunked(3, 1000), 2999, &budget).await;
        assert!(matches!(read, Err(Unread::TooLong { limit: 2999 })));
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn a_body_past_the_whole_budget_is_too_long_not_refused_for_ever() {
        let budget = BodyBudget::new(256 << 10);
        let read = read(chunked(5, 64 << 10), MAX_BODY, &budget).await;
        assert!(matches!(read, Err(Unread::TooLong { limit }) if limit == 256 << 10));
    }
}
