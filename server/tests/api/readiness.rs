//! `/readyz`, for a load balancer: ready while the database answers and the
//! blob store takes writes; 503 naming what fails otherwise, and ready again
//! once it is mended.

use rstest::rstest;
use sqlx::Connection;

use crate::helpers::{postgres_admin_url, Backend, TestApp};

async fn readiness(app: &TestApp) -> (u16, String) {
    let response = reqwest::get(app.url("/readyz")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The readiness answer once it is `status`: an answer is kept for two
/// seconds, as a load balancer asks every few.
async fn readiness_becomes(app: &TestApp, status: u16) -> (u16, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = readiness(app).await;
        if answer.0 == status || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn readiness_follows_the_blob_store(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(readiness(&app).await, (200, "ready".to_owned()));
    // The staging folder replaced by a file: no upload could begin.
    let staging = app.data_dir.join("store").join("tmp");
    std::fs::remove_dir_all(&staging).unwrap();
    std::fs::write(&staging, b"not a folder").unwrap();
    // Anyone may ask, as often as they like: the answer of a moment ago is
    // given again rather than a write made to the blob store for each.
    assert_eq!(readiness(&app).await.0, 200);
    let (status, answer) = readiness_becomes(&app, 503).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("blob store"), "{answer}");
    // Liveness is another question: the process still answers.
    assert_eq!(
        reqwest::get(app.url("/healthz")).await.unwrap().status(),
        200
    );
    std::fs::remove_file(&staging).unwrap();
    std::fs::create_dir(&staging).unwrap();
    assert_eq!(readiness_becomes(&app, 200).await.0, 200);
}

/// The name of `app`'s PostgreSQL database, and a connection to another one
/// from which to act on it.
async fn database_and_admin(app: &TestApp) -> (String, sqlx::PgConnection) {
    let name = app
        .database_url()
        .and_then(|url| url.rsplit('/').next())
        .unwrap()
        .to_owned();
    let admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .unwrap();
    (name, admin)
}

#[tokio::test]
async fn readiness_follows_the_database() {
    let app = TestApp::spawn(Backend::Postgres).await;
    assert_eq!(readiness(&app).await.0, 200);
    let (name, mut admin) = database_and_admin(&app).await;
    // Every connection of the server's pool cut, and no new one let in.
    sqlx::query(&format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    ))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    let (status, answer) = readiness_becomes(&app, 503).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("database"), "{answer}");
    assert!(
        !answer.contains(&name),
        "the answer names the database: {answer}"
    );
    sqlx::query(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    assert_eq!(readiness_becomes(&app, 200).await.0, 200);
}

/// Connections cut under the server (the database restarted, failed over, or
/// a proxy timed them out) cost no request: one that waited in the pool for
/// over half a second is pinged before use, and replaced if it is gone.
#[tokio::test]
async fn connections_cut_while_idle_are_replaced_unseen() {
    let app = TestApp::spawn(Backend::Postgres).await;
    // Several of the pool's connections in use at once, then idle.
    for _ in 0..3 {
        let pages = (0..4).map(|_| app.page(None, "/"));
        for (status, _) in futures_util::future::join_all(pages).await {
            assert_eq!(status, 200);
        }
    }
    let (name, mut admin) = database_and_admin(&app).await;
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(cut.len() >= 2, "the pool held {} connections", cut.len());
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let pages = (0..4).map(|_| app.page(None, "/"));
    for (status, page) in futures_util::future::join_all(pages).await {
        assert_eq!(status, 200, "{page}");
    }
    assert_eq!(readiness(&app).await, (200, "ready".to_owned()));
}
