//! PostgreSQL's writer: a task that takes the waiting records as a group and
//! commits each group in a transaction of the pool's.
//!
//! One group is written at a time ([`GROUPS_AT_ONCE`]): while it commits,
//! the records arriving make the next. Two at a time made groups half as
//! large and were no quicker: 4 clients created 1,280–1,937 records/s
//! against 2,244–2,264 with one (the benchmark, run in turns).
//!
//! A group is one statement ([`INSERT_IMAGES_CLAIMING`]), its own
//! transaction: one round trip, however many records. Records of one name
//! take turns, a statement each, in one transaction; so do the links of a
//! hypervisor image. A record alone is the single insert it always was.
//!
//! Each record's name check takes its name's lock for the transaction
//! (`depot_claim_image_name`, migration 0015), so a group holds several
//! names' locks until it commits. Two groups taking the same two names in
//! opposite orders would each wait for the other until PostgreSQL's
//! deadlock detector, a second later, failed one of them (and its records
//! were stored alone); so the statement takes its records in the order of
//! their locks' keys, as every group does, on any server sharing the
//! database; a group of several statements takes all its locks first, in
//! that order. Every other writer holds at most one name's lock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use tokio::sync::Semaphore;

use super::{answer_all, answer_rows, next_group, Waiting};
use crate::store::insert::{
    group_record, InsertArgs, INSERT_IMAGES_CLAIMING, INSERT_LINKS, LOCK_LINKED, LOCK_OWNER_COUNTS,
};
use crate::store::rows::ImageRow;
use crate::store::tx::{insert_alone_on_postgres, IMAGE_NAME_LOCKS};

type Failed = super::Failed<sqlx::Error>;

/// The most groups being written at a time.
const GROUPS_AT_ONCE: usize = 1;

/// Starts the writer as a task of the current runtime.
pub(super) fn start(pool: PgPool, waiting: flume::Receiver<Waiting>) {
    tokio::spawn(write_groups(pool, waiting));
}

/// The writer: a group whenever fewer than [`GROUPS_AT_ONCE`] are being
/// written, as long as anyone may send.
async fn write_groups(pool: PgPool, waiting: flume::Receiver<Waiting>) {
    let writing = Arc::new(Semaphore::new(GROUPS_AT_ONCE));
    loop {
        // A free slot first, then the records: those that arrive meanwhile
        // wait for that slot together.
        let Ok(slot) = writing.clone().acquire_owned().await else {
            return;
        };
        let Ok(first) = waiting.recv_async().await else {
            return;
        };
        let group = next_group(first, &waiting);
        if group.is_empty() {
            continue;
        }
        let pool = pool.clone();
        // A task of its own: if it panics, its group's answers are dropped
        // and each caller stores its record alone; the writer goes on.
        tokio::spawn(async move {
            write_group(&pool, group).await;
            drop(slot);
        });
    }
}

/// Writes a group and answers its callers.
async fn write_group(pool: &PgPool, group: Vec<Waiting>) {
    if group.len() == 1 {
        // Alone, whatever fails is its own.
        store_each_alone(pool, group).await;
        return;
    }
    let Some(group) = write_together(pool, group).await else {
        return;
    };
    // Rolled back. A link to an image deleted meanwhile is the usual cause,
    // and one any user can bring about: the records with links are stored
    // alone first, and the others together again, each alone only if they
    // fail again.
    let (linked, plain): (Vec<Waiting>, Vec<Waiting>) = group
        .into_iter()
        .partition(|one| !one.new.virtualized.is_empty());
    let again_together = !linked.is_empty() && plain.len() > 1;
    let plain = match store_each_alone(pool, linked).await {
        Some(error) => {
            fail_all(plain, &error);
            None
        }
        None if again_together => write_together(pool, plain).await,
        None => Some(plain),
    };
    if let Some(plain) = plain {
        store_each_alone(pool, plain).await;
    }
}

/// Writes `group` in one go and answers its callers; or gives it back if it
/// was rolled back before its commit, to be stored another way.
async fn write_together(pool: &PgPool, mut group: Vec<Waiting>) -> Option<Vec<Waiting>> {
    group.retain(|one| !one.answer.is_closed());
    if group.is_empty() {
        return None;
    }
    match insert_together(pool, &group).await {
        Ok(rows) => answer_rows(group, rows),
        // No connection within the pool's wait: one after another, each
        // record would wait as long again, and every later group behind.
        Err(Failed::Insert(error @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed))) => {
            fail_all(group, &error);
        }
        Err(Failed::Insert(error)) => {
            if let Blame::Record = blame(&error) {
                tracing::debug!(%error, records = group.len(), "a group of new records broke a rule");
            } else {
                tracing::warn!(%error, records = group.len(), "a group of new records failed");
            }
            return Some(group);
        }
        // Nothing of the group is known to be stored, and trying again could
        // store it twice.
        Err(Failed::Commit(error)) => {
            tracing::error!(%error, records = group.len(), "cannot commit new records");
            answer_all(group, &error);
        }
    }
    None
}

/// Stores each record of `group` in a transaction of its own, so that a
/// record that broke a rule fails with its own error, and only it; one
/// after another, while no other group is written. Side by side, as their
/// callers once stored them, each read its owner's count of images before
/// the others had committed, and a group made to fail passed an owner's
/// limit by its size. A record that fails for a reason neither its own nor
/// another transaction's (the database going away, a statement timed out)
/// fails the rest with it, and the error is the answer: each would wait as
/// long, and every later group behind them.
async fn store_each_alone(pool: &PgPool, group: Vec<Waiting>) -> Option<String> {
    let mut records = group.into_iter();
    while let Some(one) = records.next() {
        if one.answer.is_closed() {
            // Its request was cancelled: no record, as in `next_group`.
            continue;
        }
        let mut stored = store_alone(pool, &one).await;
        if let Err(error) = &stored {
            if let Blame::Turn = blame(error) {
                stored = store_alone(pool, &one).await;
            }
        }
        let stop = match &stored {
            Err(error) if matches!(blame(error), Blame::Database) => Some(error.to_string()),
            _ => None,
        };
        let _ = one.answer.send(stored);
        if let Some(error) = stop {
            fail_all(records.collect(), &error);
            return Some(error);
        }
    }
    None
}

/// Stores one record in a transaction of its own.
async fn store_alone(pool: &PgPool, one: &Waiting) -> Result<Option<ImageRow>, sqlx::Error> {
    if one.new.virtualized.is_empty() {
        return insert_alone_on_postgres(pool, &one.new, one.unique).await;
    }
    match insert_together(pool, std::slice::from_ref(one)).await {
        Ok(mut rows) => Ok(rows.pop().flatten()),
        Err(Failed::Insert(error) | Failed::Commit(error)) => Err(error),
    }
}

/// Answers every caller still waiting in `group` that its record cannot be
/// stored now.
fn fail_all(mut group: Vec<Waiting>, error: &dyn std::fmt::Display) {
    group.retain(|one| !one.answer.is_closed());
    if !group.is_empty() {
        tracing::error!(%error, records = group.len(), "cannot store new records");
        answer_all(group, error);
    }
}

/// Whose a record's failure is, by its SQLSTATE.
enum Blame {
    /// The record's own: a rule broken (class 23: a link to an image that is
    /// gone, say) or a value the database cannot take (class 22).
    Record,
    /// Another transaction's: rolled back so that it could go on (class 40:
    /// a deadlock), and stored at the next try.
    Turn,
    /// The database's: gone, shutting down, a statement past its time.
    Database,
}

fn blame(error: &sqlx::Error) -> Blame {
    let code = error.as_database_error().and_then(|error| error.code());
    match code.as_deref().map(|code| code.get(..2).unwrap_or(code)) {
        Some("22" | "23") => Blame::Record,
        Some("40") => Blame::Turn,
        _ => Blame::Database,
    }
}

/// The group, all of it or nothing: every row (`None` for a name taken, by
/// an earlier record of the same group too).
async fn insert_together(
    pool: &PgPool,
    group: &[Waiting],
) -> Result<Vec<Option<ImageRow>>, Failed> {
    let turns = turns(group);
    let mut rows: Vec<Option<ImageRow>> = group.iter().map(|_| None).collect();
    let linked = group.iter().any(|one| !one.new.virtualized.is_empty());
    if let ([turn], false) = (turns.as_slice(), linked) {
        // One statement, committed as it ends.
        insert_turn(pool, group, turn, &mut rows)
            .await
            .map_err(|error| match nothing_stored(&error) {
                true => Failed::Insert(error),
                false => Failed::Commit(error),
            })?;
        return Ok(rows);
    }
    // A transaction dropped before its commit is rolled back.
    let mut tx = pool.begin().await.map_err(Failed::Insert)?;
    lock_names(&mut tx, group).await.map_err(Failed::Insert)?;
    // Then, in that order, what the statements take after the names: the
    // images the records link to, and their owners' counts (see
    // `LOCK_LINKED`, `LOCK_OWNER_COUNTS`).
    let linked: Vec<i64> = group
        .iter()
        .flat_map(|one| one.new.virtualized.iter().copied())
        .collect();
    let owners: Vec<i64> = group.iter().filter_map(|one| one.new.owner_id).collect();
    for (statement, ids) in [(LOCK_LINKED, linked), (LOCK_OWNER_COUNTS, owners)] {
        if !ids.is_empty() {
            sqlx::query(statement)
                .bind(ids)
                .execute(&mut *tx)
                .await
                .map_err(Failed::Insert)?;
        }
    }
    for turn in &turns {
        insert_turn(&mut *tx, group, turn, &mut rows)
            .await
            .map_err(Failed::Insert)?;
    }
    for (one, row) in group.iter().zip(&rows) {
        if let Some(row) = row {
            link(&mut tx, row.id, &one.new.virtualized)
                .await
                .map_err(Failed::Insert)?;
        }
    }
    tx.commit().await.map_err(Failed::Commit)?;
    Ok(rows)
}

/// The group's records as turns of different names, each record in the
/// first turn that does not have its name yet: the first of a name to
/// arrive checks it first.
fn turns(group: &[Waiting]) -> Vec<Vec<usize>> {
    let mut turns: Vec<(HashSet<&str>, Vec<usize>)> = Vec::new();
    for (index, one) in group.iter().enumerate() {
        let name = one.new.name.as_str();
        match turns.iter_mut().find(|(names, _)| !names.contains(name)) {
            Some((names, indexes)) => {
                names.insert(name);
                indexes.push(index);
            }
            None => turns.push((HashSet::from([name]), vec![index])),
        }
    }
    turns.into_iter().map(|(_, indexes)| indexes).collect()
}

/// One statement for the records of `turn` (indexes into `group`), each
/// row stored put in its record's place in `rows` (the rows come back in no
/// set order, and the names of a turn differ).
async fn insert_turn<'c>(
    executor: impl PgExecutor<'c>,
    group: &[Waiting],
    turn: &[usize],
    rows: &mut [Option<ImageRow>],
) -> Result<(), sqlx::Error> {
    let records: Vec<serde_json::Value> = turn
        .iter()
        .map(|&index| group_record(&InsertArgs::of(&group[index].new, group[index].unique)))
        .collect();
    let stored = sqlx::query_as::<_, ImageRow>(INSERT_IMAGES_CLAIMING)
        .bind(serde_json::Value::Array(records).to_string())
        .fetch_all(executor)
        .await?;
    let mut stored: HashMap<String, ImageRow> = stored
        .into_iter()
        .map(|row| (row.name.clone(), row))
        .collect();
    for &index in turn {
        rows[index] = stored.remove(&group[index].new.name);
    }
    Ok(())
}

/// Takes the lock of every name the group checks, in the order of the
/// locks' keys, before its statements: each of them takes its records' locks
/// in that order, but a later one (a name's second record, checked where
/// the first was not) would take a lock of a smaller key after them. A
/// record alone too (one with links): its owner's count is locked next
/// (`LOCK_OWNER_COUNTS`), and a record of the same name inserted alone
/// meanwhile, holding the name and then taking the count as its statement
/// ends, could wait for it while it waited for the name.
async fn lock_names(
    tx: &mut Transaction<'static, Postgres>,
    group: &[Waiting],
) -> Result<(), sqlx::Error> {
    // The keys `depot_claim_image_name` takes; it takes its lock again,
    // which a transaction holding it gets at once.
    const LOCK_IN_ORDER: &str = "SELECT pg_advisory_xact_lock($1, key) \
         FROM (SELECT DISTINCT hashtext(name) AS key FROM UNNEST($2::text[]) AS name \
         ORDER BY key OFFSET 0) AS keys";
    let names: Vec<&str> = group
        .iter()
        .filter(|one| one.unique.is_some())
        .map(|one| one.new.name.as_str())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    sqlx::query(LOCK_IN_ORDER)
        .bind(IMAGE_NAME_LOCKS)
        .bind(names)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether a failed statement is known to have stored nothing: the
/// database refused it, or it never reached the database. A connection cut
/// while it ran leaves its commit unknown, and so does a connection ended
/// by the database (class 57P, a shutdown; 08): that can come after the
/// commit, while it waits for a replica.
fn nothing_stored(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => !error
            .code()
            .is_some_and(|code| code.starts_with("57P") || code.starts_with("08")),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        _ => false,
    }
}

/// Links a hypervisor image to the images it runs, in one statement.
async fn link(
    tx: &mut Transaction<'static, Postgres>,
    hypervisor_id: i64,
    image_ids: &[i64],
) -> Result<(), sqlx::Error> {
    if image_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(INSERT_LINKS)
        .bind(hypervisor_id)
        .bind(image_ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
