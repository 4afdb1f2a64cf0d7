//! Turns at SQLite's write lock. New records are written by one thread in
//! groups ([`super::writer`]); every other write (a change to a record, a
//! session, a job taken) goes through sqlx's pool and must find the lock
//! free between two groups. SQLite's own busy handler sleeps in growing
//! steps, up to 100 ms each, and only gets the lock if it happens to be free
//! at the moment it wakes: under a steady stream of new records, a change
//! waited one to two seconds (the catalog benchmark's "a record changed
//! meanwhile"). So the pool's connections poll often instead, and say that
//! they wait; the group writer, seeing that, leaves the lock free a moment
//! before its next group.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// How long a connection sleeps between two tries at the lock.
const POLL: Duration = Duration::from_micros(500);

/// How long a connection waits for the lock in all before its statement
/// fails as busy (SQLite's busy timeout, as before).
const TIMEOUT: Duration = Duration::from_secs(10);

/// How long the group writer leaves the lock free for a connection that
/// waits: two of its tries.
const GIVE_WAY: Duration = Duration::from_millis(1);

/// A wait this recent is still going on: a waiting connection tries again
/// every `POLL`.
const STILL_WAITING: Duration = Duration::from_millis(2);

/// The moment the times below count from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// When a pool connection last found the lock taken, in microseconds
/// since `EPOCH` (0: never).
static LAST_WAIT: AtomicU64 = AtomicU64::new(0);

fn now_micros() -> u64 {
    // At least 1, so that a wait is never taken for "never".
    (EPOCH.elapsed().as_micros() as u64).max(1)
}

/// Whether a pool connection is waiting for the write lock now.
pub(super) fn someone_waits() -> bool {
    waits(LAST_WAIT.load(Ordering::Relaxed), now_micros())
}

/// Whether a wait last seen at `last` still goes on at `now`.
fn waits(last: u64, now: u64) -> bool {
    last != 0 && now.saturating_sub(last) < STILL_WAITING.as_micros() as u64
}

/// Leaves the write lock free a moment if a pool connection waits for it:
/// for the group writer, between two groups.
pub(super) fn give_way() {
    if someone_waits() {
        std::thread::sleep(GIVE_WAY);
    }
}

thread_local! {
    /// When this thread's connection first found the lock taken, this
    /// wait. A connection is driven by one thread (sqlx's worker for it,
    /// or the group writer's), and SQLite calls its busy handler there,
    /// from within the statement that waits.
    static WAITING_SINCE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// Whether a connection that found the lock taken `tries` times before
/// (this wait) should try again, after a short sleep.
fn wait_again(tries: c_int) -> bool {
    let now = Instant::now();
    let since = WAITING_SINCE.with(|since| {
        if tries == 0 {
            since.set(Some(now));
        }
        since.get().unwrap_or(now)
    });
    if timed_out(now.duration_since(since)) {
        return false;
    }
    std::thread::sleep(POLL);
    true
}

/// Whether a wait this long took the whole busy timeout.
fn timed_out(waited: Duration) -> bool {
    waited >= TIMEOUT
}

/// The group writer's own busy handler: polls as often, without calling
/// itself a waiter (it does not wait for itself).
pub(super) fn writer_waits_again(tries: c_int) -> bool {
    wait_again(tries)
}

/// SQLite's busy handler for the pool's connections.
extern "C" fn pool_waits_again(_: *mut c_void, tries: c_int) -> c_int {
    LAST_WAIT.store(now_micros(), Ordering::Relaxed);
    c_int::from(wait_again(tries))
}

/// Sets the pool connection's busy handler (in place of sqlx's busy
/// timeout): run once for each connection as the pool opens it.
pub(super) async fn poll_for_the_lock(
    connection: &mut sqlx::SqliteConnection,
) -> Result<(), sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let raw = handle.as_raw_handle();
    // SAFETY: the handle is this open connection's, locked for the call;
    // the handler is a plain function without data, valid for the process.
    let code = unsafe {
        rusqlite::ffi::sqlite3_busy_handler(
            raw.as_ptr(),
            Some(pool_waits_again),
            std::ptr::null_mut(),
        )
    };
    if code == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "cannot set SQLite's busy handler (code {code})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, Pool};

    /// A pool connection that finds the write lock taken says that it
    /// waits, while it waits, and writes once the lock is free.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pool_write_that_finds_the_lock_taken_waits_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::migrated_sqlite_in(dir.path()).await;
        let Pool::Sqlite(pool) = db.pool().clone() else {
            unreachable!()
        };
        let holder = rusqlite::Connection::open(dir.path().join("depot.db")).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let write = tokio::spawn(async move {
            sqlx::query("CREATE TABLE written (one INTEGER)")
                .execute(&pool)
                .await
        });
        // Seen while it waits (each try marks it; a loaded machine may
        // run the tries late, so it is looked for a while).
        let mut seen = false;
        for _ in 0..1_000 {
            seen = someone_waits();
            if seen {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(seen, "the write says it waits for the lock");
        assert!(!write.is_finished());
        holder.execute_batch("COMMIT").unwrap();
        write.await.unwrap().unwrap();
    }

    #[test]
    fn a_wait_goes_on_between_tries_and_ends_at_the_timeout() {
        assert!(!waits(0, 5), "no wait seen yet");
        assert!(waits(1_000, 1_000 + POLL.as_micros() as u64));
        assert!(!waits(1_000, 1_000 + STILL_WAITING.as_micros() as u64));
        assert!(!timed_out(Duration::ZERO));
        assert!(!timed_out(TIMEOUT - POLL));
        assert!(timed_out(TIMEOUT));
        // Counted from this wait's first try, however many tries since.
        assert!(writer_waits_again(0));
        assert!(writer_waits_again(1_000_000));
        WAITING_SINCE.with(|since| since.set(Some(Instant::now() - TIMEOUT)));
        assert!(!writer_waits_again(3));
    }
}
