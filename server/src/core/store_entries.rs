//! How many files and folders a personal store may hold, and how deep.
//!
//! The quota counts bytes: without a cap on entries, empty files and
//! folders (and copies of folders of them, doubling at each round) would
//! cost nothing while they use up the shared disk's inodes and make every
//! count of the store's bytes a longer walk. Each new entry is admitted
//! here first, however it is made (WebDAV `PUT`, `MKCOL`, `COPY`, the Store
//! page), and refused past [`Limits::max_store_entries`] or
//! [`MAX_STORE_DEPTH`].
//!
//! Counting a store is a walk, so it is not done for each entry: the count
//! is kept per user and grown by each admission, and walked again once it
//! is [`RECOUNT_AFTER`] old (what other ways added is then seen), or before
//! a refusal, at most once a [`RECOUNT_REFUSED_AFTER`] so that a flood of
//! refused entries walks little, but always when the count may be high (so
//! that what the user deleted frees room at once).
//! A removal never lowers the count by itself: removing the same thing
//! twice would lower it twice. An admission is pending until its entry is
//! made or not ([`Admission`]); a walk adds the pending ones, which it may
//! not see yet (an object appears when its upload completes). A write over
//! an existing file is admitted as a new entry, since the file may be gone
//! when the write lands: the count may run high, never low, until the next
//! walk. Admissions of one user wait for each other on this server;
//! servers sharing a store (the object store) each keep their own count,
//! so together they may admit more than the cap between two walks.
//!
//! [`Limits::max_store_entries`]: super::Limits::max_store_entries

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::error::CoreError;

use super::Core;

/// The most folders a store's entry may be inside, the root aside, plus one
/// for itself: `a/b/c.iso` is 3 deep.
pub const MAX_STORE_DEPTH: usize = 32;

/// How long a count is trusted before the store is walked again.
const RECOUNT_AFTER: Duration = Duration::from_secs(60);

/// How long a count is trusted for a refusal.
const RECOUNT_REFUSED_AFTER: Duration = Duration::from_secs(1);

/// Why a new entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryRefused {
    #[error("a store holds at most {max} files and folders")]
    TooMany { max: u64 },
    #[error("a store's files and folders may be at most {MAX_STORE_DEPTH} deep")]
    TooDeep,
    #[error("cannot count the store's files: {0}")]
    Io(#[from] std::io::Error),
}

impl From<EntryRefused> for CoreError {
    fn from(refused: EntryRefused) -> Self {
        match refused {
            EntryRefused::TooMany { .. } => {
                CoreError::TooLarge(format!("{refused}; delete some to make room"))
            }
            EntryRefused::TooDeep => CoreError::invalid(refused.to_string()),
            EntryRefused::Io(error) => super::io_error(error),
        }
    }
}

/// One user's count of entries.
#[derive(Debug, Default)]
struct UserEntries {
    /// When the store was last walked (none yet: the count means nothing),
    /// held while admitting, so that admissions wait for each other.
    walked: tokio::sync::Mutex<Option<Instant>>,
    /// The entries as of the last walk, plus those admitted since.
    entries: AtomicU64,
    /// Admissions whose entries are not made yet, nor failed.
    pending: AtomicU64,
    /// Whether the count may be above what is there: something was
    /// removed, or written over, since the last walk.
    maybe_high: AtomicBool,
}

/// The counts of the stores this server has admitted entries to.
#[derive(Debug, Default)]
pub(super) struct EntryCounts {
    per_user: Mutex<HashMap<i64, Arc<UserEntries>>>,
}

impl EntryCounts {
    fn of(&self, user_id: i64) -> Arc<UserEntries> {
        let mut per_user = self
            .per_user
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        per_user.entry(user_id).or_default().clone()
    }
}

/// Whether an admitted entry is new, or a write over an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewEntry {
    /// Nothing is at its path: it must fit under the cap.
    New,
    /// It writes over a file, which it may end up creating anew (the file
    /// moved away meanwhile): it counts, but a full store may still
    /// replace its files.
    Over,
}

/// An admitted entry, until it is made ([`Admission::made`]); dropped
/// before, it was not made, and its room is given back.
#[derive(Debug)]
pub struct Admission {
    user: Arc<UserEntries>,
    settled: bool,
}

impl Admission {
    /// The entry is made: it counts from now on by being there.
    pub fn made(mut self) {
        self.settled = true;
        self.user.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.settled {
            self.user.pending.fetch_sub(1, Ordering::SeqCst);
            let _ = self
                .user
                .entries
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |entries| {
                    Some(entries.saturating_sub(1))
                });
        }
    }
}

/// Refuses an entry `depth` deep (see [`MAX_STORE_DEPTH`]).
pub fn check_store_depth(depth: usize) -> Result<(), EntryRefused> {
    if depth > MAX_STORE_DEPTH {
        return Err(EntryRefused::TooDeep);
    }
    Ok(())
}

impl Core {
    /// Admits a new entry to a user's store, `depth` deep, or refuses.
    pub async fn admit_store_entry(
        &self,
        user_id: i64,
        depth: usize,
        kind: NewEntry,
    ) -> Result<Admission, EntryRefused> {
        check_store_depth(depth)?;
        let max = self.limits.max_store_entries;
        let user = self.store_entries.of(user_id);
        let mut walked = user.walked.lock().await;
        let within =
            |walked: Option<Instant>, age: Duration| walked.is_some_and(|at| at.elapsed() < age);
        if !within(*walked, RECOUNT_AFTER) {
            *walked = Some(self.walk_store_entries(user_id, &user).await?);
        }
        // A write over a file may find the store full: it only needs the
        // store not to be past its cap.
        let fits = |entries: u64| match kind {
            NewEntry::New => entries < max,
            NewEntry::Over => entries <= max,
        };
        if !fits(user.entries.load(Ordering::SeqCst)) {
            if !within(*walked, RECOUNT_REFUSED_AFTER) || user.maybe_high.load(Ordering::SeqCst) {
                *walked = Some(self.walk_store_entries(user_id, &user).await?);
            }
            if !fits(user.entries.load(Ordering::SeqCst)) {
                return Err(EntryRefused::TooMany { max });
            }
        }
        user.entries.fetch_add(1, Ordering::SeqCst);
        user.pending.fetch_add(1, Ordering::SeqCst);
        if kind == NewEntry::Over {
            user.maybe_high.store(true, Ordering::SeqCst);
        }
        Ok(Admission {
            user: user.clone(),
            settled: false,
        })
    }

    /// Something was removed from a user's store: their next refusal walks
    /// the store again first.
    pub fn store_entry_removed(&self, user_id: i64) {
        self.store_entries
            .of(user_id)
            .maybe_high
            .store(true, Ordering::SeqCst);
    }

    /// Walks a user's store and sets its count: what the walk finds, and
    /// the admissions pending as it began (whose entries it may miss).
    async fn walk_store_entries(
        &self,
        user_id: i64,
        user: &UserEntries,
    ) -> Result<Instant, EntryRefused> {
        let began = Instant::now();
        user.maybe_high.store(false, Ordering::SeqCst);
        let pending = user.pending.load(Ordering::SeqCst);
        let stop_after = self.limits.max_store_entries;
        let found = self.personal.count_entries(user_id, stop_after).await?;
        user.entries
            .store(found.saturating_add(pending), Ordering::SeqCst);
        Ok(began)
    }
}
