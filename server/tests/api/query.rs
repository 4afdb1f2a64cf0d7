//! The shared query language against a real database: every operator, AND
//! and OR, sorting and paging give the same answers on both backends.

use app::model::Viewer;
use app::query::{Condition, Direction, Field, Op, Query, Value};
use chrono::{DateTime, TimeZone, Utc};
use depot_server::store::NewImage;
use rstest::rstest;

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};

/// name, kind, size, day of November 2017.
const IMAGES: [(&str, &str, i64, u32); 5] = [
    ("ubuntu-16.04-server-cloudimg-amd64.ova", "vm", 300, 1),
    ("ubuntu-18.04-server-cloudimg-amd64.ova", "vm", 500, 2),
    ("coreos_production_vmware_ova.ova", "vm", 100, 3),
    ("CentOS-7-x86_64-Minimal.iso", "iso", 700, 4),
    ("100%_real.iso", "iso", 200, 5),
];

/// A record without bytes, as the dialects create them.
fn metadata_only(
    kind: &'static str,
    name: &str,
    size: i64,
    public: bool,
    now: DateTime<Utc>,
) -> NewImage {
    NewImage {
        kind,
        name: name.into(),
        label: String::new(),
        folder: "public".into(),
        data_store: "vss".into(),
        path: format!("[vss] public/{name}"),
        public,
        owner_id: (!public).then_some(1),
        owner_images_at_most: None,
        size: Some(size),
        sha256: None,
        format: None,
        virtual_size: None,
        now,
        provisioning: None,
        virtualized: Vec::new(),
        vice: None,
        inspection: Default::default(),
        guest_os: None,
    }
}

async fn seeded(backend: Backend) -> (TestApp, Viewer) {
    let app = TestApp::spawn(backend).await;
    for (name, kind, size, day) in IMAGES {
        let created = Utc.with_ymd_and_hms(2017, 11, day, 12, 0, 0).unwrap();
        let new = metadata_only(kind, name, size, true, created);
        app.core.db().insert_image(&new).await.unwrap();
    }
    let viewer = Viewer::User(app.core.login("admin", ADMIN_PASSWORD).await.unwrap());
    (app, viewer)
}

async fn names(app: &TestApp, viewer: &Viewer, query: Query) -> Vec<String> {
    let page = app.core.list_images(viewer, query).await.unwrap();
    page.items.into_iter().map(|image| image.name).collect()
}

fn by_size() -> Query {
    Query::new(100).sort_by(Field::Size, Direction::Asc)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn every_operator_filters_as_documented(#[case] backend: Backend) {
    let (app, viewer) = seeded(backend).await;
    let run = |field, op, raw: &str| {
        let query = by_size().filter(Condition::parse(field, op, raw).unwrap());
        names(&app, &viewer, query)
    };
    assert_eq!(
        run(Field::Size, Op::Eq, "300").await,
        ["ubuntu-16.04-server-cloudimg-amd64.ova"]
    );
    assert_eq!(run(Field::Size, Op::Ne, "300").await.len(), 4);
    assert_eq!(
        run(Field::Size, Op::Lt, "300").await,
        ["coreos_production_vmware_ova.ova", "100%_real.iso"]
    );
    assert_eq!(run(Field::Size, Op::Le, "200").await.len(), 2);
    assert_eq!(
        run(Field::Size, Op::Gt, "500").await,
        ["CentOS-7-x86_64-Minimal.iso"]
    );
    assert_eq!(run(Field::Size, Op::Ge, "500").await.len(), 2);
    // LIKE ignores case on both backends, and `\` escapes a wildcard.
    assert_eq!(run(Field::Name, Op::Like, "UBU%").await.len(), 2);
    assert_eq!(
        run(Field::Name, Op::Like, "100\\%%").await,
        ["100%_real.iso"]
    );
    assert_eq!(run(Field::Name, Op::Like, "%\\%%").await, ["100%_real.iso"]);
    assert_eq!(run(Field::Size, Op::In, "100,700").await.len(), 2);
    assert_eq!(run(Field::CreatedAt, Op::Ge, "2017-11-04").await.len(), 2);
    assert_eq!(run(Field::Kind, Op::Eq, "iso").await.len(), 2);
    assert!(run(Field::Name, Op::Eq, "x' OR '1'='1").await.is_empty());
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn conditions_nest_and_pages_do_not_overlap(#[case] backend: Backend) {
    let (app, viewer) = seeded(backend).await;
    let either = Condition::Any(vec![
        Condition::parse(Field::Kind, Op::Eq, "iso").unwrap(),
        Condition::All(vec![
            Condition::parse(Field::Name, Op::Like, "ubuntu%").unwrap(),
            Condition::parse(Field::Size, Op::Gt, "400").unwrap(),
        ]),
    ]);
    let found = names(&app, &viewer, by_size().filter(either)).await;
    assert_eq!(
        found,
        [
            "100%_real.iso",
            "ubuntu-18.04-server-cloudimg-amd64.ova",
            "CentOS-7-x86_64-Minimal.iso"
        ]
    );

    let mut seen = Vec::new();
    for page in 0..3 {
        let query = Query::new(2)
            .sort_by(Field::Name, Direction::Desc)
            .offset(page * 2);
        let result = app.core.list_images(&viewer, query).await.unwrap();
        assert_eq!(result.total, 5);
        seen.extend(result.items.into_iter().map(|image| image.name));
    }
    let mut expected: Vec<String> = IMAGES.iter().map(|(name, ..)| name.to_string()).collect();
    expected.sort();
    expected.reverse();
    assert_eq!(seen, expected);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn anonymous_viewers_see_only_public_records(#[case] backend: Backend) {
    let (app, _) = seeded(backend).await;
    let private = metadata_only("disk", "private.img", 1, false, Utc::now());
    app.core.db().insert_image(&private).await.unwrap();
    let anonymous = names(&app, &Viewer::Anonymous, by_size()).await;
    assert_eq!(anonymous.len(), 5);
    assert!(!anonymous.contains(&"private.img".to_string()));
    let equals =
        Condition::compare(Field::Name, Op::Eq, Value::Text("private.img".into())).unwrap();
    assert!(names(&app, &Viewer::Anonymous, by_size().filter(equals))
        .await
        .is_empty());
}

/// Text sorts by its bytes, and LIKE folds ASCII letters alone, on both
/// databases: an owner or a vendor "Zed" comes before "alice", and "é%"
/// matches "éclair", not "École". (PostgreSQL sorted the columns added
/// after the first ones, and owners' names, by its cluster's locale.)
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn text_sorts_by_its_bytes_on_both_databases(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let now = Utc::now();
    for (owner, vendor, name) in [
        ("alice", "acme", "a.ova"),
        ("Zed", "Zeta", "z.ova"),
        ("bob", "École", "e.ova"),
        ("carol", "éclair", "f.ova"),
    ] {
        app.add_user(owner, "a-password-1").await;
        let id = app.core.login(owner, "a-password-1").await.unwrap().id;
        let mut new = metadata_only("vm", name, 1, true, now);
        new.owner_id = Some(id);
        new.inspection.vendor = Some(vendor.to_owned());
        app.core.db().insert_image(&new).await.unwrap();
    }
    let viewer = Viewer::User(app.core.login("admin", ADMIN_PASSWORD).await.unwrap());
    let sorted = |field| Query::new(100).sort_by(field, Direction::Asc);
    let by_owner = names(&app, &viewer, sorted(Field::Owner)).await;
    assert_eq!(by_owner, ["z.ova", "a.ova", "e.ova", "f.ova"]);
    let by_vendor = names(&app, &viewer, sorted(Field::Vendor)).await;
    assert_eq!(by_vendor, ["z.ova", "a.ova", "e.ova", "f.ova"]);
    let like = Condition::parse(Field::Vendor, Op::Like, "é%").unwrap();
    let matched = names(&app, &viewer, sorted(Field::Vendor).filter(like)).await;
    assert_eq!(matched, ["f.ova"]);
    let below = Condition::parse(Field::Vendor, Op::Lt, "a").unwrap();
    let matched = names(&app, &viewer, sorted(Field::Vendor).filter(below)).await;
    assert_eq!(matched, ["z.ova"]);
}

/// A NUL character, which no stored text holds and PostgreSQL refuses to
/// be sent, is the caller's error on every path a query or a name takes:
/// never a server's failure, on either database.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_nul_in_a_query_or_a_name_is_the_callers_error(#[case] backend: Backend) {
    let (app, _) = seeded(backend).await;
    let client = reqwest::Client::new();
    for path in [
        "/?q=%00",
        "/v2/image?filter=name,eq,a%00b",
        "/v2/image?name=%00",
        "/mws/rest/images?api-version=3&query=%7B%22name%22%3A%22%5Cu0000%22%7D",
        "/mws/rest/images/a%00b?api-version=3",
    ] {
        let response = client
            .get(app.url(path))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(!status.is_server_error(), "{path}: {status}");
    }
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let depot_server::store::Pool::Sqlite(pool) = app.core.db().pool() else {
        panic!("not SQLite");
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}
