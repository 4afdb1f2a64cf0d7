//! A reservation lapses when its write stalls past its life (a crashed
//! server's must not hold a quota forever), and its room may then go to
//! other writes: a stalled write that goes on must find room again before
//! its bytes land, through an upload or the WebDAV store.

use std::time::Duration;

use reqwest::StatusCode;
use rstest::rstest;

use crate::helpers::{execute, number, random_bytes, Backend, TestApp};

const QUOTA: u64 = 1_000_000;

/// A request body fed by hand: its sender, and the body.
fn fed_body() -> (
    tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    reqwest::Body,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(2);
    let body = reqwest::Body::wrap_stream(futures_util::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    }));
    (sender, body)
}

/// Waits until the user holds `bytes` or more against the quota.
async fn wait_for_usage(app: &TestApp, user_id: i64, bytes: u64) {
    for _ in 0..400 {
        if app.core.quota_usage(user_id).await.unwrap() >= bytes {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never held {bytes} bytes");
}

/// Every reservation past its life, as an hour's stall leaves them.
async fn lapse_every_reservation(app: &TestApp) {
    execute(app, "UPDATE quota_reservations SET expires_at = 0").await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_stalled_upload_whose_room_went_to_another_is_refused(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    app.add_user("alice", "alice-password").await;
    let alice = app.core.login("alice", "alice-password").await.unwrap();
    let (sender, body) = fed_body();
    let part = reqwest::multipart::Part::stream_with_length(body, 600_000).file_name("slow.img");
    let slow = tokio::spawn(
        reqwest::Client::new()
            .post(app.url("/api/upload"))
            .basic_auth("alice", Some("alice-password"))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send(),
    );
    let bytes = random_bytes(600_000);
    sender.send(Ok(bytes[..300_000].to_vec())).await.unwrap();
    wait_for_usage(&app, alice.id, 300_000).await;

    lapse_every_reservation(&app).await;
    let beside = app
        .upload(
            "alice",
            "alice-password",
            "beside.img",
            random_bytes(600_000),
        )
        .await;
    assert_eq!(beside.status(), 201);

    sender.send(Ok(bytes[300_000..].to_vec())).await.unwrap();
    drop(sender);
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 600_000);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_stalled_store_write_whose_room_went_to_another_is_refused(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;
    let (sender, body) = fed_body();
    let slow = tokio::spawn(
        reqwest::Client::new()
            .put(app.url("/store/slow.img"))
            .basic_auth("alice", Some("alice-password"))
            .header("content-length", "600000")
            .body(body)
            .send(),
    );
    let bytes = random_bytes(600_000);
    sender.send(Ok(bytes[..300_000].to_vec())).await.unwrap();
    wait_for_usage(&app, alice_id, 600_000).await;

    lapse_every_reservation(&app).await;
    let beside = alice
        .dav("PUT", "/beside.img", Some(random_bytes(600_000)))
        .await;
    assert_eq!(beside.0, StatusCode::CREATED);

    sender.send(Ok(bytes[300_000..].to_vec())).await.unwrap();
    drop(sender);
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(app.core.quota_usage(alice_id).await.unwrap(), 600_000);
    assert_eq!(
        alice.dav("GET", "/slow.img", None).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Alice's request to create a resumable upload of 1,000 bytes.
fn alices_upload_created(
    app: &TestApp,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
    reqwest::Client::new()
        .post(app.url("/api/uploads"))
        .basic_auth("alice", Some("alice-password"))
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "1000")
        .header("upload-metadata", "filename bWVkaWEuaXNv")
        .send()
}

/// An upload's reservation lasts minutes until the upload is recorded, and
/// then the upload's day: a crash between the two (played here by a record
/// and a release that both fail) held the room for a day.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_uploads_reservation_lasts_minutes_until_the_upload_is_recorded(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    app.add_user("alice", "alice-password").await;
    let alice = app.core.login("alice", "alice-password").await.unwrap();
    let create = || alices_upload_created(&app);
    let hours_from_now = |hours: i64| chrono::Utc::now().timestamp_millis() + hours * 3_600_000;
    let lasting_past = |at: i64| {
        format!(
            "SELECT COUNT(*) FROM quota_reservations WHERE user_id = {} AND expires_at > {at}",
            alice.id
        )
    };
    assert_eq!(create().await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(number(&app, &lasting_past(hours_from_now(23))).await, 1);

    let refusals: &[&str] = match backend {
        Backend::Sqlite => &[
            "CREATE TRIGGER no_uploads BEFORE INSERT ON resumable_uploads \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
            "CREATE TRIGGER no_releases BEFORE DELETE ON quota_reservations \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        ],
        _ => &[
            "CREATE FUNCTION refused() RETURNS trigger LANGUAGE plpgsql \
             AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
            "CREATE TRIGGER no_uploads BEFORE INSERT ON resumable_uploads \
             FOR EACH ROW EXECUTE FUNCTION refused()",
            "CREATE TRIGGER no_releases BEFORE DELETE ON quota_reservations \
             FOR EACH ROW EXECUTE FUNCTION refused()",
        ],
    };
    for refusal in refusals {
        execute(&app, refusal).await;
    }
    let failed = create().await.unwrap();
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let everyone = "SELECT COUNT(*) FROM quota_reservations";
    assert_eq!(
        number(&app, everyone).await,
        2,
        "the unrecorded upload's is left"
    );
    assert_eq!(number(&app, &lasting_past(hours_from_now(1))).await, 1);
}

/// A reservation that lapsed before its upload was recorded (a database
/// stalled past its ten minutes, played here by a reservation made lapsed)
/// is not made to last again, since its room may have gone to another
/// write: the creation is refused, to be tried again, and nothing is
/// recorded.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_upload_whose_reservation_lapsed_before_it_was_recorded_is_refused(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    app.add_user("alice", "alice-password").await;
    let lapsing: &[&str] = match backend {
        Backend::Sqlite => &["CREATE TRIGGER lapsing AFTER INSERT ON quota_reservations \
             BEGIN UPDATE quota_reservations SET expires_at = 0 WHERE id = NEW.id; END"],
        _ => &[
            "CREATE FUNCTION lapsed() RETURNS trigger LANGUAGE plpgsql \
             AS $$ BEGIN NEW.expires_at := 0; RETURN NEW; END $$",
            "CREATE TRIGGER lapsing BEFORE INSERT ON quota_reservations \
             FOR EACH ROW EXECUTE FUNCTION lapsed()",
        ],
    };
    for statement in lapsing {
        execute(&app, statement).await;
    }
    let created = alices_upload_created(&app).await.unwrap();
    assert_eq!(created.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(created.headers().contains_key("retry-after"));
    assert_eq!(
        number(&app, "SELECT COUNT(*) FROM resumable_uploads").await,
        0
    );
    let lasting = "SELECT COUNT(*) FROM quota_reservations WHERE expires_at > 0";
    assert_eq!(number(&app, lasting).await, 0);
}

/// The lapse is told by the clock as the upload is recorded, not as its
/// creation began: a reservation that lapsed in between (its room counted
/// free since) is not made to last again.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_reservation_lapsed_since_the_creation_began_is_not_carried(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(QUOTA)).await;
    app.add_user("alice", "alice-password").await;
    let alice = app.core.login("alice", "alice-password").await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let lapsed_a_minute_ago = now - 60_000;
    execute(
        &app,
        &format!(
            "INSERT INTO quota_reservations (user_id, bytes, expires_at) \
             VALUES ({}, 1000, {lapsed_a_minute_ago})",
            alice.id
        ),
    )
    .await;
    let reservation = number(&app, "SELECT MAX(id) FROM quota_reservations").await;
    let row = depot_server::store::UploadRow {
        id: "stalled".into(),
        owner_id: alice.id,
        length: 1000,
        received: 0,
        metadata: "{}".into(),
        reservation_id: Some(reservation),
        image_id: None,
        completing_at: None,
        // Its creation began an hour ago, before the reservation lapsed.
        created_at: now - 3_600_000,
        expires_at: now + 3_600_000,
    };
    let recorded = app.core.db().insert_upload(&row, 50).await.unwrap();
    assert_eq!(
        recorded,
        depot_server::store::UploadRecorded::ReservationLapsed
    );
    assert_eq!(
        number(&app, "SELECT COUNT(*) FROM resumable_uploads").await,
        0
    );
    let lasting = format!("SELECT COUNT(*) FROM quota_reservations WHERE expires_at > {now}");
    assert_eq!(number(&app, &lasting).await, 0);
}
