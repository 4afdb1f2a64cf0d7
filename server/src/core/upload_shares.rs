//! Each user's share of the server's upload places.
//!
//! The blob store takes in at most `UPLOADS_AT_ONCE` uploads at once
//! (`crate::blob`), however slowly each is sent. Without shares, one account
//! opening that many uploads and sending a byte a minute would leave every
//! other user's upload, and every sync, waiting. So a user's uploads take
//! one of their [`PER_USER`] places here before one of the server's: past
//! them, their next upload waits for one of their own to end, and the
//! others still find room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A user's uploads taken in at once, at most, on one server.
pub(super) const PER_USER: usize = 8;

/// Shares kept before those no upload holds any more are dropped.
const KEPT: usize = 1024;

/// Every user's share, while an upload of theirs holds or waits for one.
#[derive(Debug, Default)]
pub(super) struct UploadShares {
    shares: Mutex<HashMap<i64, Weak<Semaphore>>>,
}

/// One of a user's places, held while their upload is taken in.
#[derive(Debug)]
pub(super) struct SharePlace {
    _permit: OwnedSemaphorePermit,
}

impl UploadShares {
    /// One of `user`'s places, once one is free.
    pub(super) async fn take(&self, user: i64) -> SharePlace {
        let share = self.share_of(user);
        let permit = share
            .acquire_owned()
            .await
            .expect("a share's semaphore is never closed");
        SharePlace { _permit: permit }
    }

    fn share_of(&self, user: i64) -> Arc<Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(share) = shares.get(&user).and_then(Weak::upgrade) {
            return share;
        }
        if shares.len() >= KEPT {
            shares.retain(|_, share| share.strong_count() > 0);
        }
        let share = Arc::new(Semaphore::new(PER_USER));
        shares.insert(user, Arc::downgrade(&share));
        share
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A user past their share waits for one of their own uploads to end;
    /// another user does not wait at all.
    #[tokio::test]
    async fn a_user_past_their_share_waits_for_their_own() {
        let shares = UploadShares::default();
        let mut alices = Vec::new();
        for _ in 0..PER_USER {
            alices.push(shares.take(1).await);
        }
        let a_while = Duration::from_millis(200);
        let mut next = std::pin::pin!(shares.take(1));
        assert!(tokio::time::timeout(a_while, &mut next).await.is_err());
        let bobs = tokio::time::timeout(a_while, shares.take(2)).await;
        assert!(bobs.is_ok(), "another user waited");
        alices.pop();
        assert!(tokio::time::timeout(a_while, next).await.is_ok());
    }

    /// Shares nothing holds are forgotten, so the map stays bounded however
    /// many users upload over time.
    #[tokio::test]
    async fn shares_no_upload_holds_are_forgotten() {
        let shares = UploadShares::default();
        for user in 0..(3 * KEPT as i64) {
            drop(shares.take(user).await);
        }
        let kept = shares.shares.lock().unwrap().len();
        assert!(kept <= KEPT + 1, "{kept}");
    }
}
