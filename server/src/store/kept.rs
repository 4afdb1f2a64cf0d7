//! What this server read of the catalog lately: the totals of the queries
//! it counted (counting is an index read whole: 10,000 entries take as long
//! as a page) and the pages it read (a hundred rows of 43 columns to send
//! and decode, against one small row for the version).
//!
//! Each is kept with the catalog's version it was read at. On PostgreSQL
//! (migration 0017, whose comment names this module's earlier name,
//! `count_cache`) every transaction that changes images, or a username,
//! adds to it as it commits; on SQLite (migration 0016) every change of an
//! image or a user adds to its one row. A kept page or total answers only a
//! request that finds the catalog still at that version, read by a page or
//! by a query of the version alone (on SQLite, in the same snapshot as the
//! page): two snapshots that read the same version saw the same images.
//! Whichever server or script made a change, nothing is served stale and
//! nothing has to be told, with two exceptions the version cannot see,
//! which [`MOST_AGE`] bounds: changes made with the triggers disabled (a
//! restore with `--disable-triggers`, a SQLite file swapped for a copy
//! under a running server), and commits a crash lost after they were
//! acknowledged (`synchronous_commit = off`, which Depot's durability does
//! not allow either), after which the sum can grow back to one already seen
//! without the server having restarted.
//!
//! What is kept answers its statement and arguments, which hold the
//! caller's visibility: the same answer for whoever sends the same query.
//! Each cache holds at most so many bytes, the least recently used going
//! first; nothing is kept longer than [`MOST_AGE`] (what the version cannot
//! tell, such as a database restored from a dump made earlier with its
//! triggers disabled, is thus bounded in time too), and nothing for a query
//! longer than [`LONGEST_KEY`] bytes.
//!
//! What anyone may notice: a request that finds the catalog moved reads
//! after asking, so it takes longer than the ones around it, which tells
//! that some image changed, not which; and a page answered quickly tells
//! that someone with the same view of the catalog (the same rights) asked
//! for it in the last minutes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use super::sql::{Arg, Sql};

/// The longest anything is kept.
const MOST_AGE: Duration = Duration::from_secs(300);

/// The longest query kept, its text and arguments (a long `$in` list).
const LONGEST_KEY: usize = 2048;

/// What an entry costs beside its key and value: the cache's node, its
/// slot in the hash table, the [`Kept`] around the value.
const ENTRY_BYTES: usize = 160;

/// The catalog's version as a statement read it (migration 0017).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CatalogVersion {
    /// The sum of the stripes (SQLite's one row): the changes committed.
    pub changes: i64,
    /// When the database server started, in microseconds since 1970 (0 on
    /// SQLite, which the server itself runs).
    pub started: i64,
}

/// A value as it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Kept<T> {
    /// The catalog's version the value was read at.
    pub version: CatalogVersion,
    pub value: T,
    /// Whether the catalog had moved on the last time this query was read:
    /// it is then read again without asking first, as it was before
    /// anything was kept, until it holds still.
    pub moving: bool,
    read_at: Instant,
}

impl<T> Kept<T> {
    pub fn new(version: CatalogVersion, value: T, moving: bool) -> Self {
        Self {
            version,
            value,
            moving,
            read_at: Instant::now(),
        }
    }
}

/// Kept values of one kind, and how they served, for the metrics.
#[derive(Debug)]
pub(super) struct KeptCache<T> {
    /// Made at the first value kept: a server whose SQLite database is in
    /// memory keeps none.
    entries: Mutex<Option<Entries<T>>>,
    /// The most bytes kept, keys and values.
    most_bytes: usize,
    served: AtomicU64,
    read: AtomicU64,
}

#[derive(Debug)]
struct Entries<T> {
    lru: LruCache<Sql, (Kept<T>, usize)>,
    bytes: usize,
}

/// How often requests were answered with a kept value, and how often the
/// database was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeptFigures {
    pub served: u64,
    pub read: u64,
}

/// What a query weighs as a key, about.
fn key_bytes(key: &Sql) -> usize {
    key.text.len()
        + key
            .args
            .iter()
            .map(|arg| match arg {
                Arg::Text(text) => 32 + text.len(),
                Arg::Int(_) | Arg::Bool(_) | Arg::Time(_) => 32,
            })
            .sum::<usize>()
}

impl<T: Clone> KeptCache<T> {
    pub fn new(most_bytes: usize) -> Self {
        Self {
            entries: Mutex::new(None),
            most_bytes,
            served: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Entries<T>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// What is kept for `key`, if anything and young enough.
    pub fn get(&self, key: &Sql) -> Option<Kept<T>> {
        // Never hashed under the lock unless it may have been kept.
        if key_bytes(key) > LONGEST_KEY {
            return None;
        }
        let mut entries = self.lock();
        let entries = entries.as_mut()?;
        let (kept, _) = entries.lru.get(key)?;
        if kept.read_at.elapsed() <= MOST_AGE {
            return Some(kept.clone());
        }
        if let Some((_, bytes)) = entries.lru.pop(key) {
            entries.bytes -= bytes;
        }
        None
    }

    /// Keeps what was read for `key`, a value of about `value_bytes`
    /// made by `kept` only if it is to be kept: not if it alone would take
    /// more than a quarter of the cache.
    pub fn keep(&self, key: &Sql, value_bytes: usize, kept: impl FnOnce() -> Kept<T>) {
        let key_bytes = key_bytes(key);
        if key_bytes > LONGEST_KEY {
            return;
        }
        let bytes = ENTRY_BYTES + key_bytes + value_bytes;
        if bytes > self.most_bytes / 4 {
            return;
        }
        let kept = kept();
        let mut entries = self.lock();
        let entries = entries.get_or_insert_with(|| Entries {
            lru: LruCache::unbounded(),
            bytes: 0,
        });
        if let Some((_, (_, replaced))) = entries.lru.push(key.clone(), (kept, bytes)) {
            entries.bytes -= replaced;
        }
        entries.bytes += bytes;
        while entries.bytes > self.most_bytes {
            let Some((_, (_, dropped))) = entries.lru.pop_lru() else {
                break;
            };
            entries.bytes -= dropped;
        }
    }

    /// Notes a value read from the database.
    pub fn read(&self) {
        self.read.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes a request answered with a kept value.
    pub fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    pub fn figures(&self) -> KeptFigures {
        KeptFigures {
            served: self.served.load(Ordering::Relaxed),
            read: self.read.load(Ordering::Relaxed),
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

    fn kept() -> Kept<i64> {
        Kept::new(VERSION, 3, false)
    }

    fn cache(most_bytes: usize) -> KeptCache<i64> {
        KeptCache::new(most_bytes)
    }

    fn keep(cache: &KeptCache<i64>, key: &Sql, kept: Kept<i64>) {
        cache.read();
        cache.keep(key, 8, || kept);
    }

    #[test]
    fn a_value_answers_its_own_statement_and_arguments_only() {
        let cache = cache(1 << 20);
        let kept = kept();
        keep(&cache, &count("a"), kept);
        assert_eq!(cache.get(&count("a")), Some(kept));
        assert_eq!(cache.get(&count("b")), None);
        let mut other_text = count("a");
        other_text.text.push_str(" AND i.public");
        assert_eq!(cache.get(&other_text), None);
    }

    #[test]
    fn a_long_query_is_not_kept_and_the_oldest_go_first() {
        let cache = cache(64 << 10);
        let long = count(&"x".repeat(LONGEST_KEY));
        keep(&cache, &long, kept());
        assert_eq!(cache.get(&long), None);

        let each = ENTRY_BYTES + key_bytes(&count("100")) + 8;
        let fit = (64 << 10) / each;
        for n in 100..100 + fit + 1 {
            keep(&cache, &count(&n.to_string()), kept());
        }
        assert_eq!(cache.get(&count("100")), None, "kept past the cache's size");
        assert!(cache.get(&count("101")).is_some());
        assert!(cache.get(&count(&(100 + fit).to_string())).is_some());
        assert_eq!(cache.figures().read, fit as u64 + 2);
        assert!(cache.lock().as_ref().unwrap().bytes <= 64 << 10);
    }

    #[test]
    fn a_value_heavier_than_a_quarter_of_the_cache_is_not_kept() {
        let cache = KeptCache::<Vec<u8>>::new(64 << 10);
        let big = vec![0; 16 << 10];
        cache.keep(&count("big"), big.len(), || unreachable!("made, not kept"));
        assert_eq!(cache.get(&count("big")), None);
        let small = vec![0; 8 << 10];
        cache.keep(&count("small"), small.len(), || {
            Kept::new(VERSION, small, false)
        });
        assert!(cache.get(&count("small")).is_some());
    }

    #[test]
    fn a_value_kept_again_replaces_its_weight() {
        let cache = cache(64 << 10);
        for _ in 0..1000 {
            keep(&cache, &count("a"), kept());
        }
        let entries = cache.lock();
        let entries = entries.as_ref().unwrap();
        assert_eq!(entries.lru.len(), 1);
        assert_eq!(entries.bytes, ENTRY_BYTES + key_bytes(&count("a")) + 8);
    }

    #[test]
    fn a_value_is_kept_for_a_while_only() {
        let cache = cache(1 << 20);
        let mut old = kept();
        old.read_at = Instant::now() - MOST_AGE - Duration::from_secs(1);
        keep(&cache, &count("a"), old);
        assert_eq!(cache.get(&count("a")), None);
        assert_eq!(cache.lock().as_ref().unwrap().bytes, 0);
    }
}
