//! A server keeps the totals of the catalog pages it counted
//! (store/kept.rs) and uses one only while the catalog's version a page
//! read is the one its count read (migration 0017 on PostgreSQL, 0016 on
//! SQLite): a change made anywhere, through another server or straight in
//! the database, shows in the next page's total, with no notice to wait for.

use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};

/// `totalCount` of an MWS list on `server`, as the administrator.
async fn mws_total(server: &TestApp, query: &str) -> i64 {
    let answer: Value = reqwest::Client::new()
        .get(server.url(&format!("/mws/rest/images?api-version=3&{query}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["totalCount"].as_i64().unwrap()
}

/// How many totals `server` answered from a kept count, and how many it
/// counted, by its metrics.
async fn kept_and_counted(server: &TestApp) -> (u64, u64) {
    kept_and_read(server, "depot_catalog_counts_total", "counted").await
}

/// What `metric` of `server` says was `kept`, and what was `read`.
pub(crate) async fn kept_and_read(server: &TestApp, metric: &str, read: &str) -> (u64, u64) {
    let text = crate::metrics::scrape(server).await;
    let figure = |how: &str| {
        let series = format!("{metric}{{how=\"{how}\"}}");
        crate::metrics::value(&text, &series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
            as u64
    };
    (figure("kept"), figure(read))
}

/// Creates the image `name` through `server`'s MWS, as the administrator.
pub(crate) async fn create_through_mws(server: &TestApp, name: &str) {
    let created = reqwest::Client::new()
        .post(server.url("/mws/rest/images?api-version=3"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({
            "name": name,
            "osType": "linux",
            "hypervisor": false,
            "supportsVirtualMachine": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
}

/// Runs `$body` with `$pool` bound to `$server`'s pool, whichever database.
macro_rules! on_pool {
    ($server:expr, $pool:ident => $body:expr) => {
        match $server.core.db().pool() {
            depot_server::store::Pool::Sqlite($pool) => $body,
            depot_server::store::Pool::Postgres($pool) => $body,
        }
    };
}

/// Another server on `server`'s database: on PostgreSQL one more server of
/// the deployment; on SQLite one on the same data folder, as a second
/// process on the file would be.
pub(crate) async fn another_server(server: &TestApp, backend: Backend) -> TestApp {
    match backend {
        Backend::Sqlite => server.spawn_again().await,
        _ => server.spawn_beside(|_| {}).await,
    }
}

/// How many times a query is read after the catalog changed before it is
/// kept again: PostgreSQL reads a moving query without asking for the
/// version first, until two reads in a row see the same one; SQLite asks
/// in the page's own snapshot, at no cost, so the next read is kept.
pub(crate) fn reads_after_a_change(backend: Backend) -> u64 {
    match backend {
        Backend::Sqlite => 1,
        _ => 2,
    }
}

/// The id of the user `name`.
pub(crate) async fn user_id(server: &TestApp, name: &str) -> i64 {
    on_pool!(server, pool => {
        sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE username = $1")
            .bind(name)
            .fetch_one(pool)
            .await
            .unwrap()
    })
}

/// Runs `statements` straight in the database, as a script would, in one
/// transaction, committed if `commit`, else rolled back.
async fn run_in_one(server: &TestApp, statements: &[&str], commit: bool) {
    on_pool!(server, pool => {
        let mut transaction = pool.begin().await.unwrap();
        for statement in statements {
            sqlx::query(statement)
                .execute(&mut *transaction)
                .await
                .unwrap();
        }
        if commit {
            transaction.commit().await.unwrap();
        } else {
            transaction.rollback().await.unwrap();
        }
    })
}

/// Runs `statement` straight in the database, as a script would.
pub(crate) async fn run(server: &TestApp, statement: &str) {
    run_in_one(server, &[statement], true).await;
}

/// Runs `statements` in one transaction, committed.
pub(crate) async fn run_together(server: &TestApp, statements: &[&str]) {
    run_in_one(server, statements, true).await;
}

/// Runs `statement` in a transaction rolled back.
pub(crate) async fn run_rolled_back(server: &TestApp, statement: &str) {
    run_in_one(server, &[statement], false).await;
}

/// Runs `statement` as a PostgreSQL replica applies rows (logical
/// replication, a restore with triggers off for foreign keys).
pub(crate) async fn run_as_replica(server: &TestApp, statement: &str) {
    let depot_server::store::Pool::Postgres(pool) = server.core.db().pool() else {
        panic!("not PostgreSQL");
    };
    let mut as_replica = pool.begin().await.unwrap();
    for statement in ["SET LOCAL session_replication_role = replica", statement] {
        sqlx::query(statement)
            .execute(&mut *as_replica)
            .await
            .unwrap();
    }
    as_replica.commit().await.unwrap();
}

/// `count` public images named `{prefix}-{n}`, owned by `owner` (a user's
/// id, or none), straight into the database.
pub(crate) async fn insert_images(server: &TestApp, prefix: &str, count: i64, owner: Option<i64>) {
    const INSERT: &str = "WITH RECURSIVE numbers (n) AS \
         (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < $2) \
         INSERT INTO images (kind, name, label, folder, data_store, path, public, owner_id, \
         created_at, updated_at) \
         SELECT 'vm', $1 || '-' || n, '', 'f', 'ds', 'f/' || $1 || n, TRUE, $3, $4, $4 \
         FROM numbers";
    let now = chrono::Utc::now();
    on_pool!(server, pool => {
        sqlx::query(INSERT)
            .bind(prefix)
            .bind(count)
            .bind(owner)
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
    })
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_total_kept_by_one_server_follows_what_any_other_changes(#[case] backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = another_server(&a, backend).await;
    insert_images(&a, "seed", 30, None).await;
    const PAGE: &str = "max=5";

    // Counted once, then kept.
    assert_eq!(mws_total(&b, PAGE).await, 30);
    assert_eq!(mws_total(&b, PAGE).await, 30);
    assert_eq!(kept_and_counted(&b).await, (1, 1));

    // A record made through the other server counts on this one at once.
    create_through_mws(&a, "made-on-a").await;
    assert_eq!(
        mws_total(&b, PAGE).await,
        31,
        "the kept total outlived a create"
    );

    // Counted until the catalog holds still, then kept again.
    assert_eq!(mws_total(&b, PAGE).await, 31);
    assert_eq!(mws_total(&b, PAGE).await, 31);
    let (kept, counted) = kept_and_counted(&b).await;
    let counted_again = reads_after_a_change(backend);
    assert_eq!((kept, counted), (4 - counted_again, 1 + counted_again));

    // A change rolled back changes nothing: still kept.
    run_rolled_back(&a, "DELETE FROM images WHERE name LIKE 'seed-%'").await;
    assert_eq!(mws_total(&b, PAGE).await, 31);
    assert_eq!(kept_and_counted(&b).await, (kept + 1, counted));

    // Nor does an update that touched no image.
    run(
        &a,
        "UPDATE images SET label = 'x' WHERE name = 'no such image'",
    )
    .await;
    assert_eq!(mws_total(&b, PAGE).await, 31);
    assert_eq!(kept_and_counted(&b).await, (kept + 2, counted));

    // A delete through the other server, and one straight in the database.
    let deleted = reqwest::Client::new()
        .delete(a.url("/mws/rest/images/made-on-a?api-version=3"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(
        mws_total(&b, PAGE).await,
        30,
        "the kept total outlived a delete"
    );
    run(&a, "DELETE FROM images WHERE name = 'seed-1'").await;
    assert_eq!(mws_total(&b, PAGE).await, 29);

    // A filtered total is its own, changed by an update of a name.
    let seeds = "max=5&query=%7B%22name%22%3A%7B%22%24regex%22%3A%22%5Eseed-%22%7D%7D";
    assert_eq!(mws_total(&b, seeds).await, 29);
    assert_eq!(mws_total(&b, seeds).await, 29);
    run(
        &a,
        "UPDATE images SET name = 'renamed-2' WHERE name = 'seed-2'",
    )
    .await;
    assert_eq!(
        mws_total(&b, seeds).await,
        28,
        "the kept total outlived a rename"
    );
    assert_eq!(mws_total(&b, PAGE).await, 29);

    // Rows applied as a replica applies them (logical replication, a
    // restore with triggers off for foreign keys) count too.
    if backend != Backend::Postgres {
        return;
    }
    assert_eq!(mws_total(&b, PAGE).await, 29);
    run_as_replica(&a, "DELETE FROM images WHERE name = 'seed-3'").await;
    assert_eq!(
        mws_total(&b, PAGE).await,
        28,
        "the kept total outlived a replica's delete"
    );
}

/// A filter by owner reads the owner's name: renaming users changes the
/// totals of such filters even though no image changed.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_total_filtered_by_owner_follows_renamed_owners(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    for (owner, count) in [("alice", 25), ("bob", 30)] {
        insert_images(&app, owner, count, Some(user_id(&app, owner).await)).await;
    }
    let owned_by_alice = || async {
        let answer: Value = reqwest::Client::new()
            .post(app.url("/api/ui/images"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .form(&[
                ("params[q]", ""),
                ("params[owner]", "alice"),
                ("params[mine]", "false"),
                ("params[sort][column]", "Created"),
                ("params[page]", "1"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["total"]
            .as_i64()
            .unwrap_or_else(|| panic!("{answer}"))
    };
    assert_eq!(owned_by_alice().await, 25);
    assert_eq!(owned_by_alice().await, 25);
    assert_eq!(kept_and_counted(&app).await, (1, 1));

    run_together(
        &app,
        &[
            "UPDATE users SET username = 'swapping' WHERE username = 'alice'",
            "UPDATE users SET username = 'alice' WHERE username = 'bob'",
            "UPDATE users SET username = 'bob' WHERE username = 'swapping'",
        ],
    )
    .await;
    assert_eq!(
        owned_by_alice().await,
        30,
        "the kept total outlived the rename"
    );
}
