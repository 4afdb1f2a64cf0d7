//! The reads every request makes on SQLite (a catalog page, the caller's
//! token), through rusqlite on connections of their own.
//!
//! A page of 100 images is some 4,400 values. sqlx's SQLite driver runs each
//! statement on a worker thread that copies every value of a row
//! (`sqlite3_value_dup`, an allocation each) and sends the rows one by one
//! back through a channel; that, not SQLite's work, was most of a sorted
//! page's time (callgrind). Here a page is read on a blocking thread straight
//! from SQLite's row into [`ImageRow`]'s fields, and the count after it on the
//! same connection, with one hand-off each way.
//!
//! The connections are opened read-write but set `query_only`: nothing can
//! be written through them, and SQLite's WAL bookkeeping works as for any
//! other connection of the process. Each statement reads a snapshot of what
//! was committed when it began, as on sqlx's connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::sql::{Arg, Sql};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The most reads at once (and connections kept): more than the cores,
/// so that a read waiting on the disk does not hold up the others.
const READERS: usize = 4;

/// Statements each connection keeps prepared: a catalog's usual pages, their
/// counts, the token look-up.
const PREPARED: usize = 32;

/// The reading connections to one SQLite file.
#[derive(Debug, Clone)]
pub(super) struct Reader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    /// Connections not in use; opened as needed, at most [`READERS`].
    idle: Mutex<Vec<Connection>>,
    turns: Arc<Semaphore>,
}

impl Reader {
    /// A reader of the database file sqlx opened at `filename` with the
    /// URL's `parameters`, or `None` for one this reader could not open as a
    /// plain file of its own, read-write: a database in memory (sqlx names
    /// those `file:…`), read-only or immutable, or behind another VFS.
    /// sqlx's connections read those. No connection is opened until the
    /// first page.
    pub(super) fn for_database(filename: &Path, parameters: Option<&str>) -> Option<Self> {
        let name = filename.to_string_lossy();
        let plain_file = !(name.is_empty() || name.starts_with("file:") || name == ":memory:");
        let plain_parameters =
            form_urlencoded::parse(parameters.unwrap_or("").as_bytes()).all(|(key, value)| {
                match &*key {
                    "mode" => value == "rwc" || value == "rw",
                    "cache" => true,
                    _ => false,
                }
            });
        (plain_file && plain_parameters).then(|| Self {
            inner: Arc::new(Inner {
                path: filename.to_owned(),
                idle: Mutex::new(Vec::with_capacity(READERS)),
                turns: Arc::new(Semaphore::new(READERS)),
            }),
        })
    }

    /// Runs `read` on one of the reader's connections, on a blocking thread.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        // The turn goes with the read, not with the request: a request
        // dropped meanwhile (its client gone) leaves the read to finish
        // before another may start, so the connections stay at most
        // READERS however many clients give up.
        let turn = self
            .inner
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            inner.with_connection(read)
        })
        .await
        .map_err(|_| sqlx::Error::WorkerCrashed)?
        .map_err(|error| sqlx::Error::AnyDriverError(Box::new(error)))
    }
}

impl Inner {
    /// Runs `read` on an idle connection (or a new one), which goes back to
    /// the idle ones afterwards unless it failed to open.
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open(&self.path)?,
        };
        let result = read(&connection);
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(connection);
        result
    }
}

/// A connection that can only read, with the functions the query builder's
/// statements call.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    // No mutex of SQLite's own: one thread at a time holds the connection.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update(None, "query_only", true)?;
    connection.set_prepared_statement_cache_capacity(PREPARED);
    register_regexp(&connection)?;
    Ok(connection)
}

/// MWS `$regex` on SQLite: `x REGEXP y` calls `regexp(y, x)` with the
/// `regex` crate, as sqlx's `with_regexp` does on the other connections:
/// true or false for text, NULL for anything else, an error for a pattern
/// that does not compile (the core refuses those first). Each statement
/// compiles its pattern once.
fn register_regexp(connection: &Connection) -> rusqlite::Result<()> {
    connection.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |context| {
            let pattern = context.get_or_create_aux(0, |value| -> Result<_, BoxError> {
                Ok(regex::Regex::new(value.as_str()?)?)
            })?;
            Ok(match context.get_raw(1) {
                rusqlite::types::ValueRef::Text(text) => std::str::from_utf8(text)
                    .ok()
                    .map(|text| pattern.is_match(text)),
                _ => None,
            })
        },
    )
}

/// Binds `sql`'s arguments by their names (`$1`, `$2`, …) as sqlx binds
/// them: a time as the RFC 3339 text sqlx writes, so that comparisons with
/// stored times agree.
fn bind(statement: &mut rusqlite::CachedStatement<'_>, sql: &Sql) -> rusqlite::Result<()> {
    for (index, arg) in sql.args.iter().enumerate() {
        let name = format!("${}", index + 1);
        let Some(position) = statement.parameter_index(&name)? else {
            return Err(rusqlite::Error::InvalidParameterName(name));
        };
        match arg {
            Arg::Int(value) => statement.raw_bind_parameter(position, value)?,
            Arg::Text(value) => statement.raw_bind_parameter(position, value)?,
            Arg::Bool(value) => statement.raw_bind_parameter(position, value)?,
            Arg::Time(value) => statement.raw_bind_parameter(
                position,
                value.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
            )?,
        }
    }
    Ok(())
}

/// Every row of `sql`, each as `decode` reads it.
pub(super) fn rows<T>(
    connection: &Connection,
    sql: &Sql,
    mut decode: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = connection.prepare_cached(&sql.text)?;
    bind(&mut statement, sql)?;
    let mut rows = statement.raw_query();
    let mut decoded = Vec::new();
    while let Some(row) = rows.next()? {
        decoded.push(decode(row)?);
    }
    Ok(decoded)
}

/// The first row of `sql`, as `decode` reads it, if there is one.
pub(super) fn first_row<T>(
    connection: &Connection,
    sql: &Sql,
    decode: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let mut statement = connection.prepare_cached(&sql.text)?;
    bind(&mut statement, sql)?;
    let mut rows = statement.raw_query();
    rows.next()?.map(decode).transpose()
}

#[cfg(test)]
mod tests {
    use app::query::{Condition, Direction, Field, Op, Query, Value};
    use chrono::{TimeZone, Utc};

    use super::super::{Db, Pool};

    /// A catalog of 250 images on a file, with fields set and unset in turn.
    async fn catalog(dir: &std::path::Path) -> Db {
        let url = format!("sqlite://{}?mode=rwc", dir.join("depot.db").display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let Pool::Sqlite(pool) = db.pool() else {
            unreachable!()
        };
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for n in 0..250_i64 {
            sqlx::query(
                "INSERT INTO images (kind, name, label, folder, data_store, path, public, size, \
                 os_type, created_at, updated_at) VALUES ('disk', $1, $1, 'f', 'ds', $1, $2, \
                 $3, $4, $5, $5)",
            )
            .bind(format!("Image-{:03}", (n * 37) % 250))
            .bind(n % 3 != 0)
            .bind((n % 7 != 0).then_some(n * 1000))
            .bind(["linux", "windows", "other"][n as usize % 3])
            .bind(start + chrono::Duration::minutes(n * 90) + chrono::Duration::microseconds(n))
            .execute(pool)
            .await
            .unwrap();
        }
        db
    }

    fn compare(field: Field, op: Op, value: Value) -> Condition {
        Condition::compare(field, op, value).unwrap()
    }

    #[tokio::test]
    async fn pages_read_as_sqlx_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let db = catalog(dir.path()).await;
        assert!(
            db.reader.is_some(),
            "a file's catalog pages go through the reader"
        );
        let through_sqlx = Db {
            reader: None,
            ..db.clone()
        };
        let after = Utc.with_ymd_and_hms(2026, 1, 5, 3, 0, 0).unwrap();
        let queries = [
            Query::new(100),
            Query::new(100).sort_by(Field::Name, Direction::Asc),
            Query::new(30)
                .sort_by(Field::Size, Direction::Desc)
                .offset(60),
            Query::new(100).offset(240),
            Query::new(100).offset(400),
            Query::new(20).filter(compare(
                Field::Name,
                Op::Like,
                Value::Text("image-1%".into()),
            )),
            Query::new(100).filter(compare(
                Field::Name,
                Op::Regex,
                Value::Text("^Image-0[0-4]".into()),
            )),
            Query::new(100).filter(compare(Field::CreatedAt, Op::Gt, Value::Time(after))),
            Query::new(100).filter(compare(Field::Size, Op::Ne, Value::Int(7000))),
            Query::new(100).filter(compare(Field::Public, Op::Eq, Value::Bool(false))),
            Query::new(50).filter(compare(
                Field::OsType,
                Op::In,
                Value::List(vec![
                    Value::Text("linux".into()),
                    Value::Text("other".into()),
                ]),
            )),
        ];
        for query in queries {
            let (rows, total) = db.list_images(&query).await.unwrap();
            let (expected_rows, expected_total) = through_sqlx.list_images(&query).await.unwrap();
            assert_eq!(total, expected_total, "{query:?}");
            assert_eq!(
                format!("{rows:?}"),
                format!("{expected_rows:?}"),
                "{query:?}"
            );
        }
        // What is compared is not empty: times, sizes and counts came through.
        let filtered =
            Query::new(100).filter(compare(Field::CreatedAt, Op::Gt, Value::Time(after)));
        let (rows, total) = db.list_images(&filtered).await.unwrap();
        assert_eq!(total, 250 - 66);
        assert!(rows.iter().all(|row| row.created_at > after));
        assert_eq!((rows[1].size, rows[4].size), (Some(67_000), None));
    }

    #[tokio::test]
    async fn more_pages_at_once_than_connections_all_answer() {
        let dir = tempfile::tempdir().unwrap();
        let db = catalog(dir.path()).await;
        let pages = (0..4 * super::READERS as u64).map(|n| {
            let db = db.clone();
            async move { db.list_images(&Query::new(10).offset(n * 10)).await }
        });
        for (n, page) in futures_util::future::join_all(pages)
            .await
            .into_iter()
            .enumerate()
        {
            let (rows, total) = page.unwrap();
            assert_eq!((rows.len(), total), (10, 250), "page {n}");
        }
        let kept = db.reader.as_ref().unwrap().inner.idle.lock().unwrap().len();
        assert!(
            (1..=super::READERS).contains(&kept),
            "{kept} connections kept"
        );
    }

    #[tokio::test]
    async fn a_tokens_owner_reads_as_sqlx_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = catalog(dir.path()).await;
        let through_sqlx = Db {
            reader: None,
            ..db.clone()
        };
        let made = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let user = db
            .insert_user("ada", "$argon2id$hash", "admin", made)
            .await
            .unwrap();
        let expires = made + chrono::Duration::days(30);
        db.insert_token(user, 0, "digest", made, expires, None)
            .await
            .unwrap();
        let used = made + chrono::Duration::milliseconds(1500);
        db.touch_token("digest", used, used).await.unwrap();
        let fields = |owner: super::super::TokenOwner| {
            let user = owner.user;
            (
                (
                    user.id,
                    user.username,
                    user.password_hash,
                    user.email,
                    user.full_name,
                ),
                (
                    user.role,
                    user.disabled,
                    user.created_at,
                    user.credentials_version,
                ),
                owner.last_used_at,
            )
        };
        let now = made + chrono::Duration::days(1);
        let read = db.user_by_token("digest", now).await.unwrap().map(fields);
        let expected = through_sqlx.user_by_token("digest", now).await.unwrap();
        assert_eq!(read, expected.map(fields));
        let (_, (role, _, created_at, _), last_used_at) = read.unwrap();
        assert_eq!(
            (role.as_str(), created_at, last_used_at),
            ("admin", made, Some(used))
        );
        // Expired, or no such token: no one, on both.
        let later = expires + chrono::Duration::seconds(1);
        assert!(db.user_by_token("digest", later).await.unwrap().is_none());
        assert!(db.user_by_token("other", now).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pages_given_up_on_open_no_more_connections() {
        let dir = tempfile::tempdir().unwrap();
        let db = catalog(dir.path()).await;
        // Clients that give up at once, as a flood of dropped requests would.
        let query = Query::new(100).sort_by(Field::Name, Direction::Desc);
        for _ in 0..64 {
            // Polled once, then dropped.
            let _ = futures_util::FutureExt::now_or_never(db.list_images(&query));
        }
        // Each read still running holds the reader; wait until none is.
        let inner = &db.reader.as_ref().unwrap().inner;
        for _ in 0..1000 {
            if std::sync::Arc::strong_count(inner) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            std::sync::Arc::strong_count(inner),
            1,
            "reads still running"
        );
        let opened = inner.idle.lock().unwrap().len();
        assert!(opened <= super::READERS, "{opened} connections opened");
    }

    #[tokio::test]
    async fn a_pattern_that_does_not_compile_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = catalog(dir.path()).await;
        let query = Query::new(10).filter(Condition::Compare {
            field: Field::Name,
            op: Op::Regex,
            value: Value::Text("(".into()),
        });
        assert!(db.list_images(&query).await.is_err());
        // The connection it failed on still reads.
        assert_eq!(db.list_images(&Query::new(10)).await.unwrap().1, 250);
    }

    #[tokio::test]
    async fn a_database_in_memory_is_read_through_sqlx() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        assert!(db.reader.is_none());
        assert_eq!(db.list_images(&Query::new(10)).await.unwrap().1, 0);
    }

    #[test]
    fn only_a_plain_file_opened_read_write_is_read_here() {
        let plain = |name: &str, parameters| {
            super::Reader::for_database(std::path::Path::new(name), parameters).is_some()
        };
        assert!(plain("/srv/depot/depot.db", Some("mode=rwc")));
        assert!(plain("depot.db", None));
        assert!(plain("/srv/depot/depot.db", Some("mode=rw&cache=private")));
        assert!(!plain("/srv/depot/depot.db", Some("mode=ro")));
        assert!(!plain("/srv/depot/depot.db", Some("mode=memory")));
        assert!(!plain("/srv/depot/depot.db", Some("immutable=true")));
        assert!(!plain("/srv/depot/depot.db", Some("vfs=unix-dotfile")));
        assert!(!plain("file:sqlx-in-memory-3", None));
        assert!(!plain(":memory:", None));
    }
}
