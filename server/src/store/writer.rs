//! Group commit of new image records, on SQLite.
//!
//! A commit is durable only once SQLite has flushed its log to disk
//! (`synchronous=FULL`), and that flush, not the insert, is what a commit
//! costs: about a millisecond on a plain disk. SQLite takes one writer at a
//! time anyway, so one task makes every new record: it takes all the inserts waiting
//! when it is free, writes them in one transaction and commits them with
//! one flush. A lone insert waits for nothing; under load, the records that
//! arrive while one group is being flushed make the next group. The caller
//! hears back only after its group is committed.
//!
//! One writer also means the inserts never wait on each other for SQLite's
//! write lock, where its busy handler sleeps in steps of milliseconds.

use tokio::sync::{mpsc, oneshot};

use super::images::{NameScope, NewImage};
use super::rows::ImageRow;
use super::Pool;

/// The most inserts one transaction takes.
const MOST_PER_GROUP: usize = 64;

/// Inserts that may wait for the writer before callers wait to send.
const QUEUE: usize = 1024;

/// A handle on the writer task; the task ends when the last handle goes.
#[derive(Debug, Clone)]
pub(super) struct Inserts {
    queue: mpsc::Sender<Waiting>,
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
    /// Starts the writer on the current Tokio runtime.
    pub(super) fn start(pool: Pool) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write_groups(pool, waiting));
        Self { queue }
    }

    /// Inserts a record (and a hypervisor's links) unless an image `unique`
    /// reads has its name, once its group is committed, and answers its row
    /// (see [`super::Tx::insert_image_if_name_free`]); `None` if the writer
    /// is gone (it panicked: the record was not stored, and the caller
    /// stores it alone).
    pub(super) async fn insert(&self, new: NewImage, unique: Option<NameScope>) -> Option<Answer> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting {
            new,
            unique,
            answer,
        };
        self.queue.send(waiting).await.ok()?;
        // Every group's answers are sent after its commit, and nothing
        // between the two can panic: a dropped answer means no commit.
        answered.await.ok()
    }
}

/// The writer: one group at a time, as long as anyone may send.
async fn write_groups(pool: Pool, mut waiting: mpsc::Receiver<Waiting>) {
    let mut group = Vec::with_capacity(MOST_PER_GROUP);
    while waiting.recv_many(&mut group, MOST_PER_GROUP).await > 0 {
        // A caller that stopped waiting (its request was cancelled) gets
        // no record, as when its own transaction was rolled back.
        group.retain(|one| !one.answer.is_closed());
        if group.is_empty() {
            continue;
        }
        let inserted = insert_together(&pool, &group).await;
        match inserted {
            Ok(rows) => {
                for (one, row) in group.drain(..).zip(rows) {
                    let _ = one.answer.send(Ok(row));
                }
            }
            Err(Failed::Insert(error)) if group.len() == 1 => {
                let _ = group.remove(0).answer.send(Err(error));
            }
            // One insert broke a rule of the database (a hypervisor naming
            // a record deleted meanwhile, say) and took the transaction
            // with it: each is tried again alone, so only that one fails,
            // with its own error.
            Err(Failed::Insert(sqlx::Error::Database(_))) => {
                for one in group.drain(..) {
                    let result = insert_alone(&pool, &one).await;
                    let _ = one.answer.send(result);
                }
            }
            // The database itself failed (busy past its timeout, no
            // connection): trying each again would only fail slower.
            Err(Failed::Insert(error)) => answer_all(&mut group, &error),
            // The commit itself failed: nothing of the group is known to
            // be stored, and trying again could store it twice.
            Err(Failed::Commit(error)) => {
                tracing::error!(%error, records = group.len(), "cannot commit new records");
                answer_all(&mut group, &error);
            }
        }
    }
}

/// Answers every caller of the group with the same failure.
fn answer_all(group: &mut Vec<Waiting>, error: &sqlx::Error) {
    let message = error.to_string();
    for one in group.drain(..) {
        let _ = one.answer.send(Err(sqlx::Error::Protocol(message.clone())));
    }
}

/// Why a group did not land.
enum Failed {
    /// Beginning the transaction or one of its inserts failed; it was
    /// rolled back.
    Insert(sqlx::Error),
    Commit(sqlx::Error),
}

/// The group in one transaction: every row (`None` for a name taken, by an
/// earlier record of the same group too), or nothing stored.
async fn insert_together(pool: &Pool, group: &[Waiting]) -> Result<Vec<Option<ImageRow>>, Failed> {
    let mut tx = pool.begin().await.map_err(Failed::Insert)?;
    let mut rows = Vec::with_capacity(group.len());
    for one in group {
        // Dropping `tx` on the way out rolls it back.
        let row = tx
            .insert_image_if_name_free(&one.new, one.unique)
            .await
            .map_err(Failed::Insert)?;
        rows.push(row);
    }
    tx.commit().await.map_err(Failed::Commit)?;
    Ok(rows)
}

/// One record in its own transaction.
async fn insert_alone(pool: &Pool, one: &Waiting) -> Answer {
    let mut tx = pool.begin().await?;
    let row = tx.insert_image_if_name_free(&one.new, one.unique).await?;
    tx.commit().await?;
    Ok(row)
}
