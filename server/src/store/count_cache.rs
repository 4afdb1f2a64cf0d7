//! How many images matched the catalog queries this server counted lately,
//! on PostgreSQL, where counting is most of what a page costs the database
//! (an index read whole: 10,000 entries take as long as the page itself).
//!
//! A count is kept with the catalog's version it was taken at (migration
//! 0017: every transaction that changes images, or a username, adds to it as
//! it commits). Each page of a query carries the version its own snapshot
//! read, so a kept count is used only when the page saw exactly the images
//! the count saw. Nothing is ever served stale, whichever server made a
//! change, and nothing has to be told: a page that finds the version moved
//! counts again.
//!
//! A kept count answers its statement and arguments, which hold the
//! caller's visibility: the same count for whoever sends the same query.
//! At most [`MOST_ENTRIES`] are kept, each for [`MOST_AGE`] at most (what
//! the version cannot tell, such as a database restored from a dump made
//! earlier with its triggers disabled, is thus bounded in time too), and
//! none for a query longer than [`LONGEST_KEY`] bytes.
//!
//! What anyone may notice: a page whose kept count the catalog outdated
//! counts after it, so it takes about twice as long as the pages around
//! it, which tells that some image changed, not which.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::sql::{Arg, Sql};

/// The most counts kept: a few hundred bytes each.
const MOST_ENTRIES: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// The longest a count is kept.
const MOST_AGE: Duration = Duration::from_secs(300);

/// The longest query kept, its text and arguments (a long `$in` list).
const LONGEST_KEY: usize = 2048;

/// The catalog's version as a statement read it (migration 0017).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CatalogVersion {
    /// The sum of the stripes: the changes committed.
    pub changes: i64,
    /// When the database server started, in microseconds since 1970.
    pub started: i64,
}

/// A count as it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Kept {
    /// The catalog's version the count saw.
    pub version: CatalogVersion,
    pub total: i64,
    /// Whether the catalog had moved on the last time this query was
    /// counted: its pages then ask for a count beside them rather than
    /// after them, as they did before anything was kept.
    pub moving: bool,
    counted_at: Instant,
}

impl Kept {
    pub fn new(version: CatalogVersion, total: i64, moving: bool) -> Self {
        Self {
            version,
            total,
            moving,
            counted_at: Instant::now(),
        }
    }
}

/// The kept counts, and how they served, for the metrics.
#[derive(Debug, Default)]
pub(super) struct CountCache {
    /// Made at the first count kept: a server on SQLite keeps none.
    entries: Mutex<Option<LruCache<Sql, Kept>>>,
    served: AtomicU64,
    counted: AtomicU64,
}

/// How often pages were answered with a kept count, and how often they
/// counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountFigures {
    pub served: u64,
    pub counted: u64,
}

/// What a query weighs as a key, about.
fn key_bytes(count: &Sql) -> usize {
    count.text.len()
        + count
            .args
            .iter()
            .map(|arg| match arg {
                Arg::Text(text) => 32 + text.len(),
                Arg::Int(_) | Arg::Bool(_) | Arg::Time(_) => 32,
            })
            .sum::<usize>()
}

impl CountCache {
    /// The count kept for `count`, if any and young enough.
    pub fn get(&self, count: &Sql) -> Option<Kept> {
        // Never hashed under the lock unless it may have been kept.
        if key_bytes(count) > LONGEST_KEY {
            return None;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let entries = entries.as_mut()?;
        let kept = *entries.get(count)?;
        if kept.counted_at.elapsed() > MOST_AGE {
            entries.pop(count);
            return None;
        }
        Some(kept)
    }

    /// Keeps what `count` counted.
    pub fn keep(&self, count: &Sql, kept: Kept) {
        self.counted.fetch_add(1, Ordering::Relaxed);
        if key_bytes(count) > LONGEST_KEY {
            return;
        }
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        entries
            .get_or_insert_with(|| LruCache::new(MOST_ENTRIES))
            .put(count.clone(), kept);
    }

    /// Notes a page answered with a kept count.
    pub fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    pub fn figures(&self) -> CountFigures {
        CountFigures {
            served: self.served.load(Ordering::Relaxed),
            counted: self.counted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(name: &str) -> Sql {
        Sql {
            text: "SELECT COUNT(*), v FROM images i WHERE i.name = $1".into(),
            args: vec![Arg::Text(name.into())],
            planned_per_values: false,
        }
    }

    const VERSION: CatalogVersion = CatalogVersion {
        changes: 7,
        started: 1,
    };

    fn kept() -> Kept {
        Kept::new(VERSION, 3, false)
    }

    #[test]
    fn a_count_answers_its_own_statement_and_arguments_only() {
        let cache = CountCache::default();
        let kept = kept();
        cache.keep(&count("a"), kept);
        assert_eq!(cache.get(&count("a")), Some(kept));
        assert_eq!(cache.get(&count("b")), None);
        let mut other_text = count("a");
        other_text.text.push_str(" AND i.public");
        assert_eq!(cache.get(&other_text), None);
    }

    #[test]
    fn a_long_query_is_not_kept_and_the_oldest_go_first() {
        let cache = CountCache::default();
        let long = count(&"x".repeat(LONGEST_KEY));
        cache.keep(&long, kept());
        assert_eq!(cache.get(&long), None);

        for n in 0..=MOST_ENTRIES.get() {
            cache.keep(&count(&n.to_string()), kept());
        }
        assert_eq!(cache.get(&count("0")), None);
        assert!(cache.get(&count("1")).is_some());
        assert_eq!(cache.figures().counted, MOST_ENTRIES.get() as u64 + 2);
    }

    #[test]
    fn a_count_is_kept_for_a_while_only() {
        let cache = CountCache::default();
        let mut old = kept();
        old.counted_at = Instant::now() - MOST_AGE - Duration::from_secs(1);
        cache.keep(&count("a"), old);
        assert_eq!(cache.get(&count("a")), None);
    }
}
