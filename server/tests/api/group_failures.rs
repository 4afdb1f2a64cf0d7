//! A group of new records that fails before its commit, on PostgreSQL: how
//! the writer stores its records again, and when it stops.

use depot_server::store::{ImageRow, NameScope};
use futures_util::future::join_all;
use rstest::rstest;

use crate::durability::{
    admins_images, commits_of, definition, holding_name_lock, limited, lock_key, on_postgres,
};

/// A group rolled back (here by a link to an image that does not exist) is
/// stored again by the writer before the next: its records with links alone,
/// the others together again. Side by side, as their callers once stored
/// them, each read its owner's count of images before the others had
/// committed, and all five landed where there was room for two.
// One thread, so that the six records wait for the writer as one group:
// `join_all` sends them all before the writer's task runs.
#[tokio::test(flavor = "current_thread")]
async fn postgres_records_of_a_failed_group_stop_at_their_owners_limit() {
    let (_app, db, pool) = on_postgres().await;
    let at_most = admins_images(&pool).await + 2;
    // A connection open for each record, as on a busy server, so that
    // records stored side by side would run at once (with the pool opening
    // connections one by one, they took turns, and this passed without the
    // writer storing them one after another).
    join_all((0..8).map(|_| sqlx::query("SELECT pg_sleep(0.05)").execute(&pool))).await;
    // The broken record has no limit, so that the group stores it, and
    // fails at its link, whichever place it takes in the group.
    let mut records = vec![definition("failed-group-broken", vec![i64::MAX])];
    records.extend((0..5).map(|index| limited(&format!("failed-group-{index}"), at_most)));
    let stored = join_all(
        records
            .iter()
            .map(|new| db.insert_image_if_name_free(new, Some(NameScope::Everyone))),
    )
    .await;
    match &stored[0] {
        Err(sqlx::Error::Database(error)) => assert!(error.is_foreign_key_violation(), "{error}"),
        other => panic!("the broken record: {other:?}"),
    }
    let landed: Vec<&ImageRow> = stored[1..]
        .iter()
        .filter_map(|result| result.as_ref().unwrap().as_ref())
        .collect();
    let names: Vec<&str> = landed.iter().map(|row| row.name.as_str()).collect();
    assert_eq!(landed.len(), 2, "stored: {names:?}");
    assert_eq!(admins_images(&pool).await, at_most);
    let ids: Vec<i64> = landed.iter().map(|row| row.id).collect();
    assert_eq!(commits_of(&pool, &ids).await, 1, "stored together again");
}

/// A record stored again after its group failed, that fails for the
/// database's reason, not its own (here its statement cancelled while it
/// waits for its name's lock, as one past its time is), fails the group's
/// records still to be stored with it, those without links after one with
/// them too: each would wait as long, and every later group behind them.
#[rstest]
#[case::without_links(false)]
#[case::with_links(true)]
#[tokio::test(flavor = "current_thread")]
async fn postgres_a_failed_group_stops_at_a_failure_not_its_records(#[case] linked: bool) {
    let (_app, db, pool) = on_postgres().await;
    // Another transaction holds the lock of one record's name.
    let waits_key = lock_key(&pool, "stop-waits".into()).await;
    let mut other = holding_name_lock(&pool, waits_key).await;
    let group = tokio::spawn(async move {
        // Without links, `stop-waits` goes with `stop-after` again after
        // the broken record alone; with them, alone before them.
        let records = match linked {
            false => [
                definition("stop-broken", vec![i64::MAX]),
                definition("stop-waits", Vec::new()),
                definition("stop-after", Vec::new()),
            ],
            true => [
                definition("stop-waits", vec![i64::MAX]),
                definition("stop-after", Vec::new()),
                definition("stop-after-too", Vec::new()),
            ],
        };
        join_all(
            records
                .iter()
                .map(|new| db.insert_image_if_name_free(new, Some(NameScope::Everyone))),
        )
        .await
    });
    // Every statement that waits for that lock is cancelled: the group's,
    // then (without links) the others' together again, then `stop-waits`
    // alone.
    // Each wait once (by its process and its start): a wait cancelled shows
    // until its process reads the cancel, and the lock is never let go, so
    // the cancel ends that wait, not a later statement.
    let waiting = "SELECT pid, waitstart::text FROM pg_locks WHERE locktype = 'advisory' \
         AND NOT granted AND waitstart IS NOT NULL \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid::int = 1851878757 AND objid::int = $1";
    let mut cancelled = std::collections::HashSet::new();
    for _ in 0..400 {
        if group.is_finished() {
            break;
        }
        let waits: Vec<(i32, String)> = sqlx::query_as(waiting)
            .bind(waits_key)
            .fetch_all(&mut *other)
            .await
            .unwrap();
        for (pid, since) in waits {
            if cancelled.insert((pid, since)) {
                sqlx::query("SELECT pg_cancel_backend($1)")
                    .bind(pid)
                    .execute(&mut *other)
                    .await
                    .unwrap();
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let stored = group.await.unwrap();
    other.commit().await.unwrap();
    let cancelled_statement = |result: &Result<_, sqlx::Error>| match result {
        Err(sqlx::Error::Database(error)) => error.code().as_deref() == Some("57014"),
        _ => false,
    };
    let failed_with_it = |result: &Result<_, sqlx::Error>| {
        result
            .as_ref()
            .is_err_and(|error| error.to_string().contains("canceling statement"))
    };
    match linked {
        false => {
            assert_eq!(cancelled.len(), 3, "{stored:?}");
            match &stored[0] {
                Err(sqlx::Error::Database(broken)) => {
                    assert!(broken.is_foreign_key_violation(), "{broken}")
                }
                other => panic!("the broken record: {other:?}"),
            }
            assert!(cancelled_statement(&stored[1]), "{stored:?}");
            assert!(failed_with_it(&stored[2]), "{stored:?}");
        }
        true => {
            assert_eq!(cancelled.len(), 2, "{stored:?}");
            assert!(cancelled_statement(&stored[0]), "{stored:?}");
            assert!(failed_with_it(&stored[1]), "{stored:?}");
            assert!(failed_with_it(&stored[2]), "{stored:?}");
        }
    }
    let after: i64 =
        sqlx::query_scalar("SELECT count(*) FROM images WHERE name LIKE 'stop-after%'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(after, 0, "not tried after the failure");
}

/// A record stored alone that PostgreSQL rolls back to break a deadlock
/// (40P01) is tried once more, and stored: the failure was another
/// transaction's, not its own nor the database's. Here a record with links
/// holds its name's lock and waits for its owner's count, which a
/// transaction holds that then asks for that name.
#[tokio::test(flavor = "current_thread")]
async fn postgres_a_record_rolled_back_for_a_deadlock_is_tried_again() {
    let (_app, db, pool) = on_postgres().await;
    let target = definition("deadlock-target", Vec::new());
    let target = db.insert_image(&target).await.unwrap().expect("no limit");
    // Every stripe of the owner's count made, then locked by `other`,
    // whichever stripe the record's connection takes.
    sqlx::query(
        "INSERT INTO image_counts (user_id, stripe, images) \
         SELECT 1, stripe, 0 FROM generate_series(0, 63) AS stripe ON CONFLICT DO NOTHING",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut other = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM image_counts WHERE user_id = 1 FOR UPDATE")
        .execute(&mut *other)
        .await
        .unwrap();
    let record = tokio::spawn(async move {
        let linked = definition("deadlock-linked", vec![target]);
        let stored = db.insert_image_if_name_free(&linked, Some(NameScope::Everyone));
        stored.await
    });
    // Once the record waits for the count, holding its name, `other` asks
    // for the name: the record, waiting first, finds the deadlock first
    // and is rolled back.
    let waits = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()";
    let mut waiting = 0;
    for _ in 0..200 {
        waiting = sqlx::query_scalar::<_, i64>(waits)
            .fetch_one(&mut *other)
            .await
            .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(waiting, 1, "the record waits for its owner's count");
    // A quarter of a second apart, so that the record's check for a
    // deadlock (a second after it began to wait) comes well before
    // `other`'s, however busy the machine.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    let key = lock_key(&pool, "deadlock-linked".into()).await;
    sqlx::query("SELECT pg_advisory_xact_lock(1851878757, $1)")
        .bind(key)
        .execute(&mut *other)
        .await
        .expect("the record, not this, is rolled back");
    other.commit().await.unwrap();
    let stored = record.await.unwrap();
    let row = stored.expect("tried again").expect("stored");
    assert_eq!(row.name, "deadlock-linked");
}
