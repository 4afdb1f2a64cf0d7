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
//! is kept per user, grown by each admission and lowered by each removal
//! through Depot, and walked again once it
//! is [`RECOUNT_AFTER`] old (files removed or added by other ways are then
//! seen), or before a refusal (so that what the user deleted frees room at
//! once), at most once a [`RECOUNT_REFUSED_AFTER`] so that a flood of
//! refused entries walks nothing. Admissions of one user wait for each
//! other on this server. The cap may be passed by a little: a walk misses
//! the entries admitted but still being made as it runs, and servers
//! sharing a store (the object store) each keep their own count, so
//! together they may admit more between two walks.
//!
//! [`Limits::max_store_entries`]: super::Limits::max_store_entries

use std::collections::HashMap;
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

/// One user's count of entries, and when it was last walked.
#[derive(Debug)]
struct Count {
    entries: u64,
    walked: Instant,
}

/// The counts of the stores this server has admitted entries to.
#[derive(Debug, Default)]
pub(super) struct EntryCounts {
    per_user: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<Option<Count>>>>>,
}

impl EntryCounts {
    fn of(&self, user_id: i64) -> Arc<tokio::sync::Mutex<Option<Count>>> {
        let mut per_user = self
            .per_user
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        per_user.entry(user_id).or_default().clone()
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
    /// Admits `added` new entries to a user's store, the deepest of them
    /// `depth` deep, or refuses. An admission whose entries were not made
    /// after all is given back with [`Core::give_back_store_entries`].
    pub async fn admit_store_entries(
        &self,
        user_id: i64,
        added: u64,
        depth: usize,
    ) -> Result<(), EntryRefused> {
        check_store_depth(depth)?;
        let max = self.limits.max_store_entries;
        let count = self.store_entries.of(user_id);
        let mut count = count.lock().await;
        let fresh = |count: &Option<Count>, age: Duration| {
            count
                .as_ref()
                .is_some_and(|count| count.walked.elapsed() < age)
        };
        if !fresh(&count, RECOUNT_AFTER) {
            *count = Some(self.walk_store_entries(user_id).await?);
        }
        let over = |count: &Option<Count>| {
            count
                .as_ref()
                .is_none_or(|count| count.entries.saturating_add(added) > max)
        };
        if over(&count) && !fresh(&count, RECOUNT_REFUSED_AFTER) {
            *count = Some(self.walk_store_entries(user_id).await?);
        }
        match count.as_mut() {
            Some(count) if count.entries.saturating_add(added) <= max => {
                count.entries += added;
                Ok(())
            }
            _ => Err(EntryRefused::TooMany { max }),
        }
    }

    /// Gives back entries admitted but not made, or removed.
    pub async fn give_back_store_entries(&self, user_id: i64, added: u64) {
        let counted = self.store_entries.of(user_id);
        let mut counted = counted.lock().await;
        if let Some(count) = counted.as_mut() {
            count.entries = count.entries.saturating_sub(added);
        }
    }

    async fn walk_store_entries(&self, user_id: i64) -> Result<Count, EntryRefused> {
        let walked = Instant::now();
        let stop_after = self.limits.max_store_entries;
        let entries = self.personal.count_entries(user_id, stop_after).await?;
        Ok(Count { entries, walked })
    }
}
