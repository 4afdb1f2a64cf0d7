//! How long the server waits on a client that has stopped: one that sends
//! no more of a request's body, or takes no more of a response. Each such
//! client holds what serves it (a download's chunks read ahead, an upload's
//! buffers and writer thread) for as long as it waits, so a few thousand of
//! them, or one script opening connections and never reading, would hold
//! the server's memory and threads without end. Like nginx's
//! `client_body_timeout` and `send_timeout`, the time counts only while the
//! server waits on the client, from the moment it started to wait; a slow
//! client that keeps moving is never cut off.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::stall::Stall;

/// A request's body that fails with [`std::io::ErrorKind::TimedOut`] once
/// the client has sent none of it for the limit, so that whatever reads it
/// (an upload) ends as it does for a client gone, and lets go of what it
/// held.
pub(super) struct StallingBody<B> {
    body: B,
    stall: Stall,
}

impl<B> StallingBody<B> {
    pub(super) fn new(body: B, limit: Duration) -> Self {
        Self {
            body,
            stall: Stall::new(limit),
        }
    }
}

impl<B> Body for StallingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall.moved();
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => match this.stall.poll_too_long(cx) {
                Poll::Ready(()) => {
                    let seconds = this.stall.limit().as_secs();
                    Poll::Ready(Some(Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the client sent nothing more for {seconds} s"),
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
