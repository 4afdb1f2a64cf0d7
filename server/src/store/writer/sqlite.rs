//! SQLite's writer: one thread, which makes every new record.
//!
//! A commit is durable only once SQLite has flushed its log to disk
//! (`synchronous=FULL`), about a millisecond on a plain disk. SQLite takes
//! one writer at a time anyway, so one thread writing the groups also means
//! the inserts never wait on each other for SQLite's write lock, where its
//! busy handler sleeps in steps of milliseconds.
//!
//! The thread has a rusqlite connection of its own, its statements prepared
//! once, and reads the row each insert returns straight into
//! [`ImageRow`]: through sqlx's worker, each statement of a group was a
//! hand-off between threads and each returned value a copy, which made
//! more than half of the server's work in creating a record (`perf`).
//! A record of a failed group is stored again by its caller through sqlx,
//! so that it fails with sqlx's error for it (unless another connection
//! held the write lock past the busy timeout: then every caller hears so
//! at once, as trying again would fail slower).

use std::panic::AssertUnwindSafe;
use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{answer_all, answer_rows, next_group, Waiting};
use crate::store::insert::{for_each_insert_arg, InsertArgs, INSERT_IMAGE, INSERT_LINK};
use crate::store::reader::{bind_at, time_text};
use crate::store::rows::ImageRow;
use crate::store::write_turns;

type Failed = super::Failed<rusqlite::Error>;

/// Starts the writer's thread on the database file `path`.
pub(super) fn start(path: &Path, waiting: flume::Receiver<Waiting>) -> std::io::Result<()> {
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("depot-writer".into())
        .spawn(move || write_groups(&path, &waiting))?;
    Ok(())
}

/// The writer: one group at a time, as long as anyone may send.
fn write_groups(path: &Path, waiting: &flume::Receiver<Waiting>) {
    let mut connection = None;
    while let Ok(first) = waiting.recv() {
        let group = next_group(first, waiting);
        if group.is_empty() {
            continue;
        }
        let open = match &mut connection {
            Some(open) => open,
            None => match open(path) {
                Ok(opened) => connection.insert(opened),
                Err(error) => {
                    // Dropping the group's answers has each caller store
                    // its record alone.
                    tracing::warn!(%error, "cannot open the writer's connection");
                    continue;
                }
            },
        };
        // A panic rolls the group back as it unwinds; its callers store
        // their records alone, and the next group gets a new connection.
        let inserted = std::panic::catch_unwind(AssertUnwindSafe(|| insert_together(open, &group)));
        match inserted {
            Ok(Ok(rows)) => answer_rows(group, rows),
            // Another connection held SQLite's write lock past the busy
            // timeout: trying each again would only fail slower.
            Ok(Err(Failed::Insert(error))) if is_busy(&error) => answer_all(group, &error),
            // Rolled back: each caller stores its record alone, so that a
            // record that broke a rule fails with its own error, and only it.
            Ok(Err(Failed::Insert(error))) => {
                if is_rule_broken(&error) {
                    tracing::debug!(%error, records = group.len(), "a group of new records broke a rule");
                } else {
                    tracing::warn!(%error, records = group.len(), "a group of new records failed; each is stored alone");
                }
            }
            // The commit itself failed: nothing of the group is known to
            // be stored, and trying again could store it twice.
            Ok(Err(Failed::Commit(error))) => {
                tracing::error!(%error, records = group.len(), "cannot commit new records");
                answer_all(group, &error);
            }
            Err(_) => {
                tracing::error!(
                    records = group.len(),
                    "the group writer panicked; each record is stored alone"
                );
                connection = None;
            }
        }
        // Another write waiting for SQLite's lock gets it now, not after
        // the groups that keep coming under load.
        write_turns::give_way();
        // A connection left inside a transaction (a rollback that failed)
        // would hold SQLite's write lock: a new one is opened instead.
        if connection
            .as_ref()
            .is_some_and(|open| !open.is_autocommit())
        {
            connection = None;
        }
    }
}

/// Whether SQLite gave up waiting for another connection's lock.
fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Whether a record broke a rule of the database (a foreign key, say).
fn is_rule_broken(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// The group in one transaction: every row (`None` for a name taken, by an
/// earlier record of the same group too), or nothing stored.
fn insert_together(
    connection: &mut Connection,
    group: &[Waiting],
) -> Result<Vec<Option<ImageRow>>, Failed> {
    // Immediate: the write lock from the start, so the group waits for
    // another writer here, with the busy handler, rather than failing at
    // its first insert.
    let tx = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(Failed::Insert)?;
    let mut rows = Vec::with_capacity(group.len());
    for one in group {
        // Dropping `tx` on the way out rolls it back.
        rows.push(insert_one(&tx, one).map_err(Failed::Insert)?);
    }
    tx.commit().map_err(Failed::Commit)?;
    Ok(rows)
}

/// One record and its links, inside the group's transaction.
fn insert_one(tx: &rusqlite::Transaction<'_>, one: &Waiting) -> rusqlite::Result<Option<ImageRow>> {
    let args = InsertArgs::of(&one.new, one.unique);
    let mut insert = tx.prepare_cached(INSERT_IMAGE)?;
    let mut position = 0;
    macro_rules! bind {
        (@time $value:expr) => {{
            position += 1;
            bind_at(&mut insert, position, time_text(&$value))?;
        }};
        ($value:expr) => {{
            position += 1;
            bind_at(&mut insert, position, $value)?;
        }};
    }
    for_each_insert_arg!(args, bind);
    if position != insert.parameter_count() {
        return Err(rusqlite::Error::InvalidParameterCount(
            position,
            insert.parameter_count(),
        ));
    }
    // SQLite makes the whole insert at the first step; the statement is
    // reset when its rows are dropped.
    let row = {
        let mut returned = insert.raw_query();
        match returned.next()? {
            Some(row) => Some(ImageRow::from_rusqlite(row)?),
            None => None,
        }
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let mut link = tx.prepare_cached(INSERT_LINK)?;
    for image_id in &one.new.virtualized {
        link.execute((row.id, image_id))?;
    }
    Ok(Some(row))
}

/// The writer's connection, set as sqlx sets the pool's: every commit on
/// disk before it is acknowledged, foreign keys enforced, and a writer
/// that holds the lock waited for (polled as the pool's connections poll,
/// see [`write_turns`]); and its statements planned once.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    // No mutex of SQLite's own: one thread holds the connection.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_handler(Some(write_turns::writer_waits_again))?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    // Once ANALYZE has sampled the names (SQLite's STAT4 statistics), the
    // planner weighs the name bound to the insert's check against them,
    // and SQLite compiles the insert again whenever a new name is bound:
    // each record, a quarter of this thread's work (`perf`). The query
    // planner stability guarantee plans from the statistics alone, once;
    // an equality on an indexed name has one plan anyway.
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::images::NameScope;
    use tokio::sync::oneshot;

    #[test]
    fn the_writers_connection_syncs_each_commit_and_keeps_foreign_keys() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("depot.db");
        Connection::open(&path).unwrap();
        let connection = open(&path).unwrap();
        // FULL is 2: in WAL mode NORMAL syncs only at checkpoints.
        let synchronous: i64 = connection
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 2);
        let foreign_keys: bool = connection
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .unwrap();
        assert!(foreign_keys);
    }

    /// A new record for the writer, checked against every image's name.
    fn waiting(name: String) -> Waiting {
        let (answer, _) = oneshot::channel();
        let new =
            crate::core::demo::record(app::model::ImageKind::Vm, "f", &name, chrono::Utc::now());
        Waiting {
            new,
            unique: Some(NameScope::Everyone),
            answer,
        }
    }

    #[tokio::test]
    async fn the_insert_is_compiled_once_on_an_analyzed_catalog() {
        let folder = tempfile::tempdir().unwrap();
        let db = crate::store::Db::migrated_sqlite_in(folder.path()).await;
        let path = folder.path().join("depot.db");
        let mut connection = open(&path).unwrap();
        let first: Vec<_> = (0..500).map(|n| waiting(format!("image-{n:04}"))).collect();
        insert_together(&mut connection, &first).unwrap();
        // Statistics with samples of every index, names included, as a
        // maintained database has them.
        let crate::store::Pool::Sqlite(pool) = db.pool() else {
            unreachable!()
        };
        sqlx::query("ANALYZE").execute(pool).await.unwrap();
        let samples: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_stat4")
            .fetch_one(pool)
            .await
            .unwrap();
        assert!(samples > 0, "ANALYZE sampled the indexes");

        let mut connection = open(&path).unwrap();
        for group in 0..10 {
            let records: Vec<_> = (0..5)
                .map(|n| waiting(format!("new-{group}-{n}")))
                .collect();
            let rows = insert_together(&mut connection, &records).unwrap();
            assert!(rows.iter().all(Option::is_some), "every name was free");
        }
        // A name taken is still seen as taken.
        let taken = insert_together(&mut connection, &[waiting("image-0042".into())]).unwrap();
        assert!(taken[0].is_none(), "image-0042 exists");
        let insert = connection.prepare_cached(INSERT_IMAGE).unwrap();
        assert_eq!(
            insert.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "the insert was compiled again for new names"
        );
    }
}
