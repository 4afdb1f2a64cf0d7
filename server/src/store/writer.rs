//! Group commit of new image records.
//!
//! What a new record costs is mostly its statement and its commit, not its
//! row: on SQLite the flush of its log to disk; on PostgreSQL each
//! statement's and transaction's own work (with `pgbench` on these
//! machines, four rows in one statement land about 3.5 times as fast as
//! four statements, though the disk flushes in 0.15 ms). So every new
//! record waits in one queue, and a writer takes all the records waiting
//! when it is free, writes them in one transaction and commits them
//! together. A lone insert waits for nothing;
//! under load, the records that arrive while one group is being committed
//! make the next group. The caller hears back only after its group is
//! committed.
//!
//! A group that fails before its commit is rolled back and its records are
//! stored again, so that a record that broke a rule fails with its own
//! error: on SQLite each by its caller, alone (the database has one writer,
//! so they take turns); on PostgreSQL by the writer, before the next group
//! (`postgres::write_group`: the records with links each alone, then, if
//! there were any, the others together again, then each alone, one after
//! another; a failure that is the database's, not a record's, fails the
//! records still to be stored with it). A group whose commit
//! failed is not tried again: nothing of it is known to be stored, and a
//! second try could store it twice; every caller hears so.
//!
//! Each database has its writer: [`sqlite`]'s is a thread of its own, with
//! a rusqlite connection; [`postgres`]'s a task that commits groups through
//! the pool.

mod postgres;
mod sqlite;

use std::path::Path;

use sqlx::PgPool;
use tokio::sync::oneshot;

use super::images::{NameScope, NewImage};
use super::rows::ImageRow;

/// The most inserts one transaction takes.
const MOST_PER_GROUP: usize = 64;

/// Inserts that may wait for the writer before callers wait to send.
const QUEUE: usize = 1024;

/// A handle on the writer; the writer ends when the last handle goes.
#[derive(Debug, Clone)]
pub(super) struct Inserts {
    queue: flume::Sender<Waiting>,
}

/// What one insert answers: its row, or `None` when its name was taken.
type Answer = Result<Option<ImageRow>, sqlx::Error>;

/// An insert, its name rule, and who waits for its row.
struct Waiting {
    new: NewImage,
    unique: Option<NameScope>,
    answer: oneshot::Sender<Answer>,
}

impl Inserts {
    /// Starts SQLite's writer, a thread, on the database file `path`.
    pub(super) fn on_sqlite(path: &Path) -> std::io::Result<Self> {
        let (queue, waiting) = flume::bounded(QUEUE);
        sqlite::start(path, waiting)?;
        Ok(Self { queue })
    }

    /// Starts PostgreSQL's writer, a task of the current runtime, on `pool`.
    pub(super) fn on_postgres(pool: PgPool) -> Self {
        let (queue, waiting) = flume::bounded(QUEUE);
        postgres::start(pool, waiting);
        Self { queue }
    }

    /// Inserts a record (and a hypervisor's links) unless an image `unique`
    /// reads has its name, once its group is committed, and answers its row
    /// (see [`super::Tx::insert_image_if_name_free`]); `None` if it was not
    /// stored and the caller should store it alone: its group failed before
    /// its commit (on SQLite), or the writer is gone or panicked.
    pub(super) async fn insert(&self, new: NewImage, unique: Option<NameScope>) -> Option<Answer> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            new,
            unique,
            answer,
        };
        if self.queue.send_async(waiting).await.is_err() {
            tracing::error!("the group writer is gone; the record is committed alone");
            return None;
        }
        // Every group's answers are sent after its commit, and nothing
        // between the two can panic: a dropped answer means no commit.
        answered.await.ok()
    }
}

/// The next group: `first` and whatever else is waiting, as many as one
/// transaction takes, less the callers that stopped waiting (their requests
/// were cancelled): they get no record, as when their own transaction was
/// rolled back. It may be empty.
fn next_group(first: Waiting, waiting: &flume::Receiver<Waiting>) -> Vec<Waiting> {
    let mut group = Vec::with_capacity(MOST_PER_GROUP);
    group.push(first);
    group.extend(waiting.try_iter().take(MOST_PER_GROUP - 1));
    group.retain(|one| !one.answer.is_closed());
    group
}

/// Answers every caller of a committed group with its row, in order.
fn answer_rows(group: Vec<Waiting>, rows: Vec<Option<ImageRow>>) {
    for (one, row) in group.into_iter().zip(rows) {
        let _ = one.answer.send(Ok(row));
    }
}

/// Answers every caller of the group with the same failure.
fn answer_all(group: Vec<Waiting>, error: &dyn std::fmt::Display) {
    let message = error.to_string();
    for one in group {
        let _ = one.answer.send(Err(sqlx::Error::Protocol(message.clone())));
    }
}

/// Why a group did not land.
#[derive(Debug)]
enum Failed<E> {
    /// Beginning the transaction or one of its inserts failed; it was
    /// rolled back.
    Insert(E),
    Commit(E),
}
