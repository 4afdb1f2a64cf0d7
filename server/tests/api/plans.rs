//! The plans each database chooses for a catalog page and its count: an
//! index rather than every image read, and a page's rows taken in its order
//! from the index rather than sorted.

use app::model::Viewer;
use app::query::{Condition, Direction, Field, Op, Query, Value};
use depot_server::store::sql::{select_images, Sql};
use depot_server::store::Pool;
use rstest::rstest;

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};

/// Adds 10,000 public images, a quarter of them named `Ubuntu-…`, and
/// gathers the statistics a planner reads.
async fn ten_thousand_images(app: &TestApp) {
    match app.core.db().pool() {
        Pool::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO images (kind, name, label, folder, data_store, path, public, \
                 created_at, updated_at) \
                 SELECT 'vm', (ARRAY['Ubuntu', 'centos', 'debian', 'fedora'])[1 + n % 4] \
                 || '-' || n, '', 'f', 'ds', 'f/' || n, TRUE, now() - n * interval '1 minute', \
                 now() FROM generate_series(1, 10000) n",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE images").execute(pool).await.unwrap();
        }
        Pool::Sqlite(pool) => {
            sqlx::query(
                "WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers \
                 WHERE n < 10000) \
                 INSERT INTO images (kind, name, label, folder, data_store, path, public, \
                 created_at, updated_at) \
                 SELECT 'vm', CASE n % 4 WHEN 0 THEN 'Ubuntu' WHEN 1 THEN 'centos' \
                 WHEN 2 THEN 'debian' ELSE 'fedora' END || '-' || n, '', 'f', 'ds', 'f/' || n, \
                 1, strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-' || n || ' minutes'), \
                 strftime('%Y-%m-%dT%H:%M:%SZ', 'now') FROM numbers",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE").execute(pool).await.unwrap();
        }
    }
}

/// The plan the database chooses for `statement`, a step a line.
async fn plan(app: &TestApp, statement: &Sql) -> String {
    app.core.db().plan(statement).await.unwrap().join("\n")
}

/// A page sorted by name or by date, either way, is the index read in order
/// up to the page's end, for an administrator (every image), a user (public
/// ones and their own), an anonymous caller, and within one kind: no sort of
/// the images read, however many match. PostgreSQL's indexes carry the id,
/// which breaks ties (migration 0018); SQLite's end with it.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_sorted_page_is_read_in_order_from_an_index(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    ten_thousand_images(&app).await;
    let public = || Condition::Compare {
        field: Field::Public,
        op: Op::Eq,
        value: Value::Bool(true),
    };
    let callers: [(&str, Option<Condition>); 4] = [
        ("an administrator", None),
        (
            "a user",
            Some(Condition::Any(vec![
                public(),
                Condition::Compare {
                    field: Field::OwnerId,
                    op: Op::Eq,
                    value: Value::Int(2),
                },
            ])),
        ),
        ("anyone", Some(public())),
        (
            "one kind",
            Some(Condition::parse(Field::Kind, Op::Eq, "vm").unwrap()),
        ),
    ];
    for field in [Field::Name, Field::CreatedAt] {
        for direction in [Direction::Asc, Direction::Desc] {
            for (caller, condition) in &callers {
                let mut query = Query::new(100).sort_by(field, direction);
                if let Some(condition) = condition {
                    query = query.filter(condition.clone());
                }
                let (page, _) = select_images(app.core.db().backend(), &query);
                let plan = plan(&app, &page).await;
                let sorted_again = plan.contains("Sort") || plan.contains("TEMP B-TREE");
                assert!(
                    !sorted_again && !plan.contains("Seq Scan on images"),
                    "{caller}, by {field:?} {direction:?}: the page is not read in order \
                     from an index\n{}\n{plan}",
                    page.text
                );
            }
        }
    }
}

/// A name's fixed start (`ubu%`) is read through an index on PostgreSQL, page
/// and count, as on SQLite; ILIKE, which no index serves, scanned every image.
#[tokio::test]
async fn a_name_prefix_is_read_through_an_index_on_postgres() {
    let app = TestApp::spawn(Backend::Postgres).await;
    ten_thousand_images(&app).await;
    let query = Query::new(100)
        .filter(Condition::parse(Field::Kind, Op::Eq, "vm").unwrap())
        .filter(Condition::parse(Field::Public, Op::Eq, "true").unwrap())
        .filter(Condition::parse(Field::Name, Op::Like, "ubu%").unwrap())
        .sort_by(Field::Name, Direction::Desc);
    let (page, count) = select_images(app.core.db().backend(), &query);
    for statement in [&page, &count] {
        let plan = plan(&app, statement).await;
        assert!(
            !plan.contains("Seq Scan on images"),
            "{}\n{plan}",
            statement.text
        );
    }
    // And it finds what ILIKE found: the name's case is ignored.
    let viewer = Viewer::User(app.core.login("admin", ADMIN_PASSWORD).await.unwrap());
    let found = app.core.list_images(&viewer, query).await.unwrap();
    assert_eq!(found.total, 2500);
    assert!(found
        .items
        .iter()
        .all(|image| image.name.starts_with("Ubuntu-")));
}
