//! The reader against sqlx's path, and its lanes under slow and abandoned reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use app::query::{Condition, Direction, Field, Op, Query, Value};
use chrono::{DateTime, TimeZone, Utc};

use super::super::{Db, Pool};
use super::{Column, Reader};

/// A catalog of 250 images on a file, with fields set and unset in turn.
async fn catalog(dir: &std::path::Path) -> Db {
    let db = Db::migrated_sqlite_in(dir).await;
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
    let filtered = Query::new(100).filter(compare(Field::CreatedAt, Op::Gt, Value::Time(after)));
    let (rows, total) = db.list_images(&filtered).await.unwrap();
    assert_eq!(total, 250 - 66);
    assert!(rows.iter().all(|row| row.created_at > after));
    assert_eq!((rows[1].size, rows[4].size), (Some(67_000), None));
}

/// Distinct values are read in the catalog's lane, as pages are: its
/// deadline stops them (on the pool, nothing stopped a costly scan, which
/// held a connection that sign-ins and writes wait for).
#[tokio::test]
async fn distinct_values_are_read_in_the_readers_lane_as_sqlx_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = catalog(dir.path()).await;
    let through_sqlx = Db {
        reader: None,
        ..db.clone()
    };
    let public = Condition::All(vec![compare(Field::Public, Op::Eq, Value::Bool(true))]);
    for field in [
        Field::Name,
        Field::Size,
        Field::CreatedAt,
        Field::Public,
        Field::OsType,
    ] {
        for (limit, offset) in [(10, 0), (1000, 3)] {
            let read = db
                .distinct_values(field, &public, limit, offset)
                .await
                .unwrap();
            let expected = through_sqlx
                .distinct_values(field, &public, limit, offset)
                .await
                .unwrap();
            assert_eq!(read, expected, "{field:?}");
            assert!(
                read.1 > 0 && (offset > 0 || !read.0.is_empty()),
                "{field:?}"
            );
        }
    }
    let stopped = Db {
        reader: Some(Reader::start(&dir.path().join("depot.db"), Duration::ZERO).unwrap()),
        ..db.clone()
    };
    let result = stopped
        .distinct_values(Field::Name, &public, 10, 0)
        .await
        .map(|(_, total)| total);
    assert!(was_interrupted(result));
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
    let reader = Reader::start(&dir.path().join("depot.db"), Duration::from_millis(300)).unwrap();
    let stopped = (0..super::CATALOG_THREADS).map(|_| reader.read(false, endless));
    for result in futures_util::future::join_all(stopped).await {
        assert!(was_interrupted(result));
    }
    let count = |c: &rusqlite::Connection| {
        c.query_row("SELECT count(*) FROM images", [], |row| {
            row.get::<_, i64>(0)
        })
    };
    for _ in 0..super::CATALOG_THREADS {
        assert_eq!(reader.read(false, count).await.unwrap(), 250_i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_up_does_not_wait_behind_slow_pages() {
    let dir = tempfile::tempdir().unwrap();
    catalog(dir.path()).await;
    let reader = Reader::start(&dir.path().join("depot.db"), Duration::from_secs(3)).unwrap();
    // Counted on the reading threads as slow pages begin and end (an
    // end before its answer).
    let (slow_began, slow_ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let slow: Vec<_> = (0..super::CATALOG_THREADS)
        .map(|_| {
            let (reader, began, ended) = (reader.clone(), slow_began.clone(), slow_ended.clone());
            tokio::spawn(async move {
                let read = reader.read(false, move |connection| {
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
    let one = |c: &rusqlite::Connection| c.query_row("SELECT 1", [], |row| row.get::<_, i64>(0));
    assert_eq!(reader.look_up(one).await.unwrap(), 1_i64);
    assert_eq!(slow_ended.load(Ordering::SeqCst), 0, "the look-up waited");
    for read in slow {
        assert!(was_interrupted(read.await.unwrap()));
    }
}

#[tokio::test]
async fn a_read_that_leaves_a_transaction_open_does_not_keep_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = catalog(dir.path()).await;
    let reader = Reader::start(&dir.path().join("depot.db"), Duration::from_secs(5)).unwrap();
    let count = |c: &rusqlite::Connection| {
        c.query_row("SELECT count(*) FROM images", [], |row| {
            row.get::<_, i64>(0)
        })
    };
    // The look-ups' one thread: the next look-up runs on the same connection.
    let left_open = reader
        .look_up(move |c| {
            c.execute_batch("BEGIN")?;
            count(c)
        })
        .await;
    assert_eq!(left_open.unwrap(), 250);
    let Pool::Sqlite(pool) = db.pool() else {
        unreachable!()
    };
    sqlx::query(
        "INSERT INTO images (kind, name, path, created_at, updated_at) \
         VALUES ('disk', 'late', 'late', '2026-02-01T00:00:00+00:00', '2026-02-01T00:00:00+00:00')",
    )
    .execute(pool)
    .await
    .unwrap();
    assert_eq!(reader.look_up(count).await.unwrap(), 251);
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
                let read = reader.read(false, move |connection| {
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
        let read = reader.read(false, move |_| Ok(ran.fetch_add(1, Ordering::Relaxed)));
        assert!(futures_util::FutureExt::now_or_never(read).is_none());
    }
    for read in busy {
        assert!(was_interrupted(read.await.unwrap()));
    }
    let one = |c: &rusqlite::Connection| c.query_row("SELECT 1", [], |row| row.get::<_, i64>(0));
    assert_eq!(reader.read(false, one).await.unwrap(), 1_i64);
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
        .unwrap()
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

#[tokio::test]
async fn statements_are_compiled_once_on_an_analyzed_catalog_but_a_like() {
    let dir = tempfile::tempdir().unwrap();
    let db = catalog(dir.path()).await;
    let Pool::Sqlite(pool) = db.pool() else {
        unreachable!()
    };
    // Statistics with samples of every index, as a maintained database has.
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
    let path = dir.path().join("depot.db");
    let (once, per_values) = (
        super::open(&path, false).unwrap(),
        super::open(&path, true).unwrap(),
    );
    let page =
        |query: &Query| super::super::sql::select_images(super::super::Backend::Sqlite, query).0;
    let read = |connection: &rusqlite::Connection, query: &Query| {
        super::rows(
            connection,
            &page(query),
            super::super::ImageRow::from_rusqlite,
        )
        .unwrap()
    };
    let recompiled = |connection: &rusqlite::Connection, query: &Query| {
        connection
            .prepare_cached(&page(query).text)
            .unwrap()
            .get_status(rusqlite::StatementStatus::RePrepare)
    };
    let named = |n: usize| {
        Query::new(100).filter(compare(
            Field::Name,
            Op::Eq,
            Value::Text(format!("Image-{n:03}")),
        ))
    };
    let like = |pattern: &str| {
        Query::new(100).filter(compare(Field::Name, Op::Like, Value::Text(pattern.into())))
    };
    let patterns = [("image-1%", 100), ("image-24%", 10), ("IMAGE-2%", 50)];

    // Pages of both kinds in turn, as a catalog's visitors ask for them.
    for n in 0..9 {
        let rows = read(&once, &named(n));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, format!("Image-{n:03}"));
        let (pattern, found) = patterns[n % patterns.len()];
        assert_eq!(read(&per_values, &like(pattern)).len(), found, "{pattern}");
    }
    assert_eq!(
        recompiled(&once, &named(0)),
        0,
        "compiled again for each name"
    );
    // A LIKE is planned for each pattern bound.
    assert!(recompiled(&per_values, &like("image-1%")) >= 2);
}

/// The reader's times are rusqlite's, for every way a time may be stored.
#[test]
fn the_readers_times_are_rusqlites() {
    let connection = rusqlite::Connection::open_in_memory().unwrap();
    let sqlx_wrote = Utc.with_ymd_and_hms(2026, 2, 28, 23, 59, 59).unwrap()
        + chrono::Duration::microseconds(123_456);
    let stored = [
        // As sqlx and the store write them.
        sqlx_wrote.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        super::time_text(&sqlx_wrote),
        "2026-01-01T00:00:00Z".to_owned(),
        "2026-01-01T00:00:00.5+02:00".to_owned(),
        "2026-06-30T12:00:00-07:30".to_owned(),
        // As SQLite's datetime() and a hand would.
        "2026-01-01 00:00:00".to_owned(),
        "2026-01-01 00:00:00.250".to_owned(),
        "2026-01-01T08:00:00".to_owned(),
    ];
    for text in stored {
        let (ours, theirs) = connection
            .query_row("SELECT ?1", [&text], |row| {
                Ok((
                    <DateTime<Utc> as Column>::read(row, 0),
                    row.get::<_, DateTime<Utc>>(0),
                ))
            })
            .unwrap();
        assert_eq!(ours.unwrap(), theirs.unwrap(), "{text}");
    }
    for text in ["", "yesterday", "2026-13-01T00:00:00Z"] {
        let ours = connection
            .query_row("SELECT ?1", [text], |row| {
                Ok(<DateTime<Utc> as Column>::read(row, 0))
            })
            .unwrap();
        assert!(ours.is_err(), "{text:?} read as {ours:?}");
    }
    // A token's last use, which may be missing.
    let (missing, present) = connection
        .query_row("SELECT NULL, '2026-01-01T00:00:00Z'", [], |row| {
            Ok((
                <Option<DateTime<Utc>> as Column>::read(row, 0)?,
                <Option<DateTime<Utc>> as Column>::read(row, 1)?,
            ))
        })
        .unwrap();
    assert_eq!(missing, None);
    assert_eq!(
        present,
        Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())
    );
}
