//! New records are on disk when acknowledged, and records created at the
//! same moment share one commit without sharing each other's failures.

use chrono::Utc;
use depot_server::store::{NewImage, Pool};
use futures_util::future::join_all;
use rstest::rstest;
use serde_json::json;

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};
use crate::mws::Mws;

fn definition(name: &str, virtualized: Vec<i64>) -> NewImage {
    NewImage {
        kind: "definition",
        name: name.into(),
        label: String::new(),
        folder: "admin".into(),
        data_store: "depot".into(),
        path: format!("[depot] admin/{name}"),
        public: false,
        owner_id: Some(1),
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
    // Sent at once, on SQLite these wait for the writer together: one
    // group, in which the one at index 9 names a record that does not exist. (On
    // PostgreSQL each is a transaction of its own.)
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
        .map(|(index, result)| *result.as_ref().unwrap_or_else(|e| panic!("{index}: {e}")))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 19, "every good record has an id of its own");
    assert_eq!(db.count_images().await.unwrap(), before + 19);
    for (index, result) in results.iter().enumerate() {
        if let Ok(id) = result {
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
            .unwrap();
        tx.commit().await.unwrap();
        let grouped = *results[0].as_ref().unwrap();
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
