//! Browser sessions, kept in the same database as everything else: the
//! `sessions` table, a session's values as JSON, its lapse in Unix seconds.
//! A session is stored under the SHA-256 of its id, as API tokens are: the
//! id is the cookie that signs its browser in, and a copy of the database
//! (a backup, a replica) must not sign anyone in.
//!
//! tower-sessions-sqlx-store did this before; it turned on sqlx's default
//! features, whose proc macros build sqlx's drivers (SQLite's C with them)
//! a second time for the build host, for four statements.

use app::ports::SESSION_USER_KEY;
use async_trait::async_trait;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, Error};

use super::{with_pool, Db};

/// Browser sessions one account keeps: a new one past them ends the one
/// that would lapse first. Sign-ins are throttled (`may_start_session`),
/// but a session is kept for days: a script signing in for a week made
/// hundreds of thousands.
pub const SESSIONS_PER_USER: i64 = 100;

/// The sessions of the database the server runs on.
#[derive(Debug, Clone)]
pub struct SessionStore {
    db: Db,
}

fn backend(error: sqlx::Error) -> Error {
    Error::Backend(error.to_string())
}

/// What a session is stored under: its id's digest, which is also the
/// `session_hash` of the tokens it issued.
fn stored_id(id: &Id) -> String {
    super::token_digest(&id.to_string())
}

impl SessionStore {
    pub fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// Removes the sessions that have lapsed; the server runs it
    /// periodically.
    pub async fn delete_expired(&self) -> session_store::Result<()> {
        self.delete_lapsed_before(OffsetDateTime::now_utc()).await
    }

    async fn delete_lapsed_before(&self, now: OffsetDateTime) -> session_store::Result<()> {
        const DELETE: &str = "DELETE FROM sessions WHERE expires_at <= $1";
        with_pool!(self.db, pool => sqlx::query(DELETE)
            .bind(now.unix_timestamp())
            .execute(pool)
            .await
            .map(drop))
        .map_err(backend)?;
        Ok(())
    }

    /// Stores `record` unless its id is taken: answers whether it was.
    /// A session signed in ends its account's that would lapse first past
    /// the newest [`SESSIONS_PER_USER`], and the tokens they issued.
    async fn insert(&self, record: &Record) -> session_store::Result<bool> {
        const INSERT: &str = "INSERT INTO sessions (id, data, expires_at, user_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING";
        // Never the new one, whatever its lapse says (clocks that differ).
        const OLDEST: &str = "SELECT id FROM sessions WHERE user_id = $1 AND id <> $3 \
             AND expires_at < (SELECT expires_at FROM sessions WHERE user_id = $1 \
             ORDER BY expires_at DESC LIMIT 1 OFFSET $2)";
        let data = encode(record)?;
        let (id, user) = (stored_id(&record.id), user_of(record));
        let (done, past) = with_pool!(self.db, pool => async {
            let done = sqlx::query(INSERT)
                .bind(&id)
                .bind(&data)
                .bind(record.expiry_date.unix_timestamp())
                .bind(user)
                .execute(pool)
                .await?
                .rows_affected();
            let past = match (done, user) {
                (1, Some(user)) => {
                    sqlx::query_scalar::<_, String>(OLDEST)
                        .bind(user)
                        .bind(SESSIONS_PER_USER - 1)
                        .bind(&id)
                        .fetch_all(pool)
                        .await?
                }
                _ => Vec::new(),
            };
            Ok::<_, sqlx::Error>((done, past))
        }
        .await)
        .map_err(backend)?;
        for ended in past {
            self.end_with_its_tokens(&ended).await;
        }
        Ok(done == 1)
    }

    /// Deletes the session stored as `id`.
    async fn delete_id(&self, id: &str) -> session_store::Result<()> {
        const DELETE: &str = "DELETE FROM sessions WHERE id = $1";
        with_pool!(self.db, pool => sqlx::query(DELETE)
            .bind(id)
            .execute(pool)
            .await
            .map(drop))
        .map_err(backend)
    }

    /// Ends a session past its account's newest, the tokens it issued
    /// first, as at its sign-out: one whose tokens cannot be revoked stays
    /// (to be signed out of), and the sign-in that ended it, stored, is
    /// not failed for it.
    async fn end_with_its_tokens(&self, id: &str) {
        let revoked = self.db.delete_session_tokens(id).await;
        let ended = match revoked {
            Ok(_) => self.delete_id(id).await.err(),
            Err(error) => Some(backend(error)),
        };
        if let Some(error) = ended {
            tracing::warn!(%error, "cannot end a session past its account's newest");
        }
    }

    async fn load_at(&self, id: &Id, now: OffsetDateTime) -> session_store::Result<Option<Record>> {
        const LOAD: &str =
            "SELECT data, expires_at FROM sessions WHERE id = $1 AND expires_at > $2";
        let row: Option<(String, i64)> = with_pool!(self.db, pool => sqlx::query_as(LOAD)
            .bind(stored_id(id))
            .bind(now.unix_timestamp())
            .fetch_optional(pool)
            .await)
        .map_err(backend)?;
        let Some((data, expires_at)) = row else {
            return Ok(None);
        };
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_str(&data).map_err(|error| Error::Decode(error.to_string()))?,
            expiry_date: OffsetDateTime::from_unix_timestamp(expires_at)
                .map_err(|error| Error::Decode(error.to_string()))?,
        }))
    }
}

/// The account a session is signed in to, if any.
fn user_of(record: &Record) -> Option<i64> {
    record
        .data
        .get(SESSION_USER_KEY)
        .and_then(serde_json::Value::as_i64)
}

/// A session's values, as stored.
fn encode(record: &Record) -> session_store::Result<String> {
    serde_json::to_string(&record.data).map_err(|error| Error::Encode(error.to_string()))
}

#[async_trait]
impl tower_sessions::SessionStore for SessionStore {
    /// A new session under an id no other session has: ids are 128 random
    /// bits, so a clash is drawn again rather than written over.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while !self.insert(record).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        const SAVE: &str = "INSERT INTO sessions (id, data, expires_at, user_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
             expires_at = excluded.expires_at, user_id = excluded.user_id";
        let data = encode(record)?;
        with_pool!(self.db, pool => sqlx::query(SAVE)
            .bind(stored_id(&record.id))
            .bind(&data)
            .bind(record.expiry_date.unix_timestamp())
            .bind(user_of(record))
            .execute(pool)
            .await
            .map(drop))
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.load_at(id, OffsetDateTime::now_utc()).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.delete_id(&stored_id(id)).await
    }
}

#[cfg(test)]
mod tests {
    use tower_sessions::cookie::time;
    use tower_sessions::SessionStore as _;

    use super::*;

    async fn store(dir: &std::path::Path) -> SessionStore {
        SessionStore::new(&Db::migrated_sqlite_in(dir).await)
    }

    fn record(expiry_date: OffsetDateTime) -> Record {
        let mut data = std::collections::HashMap::new();
        data.insert(
            "user".to_owned(),
            serde_json::json!({"id": 7, "name": "ada"}),
        );
        Record {
            id: Id::default(),
            data,
            expiry_date,
        }
    }

    #[tokio::test]
    async fn a_session_is_loaded_as_saved_until_it_lapses_then_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let mut session = record(now + time::Duration::hours(1));
        store.create(&mut session).await.unwrap();
        let loaded = store.load(&session.id).await.unwrap().unwrap();
        assert_eq!(loaded.data, session.data);
        assert_eq!(loaded.expiry_date, session.expiry_date);

        // Saved again with other values and a later lapse.
        session
            .data
            .insert("theme".to_owned(), serde_json::json!("dark"));
        session.expiry_date = now + time::Duration::hours(2);
        store.save(&session).await.unwrap();
        let loaded = store.load(&session.id).await.unwrap().unwrap();
        assert_eq!(loaded.data, session.data);
        assert_eq!(loaded.expiry_date, session.expiry_date);

        // Lapsed: not loaded, and the sweep removes it, and only it.
        let lapsed = store
            .load_at(&session.id, session.expiry_date)
            .await
            .unwrap();
        assert!(lapsed.is_none());
        let mut other = record(now + time::Duration::hours(3));
        store.create(&mut other).await.unwrap();
        store
            .delete_lapsed_before(now + time::Duration::hours(2))
            .await
            .unwrap();
        assert!(store.load_at(&session.id, now).await.unwrap().is_none());
        assert!(store.load(&other.id).await.unwrap().is_some());

        store.delete(&other.id).await.unwrap();
        assert!(store.load(&other.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_new_session_never_takes_over_an_existing_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
        let mut first = record(later);
        store.create(&mut first).await.unwrap();
        // A second session drawn with the same id (as a forged cookie would
        // name it) gets an id of its own; the first is untouched.
        let mut second = record(later);
        second.id = first.id;
        second.data.clear();
        store.create(&mut second).await.unwrap();
        assert_ne!(second.id, first.id);
        assert_eq!(
            store.load(&first.id).await.unwrap().unwrap().data,
            first.data
        );
        assert!(store
            .load(&second.id)
            .await
            .unwrap()
            .unwrap()
            .data
            .is_empty());
    }

    /// What the database holds of a session signs no browser in.
    #[tokio::test]
    async fn the_database_holds_no_session_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let mut session = record(OffsetDateTime::now_utc() + time::Duration::hours(1));
        store.create(&mut session).await.unwrap();
        let stored: Vec<String> = with_pool!(store.db, pool =>
            sqlx::query_scalar("SELECT id FROM sessions").fetch_all(pool).await)
        .unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].contains(&session.id.to_string()), "{stored:?}");
        assert!(store.load(&session.id).await.unwrap().is_some());
        // Ended as its tokens are, by the digest they were issued under.
        assert_eq!(
            stored[0],
            crate::store::token_digest(&session.id.to_string())
        );
        store.delete(&session.id).await.unwrap();
        assert!(store.load(&session.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_unknown_id_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        assert!(store.load(&Id::default()).await.unwrap().is_none());
        // Deleting what is not there is not an error (sign-out twice).
        store.delete(&Id::default()).await.unwrap();
    }
}
