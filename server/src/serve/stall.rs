//! How long the server waits on a client that has stopped: one that sends
//! no more of a request's body, or takes no more of a response. Each such
//! client holds what serves it (a download's chunks read ahead, an upload's
//! buffers and writer thread) for as long as it waits, so a few thousand of
//! them, or one script opening connections and never reading, would hold
//! the server's memory and threads without end. Like nginx's
//! `client_body_timeout` and `send_timeout`, the time counts only while the
//! server waits on the client, from the moment it started to wait; a slow
//! client that keeps moving is never cut off. A request's body is a
//! [`crate::stall::StallingBody`] that fails with [`client_stalled`], so
//! that whatever reads it (an upload) ends as it does for a client gone.

use std::time::Duration;

/// The error of a request's body whose client sent nothing for `limit`.
pub(super) fn client_stalled(limit: Duration) -> axum::BoxError {
    Box::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the client sent nothing more for {} s", limit.as_secs()),
    ))
}
