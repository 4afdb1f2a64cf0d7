//! The most images one account may own (`--user-max-images`): records
//! without bytes cost no quota, so without a count one account could fill
//! the database. Every way of making an image stops at the count, the
//! refusal says why, and deleting one makes room; administrators are not
//! counted.

use base64::Engine;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::json;

use crate::helpers::{number, Backend, TestApp, ADMIN_PASSWORD};
use crate::mws::{messages, Mws};
use crate::store::User;
use crate::vice::{iso_bytes, Vice};

const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password-1");
const AT_MOST: u64 = 4;

fn record(name: &str) -> serde_json::Value {
    json!({"active": true, "features": [], "hypervisor": false, "name": name,
        "osType": "linux", "type": "stateful", "supportsVirtualMachine": true})
}

/// The images `user` owns, as the database holds them, and as the count
/// the inserts read.
async fn owned(app: &TestApp, user: (&str, &str)) -> (i64, i64) {
    let id = app.core.login(user.0, user.1).await.unwrap().id;
    let counted = app.core.db().images_owned(id).await.unwrap();
    let statement = "SELECT COUNT(*) FROM images WHERE owner_id = $1";
    let real = match app.core.db().pool() {
        depot_server::store::Pool::Sqlite(pool) => sqlx::query_scalar::<_, i64>(statement)
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
        depot_server::store::Pool::Postgres(pool) => sqlx::query_scalar::<_, i64>(statement)
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
    };
    (real, counted)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_account_owns_at_most_its_count_of_images(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_max_images = AT_MOST).await;
    let store_user = User::new(&app, ALICE.0, ALICE.1).await;
    app.add_user(BOB.0, BOB.1).await;
    let mws = Mws::new(&app, ALICE.0, ALICE.1).await;
    let vice = Vice::new(&app, ALICE.0, ALICE.1);
    let tus = |method: Method, path: &str| {
        reqwest::Client::new()
            .request(method, app.url(path))
            .basic_auth(ALICE.0, Some(ALICE.1))
            .header("tus-resumable", "1.0.0")
    };
    let iso = iso_bytes(40_000);

    // A resumable upload begun with room to spare, its first half sent.
    let name = base64::engine::general_purpose::STANDARD.encode("late.iso");
    let begun = tus(Method::POST, "/api/uploads")
        .header("upload-length", "40000")
        .header("upload-metadata", format!("filename {name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(begun.status(), StatusCode::CREATED);
    let resumable_path = begun.headers()["location"].to_str().unwrap().to_owned();
    let chunk = |offset: usize, bytes: &[u8]| {
        tus(Method::PATCH, &resumable_path)
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", offset.to_string())
            .body(bytes.to_vec())
            .send()
    };
    assert_eq!(chunk(0, &iso[..20_000]).await.unwrap().status(), 204);

    // Two MWS records, a ViCE one and an upload: four.
    for name in ["one", "two"] {
        let (status, created) = mws.post(&record(name)).await;
        assert_eq!(status, 201, "{created}");
    }
    let (status, created) = vice
        .json(Method::POST, "/images", Some(&json!({"title": "three"})))
        .await;
    assert_eq!(status, 201, "{created}");
    let uploaded = app
        .upload(ALICE.0, ALICE.1, "four.iso", iso_bytes(40_000))
        .await;
    assert_eq!(uploaded.status(), StatusCode::CREATED);
    assert_eq!(owned(&app, ALICE).await, (4, 4));

    // The fifth, whichever way it comes, is refused, saying why.
    let refusal = "you own 4 images, the most one account may";
    let (status, refused) = mws.post(&record("five")).await;
    assert_eq!(status, 409, "{refused}");
    assert!(messages(&refused).contains(refusal), "{refused}");
    let (status, refused) = vice
        .json(Method::POST, "/images", Some(&json!({"title": "five"})))
        .await;
    assert!(status.is_client_error(), "{status}: {refused}");
    assert!(refused.to_string().contains(refusal), "{refused}");
    let uploaded = app
        .upload(ALICE.0, ALICE.1, "five.iso", iso_bytes(40_000))
        .await;
    assert_eq!(uploaded.status(), StatusCode::CONFLICT);
    assert!(uploaded.text().await.unwrap().contains(refusal));
    // A resumable upload is refused before its bytes are sent.
    let name = base64::engine::general_purpose::STANDARD.encode("five.iso");
    let resumable = reqwest::Client::new()
        .post(app.url("/api/uploads"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "40000")
        .header("upload-metadata", format!("filename {name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resumable.status(), StatusCode::CONFLICT);
    assert!(resumable.text().await.unwrap().contains(refusal));
    assert_eq!(owned(&app, ALICE).await, (4, 4));
    // One begun with room completes: refused now, its bytes would be read
    // back at each retry, and a tus client takes a complete upload for a
    // success. It passes the count by one.
    let completed = chunk(20_000, &iso[20_000..]).await.unwrap();
    assert_eq!(completed.status(), 204);
    assert_eq!(owned(&app, ALICE).await, (5, 5));

    // Another account has its own count; an administrator has none.
    let bob = Mws::new(&app, BOB.0, BOB.1).await;
    assert_eq!(bob.post(&record("bobs")).await.0, 201);
    let admin = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    for index in 0..AT_MOST + 2 {
        let (status, created) = admin.post(&record(&format!("admins-{index}"))).await;
        assert_eq!(status, 201, "{created}");
    }

    // Deleting one makes room for one, once back under the count.
    assert_eq!(mws.delete("one").await.0, 200);
    assert_eq!(owned(&app, ALICE).await, (4, 4));
    assert_eq!(mws.post(&record("five")).await.0, 409);
    assert_eq!(mws.delete("two").await.0, 200);
    assert_eq!(mws.post(&record("five")).await.0, 201);
    assert_eq!(mws.post(&record("six")).await.0, 409);

    // Requests sent side by side for the last place: one is stored (on
    // PostgreSQL those written at the same moment are one statement, each
    // record counting the ones before it), and the count stays what the
    // database holds.
    assert_eq!(mws.delete("five").await.0, 200);
    let sent = (0..8).map(|index| {
        let mws = &mws;
        async move { mws.post(&record(&format!("burst-{index}"))).await.0 }
    });
    let statuses = futures_util::future::join_all(sent).await;
    let stored = statuses.iter().filter(|status| **status == 201).count();
    assert!(
        statuses
            .iter()
            .all(|status| *status == 201 || *status == 409),
        "{statuses:?}"
    );
    assert_eq!(stored, 1, "{statuses:?}");
    let (real, counted) = owned(&app, ALICE).await;
    assert_eq!(real, counted);
    assert_eq!(real, 3 + stored as i64);
    assert_eq!(mws.post(&record("after")).await.0, 409);

    // A sync copies no new file past the count, and says why.
    let (status, _) = store_user
        .dav("PUT", "/seven.iso", Some(iso_bytes(40_000)))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let done = store_user.sync("iso").await;
    let errors = done["message"]["errors"].to_string();
    assert!(
        errors.contains("seven.iso") && errors.contains(refusal),
        "{done}"
    );
    assert_eq!(mws.delete("four.iso").await.0, 200);
    for (index, status) in statuses.iter().enumerate() {
        if *status == 201 {
            assert_eq!(mws.delete(&format!("burst-{index}")).await.0, 200);
        }
    }
    let done = store_user.sync("iso").await;
    assert_eq!(done["message"]["errors"].to_string(), "[]", "{done}");
    assert_eq!(done["added"], 1, "{done}");
    assert_eq!(owned(&app, ALICE).await, (3, 3));
}

/// A raw insert of an image of `owner`'s, as a hand-typed one would be.
const INSERT_OWNED: &str = "INSERT INTO images (kind, name, path, owner_id, created_at, \
     updated_at) VALUES ('vm', $1, '/images/x', $2, now(), now())";

/// Connections to `app`'s PostgreSQL database, each on a stripe of the
/// image counts (its backend's pid modulo 64, migration 0032) that none of
/// the others is on.
async fn connections_on_stripes_apart(app: &TestApp, count: usize) -> Vec<sqlx::PgConnection> {
    use sqlx::Connection;

    let mut connections: Vec<(i32, sqlx::PgConnection)> = Vec::new();
    while connections.len() < count {
        let mut connection = sqlx::PgConnection::connect(app.database_url().unwrap())
            .await
            .unwrap();
        let stripe: i32 = sqlx::query_scalar("SELECT pg_backend_pid() % 64")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        if connections.iter().all(|(taken, _)| *taken != stripe) {
            connections.push((stripe, connection));
        }
    }
    connections
        .into_iter()
        .map(|(_, connection)| connection)
        .collect()
}

/// On PostgreSQL, one account's new images are counted on the stripe of the
/// connection that writes them (migration 0032): two transactions making
/// images of the same owner at once, each holding its count's row until it
/// commits, do not wait for each other, whichever servers they come from.
/// The count is right once both commit, and after a deletion on a stripe
/// that counted none of them.
#[tokio::test]
async fn one_accounts_writers_do_not_take_turns_on_its_count() {
    use sqlx::Connection;

    let app = TestApp::spawn(Backend::Postgres).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let alice = app.core.login(ALICE.0, ALICE.1).await.unwrap().id;
    let [mut first, mut second, mut third] = connections_on_stripes_apart(&app, 3)
        .await
        .try_into()
        .unwrap();
    let mut holding = first.begin().await.unwrap();
    sqlx::query(INSERT_OWNED)
        .bind("held")
        .bind(alice)
        .execute(&mut *holding)
        .await
        .unwrap();
    // A wait on the first transaction's lock fails rather than hangs.
    let mut writing = second.begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '10s'")
        .execute(&mut *writing)
        .await
        .unwrap();
    sqlx::query(INSERT_OWNED)
        .bind("written")
        .bind(alice)
        .execute(&mut *writing)
        .await
        .expect("the second writer waited for the first");
    writing.commit().await.unwrap();
    holding.commit().await.unwrap();
    assert_eq!(owned(&app, ALICE).await, (2, 2));
    sqlx::query("DELETE FROM images WHERE name = 'held'")
        .execute(&mut third)
        .await
        .unwrap();
    assert_eq!(owned(&app, ALICE).await, (1, 1));
}

/// An image deleted while its owner's account is deleted (by hand: Depot
/// disables accounts) does not deadlock: the image's deletion takes from
/// its owner's count without making a row on its own stripe, whose foreign
/// key would wait for the account the other deletion holds, while that
/// one waits for the image (migration 0032); and the account's counts go
/// after its images, also where pg_dump made the images' foreign key after
/// the others, which turned the order of their cascades (0033).
#[rstest]
#[case::made_by_migrations(false)]
#[case::restored(true)]
#[tokio::test]
async fn an_images_deletion_beside_its_owners_does_not_deadlock(#[case] restored: bool) {
    let app = TestApp::spawn(Backend::Postgres).await;
    if restored {
        crate::helpers::execute(
            &app,
            "ALTER TABLE images DROP CONSTRAINT images_owner_id_fkey, \
             ADD CONSTRAINT images_owner_id_fkey FOREIGN KEY (owner_id) \
             REFERENCES users (id) ON DELETE CASCADE",
        )
        .await;
    }
    app.add_user(ALICE.0, ALICE.1).await;
    let alice = app.core.login(ALICE.0, ALICE.1).await.unwrap().id;
    let [mut inserting, mut deleting, mut deleting_owner] = connections_on_stripes_apart(&app, 3)
        .await
        .try_into()
        .unwrap();
    sqlx::query(INSERT_OWNED)
        .bind("doomed")
        .bind(alice)
        .execute(&mut inserting)
        .await
        .unwrap();
    // The image's row is held for two seconds before its deletion's
    // statement ends and its owner's count is taken from.
    let slow_delete = tokio::spawn(async move {
        sqlx::query(
            "WITH gone AS (DELETE FROM images WHERE name = 'doomed' RETURNING 1) \
             SELECT pg_sleep(2) FROM gone",
        )
        .execute(&mut deleting)
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(alice)
        .execute(&mut deleting_owner)
        .await
        .expect("the account's deletion failed");
    slow_delete
        .await
        .unwrap()
        .expect("the image's deletion failed");
    assert_eq!(
        number(&app, "SELECT COUNT(*) FROM image_counts").await,
        0,
        "the account's counts went with it"
    );
}
