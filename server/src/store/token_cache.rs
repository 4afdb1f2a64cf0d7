//! The owners of the tokens this server has looked up lately, so that a
//! request signed with a token known here costs no round trip to the
//! database (on PostgreSQL, a round trip and a pooled connection's release
//! ping before every statement of every signed request).
//!
//! A token's owner as cached stays right only while no credential changes.
//! So the cache is forgotten whole, and lookups that were under way when it
//! was cannot fill it, whenever any of them changes:
//! - on this server, by every method of the store that writes `users` or
//!   `api_tokens` ([`super::Db::write_credentials`]), once its write is done
//!   or has failed, before its caller answers; the write runs to its end
//!   even if its caller stops waiting (sqlx's SQLite worker would commit a
//!   statement it was handed, unseen);
//! - on PostgreSQL, on any server sharing the database, by the notices of
//!   migration 0016's triggers (`NOTIFY depot_credentials`), delivered as
//!   the change commits. The cache is used only while this server listens:
//!   until its listener has started, and from the moment it loses its
//!   connection until it listens again (notices sent meanwhile are lost).
//!
//! A listening connection that stops answering (dead without a word) is
//! given up within [`HEARTBEAT_EVERY`] and [`HEARTBEAT_WITHIN`]. An entry is
//! also dropped when its token expires, after [`MOST_AGE`] whatever
//! happens, and when [`MOST_ENTRIES`] others were used since.
//! Tokens not found are never kept: a token is usable the moment it is made.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lru::LruCache;
use sqlx::postgres::PgListener;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::oneshot;

use super::rows::TokenOwner;

/// The most tokens kept: a few hundred bytes each.
const MOST_ENTRIES: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

/// The longest an entry is used without being looked up again.
pub(super) const MOST_AGE: Duration = Duration::from_secs(60);

/// The listening connection's `application_name`, as `pg_stat_activity`
/// shows it.
const LISTENER_NAME: &str = "depot credentials listener";

/// The channel migration 0016's triggers notify on.
const CHANNEL: &str = "depot_credentials";

/// How long the listener waits before connecting again after failing to.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// How often an idle listening connection is asked whether it is alive,
/// and how soon it must answer.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const HEARTBEAT_WITHIN: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(super) struct TokenCache {
    state: Arc<State>,
    /// Dropped by [`Self::close`] or with the last clone of the
    /// [`super::Db`]: ends the listener.
    listening: Mutex<Option<oneshot::Sender<()>>>,
    /// The listener's own connections, on PostgreSQL.
    listener_pool: Option<PgPool>,
}

#[derive(Debug)]
struct State {
    /// Counts the changes of credentials seen: a lookup keeps what it found
    /// only if none was seen since it began.
    generation: AtomicU64,
    /// Whether every change of credentials is seen (on PostgreSQL, while
    /// the listener listens).
    watching: AtomicBool,
    entries: Mutex<LruCache<String, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    owner: TokenOwner,
    generation: u64,
    looked_up: Instant,
}

/// Where a lookup began: what [`TokenCache::keep`] checks it against.
#[derive(Debug, Clone, Copy)]
pub(super) struct LookupStart {
    generation: u64,
    watching: bool,
}

impl TokenCache {
    /// A cache that sees every change of credentials (SQLite, where this
    /// server is the only writer of its database file).
    pub(super) fn on_sqlite() -> Self {
        Self {
            state: Arc::new(State::new(true)),
            listening: Mutex::new(None),
            listener_pool: None,
        }
    }

    /// A cache in use only while it listens for the notices of changes made
    /// on any server sharing the database; listening starts in the
    /// background.
    pub(super) fn on_postgres(pool: &PgPool) -> Self {
        let state = Arc::new(State::new(false));
        let (listening, stop) = oneshot::channel();
        // A pool of its own: the listener takes none of the requests'
        // connections, and closing their pool does not wait for it. Four,
        // so that a new connection can listen while those that stopped
        // answering are given up (sqlx's UNLISTEN on them can hang until
        // the kernel gives up on their sockets).
        let own = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(RETRY_AFTER)
            .connect_lazy_with(
                pool.connect_options()
                    .as_ref()
                    .clone()
                    .application_name(LISTENER_NAME),
            );
        tokio::spawn(listen(own.clone(), state.clone(), stop));
        Self {
            state,
            listening: Mutex::new(Some(listening)),
            listener_pool: Some(own),
        }
    }

    /// Stops listening and closes the listener's connection, within
    /// [`RETRY_AFTER`]: a database is then left to whoever closed the
    /// requests' pool (to drop it, or to rename it, as the tests do to the
    /// one they migrate once and copy).
    pub(super) async fn close(&self) {
        drop(
            self.listening
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if let Some(pool) = &self.listener_pool {
            // Nothing listens any more: nothing kept may be trusted.
            self.state.set_watching(false);
            if tokio::time::timeout(RETRY_AFTER, pool.close())
                .await
                .is_err()
            {
                tracing::warn!(
                    "the connection listening for changed credentials did not close in time"
                );
            }
        }
    }

    /// The owner of `token_hash` as last looked up, while it may be trusted.
    pub(super) fn owner(&self, token_hash: &str, now: DateTime<Utc>) -> Option<TokenOwner> {
        let state = &self.state;
        if !state.watching.load(Ordering::Acquire) {
            return None;
        }
        let generation = state.generation.load(Ordering::Acquire);
        let mut entries = state.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(token_hash)?;
        if entry.generation == generation
            && entry.owner.expires_at > now
            && entry.looked_up.elapsed() < MOST_AGE
        {
            return Some(entry.owner.clone());
        }
        entries.pop(token_hash);
        None
    }

    /// To be read before a lookup in the database begins.
    pub(super) fn lookup_start(&self) -> LookupStart {
        // `watching` first: a listener that starts watching after this read
        // moves the generation on, so this lookup keeps nothing.
        let watching = self.state.watching.load(Ordering::Acquire);
        LookupStart {
            generation: self.state.generation.load(Ordering::Acquire),
            watching,
        }
    }

    /// Keeps what a lookup that began at `start` found, unless credentials
    /// changed since (or might have, unseen).
    pub(super) fn keep(&self, start: LookupStart, token_hash: &str, owner: &TokenOwner) {
        let state = &self.state;
        if !start.watching {
            return;
        }
        let mut entries = state.entries.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock: a change moves the generation on before it clears
        // the entries, so an entry kept here is either current or cleared.
        if state.generation.load(Ordering::Acquire) != start.generation
            || !state.watching.load(Ordering::Acquire)
        {
            return;
        }
        entries.put(
            token_hash.to_owned(),
            Entry {
                owner: owner.clone(),
                generation: start.generation,
                looked_up: Instant::now(),
            },
        );
    }

    /// Notes that a cached token's use was recorded at `now`, so the next
    /// requests do not record it again.
    pub(super) fn used(&self, token_hash: &str, now: DateTime<Utc>) {
        let mut entries = self.state.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.peek_mut(token_hash) {
            entry.owner.last_used_at = Some(now);
        }
    }

    /// Forgets every entry when dropped, unless told nothing changed: held
    /// across a write of credentials, so that it forgets once the write is
    /// done, has failed, or its caller stopped waiting for it.
    pub(super) fn forgetting(&self) -> Forgetting {
        Forgetting {
            state: Some(self.state.clone()),
        }
    }
}

/// See [`TokenCache::forgetting`].
#[must_use]
pub(super) struct Forgetting {
    state: Option<Arc<State>>,
}

impl Forgetting {
    /// The write changed nothing (a delete that found nothing to delete).
    pub(super) fn nothing_changed(mut self) {
        self.state = None;
    }
}

impl Drop for Forgetting {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            state.forget_all();
        }
    }
}

impl State {
    fn new(watching: bool) -> Self {
        Self {
            generation: AtomicU64::new(0),
            watching: AtomicBool::new(watching),
            entries: Mutex::new(LruCache::new(MOST_ENTRIES)),
        }
    }

    fn forget_all(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Starts or stops trusting the cache. Either way what it holds, and
    /// what lookups under way would keep, may be wrong.
    fn set_watching(&self, watching: bool) {
        self.watching.store(watching, Ordering::Release);
        self.forget_all();
    }
}

/// Listens for the notices of changed credentials until the cache is
/// dropped; the cache is used only while it listens.
async fn listen(pool: PgPool, state: Arc<State>, mut stop: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            () = listen_once(&pool, &state) => {}
        }
        state.set_watching(false);
        tokio::select! {
            _ = &mut stop => return,
            () = tokio::time::sleep(RETRY_AFTER) => {}
        }
    }
}

/// One connection's listening: returns when it is lost.
async fn listen_once(pool: &PgPool, state: &State) {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for changed credentials; tokens are looked up each time");
            return;
        }
    };
    // A lost connection is answered by `try_recv` at once, not after
    // listening on a new one: notices sent in between were lost, and the
    // cache must be dropped before it is trusted again.
    listener.eager_reconnect(false);
    if let Err(error) = listener.listen(CHANNEL).await {
        tracing::warn!(%error, "cannot listen for changed credentials; tokens are looked up each time");
        return;
    }
    state.set_watching(true);
    loop {
        // `try_recv` may be given up while it waits: sqlx keeps a message
        // read in part for the next call.
        let received = tokio::select! {
            received = listener.try_recv() => received,
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {
                // A connection can die without a word (a firewall that
                // forgets an idle flow): its notices stop, and nothing
                // says so but a question left unanswered.
                let answered = tokio::time::timeout(
                    HEARTBEAT_WITHIN,
                    sqlx::query("SELECT 1").execute(&mut listener),
                );
                if !matches!(answered.await, Ok(Ok(_))) {
                    tracing::warn!("the connection listening for changed credentials stopped answering");
                    return;
                }
                continue;
            }
        };
        match received {
            Ok(Some(_)) => state.forget_all(),
            Ok(None) => {
                tracing::warn!("lost the connection listening for changed credentials");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "stopped listening for changed credentials");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::UserRow;

    fn owner(expires_at: DateTime<Utc>) -> TokenOwner {
        TokenOwner {
            user: UserRow {
                id: 7,
                username: "alice".into(),
                password_hash: String::new(),
                email: String::new(),
                full_name: String::new(),
                role: "user".into(),
                disabled: false,
                created_at: Utc::now(),
                credentials_version: 0,
            },
            last_used_at: None,
            expires_at,
        }
    }

    #[test]
    fn a_kept_owner_is_served_until_its_token_expires_or_credentials_change() {
        let cache = TokenCache::on_sqlite();
        let now = Utc::now();
        let expires_at = now + chrono::Duration::seconds(10);
        cache.keep(cache.lookup_start(), "t", &owner(expires_at));
        assert_eq!(cache.owner("t", now).map(|o| o.user.id), Some(7));
        assert!(cache.owner("other", now).is_none());
        // Expired: never served, whatever the cache still holds.
        assert!(cache.owner("t", expires_at).is_none());
        cache.keep(cache.lookup_start(), "t", &owner(expires_at));
        drop(cache.forgetting());
        assert!(cache.owner("t", now).is_none());
    }

    #[test]
    fn a_lookup_under_way_when_credentials_change_keeps_nothing() {
        let cache = TokenCache::on_sqlite();
        let now = Utc::now();
        let start = cache.lookup_start();
        // The change commits while the lookup reads what was there before.
        drop(cache.forgetting());
        cache.keep(start, "t", &owner(now + chrono::Duration::seconds(10)));
        assert!(cache.owner("t", now).is_none());
    }

    #[test]
    fn nothing_is_kept_or_served_while_changes_go_unseen() {
        let cache = TokenCache::on_sqlite();
        let now = Utc::now();
        let expires_at = now + chrono::Duration::seconds(10);
        cache.keep(cache.lookup_start(), "t", &owner(expires_at));
        // The listener's connection is lost: what is kept is dropped, and
        // a lookup that began before (or while) keeps nothing.
        let before = cache.lookup_start();
        cache.state.set_watching(false);
        assert!(cache.owner("t", now).is_none());
        let during = cache.lookup_start();
        cache.keep(before, "t", &owner(expires_at));
        cache.keep(during, "t", &owner(expires_at));
        // Listening again, lookups under way meanwhile still keep nothing.
        cache.state.set_watching(true);
        cache.keep(during, "t", &owner(expires_at));
        assert!(cache.owner("t", now).is_none());
        cache.keep(cache.lookup_start(), "t", &owner(expires_at));
        assert!(cache.owner("t", now).is_some());
    }

    #[test]
    fn a_write_that_changed_nothing_forgets_nothing() {
        let cache = TokenCache::on_sqlite();
        let now = Utc::now();
        cache.keep(
            cache.lookup_start(),
            "t",
            &owner(now + chrono::Duration::seconds(10)),
        );
        cache.forgetting().nothing_changed();
        assert!(cache.owner("t", now).is_some());
    }

    #[test]
    fn a_recorded_use_is_kept_with_the_owner() {
        let cache = TokenCache::on_sqlite();
        let now = Utc::now();
        cache.keep(
            cache.lookup_start(),
            "t",
            &owner(now + chrono::Duration::seconds(10)),
        );
        cache.used("t", now);
        assert_eq!(cache.owner("t", now).unwrap().last_used_at, Some(now));
    }
}

/// The cache behind [`super::Db::user_by_token`], on a database of its own.
#[cfg(test)]
mod through_the_store {
    use std::time::Duration;

    use chrono::Utc;

    use crate::store::Db;

    /// A database on a file, with a user and one token ("digest"), its
    /// owner looked up once (so kept).
    async fn with_a_kept_token(dir: &std::path::Path) -> Db {
        let db = Db::migrated_sqlite_in(dir).await;
        let now = Utc::now();
        let user = db
            .insert_user("ada", "hash", "user", now)
            .await
            .unwrap()
            .unwrap();
        db.insert_token(
            user,
            0,
            "digest",
            now,
            now + chrono::Duration::hours(1),
            None,
        )
        .await
        .unwrap();
        assert!(db.user_by_token("digest", now).await.unwrap().is_some());
        assert!(db.tokens.owner("digest", now).is_some(), "not kept");
        db
    }

    #[tokio::test]
    async fn a_token_revoked_by_a_caller_that_went_away_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = with_a_kept_token(dir.path()).await;
        // The request revoking it is dropped after its write began (polled
        // once: the write is under way, not done).
        {
            let mut revoking = std::pin::pin!(db.delete_token("digest"));
            assert!(futures_util::poll!(revoking.as_mut()).is_pending());
        }
        // A request signed with it before the revocation lands: it may
        // still pass, and its owner be kept.
        let _ = db.user_by_token("digest", Utc::now()).await.unwrap();
        // The revocation lands, and then its owner is kept no longer.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left: i64 = match db.pool() {
                crate::store::Pool::Sqlite(pool) => {
                    sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens")
                        .fetch_one(pool)
                        .await
                        .unwrap()
                }
                crate::store::Pool::Postgres(_) => unreachable!(),
            };
            if left == 0 && db.tokens.owner("digest", Utc::now()).is_none() {
                break;
            }
            assert!(
                std::time::Instant::now() < until,
                "{left} tokens left; the owner kept after the revocation"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(db
            .user_by_token("digest", Utc::now())
            .await
            .unwrap()
            .is_none());
    }
}
