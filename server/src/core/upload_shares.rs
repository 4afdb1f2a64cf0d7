//! Each user's share of the server's upload places.
//!
//! The blob store takes in at most `UPLOADS_AT_ONCE` uploads at once
//! (`crate::blob`), however slowly each is sent. Without shares, one account
//! opening that many uploads and sending a byte a minute would leave every
//! other user's upload, and every sync, waiting. So a user's uploads take
//! one of their [`PER_USER`] places here before one of the server's: past
//! them, their next upload is refused at once (429, to try again once one
//! of theirs ended), and the others still find room. It does not wait: a
//! request waiting would hold its connection, one of the server's limited
//! number, for as long as the user's other uploads last.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use app::error::CoreError;
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
pub struct SharePlace {
    _permit: OwnedSemaphorePermit,
}

impl UploadShares {
    /// One of `user`'s places, if one is free.
    pub(super) fn take(&self, user: i64) -> Result<SharePlace, CoreError> {
        match self.share_of(user).try_acquire_owned() {
            Ok(permit) => Ok(SharePlace { _permit: permit }),
            Err(_) => Err(CoreError::Throttled {
                what: format!("uploads in progress from this account (at most {PER_USER})"),
                retry_after: 1,
            }),
        }
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
    use super::*;

    /// A user past their share is refused until one of their own uploads
    /// ends; another user is not.
    #[test]
    fn a_user_past_their_share_is_refused_until_one_of_theirs_ends() {
        let shares = UploadShares::default();
        let mut alices: Vec<_> = (0..PER_USER).map(|_| shares.take(1).unwrap()).collect();
        let refused = shares.take(1).unwrap_err();
        assert_eq!(refused.http_status(), 429, "{refused}");
        assert!(shares.take(2).is_ok(), "another user was refused");
        alices.pop();
        assert!(shares.take(1).is_ok());
    }

    /// Shares nothing holds are forgotten, so the map stays bounded however
    /// many users upload over time.
    #[test]
    fn shares_no_upload_holds_are_forgotten() {
        let shares = UploadShares::default();
        for user in 0..(3 * KEPT as i64) {
            drop(shares.take(user));
        }
        let kept = shares.shares.lock().unwrap().len();
        assert!(kept <= KEPT + 1, "{kept}");
    }
}
