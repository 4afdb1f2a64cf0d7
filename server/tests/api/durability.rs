//! New records are on disk when acknowledged, and records created at the
//! same moment share one commit without sharing each other's failures.

use chrono::Utc;
use depot_server::store::{Db, NameScope, NewImage, Pool};
use futures_util::future::join_all;
use rstest::rstest;
use serde_json::json;

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};
use crate::mws::Mws;

pub(crate) fn definition(name: &str, virtualized: Vec<i64>) -> NewImage {
    NewImage {
        kind: "definition",
        name: name.into(),
        label: String::new(),
        folder: "admin".into(),
        data_store: "depot".into(),
        path: format!("[depot] admin/{name}"),
        public: false,
        owner_id: Some(1),
        owner_images_at_most: None,
        size: None,
        sha256: None,
        format: None,
        virtual_size: None,
        now: Utc::now(),
        provisioning: None,
        virtualized,
        vice: None,
        inspection: Default::default(),
        guest_os: None,
    }
}

/// A record of the administrator's, whose account may hold `at_most`
/// images.
pub(crate) fn limited(name: &str, at_most: i64) -> NewImage {
    NewImage {
        owner_images_at_most: Some(at_most),
        ..definition(name, Vec::new())
    }
}

/// A server on a database of its own on PostgreSQL, its store, and the
/// store's pool.
pub(crate) async fn on_postgres() -> (TestApp, Db, sqlx::PgPool) {
    let app = TestApp::spawn(Backend::Postgres).await;
    let db = app.core.db().clone();
    let Pool::Postgres(pool) = db.pool().clone() else {
        unreachable!("a PostgreSQL app")
    };
    (app, db, pool)
}

/// The key of `name`'s lock (the second, after the first every name's lock
/// shares), in the order groups take their records and their locks.
pub(crate) async fn lock_key(pool: &sqlx::PgPool, name: String) -> i32 {
    sqlx::query_scalar("SELECT hashtext($1)")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A transaction of the pool's holding the lock of the name whose key is
/// `key` (1851878757 is the first key of every name's lock, as
/// `depot_claim_image_name` of migration 0015 takes it) until it ends.
pub(crate) async fn holding_name_lock(
    pool: &sqlx::PgPool,
    key: i32,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut other = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(1851878757, $1)")
        .bind(key)
        .execute(&mut *other)
        .await
        .unwrap();
    other
}

/// How many images the administrator (user 1, whom `definition` makes the
/// owner) holds, as stored.
pub(crate) async fn admins_images(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM images WHERE owner_id = 1")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn sqlite_syncs_each_commit_to_disk() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let Pool::Sqlite(pool) = app.core.db().pool() else {
        unreachable!("a SQLite app")
    };
    // In WAL mode NORMAL (1) syncs only at checkpoints: a power cut could
    // lose records already acknowledged. FULL is 2.
    for _ in 0..4 {
        let mode: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(mode, 2);
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn records_created_together_all_land_and_a_bad_one_fails_alone(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let db = app.core.db();
    let before = db.count_images().await.unwrap();
    // Sent at once, these wait for the writer together: one group, in
    // which the one at index 9 names a record that does not exist.
    let records: Vec<NewImage> = (0..20)
        .map(|index| {
            let links = if index == 9 {
                vec![i64::MAX]
            } else {
                Vec::new()
            };
            definition(&format!("together-{index}"), links)
        })
        .collect();
    let results = join_all(records.iter().map(|new| db.insert_image(new))).await;
    match &results[9] {
        Err(sqlx::Error::Database(error)) => assert!(error.is_foreign_key_violation(), "{error}"),
        other => panic!("the bad record: {other:?}"),
    }
    let mut ids: Vec<i64> = results
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != 9)
        .map(|(index, result)| {
            result
                .as_ref()
                .unwrap_or_else(|e| panic!("{index}: {e}"))
                .expect("no limit on the count of images")
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 19, "every good record has an id of its own");
    assert_eq!(db.count_images().await.unwrap(), before + 19);
    for (index, result) in results.iter().enumerate() {
        if let Ok(Some(id)) = result {
            let row = db.image(*id).await.unwrap().expect("stored");
            assert_eq!(row.name, format!("together-{index}"));
        }
    }

    // The group writer and a transaction of the pool's write a record's
    // time as the same text, so times compare whichever wrote them.
    if let Pool::Sqlite(pool) = db.pool() {
        let mut tx = db.begin().await.unwrap();
        let alone = tx
            .insert_image(&definition("alone", Vec::new()))
            .await
            .unwrap()
            .unwrap();
        tx.commit().await.unwrap();
        let grouped = results[0].as_ref().unwrap().unwrap();
        for id in [grouped, alone] {
            let (text, kind): (String, String) =
                sqlx::query_as("SELECT created_at, typeof(created_at) FROM images WHERE id = $1")
                    .bind(id)
                    .fetch_one(pool)
                    .await
                    .unwrap();
            assert_eq!(kind, "text", "{text}");
            assert_eq!(&text[10..11], "T", "{text}");
            assert!(text.ends_with("+00:00"), "{text}");
        }
    }

    // Over HTTP: many clients creating at once each get their own record.
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    let created = join_all((0..24).map(|index| {
        let mws = &mws;
        async move {
            let body = json!({"name": format!("client-{index}"), "osType": "linux",
                "hypervisor": false, "supportsVirtualMachine": true});
            mws.post(&body).await
        }
    }))
    .await;
    for (status, body) in &created {
        assert_eq!(*status, 201, "{body}");
    }
    let query = r#"{"name":{"$regex":"^client-"}}"#;
    let mut names = mws.names(&[("query", query), ("max", "100")]).await;
    names.sort();
    let mut expected: Vec<String> = (0..24).map(|index| format!("client-{index}")).collect();
    expected.sort();
    assert_eq!(names, expected);
}

/// Creates `records` at once, each checked against every image's name,
/// which must be free; their ids.
async fn create_at_once(db: &depot_server::store::Db, records: &[NewImage]) -> Vec<i64> {
    join_all(
        records
            .iter()
            .map(|new| db.insert_image_if_name_free(new, Some(NameScope::Everyone))),
    )
    .await
    .into_iter()
    .map(|result| result.unwrap().expect("a free name").id)
    .collect()
}

/// How many transactions stored the records `ids` (the rows of one carry
/// its id, `xmin`).
pub(crate) async fn commits_of(pool: &sqlx::PgPool, ids: &[i64]) -> i64 {
    sqlx::query_scalar("SELECT COUNT(DISTINCT xmin::text) FROM images WHERE id = ANY($1)")
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Records created at once on PostgreSQL share commits: the rows of one
/// transaction carry its id (`xmin`). A name that comes twice in one group
/// is taken once.
#[tokio::test]
async fn postgres_commits_records_created_at_once_together() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let db = app.core.db();
    let Pool::Postgres(pool) = db.pool() else {
        unreachable!("a PostgreSQL app")
    };
    let records: Vec<NewImage> = (0..32)
        .map(|index| definition(&format!("shared-{index}"), Vec::new()))
        .collect();
    let ids = create_at_once(db, &records).await;
    let transactions = commits_of(pool, &ids).await;
    assert!(
        transactions <= 8,
        "32 records created at once took {transactions} commits"
    );

    let twice: Vec<NewImage> = ["again-a", "again-b", "again-a", "again-b", "again-a"]
        .into_iter()
        .map(|name| definition(name, Vec::new()))
        .collect();
    let results = join_all(
        twice
            .iter()
            .map(|new| db.insert_image_if_name_free(new, Some(NameScope::Everyone))),
    )
    .await;
    let landed: Vec<&str> = results
        .iter()
        .zip(&twice)
        .filter(|(result, _)| result.as_ref().unwrap().is_some())
        .map(|(_, new)| new.name.as_str())
        .collect();
    assert_eq!(landed.len(), 2, "{landed:?}");
    assert!(landed.contains(&"again-a") && landed.contains(&"again-b"));
}

/// A group takes its names' locks before it inserts, in the order of the
/// locks' keys, as every group does: two groups (two servers on one
/// database) never hold one each of two names while waiting for the other,
/// which PostgreSQL would break only after a second, failing one group.
/// So too a group that writes a name twice, in two statements: the first
/// time unchecked (a ViCE record), the second checked.
#[rstest]
#[case::one_statement(false)]
#[case::a_name_twice(true)]
#[tokio::test]
async fn postgres_groups_take_their_name_locks_in_one_order(#[case] twice: bool) {
    let (_app, db, pool) = on_postgres().await;
    // Two names, `high` with the greater lock key.
    let key = |name: &str| lock_key(&pool, name.to_owned());
    let (mut low, mut high) = ("lock-one", "lock-two");
    if key(low).await > key(high).await {
        std::mem::swap(&mut low, &mut high);
    }
    let (low_key, high_key) = (key(low).await, key(high).await);
    // Another transaction holds `high`'s lock.
    let mut other = holding_name_lock(&pool, high_key).await;
    // A group of the two, `high` first (after `low` unchecked).
    let group = tokio::spawn(async move {
        let mut records = vec![
            (definition(high, Vec::new()), Some(NameScope::Everyone)),
            (definition(low, Vec::new()), Some(NameScope::Everyone)),
        ];
        if twice {
            records.insert(0, (definition(low, Vec::new()), None));
        }
        join_all(
            records
                .iter()
                .map(|(new, unique)| db.insert_image_if_name_free(new, *unique)),
        )
        .await
        .into_iter()
        .map(|result| result.unwrap().is_some())
        .collect::<Vec<bool>>()
    });
    // The group waits for `high` holding `low`, taken first. Only this
    // test's database: `pg_locks` shows the whole server's, and the other
    // case of this test takes the same keys at the same time.
    let held = "SELECT granted FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid::int = 1851878757 AND objid::int = $1 AND pid <> pg_backend_pid()";
    let mut state = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let low_held: Vec<bool> = sqlx::query_scalar(held)
            .bind(low_key)
            .fetch_all(&mut *other)
            .await
            .unwrap();
        let high_waited: Vec<bool> = sqlx::query_scalar(held)
            .bind(high_key)
            .fetch_all(&mut *other)
            .await
            .unwrap();
        state = (low_held, high_waited);
        if state == (vec![true], vec![false]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        state,
        (vec![true], vec![false]),
        "the group holds the first key's lock and waits for the second"
    );
    other.commit().await.unwrap();
    // Checked, `low` was taken by the unchecked record before it.
    let expected = match twice {
        false => vec![true, true],
        true => vec![true, true, false],
    };
    assert_eq!(group.await.unwrap(), expected);
}

/// A record with links, alone, takes its name's lock before its owner's
/// count, as a group does, not after: a record of the same name inserted
/// alone meanwhile takes the name, then the count as its statement ends, and
/// on connections sharing a stripe of the count (migration 0032) each would
/// wait for the other until PostgreSQL failed one.
#[tokio::test]
async fn postgres_a_linked_record_alone_takes_its_name_before_its_count() {
    let (_app, db, pool) = on_postgres().await;
    let target = definition("lone-target", Vec::new());
    let target = db.insert_image(&target).await.unwrap().expect("no limit");
    // Another transaction holds the name's lock.
    let key = lock_key(&pool, "lone-linked".into()).await;
    let mut other = holding_name_lock(&pool, key).await;
    let insert = tokio::spawn(async move {
        let linked = definition("lone-linked", vec![target]);
        let stored = db.insert_image_if_name_free(&linked, Some(NameScope::Everyone));
        stored.await.unwrap().is_some()
    });
    let waiting = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid::int = 1851878757 AND objid::int = $1";
    let mut waiter = None;
    for _ in 0..200 {
        let pids: Vec<i32> = sqlx::query_scalar(waiting)
            .bind(key)
            .fetch_all(&mut *other)
            .await
            .unwrap();
        waiter = pids.first().copied();
        if waiter.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let waiter = waiter.expect("the record waits for its name's lock");
    let counts_locked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE pid = $1 AND relation = 'image_counts'::regclass",
    )
    .bind(waiter)
    .fetch_one(&mut *other)
    .await
    .unwrap();
    assert_eq!(counts_locked, 0, "the count is taken after the name");
    other.commit().await.unwrap();
    assert!(insert.await.unwrap(), "stored once the name is free");
}

/// A group is one statement on PostgreSQL, and an owner's count of images
/// is brought up to date as it ends: each record counts its owner's taken
/// before it, so a group stops at the owner's limit, not a group's size past
/// it. One counted behind a record whose name was taken is stored all the
/// same if there is room.
#[tokio::test]
async fn postgres_groups_stop_at_their_owners_limit() {
    let (_app, db, pool) = on_postgres().await;
    let before = admins_images(&pool).await;
    let at_most = before + 4;
    for name in ["cap-first", "cap-second"] {
        let new = limited(name, at_most);
        let stored = db.insert_image_if_name_free(&new, Some(NameScope::Everyone));
        assert!(stored.await.unwrap().is_some());
    }
    // Five at once, room for two: sent together, they wait as one group.
    let five: Vec<NewImage> = (0..5)
        .map(|index| limited(&format!("cap-{index}"), at_most))
        .collect();
    let stored = join_all(
        five.iter()
            .map(|new| db.insert_image_if_name_free(new, Some(NameScope::Everyone))),
    )
    .await;
    let landed = stored
        .iter()
        .filter(|result| result.as_ref().unwrap().is_some())
        .count();
    assert_eq!(landed, 2, "{stored:?}");
    assert_eq!(admins_images(&pool).await, at_most);

    // One more room, and two records: a name already taken, taken first (its
    // lock's key is the smaller), then a new one, which fits.
    let taken_key = lock_key(&pool, "cap-first".into()).await;
    let mut fresh = None;
    for index in 0.. {
        let name = format!("cap-fresh-{index}");
        if lock_key(&pool, name.clone()).await > taken_key {
            fresh = Some(name);
            break;
        }
    }
    let fresh = fresh.unwrap();
    let (taken, new) = (
        limited("cap-first", at_most + 1),
        limited(&fresh, at_most + 1),
    );
    let (taken, new) = tokio::join!(
        db.insert_image_if_name_free(&taken, Some(NameScope::Everyone)),
        db.insert_image_if_name_free(&new, Some(NameScope::Everyone)),
    );
    assert!(taken.unwrap().is_none(), "the name is taken");
    assert!(new.unwrap().is_some(), "there was room for {fresh}");
    assert_eq!(admins_images(&pool).await, at_most + 1);
}

/// A record of a group is stored field for field as the same record alone:
/// every column set, each to a value of its own, so that two fields
/// swapped in the group's statement show.
#[tokio::test]
async fn postgres_stores_a_grouped_record_as_it_stores_one_alone() {
    use app::model::{
        InspectionAttributes, ProvisioningSpec, ProvisioningType, ViceImageSpec, ViceImageType,
    };
    let app = TestApp::spawn(Backend::Postgres).await;
    let db = app.core.db();
    let Pool::Postgres(pool) = db.pool() else {
        unreachable!("a PostgreSQL app")
    };
    let now = Utc::now();
    let full = |name: &str| NewImage {
        kind: "disk",
        name: name.into(),
        label: "a label".into(),
        folder: "a folder".into(),
        data_store: "a store".into(),
        path: "a path \u{e9}\"'\\".into(),
        public: true,
        owner_id: Some(1),
        owner_images_at_most: None,
        size: Some(1 << 40),
        sha256: Some("ab".repeat(32)),
        format: Some("qcow2"),
        virtual_size: Some(i64::MAX),
        now,
        provisioning: Some(ProvisioningSpec {
            name: name.into(),
            os_type: "an os".into(),
            hypervisor: true,
            hypervisor_type: Some("a hypervisor".into()),
            supports_physical_machine: true,
            supports_virtual_machine: false,
            template_name: Some("a template".into()),
            provisioning_type: ProvisioningType::Linkedclone,
            active: false,
            features: vec!["a feature".into()],
            extensions: serde_json::from_value(json!({"an": ["extension", 1]})).unwrap(),
            virtualized_images: Vec::new(),
        }),
        virtualized: Vec::new(),
        vice: Some(ViceImageSpec {
            title: "a title".into(),
            image_type: ViceImageType::Declarative,
            content_type: None,
            imported: true,
            origin_environment: Some("an origin".into()),
            environment_reference: Some("a reference".into()),
            specifics: json!({"some": "specifics"}),
        }),
        inspection: InspectionAttributes {
            detail: Some("a detail".into()),
            volume_label: Some("a volume".into()),
            cpus: Some(3),
            memory_mib: Some(-5),
            product: Some("a product".into()),
            vendor: Some("a vendor".into()),
            product_version: Some("a version".into()),
            networks: vec!["one".into(), "two".into()],
        },
        guest_os: Some("a guest".into()),
    };
    let alone = db
        .insert_image_if_name_free(&full("alone"), Some(NameScope::Everyone))
        .await
        .unwrap()
        .expect("a free name");
    let grouped = [full("grouped-1"), full("grouped-2")];
    let ids = create_at_once(db, &grouped).await;
    let transactions = commits_of(pool, &ids).await;
    assert_eq!(transactions, 1, "the two were one group");
    let stored = |id: i64| async move {
        let text: String = sqlx::query_scalar(
            "SELECT (to_jsonb(i) - 'id' - 'name')::text FROM images i WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let expected = stored(alone.id).await;
    assert_eq!(
        expected["networks"],
        json!("[\"one\",\"two\"]"),
        "{expected}"
    );
    assert_eq!(
        expected["vice_image_type"],
        json!("declarative"),
        "{expected}"
    );
    for &id in &ids {
        assert_eq!(stored(id).await, expected);
    }

    // Hypervisor images created at once, each with its links.
    let mut runs = vec![alone.id, ids[0], ids[1]];
    runs.sort_unstable();
    let hypervisors = [
        definition("hypervisor-1", runs.clone()),
        definition("hypervisor-2", runs[1..].to_vec()),
    ];
    let made = join_all(hypervisors.iter().map(|new| db.insert_image(new))).await;
    for (index, id) in made.into_iter().enumerate() {
        let linked: Vec<i64> = sqlx::query_scalar(
            "SELECT image_id FROM image_virtualized WHERE hypervisor_id = $1 ORDER BY image_id",
        )
        .bind(id.unwrap().unwrap())
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(linked, runs[index..], "hypervisor-{}", index + 1);
    }
}
