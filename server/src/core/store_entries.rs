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
//!
//! Nothing lowers the count but a walk: a removal asked twice would lower
//! it twice, and an admission whose request was cut off may have made its
//! entry all the same. A new entry's admission is pending until it is made
//! ([`Admission`]); a walk adds the pending ones, which it may not see yet
//! (an object appears when its upload completes), and a walk that overlaps
//! a move, which it may have missed entries of, only raises the count. A
//! write over an existing file adds nothing, unless a move overlapped it
//! (the file may have been moved away before the write landed, which then
//! made it anew): so a store at its cap may replace its files without a
//! walk each time. A move in an object store (copies, then deletes) that
//! did not complete, or that another overlapped (both may copy the same
//! file), counts as an entry. The count may run high, never low, until
//! the next walk, but for a write over a file deleted before it lands,
//! which makes the file anew: a store may end up past its cap by as many
//! such writes as were under way at once.
//!
//! Admissions of one user wait for each other on this server. Servers
//! sharing a store (the object store) each keep their own count, so
//! together they may admit more than the cap between two walks; there, a
//! write over a file counts as an entry (until the next walk, which the
//! next refusal takes), since a move on another server is not seen here.
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
    /// New entries admitted but not made yet, nor failed: a walk may not
    /// see them (an object appears when its upload completes).
    pending: AtomicU64,
    /// Whether the count may be above what is there: something was
    /// removed, or counted though it may not have been made, since the
    /// last walk.
    maybe_high: AtomicBool,
    /// Moves under way, and moves begun: a walk that overlaps one may miss
    /// what it moves (from a folder not walked yet into one walked), and
    /// so never lowers the count.
    moving: AtomicU64,
    moves: AtomicU64,
    /// Shared while an entry is made at the depth its path has, exclusive
    /// while a folder is moved: a move measures what is below the folder
    /// with nothing made there meanwhile at the depth it had before.
    depths: Arc<tokio::sync::RwLock<()>>,
}

/// The counts of the stores this server has admitted entries to.
#[derive(Debug, Default)]
pub(super) struct EntryCounts {
    per_user: Mutex<HashMap<i64, Arc<UserEntries>>>,
    /// Walks begun, for the metrics.
    walks: AtomicU64,
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

/// The user's moves, as a caller saw them before it looked whether a path
/// holds a file ([`Core::store_moves_seen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovesSeen {
    /// How many had begun.
    begun: u64,
    /// Whether one was under way.
    under_way: bool,
}

/// Whether an admitted entry is new, a write over an existing file, or a
/// move's destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewEntry {
    /// Nothing is at its path: it must fit under the cap.
    New,
    /// It writes over a file the caller found there after it saw the
    /// moves: a full store may replace its files. It counts only if a move
    /// was under way or began before it settled (made, or dropped), since
    /// the file may have been moved away meanwhile and the write then made
    /// it anew; in a shared store, always.
    Over(MovesSeen),
    /// A move's destination, in a store whose moves are copies then
    /// deletes, seen before the move began: it counts unless made (a move
    /// that failed or was cut off midway may leave files twice) and no
    /// other move overlapped it (two moves of one file may both copy it).
    Moved(MovesSeen),
}

/// An admitted entry, until it is made ([`Admission::made`]). A new entry
/// dropped before may or may not have been made (a request cut off after
/// its file was placed): its room is not given back, but the next refusal
/// walks the store again first. Others count, or not, as [`NewEntry`] says.
#[derive(Debug)]
pub struct Admission {
    user: Arc<UserEntries>,
    kind: NewEntry,
    /// Whether it has counted already (a write over a file in a shared store).
    counted: bool,
    settled: bool,
}

impl Admission {
    /// The entry is made: it counts from now on by being there.
    pub fn made(mut self) {
        self.settle(true);
    }

    fn settle(&mut self, made: bool) {
        if self.settled {
            return;
        }
        self.settled = true;
        let user = &self.user;
        let counts = match self.kind {
            NewEntry::New => {
                user.pending.fetch_sub(1, Ordering::SeqCst);
                // Made or not (a request cut off after its file was
                // placed): the count may be high.
                if !made {
                    user.maybe_high.store(true, Ordering::SeqCst);
                }
                false
            }
            // Made or not, it replaced the file or made it anew.
            NewEntry::Over(seen) => {
                seen.under_way || user.moves.load(Ordering::SeqCst) != seen.begun
            }
            // Its own move is one of those begun since it was seen.
            NewEntry::Moved(seen) => {
                !made || seen.under_way || user.moves.load(Ordering::SeqCst) > seen.begun + 1
            }
        };
        if counts && !self.counted {
            user.entries.fetch_add(1, Ordering::SeqCst);
            user.maybe_high.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.settle(false);
    }
}

/// A move under way in a user's store, until dropped.
#[derive(Debug)]
pub struct Moving {
    user: Arc<UserEntries>,
}

impl Drop for Moving {
    fn drop(&mut self) {
        self.user.moving.fetch_sub(1, Ordering::SeqCst);
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
            NewEntry::Over(_) | NewEntry::Moved(_) => entries <= max,
        };
        if !fits(user.entries.load(Ordering::SeqCst)) {
            if !within(*walked, RECOUNT_REFUSED_AFTER) || user.maybe_high.load(Ordering::SeqCst) {
                *walked = Some(self.walk_store_entries(user_id, &user).await?);
            }
            if !fits(user.entries.load(Ordering::SeqCst)) {
                return Err(EntryRefused::TooMany { max });
            }
        }
        // The others count when settled, if they may have added one; but
        // a write over a file in a shared store counts now.
        let counted = match kind {
            NewEntry::New => {
                user.pending.fetch_add(1, Ordering::SeqCst);
                true
            }
            NewEntry::Over(_) => self.personal.shared(),
            NewEntry::Moved(_) => false,
        };
        if counted {
            user.entries.fetch_add(1, Ordering::SeqCst);
        }
        if counted && kind != NewEntry::New {
            user.maybe_high.store(true, Ordering::SeqCst);
        }
        Ok(Admission {
            user: user.clone(),
            kind,
            counted,
            settled: false,
        })
    }

    /// The right to make an entry in a user's store at the depth its path
    /// has now: no move changes that depth until it is dropped.
    pub async fn store_depths_kept(&self, user_id: i64) -> tokio::sync::OwnedRwLockReadGuard<()> {
        self.store_entries
            .of(user_id)
            .depths
            .clone()
            .read_owned()
            .await
    }

    /// The right to move entries in a user's store: nothing is made in it
    /// until it is dropped (nor while it waits for those being made).
    pub async fn store_depths_changing(
        &self,
        user_id: i64,
    ) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.store_entries
            .of(user_id)
            .depths
            .clone()
            .write_owned()
            .await
    }

    /// A move begins in a user's store; it ends when the answer is dropped.
    pub fn store_move_begins(&self, user_id: i64) -> Moving {
        let user = self.store_entries.of(user_id);
        // Under way before begun: see `store_moves_seen`.
        user.moving.fetch_add(1, Ordering::SeqCst);
        user.moves.fetch_add(1, Ordering::SeqCst);
        Moving { user }
    }

    /// The user's moves as they are now, to be seen before looking whether
    /// a path holds a file to write over ([`NewEntry::Over`]), or before a
    /// move begins ([`NewEntry::Moved`]).
    pub fn store_moves_seen(&self, user_id: i64) -> MovesSeen {
        let user = self.store_entries.of(user_id);
        // Begun first: a move that begins between the two reads is under
        // way by the second, or begun after the first.
        let begun = user.moves.load(Ordering::SeqCst);
        let under_way = user.moving.load(Ordering::SeqCst) > 0;
        MovesSeen { begun, under_way }
    }

    /// How many times this server has walked a store to count its entries.
    pub fn store_walks(&self) -> u64 {
        self.store_entries.walks.load(Ordering::Relaxed)
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
    /// the admissions pending as it began (whose entries it may miss);
    /// answers when it ended.
    async fn walk_store_entries(
        &self,
        user_id: i64,
        user: &UserEntries,
    ) -> Result<Instant, EntryRefused> {
        // A removal during the walk sets the flag again; a walk that fails
        // or is dropped puts it back.
        let mut flag = KeptFlag {
            flag: &user.maybe_high,
            was: user.maybe_high.swap(false, Ordering::SeqCst),
        };
        let moves = user.moves.load(Ordering::SeqCst);
        let moving = user.moving.load(Ordering::SeqCst);
        let pending = user.pending.load(Ordering::SeqCst);
        self.store_entries.walks.fetch_add(1, Ordering::Relaxed);
        let stop_after = self.limits.max_store_entries;
        let found = self.personal.count_entries(user_id, stop_after).await?;
        let counted = found.saturating_add(pending);
        let overlapped = moving > 0 || user.moves.load(Ordering::SeqCst) != moves;
        if overlapped {
            user.entries.fetch_max(counted, Ordering::SeqCst);
            user.maybe_high.store(true, Ordering::SeqCst);
        } else {
            user.entries.store(counted, Ordering::SeqCst);
        }
        flag.was = false;
        // From its end: a walk slower than the refusals' pace must not
        // have every refusal walk again.
        Ok(Instant::now())
    }
}

/// A flag taken down for a walk, put back unless the walk completes.
struct KeptFlag<'a> {
    flag: &'a AtomicBool,
    was: bool,
}

impl Drop for KeptFlag<'_> {
    fn drop(&mut self) {
        if self.was {
            self.flag.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Limits;

    /// A core whose stores hold at most two entries, and user 1's store,
    /// full: two files.
    async fn full_store(dir: &std::path::Path) -> Core {
        let limits = Limits {
            max_store_entries: 2,
            ..Limits::default()
        };
        let core = crate::core::test_core(dir, limits).await;
        let store = dir.join("personal").join("1");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join("a"), b"a").unwrap();
        std::fs::write(store.join("b"), b"b").unwrap();
        core
    }

    /// An object store's move of a file, as `QuotaFs` admits and marks it.
    async fn moved(core: &Core) -> (Admission, Moving) {
        let seen = core.store_moves_seen(1);
        let admission = core.admit_store_entry(1, 1, NewEntry::Moved(seen)).await;
        (admission.unwrap(), core.store_move_begins(1))
    }

    /// A write over one of user 1's files, as `QuotaFs` admits it.
    async fn written_over(core: &Core) {
        let seen = core.store_moves_seen(1);
        let admission = core.admit_store_entry(1, 1, NewEntry::Over(seen)).await;
        admission.unwrap().made();
    }

    #[tokio::test]
    async fn moves_one_after_another_add_nothing_but_overlapping_ones_count() {
        let dir = tempfile::tempdir().unwrap();
        let core = full_store(dir.path()).await;

        // The first admission walks; a full store still takes writes over
        // its files and completed moves, without walking again.
        written_over(&core).await;
        let walks = core.store_walks();
        for _ in 0..3 {
            let (admission, moving) = moved(&core).await;
            admission.made();
            drop(moving);
            written_over(&core).await;
        }
        assert_eq!(core.store_walks(), walks);

        // Two moves at once (both may copy one file): each counts, and the
        // next admission walks the store before it lets a write in.
        let (first, first_moving) = moved(&core).await;
        let (second, second_moving) = moved(&core).await;
        first.made();
        second.made();
        drop((first_moving, second_moving));
        written_over(&core).await;
        assert_eq!(core.store_walks(), walks + 1);

        // A move that did not complete counts too.
        let (admission, moving) = moved(&core).await;
        drop((admission, moving));
        written_over(&core).await;
        assert_eq!(core.store_walks(), walks + 2);

        // Full all along: a new entry is refused.
        let refused = core.admit_store_entry(1, 1, NewEntry::New).await;
        assert!(matches!(refused, Err(EntryRefused::TooMany { max: 2 })));
    }
}
