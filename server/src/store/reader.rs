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

use rusqlite::config::DbConfig;
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

/// A read as a lane's thread runs it, given the thread's connections and
/// the file to open them on.
type Job = Box<dyn FnOnce(&mut Connections, &Path) + Send>;

/// A lane thread's connections, each opened on its first read.
///
/// Once ANALYZE has sampled the indexes (SQLite's STAT4 statistics), SQLite
/// plans a statement for the values bound to an indexed column's
/// comparison, and compiles it again each time one is bound anew: every
/// page, every token look-up. So statements are planned once from the
/// statistics alone (the query planner stability guarantee), except a
/// LIKE: only its pattern tells which range of the name index to read.
/// SQLite recompiles every statement of a connection when that setting
/// changes, so each kind has a connection of its own.
#[derive(Default)]
struct Connections {
    planned_once: Option<Connection>,
    planned_per_values: Option<Connection>,
}

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

    /// Runs `read` in the catalog's lane, on a connection that plans its
    /// statements for the values bound if `per_values` (see
    /// [`super::sql::Sql::planned_per_values`]).
    pub(super) async fn read<T: Send + 'static>(
        &self,
        per_values: bool,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        self.catalog.read(per_values, read).await
    }

    /// Runs `read`, a short read every request makes, in the look-ups' lane.
    pub(super) async fn look_up<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        self.lookups.read(false, read).await
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
        per_values: bool,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, sqlx::Error> {
        let deadline = Instant::now() + self.limit;
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |connections, path| {
            // Its caller gave up (the client went away) while it waited.
            if answer.is_closed() {
                return;
            }
            let slot = match per_values {
                false => &mut connections.planned_once,
                true => &mut connections.planned_per_values,
            };
            let _ = answer.send(run(slot, path, per_values, deadline, read));
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
    let mut connections = Connections::default();
    while let Ok(job) = waiting.recv() {
        // A read that panics loses its answer and the connection it ran
        // on (which a fresh one replaces), never the thread.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut connections, path))).is_err() {
            connections = Connections::default();
        }
    }
}

/// Runs `read` on the thread's connection (opening it first if need be),
/// interrupted at `deadline`.
fn run<T>(
    slot: &mut Option<Connection>,
    path: &Path,
    per_values: bool,
    deadline: Instant,
    read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let connection = match slot {
        Some(connection) => connection,
        None => slot.insert(open(path, per_values)?),
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
    // A transaction left open (a rollback that failed after an error)
    // would keep every later read on this connection at its snapshot.
    if !connection.is_autocommit() {
        *slot = None;
    }
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
/// statements call, planning them for the values bound if `per_values`.
fn open(path: &Path, per_values: bool) -> rusqlite::Result<Connection> {
    // No mutex of SQLite's own: one thread holds the connection.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update(None, "query_only", true)?;
    connection.set_prepared_statement_cache_capacity(PREPARED);
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, !per_values)?;
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

/// Binds `sql`'s arguments as sqlx binds them (see [`bind_at`]).
fn bind(statement: &mut rusqlite::CachedStatement<'_>, sql: &Sql) -> rusqlite::Result<()> {
    if statement.parameter_count() != sql.args.len() {
        return Err(rusqlite::Error::InvalidParameterCount(
            sql.args.len(),
            statement.parameter_count(),
        ));
    }
    for (index, arg) in sql.args.iter().enumerate() {
        let position = index + 1;
        match arg {
            Arg::Int(value) => bind_at(statement, position, value)?,
            Arg::Text(value) => bind_at(statement, position, value)?,
            Arg::Bool(value) => bind_at(statement, position, value)?,
            Arg::Time(value) => bind_at(statement, position, time_text(value))?,
        }
    }
    Ok(())
}

/// Binds `value` as the statement's `$position`. Statements are written
/// with `$1`, `$2`, … (sqlx's style), each first appearing in order, which
/// SQLite numbers 1, 2, …; checked in debug builds, so by every test.
pub(super) fn bind_at(
    statement: &mut rusqlite::Statement<'_>,
    position: usize,
    value: impl rusqlite::ToSql,
) -> rusqlite::Result<()> {
    debug_assert_eq!(
        statement.parameter_name(position),
        Some(format!("${position}").as_str())
    );
    statement.raw_bind_parameter(position, value)
}

/// A time as the RFC 3339 text sqlx writes, so that stored times compare
/// whichever driver wrote them.
pub(super) fn time_text(time: &chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// A column of a row read here, as the field of a row type it fills
/// (`super::rows`): rusqlite's own decoding, except for times.
pub(super) trait Column: Sized {
    fn read(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Self>;
}

macro_rules! rusqlite_column {
    ($($type:ty),*) => {
        $(impl Column for $type {
            fn read(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Self> {
                row.get(column)
            }
        })*
    };
}
rusqlite_column!(i64, bool, String, Option<i64>, Option<String>);

/// rusqlite reads a time with chrono's `parse_from_str` and a format string,
/// which chrono parses anew each time: a page's two times a row were a
/// seventh of its reading (`perf`). The RFC 3339 text [`time_text`] and sqlx
/// write is read with chrono's RFC 3339 parser instead; any other text
/// (SQLite's own `datetime()`, say) as rusqlite reads it.
impl Column for chrono::DateTime<chrono::Utc> {
    fn read(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Self> {
        if let rusqlite::types::ValueRef::Text(text) = row.get_ref(column)? {
            if let Some(time) = std::str::from_utf8(text)
                .ok()
                .and_then(|text| chrono::DateTime::parse_from_rfc3339(text).ok())
            {
                return Ok(time.to_utc());
            }
        }
        row.get(column)
    }
}

impl Column for Option<chrono::DateTime<chrono::Utc>> {
    fn read(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Self> {
        match row.get_ref(column)? {
            rusqlite::types::ValueRef::Null => Ok(None),
            _ => Column::read(row, column).map(Some),
        }
    }
}

/// `sql`'s statement from the connection's cache. In debug builds (every
/// test), checks that the connection plans as the statement needs.
fn prepare<'c>(
    connection: &'c Connection,
    sql: &Sql,
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    debug_assert_eq!(
        connection.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)?,
        !sql.planned_per_values,
        "{} is read on a connection that plans otherwise",
        sql.text
    );
    connection.prepare_cached(&sql.text)
}

/// Every row of `sql`, each as `decode` reads it.
pub(super) fn rows<T>(
    connection: &Connection,
    sql: &Sql,
    mut decode: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = prepare(connection, sql)?;
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
    let mut statement = prepare(connection, sql)?;
    bind(&mut statement, sql)?;
    let mut rows = statement.raw_query();
    rows.next()?.map(decode).transpose()
}

#[cfg(test)]
mod tests;
