//! How long the server waits on a peer that has stopped, counted only
//! while it waits: a client that sends no more of a request's body or takes
//! no more of a response (`crate::serve`), an object store that sends no
//! more of an answer (`crate::blob::object`). A peer that is slow but keeps
//! moving is never cut off.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// A wait on the other side, timed. The timer is moved only when it fires early
/// (it was set for an earlier wait), at most once per `limit`: not for each
/// of the many short waits of a busy transfer.
pub(crate) struct Stall {
    limit: Duration,
    /// When the server started to wait, if it waits.
    since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Stall {
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            limit,
            since: None,
            timer: None,
        }
    }

    /// The other side sent or took bytes: no longer waiting.
    pub(crate) fn moved(&mut self) {
        self.since = None;
    }

    /// The other side has not moved: ready once the server has waited `limit`
    /// for it since it started to wait; else `cx` is woken when it has.
    pub(crate) fn poll_too_long(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = *self.since.get_or_insert_with(Instant::now) + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if Instant::now() >= deadline {
                return Poll::Ready(());
            }
            if timer.is_elapsed() {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// A body that fails, with the error `timed_out` makes of the limit, once
/// the other side has sent none of it for the limit while it was being read
/// (see [`Stall`]), so that whatever reads it ends as it does for a peer
/// gone, and lets go of what it held.
pub(crate) struct StallingBody<B: Body> {
    body: B,
    stall: Stall,
    timed_out: fn(Duration) -> B::Error,
}

impl<B: Body> StallingBody<B> {
    pub(crate) fn new(body: B, limit: Duration, timed_out: fn(Duration) -> B::Error) -> Self {
        Self {
            body,
            stall: Stall::new(limit),
            timed_out,
        }
    }
}

impl<B> Body for StallingBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stall.moved();
                Poll::Ready(frame)
            }
            Poll::Pending => match this.stall.poll_too_long(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err((this.timed_out)(this.stall.limit)))),
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

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    /// How long `stall` makes a task wait, from now, before it says the
    /// peer has stalled (the task is woken for it, nothing else happening).
    async fn waited(stall: &mut Stall) -> Duration {
        let started = Instant::now();
        let waiting = poll_fn(|cx| stall.poll_too_long(cx));
        tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("the waiter is woken");
        started.elapsed()
    }

    /// A wait counts from its own start, whatever came before: the timer set
    /// for an earlier wait does not end a later one early, nor does a long
    /// idle before it (a connection kept alive, then a download).
    #[tokio::test]
    async fn a_wait_counts_from_its_start() {
        let limit = Duration::from_millis(300);
        let mut stall = Stall::new(limit);
        assert!(waited(&mut stall).await >= limit);
        stall.moved();
        tokio::time::sleep(limit * 3).await;
        assert!(waited(&mut stall).await >= limit, "after an idle");
        stall.moved();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(stall.poll_too_long(&mut cx).is_pending());
        tokio::time::sleep(limit / 2).await;
        stall.moved();
        assert!(waited(&mut stall).await >= limit, "after a short wait");
    }
}
