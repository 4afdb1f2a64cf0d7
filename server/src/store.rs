//! The database: one repository over SQLite or PostgreSQL.
//!
//! Each method is written once and compiled for both backends by
//! [`with_pool!`], which matches on the pool and runs the same sqlx code
//! against either. SQL that differs between the two (`ILIKE`) is chosen in
//! [`sql`], the only place that turns a core [`app::query::Query`] into SQL.

mod catalog;
mod coopr;
mod deployments;
mod environments;
mod exports;
mod images;
mod insert;
mod jobs;
mod kept;
mod migrations;
mod quota;
mod reader;
mod rows;
mod sessions;
pub mod sql;
mod sync;
mod token_cache;
mod tokens;
mod tx;
mod uploads;
mod users;
mod write_turns;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use catalog::KeptCatalog;
pub use coopr::{
    is_unique_violation, ApiKeyListing, ApiKeyRow, ImageTypeRow, KeyStored, TenantRow,
};
pub use deployments::{DeletedDeployment, DeploymentRow, NewDeployment, REMOVAL_LEASE_MS};
pub use environments::{DeletedEnvironment, EnvironmentColumns, EnvironmentRow};
pub use images::{DetailsUpdate, LinkRow, NameScope, NewImage, ProvisioningUpdate};
pub use jobs::{JobCount, JobRow};
pub use kept::KeptFigures;
pub use migrations::POSTGRES_MIGRATIONS;
pub use quota::{QuotaAsk, SyncedCopy};
pub use rows::{ImageRow, TokenOwner, UserRow};
pub use sessions::SessionStore;
pub use sync::{SyncOutcome, SyncRow};
pub use tokens::{token_digest, TokenRow};
pub(crate) use tx::with_tx;
pub use tx::{BlobLock, NewContent, Tx};
pub use uploads::{NewPart, PartRow, UploadRecorded, UploadRow};
pub use users::{AccountChange, AccountChanged, NewUser};

/// The longest a PostgreSQL statement may run.
pub const STATEMENT_TIMEOUT: &str = "30s";

/// The longest a PostgreSQL transaction may wait on its server between two
/// statements: one whose server is stuck or gone is ended by the database,
/// and the rows it locked are free again. Longer than anything a
/// transaction waits for on purpose: a blob's lock is held while the object
/// store copies the blob, which it may take ten of its 60 s limits to answer
/// (`blob::object::patience`).
pub const IDLE_IN_TRANSACTION_TIMEOUT: &str = "15min";

/// How long a PostgreSQL connection may have been idle in the pool and still
/// be handed out without a ping (HikariCP's window, `aliveBypassWindowMs`).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_millis(500);

/// Which SQL dialect a statement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to one of the two backends.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database: its pool, the writer that commits new image records in
/// groups (see [`writer`]), and on SQLite the reader of what every request
/// reads (see [`reader`]). PostgreSQL needs no reader: its driver hands over
/// a page's rows as they came off the socket.
#[derive(Debug, Clone)]
pub struct Db {
    pool: Pool,
    inserts: Option<writer::Inserts>,
    reader: Option<reader::Reader>,
    tokens: Arc<token_cache::TokenCache>,
    /// The totals of catalog queries and the pages read lately, each with
    /// the catalog's version it saw (see [`kept`]); on SQLite, only those
    /// read through the [`reader`] (not a database in memory).
    counts: Arc<kept::KeptCache<i64>>,
    pages: Arc<kept::KeptCache<Arc<[ImageRow]>>>,
}

/// The most bytes of kept totals: about a thousand queries.
const KEPT_COUNTS_BYTES: usize = 512 << 10;

/// The most bytes of kept pages: about forty pages of a hundred images.
const KEPT_PAGES_BYTES: usize = 4 << 20;

/// Runs the same sqlx code against whichever pool `$db` holds.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Whether the rows `$count` counts for `$owner` reach `$at_most` (`$count`
/// is `SELECT COUNT(*) FROM (SELECT 1 … WHERE user_id = $1 LIMIT $2)`), read
/// in transaction `$tx` once the owner's row is locked in it: the check of
/// each cap on what one user keeps (deployments under way, environments,
/// API keys) before an insert, so that no two inserts see the same count.
macro_rules! count_reaches {
    ($tx:expr, $count:expr, $owner:expr, $at_most:expr) => {
        sqlx::query_scalar::<_, i64>($count)
            .bind($owner)
            .bind($at_most)
            .fetch_one(&mut *$tx)
            .await
            .map(|kept| kept >= $at_most)
    };
}
pub(crate) use count_reaches;

/// Binds every argument of an [`sql::Sql`] to a query, in order.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::store::sql::Arg::Int(value) => query.bind(value),
                $crate::store::sql::Arg::Text(value) => query.bind(value),
                $crate::store::sql::Arg::Bool(value) => query.bind(value),
                $crate::store::sql::Arg::Time(value) => query.bind(value),
            };
        }
        query
    }};
}
pub(crate) use bind_args;

impl Db {
    fn new(pool: Pool, reader: Option<reader::Reader>) -> Self {
        // SQLite's group writer has a connection of its own, on the same
        // plain file as the reader's; a database in memory (the tests' few)
        // or opened otherwise commits each record alone, through the pool.
        let inserts = match (&pool, &reader) {
            (Pool::Sqlite(pool), Some(_)) => {
                writer::Inserts::on_sqlite(pool.connect_options().get_filename())
                    .inspect_err(|error| tracing::warn!(%error, "cannot start the group writer"))
                    .ok()
            }
            (Pool::Sqlite(_), None) => None,
            (Pool::Postgres(pool), _) => Some(writer::Inserts::on_postgres(pool.clone())),
        };
        let tokens = Arc::new(match &pool {
            Pool::Sqlite(_) => token_cache::TokenCache::on_sqlite(),
            Pool::Postgres(pool) => token_cache::TokenCache::on_postgres(pool),
        });
        Self {
            pool,
            inserts,
            reader,
            tokens,
            counts: Arc::new(kept::KeptCache::new(KEPT_COUNTS_BYTES)),
            pages: Arc::new(kept::KeptCache::new(KEPT_PAGES_BYTES)),
        }
    }

    /// The same database, keeping no page or total across requests: the
    /// benchmarks' reference for what the statements themselves cost.
    pub fn keeping_nothing(&self) -> Self {
        Self {
            counts: Arc::new(kept::KeptCache::new(0)),
            pages: Arc::new(kept::KeptCache::new(0)),
            ..self.clone()
        }
    }

    /// The connection pool, for what [`Db`] has no method for (tests and
    /// benchmarks).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Answers if the database answers a trivial query.
    ///
    /// On PostgreSQL, a pooled connection the database dropped less than
    /// [`PING_WHEN_IDLE_FOR`] ago fails its next use. The question here is
    /// whether the database answers, so such connections are looked past
    /// (and closed, sparing the requests after) until one answers or a new
    /// one cannot be opened.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        const SELECT: &str = "SELECT 1";
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(SELECT).execute(pool).await.map(|_| ()),
            Pool::Postgres(pool) => {
                let mut tries = pool.options().get_max_connections() + 1;
                loop {
                    let mut connection = pool.acquire().await?;
                    match sqlx::query(SELECT).execute(&mut *connection).await {
                        Ok(_) => return Ok(()),
                        Err(error) if tries <= 1 => return Err(error),
                        Err(_) => {
                            connection.close_on_drop();
                            tries -= 1;
                        }
                    }
                }
            }
        }
    }

    /// A migrated SQLite database on a file in `dir` (`depot.db`), for unit
    /// tests.
    #[cfg(test)]
    pub(crate) async fn migrated_sqlite_in(dir: &std::path::Path) -> Self {
        let url = format!("sqlite://{}?mode=rwc", dir.join("depot.db").display());
        let db = Self::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    /// Connects to `url`: `postgres://…` for PostgreSQL, anything else is a SQLite URL.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // No statement may hold a connection (and its locks) for long,
            // whatever a request asked for. Every transaction reads what was
            // committed before each of its statements, whatever the database's
            // default: a check made after taking a lock (an image name's, a
            // quota's) must see the writes of whoever held it before.
            let options = PgConnectOptions::from_str(url)?.options([
                ("statement_timeout", STATEMENT_TIMEOUT),
                (
                    "idle_in_transaction_session_timeout",
                    IDLE_IN_TRANSACTION_TIMEOUT,
                ),
                // The startup options split on spaces unless escaped.
                ("default_transaction_isolation", "read\\ committed"),
            ]);
            let pool = PgPoolOptions::new()
                .max_connections(32)
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings a connection as it goes back to the pool, and by
                // default again as it is taken out: a round trip to the
                // database before every statement. A connection back within
                // the last half second was just found alive; one idle for
                // longer is pinged, and replaced if the database no longer
                // knows it (a restart, a fail-over, an idle timeout). Only a
                // connection cut in that half second fails its next use.
                .test_before_acquire(false)
                .before_acquire(|connection, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_WHEN_IDLE_FOR {
                            sqlx::Connection::ping(connection).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await?;
            Ok(Self::new(Pool::Postgres(pool), None))
        } else {
            // FULL: a commit is on disk before it is acknowledged (in WAL
            // mode NORMAL syncs only at checkpoints, and a power cut could
            // lose what was acknowledged since). The group commit of new
            // records keeps that one sync per many records.
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // MWS `$regex`: the `regex` crate as SQLite's REGEXP function.
                .with_regexp()
                .busy_timeout(Duration::from_secs(10));
            // A connection in this process cannot go stale, so no ping
            // before each use (a round trip to its worker thread).
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .after_connect(|connection, _| Box::pin(write_turns::poll_for_the_lock(connection)))
                .connect_with(options)
                .await?;
            let parameters = url.split_once('?').map(|(_, parameters)| parameters);
            let reader =
                reader::Reader::for_database(pool.connect_options().get_filename(), parameters);
            Ok(Self::new(Pool::Sqlite(pool), reader))
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Run first in a transaction, makes every other transaction that runs
    /// it for the same user (`$1`) wait for this one to end: a user's quota
    /// reservations, or deployments counted before one is added. SQLite's
    /// write lock, which the UPDATE takes, serializes them all.
    pub(crate) fn user_lock(&self) -> &'static str {
        match self.backend() {
            // NO KEY: foreign-key checks on the user's row do not wait.
            Backend::Postgres => "SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE",
            // A column no trigger watches: the catalog's version stays.
            Backend::Sqlite => "UPDATE users SET role = role WHERE id = $1",
        }
    }

    /// Run first in a transaction, makes every other transaction that runs
    /// it for the same tenant (`$1`) wait for this one to end: image types
    /// counted before one is added. SQLite's write lock, which the UPDATE
    /// takes, serializes them all.
    pub(crate) fn tenant_lock(&self) -> &'static str {
        match self.backend() {
            // NO KEY: the foreign-key checks of its members' rows do not wait.
            Backend::Postgres => "SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE",
            Backend::Sqlite => "UPDATE tenants SET name = name WHERE id = $1",
        }
    }

    /// Run first in a transaction, makes every other transaction that runs
    /// it for the same name (`$1`) wait for this one to end: an account
    /// made and an export folder claimed under one name, each written only
    /// if the other is not there, see each other. SQLite's single writer
    /// serializes them without it.
    pub(crate) fn name_lock(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => "SELECT pg_advisory_xact_lock(hashtext('depot name ' || $1))",
            Backend::Sqlite => "SELECT $1",
        }
    }

    /// The plan the database chooses for `statement`, a step a line: what
    /// the catalog benchmark prints beside its timings, and what the tests
    /// hold pages to.
    pub async fn plan(&self, statement: &sql::Sql) -> Result<Vec<String>, sqlx::Error> {
        let (explain, column) = match self.backend() {
            Backend::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            Backend::Postgres => ("EXPLAIN ", "QUERY PLAN"),
        };
        let text = format!("{explain}{}", statement.text);
        with_pool!(self, pool => {
            bind_args!(sqlx::query(&text), &statement.args)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| sqlx::Row::try_get::<String, _>(row, column))
                .collect()
        })
    }

    /// Applies the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.pool {
            Pool::Sqlite(pool) => migrations::SQLITE_MIGRATIONS.run(pool).await,
            // Migrations may take longer than any request may.
            Pool::Postgres(pool) => {
                let mut connection = pool.acquire().await?;
                sqlx::query("SET statement_timeout = 0")
                    .execute(&mut *connection)
                    .await?;
                let migrated = POSTGRES_MIGRATIONS.run(&mut *connection).await;
                // The connection goes back to the pool with the usual limit.
                let _ = sqlx::query("RESET statement_timeout")
                    .execute(&mut *connection)
                    .await;
                migrated
            }
        }
    }

    pub async fn close(&self) {
        self.tokens.close().await;
        with_pool!(self, pool => pool.close().await)
    }
}
