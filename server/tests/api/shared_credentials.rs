//! Servers sharing one PostgreSQL database each keep the owners of the
//! tokens they have seen (store/token_cache.rs): what one server changes of
//! a token or its owner holds on the others as the change commits, and a
//! server that cannot hear of changes keeps nothing.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{postgres_admin_url, ui_call, Backend, TestApp, TestDb, ADMIN_PASSWORD};

/// Answers `GET /api/tokens` with `token` on `server` until it is refused,
/// for at most `within`; `false` if it never was.
async fn refused_within(server: &TestApp, token: &str, within: Duration) -> bool {
    let until = std::time::Instant::now() + within;
    loop {
        let status = reqwest::Client::new()
            .get(server.url("/api/tokens"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status();
        if status == 401 {
            return true;
        }
        assert_eq!(status, 200);
        if std::time::Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A token made for `user` on `server`, and used there once.
async fn used_token(server: &TestApp, user: &str, password: &str) -> String {
    let token: Value = reqwest::Client::new()
        .post(server.url("/api/tokens"))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    assert!(!refused_within(server, &token, Duration::ZERO).await);
    token
}

/// The ids of the tokens of `token`'s owner, as `server` lists them (newest
/// first).
async fn token_ids(server: &TestApp, token: &str) -> Vec<i64> {
    let listed: Value = reqwest::Client::new()
        .get(server.url("/api/tokens"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["id"].as_i64().unwrap())
        .collect()
}

/// Revokes token `id` on `server`, signed with `token` (of the same owner).
async fn revoke(server: &TestApp, token: &str, id: i64) {
    let gone = reqwest::Client::new()
        .delete(server.url(&format!("/api/tokens/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(gone.status().is_success(), "{}", gone.status());
}

/// The backends listening for changed credentials: one per server.
async fn listeners(database: &sqlx::PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'depot credentials listener'",
    )
    .fetch_all(database)
    .await
    .unwrap()
}

/// Two servers on one database, both listening for changed credentials,
/// and a connection of the test's own to that database.
async fn two_listening_servers() -> (TestApp, TestApp, sqlx::PgPool) {
    let a = TestApp::spawn(Backend::Shared).await;
    let b = a.spawn_beside(|_| {}).await;
    let database = sqlx::PgPool::connect(a.database_url().unwrap())
        .await
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while listeners(&database).await.len() < 2 {
        assert!(
            std::time::Instant::now() < until,
            "the servers never listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (a, b, database)
}

/// Each server keeps the owners of the tokens it has seen, so that a
/// request signed with one reads nothing from the database. What one server
/// changes of a token or its owner holds on the other as the change
/// commits, by PostgreSQL's notices, well before a kept owner would be
/// looked up again (a minute): a token revoked, an account disabled. A
/// server that lost its connection listening for the notices (and with it
/// the notice of a change) keeps nothing until it listens again.
#[tokio::test]
async fn a_token_revoked_or_its_owner_disabled_on_one_server_stops_on_the_other() {
    let (a, b, database) = two_listening_servers().await;
    let soon = Duration::from_secs(5);

    // Revoked on A.
    let (status, alice) = ui_call(
        &a,
        ("admin", ADMIN_PASSWORD),
        "users/create",
        &[("username", "alice"), ("password", "alice-password")],
    )
    .await;
    assert_eq!(status, 200, "{alice}");
    let revoked = used_token(&b, "alice", "alice-password").await;
    let kept = used_token(&b, "alice", "alice-password").await;
    let ids = token_ids(&a, &revoked).await;
    // Newest first: `kept` is the first.
    revoke(&a, &kept, ids[1]).await;
    assert!(
        refused_within(&b, &revoked, soon).await,
        "revoked on A, still good on B"
    );
    assert!(!refused_within(&b, &kept, Duration::ZERO).await);

    // Its owner disabled on A.
    let (status, disabled) = ui_call(
        &a,
        ("admin", ADMIN_PASSWORD),
        "users/change",
        &[("id", &alice["id"].to_string()), ("action", "disable")],
    )
    .await;
    assert_eq!(status, 200, "{disabled}");
    assert!(
        refused_within(&b, &kept, soon).await,
        "disabled on A, still good on B"
    );

    // B's listening connection is cut, and a token revoked on A before B
    // listens again: B never hears of it.
    a.add_user("bob", "bob-password").await;
    let token = used_token(&b, "bob", "bob-password").await;
    let cut = listeners(&database).await;
    for pid in &cut {
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&database)
            .await
            .unwrap();
    }
    let id = token_ids(&a, &token).await[0];
    revoke(&a, &token, id).await;
    // Well before B listens again (two seconds after the cut).
    assert!(
        refused_within(&b, &token, Duration::from_secs(1)).await,
        "unheard on B, still good there"
    );
    // Both listen again.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = listeners(&database).await;
        if now.len() == 2 && now.iter().all(|pid| !cut.contains(pid)) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the servers do not listen again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Backends stopped (SIGSTOP) for as long as this lives: connections that
/// stay open but answer nothing, as across a firewall that forgot them.
struct Stopped(Vec<i32>);

impl Stopped {
    fn stop(pids: Vec<i32>) -> Self {
        for pid in &pids {
            // SAFETY: kill(2) on a PostgreSQL backend of the test's database.
            assert_eq!(unsafe { libc::kill(*pid, libc::SIGSTOP) }, 0);
        }
        Self(pids)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        for pid in &self.0 {
            // SAFETY: as above.
            unsafe { libc::kill(*pid, libc::SIGCONT) };
        }
    }
}

/// A listening connection that stops answering, without being closed,
/// hears no notice either: its server stops keeping owners within seconds
/// (it asks the connection every 5 s, and gives it 2), not the minute after
/// which a kept owner is looked up again anyway.
#[tokio::test]
async fn a_server_whose_listening_connection_stops_answering_keeps_no_owner() {
    let (a, b, database) = two_listening_servers().await;
    a.add_user("alice", "alice-password").await;
    let token = used_token(&b, "alice", "alice-password").await;
    let stopped = Stopped::stop(listeners(&database).await);
    let id = token_ids(&a, &token).await[0];
    revoke(&a, &token, id).await;
    assert!(
        refused_within(&b, &token, Duration::from_secs(12)).await,
        "unheard on B, still good there"
    );
    drop(stopped);
}

/// Closing the store closes its listener too: nothing of the server stays
/// connected to the database, which can then be renamed or dropped (the
/// tests rename the one they migrate once and copy; on a fresh machine that
/// failed while the listener held on).
#[tokio::test]
async fn a_closed_store_leaves_no_connection_to_its_database() {
    let test_db = TestDb::migrated(Backend::Postgres).await;
    let url = test_db.url.clone().unwrap();
    let store = depot_server::store::Db::connect(&url).await.unwrap();
    // The test's own look, from another database: it must not count itself.
    let admin = sqlx::PgPool::connect(&postgres_admin_url()).await.unwrap();
    let name = url.rsplit('/').next().unwrap().to_owned();
    let sessions = |application: &'static str| {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
             AND ($2 = '' OR application_name = $2)",
        )
        .bind(name.clone())
        .bind(application)
        .fetch_one(&admin)
    };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while sessions("depot credentials listener").await.unwrap() == 0 {
        assert!(
            std::time::Instant::now() < until,
            "the store never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store.close().await;
    // A server process ends a moment after its client hangs up, and shows
    // in `pg_stat_activity` until then: a session still there after some
    // seconds is one the store kept.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = sessions("").await.unwrap();
    while left > 0 && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = sessions("").await.unwrap();
    }
    assert_eq!(left, 0, "a session outlived the store's close");
    admin.close().await;
}

/// A token or a Coopr key asked for while a revocation of its owner's
/// credentials is under way (a password reset about to commit) does not
/// outlive it. The revocation here is the store's own statements, left
/// open while the two are asked for: each waits for it, then finds the
/// account changed. (Before, each was stored at once, unseen by the
/// revocation's deletes, and went on working.)
#[tokio::test]
async fn credentials_issued_during_a_revocation_do_not_survive_it() {
    let app = TestApp::spawn(Backend::Postgres).await;
    app.add_user("alice", "alice-password").await;
    let alice = app.core.login("alice", "alice-password").await.unwrap();
    let depot_server::store::Pool::Postgres(pool) = app.core.db().pool() else {
        unreachable!("a PostgreSQL server");
    };
    let mut revoking = pool.begin().await.unwrap();
    for statement in [
        "UPDATE users SET credentials_version = credentials_version + 1 WHERE id = $1",
        "DELETE FROM api_tokens WHERE user_id = $1",
        "DELETE FROM api_keys WHERE user_id = $1",
    ] {
        sqlx::query(statement)
            .bind(alice.id)
            .execute(&mut *revoking)
            .await
            .unwrap();
    }
    let token_asked = tokio::spawn({
        let url = app.url("/api/tokens");
        async move {
            reqwest::Client::new()
                .post(url)
                .basic_auth("alice", Some("alice-password"))
                .send()
                .await
                .unwrap()
        }
    });
    let key_asked = tokio::spawn({
        let core = app.core.clone();
        async move { core.issue_api_key("alice", "lab").await }
    });
    // Both wait for the revocation (they were stored at once before).
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(waiting).fetch_one(pool).await.unwrap();
        if waiting >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "{waiting} of the two never waited for the revocation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    revoking.commit().await.unwrap();

    let token = token_asked.await.unwrap();
    if token.status() == 201 {
        let token: Value = token.json().await.unwrap();
        let status = reqwest::Client::new()
            .get(app.url("/api/tokens"))
            .bearer_auth(token["token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "a token issued during the revocation works");
    } else {
        assert_eq!(token.status(), 401);
    }
    match key_asked.await.unwrap() {
        Ok(issued) => {
            let status = crate::admin_users::coopr_status(&app, "alice", &issued.key).await;
            assert_eq!(status, 401, "a key issued during the revocation works");
        }
        Err(error) => assert!(
            matches!(error, app::error::CoreError::Forbidden(ref why) if why.contains("changed")),
            "{error:?}"
        ),
    }
}
