//! The reads every request makes on SQLite (a catalog page, the caller's
//! token), through rusqlite on connections and threads of their own.
//!
//! A page of 100 images is some 4,400 values. sqlx's SQLite driver runs each
//! statement on a worker thread that copies every value of a row
//! (`sqlite3_value_dup`, an allocation each) and sends the rows one by one
//! back through a channel; that, not SQLite's work, was most of a sorted
//! page's time (callgrind). Here a page is read straight from SQLite's row
//! into [`super::ImageRow`]'s fields, and its count after it in the same
//! transaction, with one hand-off each way.
//!
//! Reads go in two lanes, each with threads of its own and a connection per
//! thread: the catalog's (pages and counts) and the look-ups' (the caller's
//! token), so that however slow the pages a flood of requests asks for,
//! signing a request in does not wait behind them. A read whose caller has
//! gone before it began is skipped; one not done [`LIMIT`] after it was
//! asked for is interrupted, as PostgreSQL's `statement_timeout` stops its
//! statements. Tokio's blocking threads (which uploads hold) are not used.
//!
//! The connections are opened read-write but set `query_only`: nothing can
//! be written through them, and SQLite's WAL bookkeeping works as for any
//! other connection of the process. Each read sees what was committed when
//! it began, as on sqlx's connections.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::sql::{Arg, Sql};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The catalog lane's threads: more than the cores, so that a page waiting
/// on the disk does not hold up the others.
const CATALOG_THREADS: usize = 4;

/// The look-ups' lane: one short read per request.
const LOOKUP_THREADS: usize = 1;

/// Reads that may wait in a lane before callers wait to join it.
const QUEUE: usize = 256;

/// The longest a read may take from when it was asked for, waiting
/// included: PostgreSQL's statement timeout.
const LIMIT: Duration = Duration::from_secs(30);

/// SQLite asks whether to interrupt a statement every this many of its
/// virtual machine's steps (some microseconds of work).
const STEPS_BETWEEN_CHECKS: i32 = 10_000;

/// Statements each connection keeps prepared: a catalog's usual pages and
/// their counts, or the token look-up.
const PREPARED: usize = 32;

/// A read as a lane's thread runs it, given its connection (opened on the
/// first read) and the file to open it on.
type Job = Box<dyn FnOnce(&mut Option<Connection>, &Path) + Send>;

/// The reading lanes on one SQLite file.
#[derive(Debug, Clone)]
pub(super) struct Reader {
    catalog: Lane,
    lookups: Lane,
}

/// Threads taking reads from one queue.
#[derive(Debug, Clone)]
struct Lane {
    jobs: flume::Sender<Job>,
    limit: Duration,
}

impl Reader {
    /// A reader of the database file sqlx opened at `filename` with the
    /// URL's `parameters`, or `None` for one this reader could not open as a
    /// plain file of its own, read-write: a database in memory (sqlx names
    /// those `file:…`), read-only or immutable, or behind another VFS.
    /// sqlx's connections read those. Its threads start now; each opens its
    /// connection on its first read, and they end with the last handle.
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
        if !(plain_file && plain_parameters) {
            return None;
        }
        match Self::start(filename, LIMIT) {
            Ok(reader) => Some(reader),
            Err(error) => {
                tracing::warn!(%error, "no reader threads; SQLite is read through sqlx alone");
                None
            }
        }
    }

    fn start(path: &Path, limit: Duration) -> std::io::Result<Self> {
        Ok(Self {
            catalog: Lane::start("depot-pages", CATALOG_THREADS, path, limit)?,
            lookups: Lane::start("depot-lookups", LOOKUP_THREADS, path, limit)?,
        })
    }

    /// Runs `read` in the catalog's lane.
    pub(super) async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        self.catalog.read(read).await
    }

    /// Runs `read`, a short read every request makes, in the look-ups' lane.
    pub(super) async fn look_up<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        self.lookups.read(read).await
    }
}

impl Lane {
    fn start(name: &str, threads: usize, path: &Path, limit: Duration) -> std::io::Result<Self> {
        let (jobs, waiting) = flume::bounded::<Job>(QUEUE);
        for _ in 0..threads {
            let (waiting, path) = (waiting.clone(), path.to_owned());
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || serve(&waiting, &path))?;
        }
        Ok(Self { jobs, limit })
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        let deadline = Instant::now() + self.limit;
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |connection, path| {
            // Its caller gave up (the client went away) while it waited.
            if answer.is_closed() {
                return;
            }
            let _ = answer.send(run(connection, path, deadline, read));
        });
        let asked = async {
            self.jobs.send_async(job).await.ok()?;
            answered.await.ok()
        };
        // The lane's threads end every read by the deadline; a little more
        // for the answer to come back.
        match tokio::time::timeout(self.limit + Duration::from_secs(1), asked).await {
            Ok(Some(result)) => {
                result.map_err(|error| sqlx::Error::AnyDriverError(Box::new(error)))
            }
            // A read that panicked (a bug) lost its answer.
            Ok(None) => Err(sqlx::Error::WorkerCrashed),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }
}

/// A lane's thread: one read at a time, until the lane is dropped.
fn serve(waiting: &flume::Receiver<Job>, path: &Path) {
    let mut connection = None;
    while let Ok(job) = waiting.recv() {
        // A read that panics loses its answer and the connection it ran
        // on (which a fresh one replaces), never the thread.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut connection, path))).is_err() {
            connection = None;
        }
    }
}

/// Runs `read` on the thread's connection (opening it first if need be),
/// interrupted at `deadline`.
fn run<T>(
    connection: &mut Option<Connection>,
    path: &Path,
    deadline: Instant,
    read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let connection = match connection {
        Some(connection) => connection,
        None => connection.insert(open(path)?),
    };
    if Instant::now() >= deadline {
        return Err(interrupted());
    }
    connection.progress_handler(
        STEPS_BETWEEN_CHECKS,
        Some(move || Instant::now() >= deadline),
    );
    let result = read(connection);
    connection.progress_handler(0, None::<fn() -> bool>);
    result
}

/// What SQLite answers for a statement it was told to stop.
fn interrupted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
        Some("the read took too long".into()),
    )
}

/// A connection that can only read, with the functions the query builder's
/// statements call.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    // No mutex of SQLite's own: one thread holds the connection.
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

/// Binds `sql`'s arguments as sqlx binds them: a time as the RFC 3339 text
/// sqlx writes, so that comparisons with stored times agree. The builder
/// writes `$1`, `$2`, … each once and in order, which SQLite numbers 1, 2, …
/// (checked in debug builds, so by every test).
fn bind(statement: &mut rusqlite::CachedStatement<'_>, sql: &Sql) -> rusqlite::Result<()> {
    if statement.parameter_count() != sql.args.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            sql.args.len(),
            statement.parameter_count(),
        ));
    }
    for (index, arg) in sql.args.iter().enumerate() {
        let position = index + 1;
        debug_assert_eq!(
            statement.parameter_name(position),
            Some(format!("${position}").as_str())
        );
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use app::query::{Condition, Direction, Field, Op, Query, Value};
    use chrono::{TimeZone, Utc};

    use super::super::{Db, Pool};
    use super::Reader;

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
        // The first image's time, to the second: bound as other than sqlx
        // writes it (with a fraction, say), it would match nothing.
        let first = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let queries = [
            Query::new(10).filter(compare(Field::CreatedAt, Op::Eq, Value::Time(first))),
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
        let exact = Query::new(10).filter(compare(Field::CreatedAt, Op::Eq, Value::Time(first)));
        assert_eq!(db.list_images(&exact).await.unwrap().1, 1);
        let filtered =
            Query::new(100).filter(compare(Field::CreatedAt, Op::Gt, Value::Time(after)));
        let (rows, total) = db.list_images(&filtered).await.unwrap();
        assert_eq!(total, 250 - 66);
        assert!(rows.iter().all(|row| row.created_at > after));
        assert_eq!((rows[1].size, rows[4].size), (Some(67_000), None));
    }

    #[tokio::test]
    async fn more_pages_at_once_than_threads_all_answer() {
        let dir = tempfile::tempdir().unwrap();
        let db = catalog(dir.path()).await;
        let pages = (0..4 * super::CATALOG_THREADS as u64).map(|n| {
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
    }

    /// A read that would never end without being stopped.
    fn endless(connection: &rusqlite::Connection) -> rusqlite::Result<i64> {
        connection.query_row(
            "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) \
             SELECT count(*) FROM r",
            [],
            |row| row.get(0),
        )
    }

    fn was_interrupted(result: Result<i64, sqlx::Error>) -> bool {
        match result {
            Err(sqlx::Error::AnyDriverError(error)) => error
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code)
                .is_some_and(|code| code == rusqlite::ErrorCode::OperationInterrupted),
            _ => false,
        }
    }

    #[tokio::test]
    async fn a_read_past_its_limit_is_stopped_and_its_thread_reads_on() {
        let dir = tempfile::tempdir().unwrap();
        catalog(dir.path()).await;
        let reader =
            Reader::start(&dir.path().join("depot.db"), Duration::from_millis(300)).unwrap();
        let stopped = (0..super::CATALOG_THREADS).map(|_| reader.read(endless));
        for result in futures_util::future::join_all(stopped).await {
            assert!(was_interrupted(result));
        }
        let count = |c: &rusqlite::Connection| {
            c.query_row("SELECT count(*) FROM images", [], |row| {
                row.get::<_, i64>(0)
            })
        };
        for _ in 0..super::CATALOG_THREADS {
            assert_eq!(reader.read(count).await.unwrap(), 250_i64);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_look_up_does_not_wait_behind_slow_pages() {
        let dir = tempfile::tempdir().unwrap();
        catalog(dir.path()).await;
        let reader = Reader::start(&dir.path().join("depot.db"), Duration::from_secs(3)).unwrap();
        // Counted on the reading threads as slow pages begin and end (an
        // end before its answer).
        let (slow_began, slow_ended) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let slow: Vec<_> = (0..super::CATALOG_THREADS)
            .map(|_| {
                let (reader, began, ended) =
                    (reader.clone(), slow_began.clone(), slow_ended.clone());
                tokio::spawn(async move {
                    let read = reader.read(move |connection| {
                        began.fetch_add(1, Ordering::SeqCst);
                        let result = endless(connection);
                        ended.fetch_add(1, Ordering::SeqCst);
                        result
                    });
                    read.await
                })
            })
            .collect();
        while slow_began.load(Ordering::SeqCst) < super::CATALOG_THREADS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let one =
            |c: &rusqlite::Connection| c.query_row("SELECT 1", [], |row| row.get::<_, i64>(0));
        assert_eq!(reader.look_up(one).await.unwrap(), 1_i64);
        assert_eq!(slow_ended.load(Ordering::SeqCst), 0, "the look-up waited");
        for read in slow {
            assert!(was_interrupted(read.await.unwrap()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_whose_callers_gave_up_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        catalog(dir.path()).await;
        let reader = Reader::start(&dir.path().join("depot.db"), Duration::from_secs(1)).unwrap();
        let began = Arc::new(AtomicUsize::new(0));
        let busy: Vec<_> = (0..super::CATALOG_THREADS)
            .map(|_| {
                let (reader, began) = (reader.clone(), began.clone());
                tokio::spawn(async move {
                    let read = reader.read(move |connection| {
                        began.fetch_add(1, Ordering::SeqCst);
                        endless(connection)
                    });
                    read.await
                })
            })
            .collect();
        while began.load(Ordering::SeqCst) < super::CATALOG_THREADS {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Clients that give up at once, as a flood of dropped requests would,
        // while every thread is busy.
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..64 {
            let ran = ran.clone();
            let read = reader.read(move |_| Ok(ran.fetch_add(1, Ordering::Relaxed)));
            assert!(futures_util::FutureExt::now_or_never(read).is_none());
        }
        for read in busy {
            assert!(was_interrupted(read.await.unwrap()));
        }
        let one =
            |c: &rusqlite::Connection| c.query_row("SELECT 1", [], |row| row.get::<_, i64>(0));
        assert_eq!(reader.read(one).await.unwrap(), 1_i64);
        assert_eq!(
            ran.load(Ordering::Relaxed),
            0,
            "reads nobody waited for ran"
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
        // Every field told apart from its neighbours.
        let Pool::Sqlite(pool) = db.pool() else {
            unreachable!()
        };
        sqlx::query(
            "UPDATE users SET email = 'ada@example.org', full_name = 'Ada L', disabled = TRUE, \
             credentials_version = 5 WHERE id = $1",
        )
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
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
        let ((id, username, hash, email, full_name), (role, disabled, created_at, version), last) =
            read.unwrap();
        assert_eq!(
            (
                id,
                username.as_str(),
                hash.as_str(),
                email.as_str(),
                full_name.as_str()
            ),
            (user, "ada", "$argon2id$hash", "ada@example.org", "Ada L")
        );
        assert_eq!(
            (role.as_str(), disabled, created_at, version, last),
            ("admin", true, made, 5, Some(used))
        );
        // Revoked: no one, at once.
        db.delete_token("digest").await.unwrap();
        assert!(db.user_by_token("digest", now).await.unwrap().is_none());
        // Expired: no one.
        sqlx::query("UPDATE users SET disabled = FALSE WHERE id = $1")
            .bind(user)
            .execute(pool)
            .await
            .unwrap();
        db.insert_token(user, 5, "second", made, expires, None)
            .await
            .unwrap()
            .unwrap();
        assert!(db.user_by_token("second", now).await.unwrap().is_some());
        assert!(db.user_by_token("second", expires).await.unwrap().is_none());
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
