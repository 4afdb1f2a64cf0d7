//! Credentials under attack and over their life: password checks throttled
//! per client address and per account (429 with `Retry-After`), verified
//! credentials cached, routes that need no one never checking a password;
//! tokens listed and revoked, signing out revoking the session's tokens,
//! expired tokens purged; Coopr API keys listed and revoked.

use std::net::IpAddr;

use reqwest::StatusCode;
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{json_of, number, Backend, TestApp, ADMIN_PASSWORD};

/// A client whose requests come from `address` (any of 127.0.0.0/8).
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn status_with_basic(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    user: &str,
    password: &str,
) -> reqwest::Response {
    client
        .get(app.url(path))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn repeated_wrong_passwords_are_throttled_per_address_and_account(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| {
        args.login_burst_per_address = 6;
        args.login_burst_per_account = 4;
    })
    .await;
    app.add_user("alice", "alice-password").await;
    let alice_client = client_from("127.0.0.1");
    // Alice signs in once: her credential is verified and remembered.
    let first = status_with_basic(
        &alice_client,
        &app,
        "/api/tokens",
        "alice",
        "alice-password",
    )
    .await;
    assert_eq!(first.status(), 200);
    let token: Value = alice_client
        .post(app.url("/api/tokens"))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();

    // An attacker guesses alice's password from another address: after the
    // account's burst, 429 with Retry-After; no password is checked then.
    let attacker = client_from("127.0.0.2");
    let mut statuses = Vec::new();
    for attempt in 0..6 {
        let response = status_with_basic(
            &attacker,
            &app,
            "/api/tokens",
            "alice",
            &format!("guess-{attempt}"),
        )
        .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let wait: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&wait), "Retry-After {wait}");
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("try again"),
                "{body}"
            );
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    // The account's burst is 4 password checks (alice's own was the first).
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429], "{statuses:?}");

    // Meanwhile alice is not locked out: her remembered credential and her
    // token keep working, from her own address.
    let cached = status_with_basic(
        &alice_client,
        &app,
        "/api/tokens",
        "alice",
        "alice-password",
    )
    .await;
    assert_eq!(cached.status(), 200);
    let with_token = alice_client
        .get(app.url("/api/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status(), 200);

    // Per address: guessing many accounts from one address is throttled too.
    let sprayer = client_from("127.0.0.3");
    let mut sprayed = Vec::new();
    let started = std::time::Instant::now();
    for attempt in 0..9 {
        let response = status_with_basic(
            &sprayer,
            &app,
            "/api/tokens",
            &format!("user{attempt}"),
            "password-guess",
        )
        .await;
        sprayed.push(response.status().as_u16());
    }
    // A burst of 6, then at most one more per 2 s (the default period) since
    // the first guess: the guesses past what that allows are throttled. (On
    // a loaded machine the nine can take over 2 s, and a guess late in them
    // may rightly be let through.)
    let elapsed = started.elapsed();
    assert_eq!(&sprayed[..6], &[401; 6], "{sprayed:?}");
    let allowed = 6 + (elapsed.as_secs_f64() / 2.0) as usize;
    let let_through = sprayed.iter().filter(|status| **status == 401).count();
    assert!(
        let_through <= allowed,
        "{sprayed:?}: {let_through} let through in {elapsed:?}"
    );
    assert!(
        sprayed.contains(&429) || allowed >= sprayed.len(),
        "{sprayed:?} in {elapsed:?}"
    );
    // Another address is not affected.
    let other = status_with_basic(
        &client_from("127.0.0.4"),
        &app,
        "/api/tokens",
        "bob",
        "nope-nope",
    )
    .await;
    assert_eq!(other.status(), 401);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn routes_that_need_nobody_check_no_password(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.login_burst_per_address = 3).await;
    let client = client_from("127.0.0.5");
    for _ in 0..20 {
        let health = status_with_basic(&client, &app, "/healthz", "nobody", "wrong-password").await;
        assert_eq!(health.status(), 200);
    }
    // None of those counted as a password check: this address still has its burst.
    let wrong = status_with_basic(&client, &app, "/api/tokens", "nobody", "wrong-password").await;
    assert_eq!(wrong.status(), 401);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn tokens_are_listed_and_revoked_by_their_owner(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let client = reqwest::Client::new();
    let issue = |user: &'static str, password: &'static str| {
        let client = client.clone();
        let url = app.url("/api/tokens");
        async move {
            let body: Value = json_of(client.post(url).basic_auth(user, Some(password))).await;
            (
                body["id"].as_i64().unwrap(),
                body["token"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (first_id, first) = issue("alice", "alice-password").await;
    let (second_id, second) = issue("alice", "alice-password").await;
    let (bob_id, _) = issue("bob", "bob-password-1").await;

    // Using a token records when it was last used.
    let used = client
        .get(app.url("/v2/user/image/vm"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 200);
    let listed: Value = json_of(client.get(app.url("/api/tokens")).bearer_auth(&second)).await;
    let tokens = listed["tokens"].as_array().unwrap();
    let ids: Vec<i64> = tokens.iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert!(
        ids.contains(&first_id) && ids.contains(&second_id),
        "{listed}"
    );
    assert!(
        !ids.contains(&bob_id),
        "another user's token is listed: {listed}"
    );
    let text = listed.to_string();
    assert!(
        !text.contains(&first) && !text.contains(&second),
        "a secret was listed"
    );
    let first_row = tokens.iter().find(|t| t["id"] == first_id).unwrap();
    assert!(first_row["created_at"].is_string() && first_row["expires_at"].is_string());
    assert!(first_row["last_used_at"].is_string(), "{first_row}");

    // Bob cannot revoke alice's token; alice can, and it stops working at once.
    let bobs_try = client
        .delete(app.url(&format!("/api/tokens/{first_id}")))
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(bobs_try.status(), 404);
    let revoked = client
        .delete(app.url(&format!("/api/tokens/{first_id}")))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let after = client
        .get(app.url("/v2/user/image/vm"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    let still = client
        .get(app.url("/v2/user/image/vm"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 200);

    // Expired tokens are purged.
    let alice = app.core.login("alice", "alice-password").await.unwrap();
    let past = chrono::Utc::now() - chrono::Duration::hours(2);
    app.core
        .db()
        .insert_token(
            alice.id,
            alice.credentials_version,
            "expired-digest",
            past,
            past,
            None,
        )
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(app.core.purge_expired_tokens().await.unwrap(), 1);
}

/// A browser alice signed in with, and a token asked for through it.
async fn alice_signed_in_with_a_token(app: &TestApp) -> (reqwest::Client, String) {
    let browser = app.browser();
    let signed_in = browser
        .post(app.url("/api/ui/login"))
        .header("accept", "text/html")
        .form(&[("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    assert!(signed_in.status().is_redirection());
    let issued: Value = json_of(browser.post(app.url("/api/tokens"))).await;
    (browser, issued["token"].as_str().unwrap().to_owned())
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn signing_out_revokes_the_tokens_the_session_issued(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let (browser, session_token) = alice_signed_in_with_a_token(&app).await;
    // VSS's token request, asked through the session, is the session's too.
    let from_vss: Value = json_of(browser.post(app.url("/auth/request-token"))).await;
    let vss_token = from_vss["token"].as_str().unwrap().to_owned();
    // A token made with a password, not through the session, survives.
    let scripted = token_by_password(&app, "alice", "alice-password").await;
    let works = |token: String| {
        let url = app.url("/v2/user/image/iso");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(works(session_token.clone()).await, 200);
    assert_eq!(works(vss_token.clone()).await, 200);
    // A header the server cannot read leaves the caller anonymous: the
    // cookie sent beside it signs nobody in. (It did, and a token so asked
    // for was tied to no session: it outlived the sign-out below.)
    for junk in ["Foo x", "Basic !!!"] {
        for path in ["/api/tokens", "/auth/request-token"] {
            let asked = browser.post(app.url(path)).header("authorization", junk);
            let status = asked.send().await.unwrap().status();
            assert_eq!(status, 401, "{path} with {junk}");
        }
    }
    let signed_out = browser
        .post(app.url("/api/ui/logout"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(
        signed_out.status().is_redirection(),
        "{}",
        signed_out.status()
    );
    assert_eq!(works(session_token).await, 401);
    assert_eq!(works(vss_token).await, 401);
    assert_eq!(works(scripted.clone()).await, 200);

    // Signed in again in the same browser (another account, say, on a
    // shared machine): the session before ends there, and its tokens with
    // it, rather than outlive the sign-out that follows.
    app.add_user("bob", "bob-password").await;
    let mut session_tokens = Vec::new();
    for (user, password) in [("alice", "alice-password"), ("bob", "bob-password")] {
        let signed_in = browser
            .post(app.url("/api/ui/login"))
            .header("accept", "text/html")
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        assert!(signed_in.status().is_redirection(), "{user}");
        if user == "alice" {
            let made: Value = json_of(browser.post(app.url("/api/tokens"))).await;
            let token = made["token"].as_str().unwrap().to_owned();
            assert_eq!(works(token.clone()).await, 200);
            session_tokens.push(token);
        }
    }
    for token in session_tokens {
        assert_eq!(works(token).await, 401);
    }
    assert_eq!(works(scripted).await, 200);
}

/// A bearer token for `user`, asked for with their password.
async fn token_by_password(app: &TestApp, user: &str, password: &str) -> String {
    let made: Value = json_of(
        reqwest::Client::new()
            .post(app.url("/api/tokens"))
            .basic_auth(user, Some(password)),
    )
    .await;
    made["token"].as_str().unwrap().to_owned()
}

/// Sends each request, which must be refused for being made with a token.
async fn refused_to_a_token(requests: impl IntoIterator<Item = reqwest::RequestBuilder>) {
    for request in requests {
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("a token cannot"), "{body}");
    }
}

/// A token proves who its holder is, but makes no further credentials: a
/// successor token (or an API key, or for an administrator an account, a
/// password or admin rights) made with it would outlive the token's
/// revocation, or the browser session it came from signing out.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_token_cannot_mint_further_credentials(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password").await;
    app.core.issue_api_key("alice", "lab").await.unwrap();
    let token = token_by_password(&app, "alice", "alice-password").await;
    let client = reqwest::Client::new();
    let tried = [
        // Bearer, and HTTPie's `-a TOKEN:` (the token as a Basic username).
        client.post(app.url("/api/tokens")).bearer_auth(&token),
        client
            .post(app.url("/api/tokens"))
            .basic_auth(&token, Some("")),
        client
            .post(app.url("/auth/request-token"))
            .bearer_auth(&token),
        client
            .post(app.url("/api/ui/tokens/create"))
            .bearer_auth(&token),
        client
            .post(app.url("/api/ui/apikeys/create"))
            .bearer_auth(&token)
            .form(&[("tenant", "lab")]),
    ];
    refused_to_a_token(tried).await;
    // The token itself still works, and nothing new was made with it.
    let listed: Value = json_of(client.get(app.url("/api/tokens")).bearer_auth(&token)).await;
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 1, "{listed}");
    let (_, keys) =
        crate::helpers::ui_call(&app, ("alice", "alice-password"), "apikeys", &[]).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    // The password still makes them.
    let (status, _) =
        crate::helpers::ui_call(&app, ("alice", "alice-password"), "tokens/create", &[]).await;
    assert_eq!(status, 200);

    // Nor does an administrator's token hand out access: no account with a
    // password of its holder's choosing, no new password, no admin rights.
    let admin_token = token_by_password(&app, "admin", ADMIN_PASSWORD).await;
    let alice_id = app
        .core
        .login("alice", "alice-password")
        .await
        .unwrap()
        .id
        .to_string();
    let ui = |endpoint: &str, form: &[(&str, &str)]| {
        client
            .post(app.url(&format!("/api/ui/{endpoint}")))
            .bearer_auth(&admin_token)
            .form(form)
    };
    let tried = [
        ui(
            "users/create",
            &[("username", "mallory"), ("password", "mallory-password")],
        ),
        ui("users/reset-password", &[("id", &alice_id)]),
        ui(
            "users/change",
            &[("id", &alice_id), ("action", "make-admin")],
        ),
        // A tenant's member makes Coopr keys of their own for it.
        ui(
            "tenants/members/add",
            &[("tenant", "lab"), ("username", "bob")],
        ),
        client
            .post(app.url("/v1/user"))
            .bearer_auth(&admin_token)
            .json(&serde_json::json!({"username": "mallory", "password": "mallory-password"})),
    ];
    refused_to_a_token(tried).await;
    assert!(app.core.login("mallory", "mallory-password").await.is_err());
    let (status, bobs_keys) = crate::helpers::ui_call(
        &app,
        ("bob", "bob-password"),
        "apikeys/create",
        &[("tenant", "lab")],
    )
    .await;
    assert_ne!(status, 200, "{bobs_keys}");
    assert!(bobs_keys.get("key").is_none(), "{bobs_keys}");
    assert!(app.core.login("alice", "alice-password").await.is_ok());
    // What takes access away, or only reads, a token may still do.
    let response = ui("users", &[("page", "1")]).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = ui("users/change", &[("id", &alice_id), ("action", "disable")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_tokens_page_lists_and_revokes_without_showing_secrets(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let made: Value = json_of(
        reqwest::Client::new()
            .post(app.url("/api/tokens"))
            .basic_auth("alice", Some("alice-password")),
    )
    .await;
    let (id, secret) = (
        made["id"].as_i64().unwrap(),
        made["token"].as_str().unwrap(),
    );
    let (status, page) = app.page(Some(("alice", "alice-password")), "/tokens").await;
    assert_eq!(status, 200);
    assert!(page.contains(&format!("Revoke token {id}")), "{page}");
    assert!(!page.contains(secret), "a secret was shown");
    let (_, bobs) = app.page(Some(("bob", "bob-password-1")), "/tokens").await;
    assert!(!bobs.contains(&format!("Revoke token {id}")));
    let (status, _) = app.page(None, "/tokens").await;
    assert_eq!(status, 401);
    // Bob's revoke (a form post, as a browser without WASM sends it) is refused.
    let bob_revoke = reqwest::Client::new()
        .post(app.url("/api/ui/tokens/revoke"))
        .basic_auth("bob", Some("bob-password-1"))
        .form(&[("id", id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(bob_revoke.status(), 404);
    let works = reqwest::Client::new()
        .get(app.url("/api/tokens"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(works.status(), 200);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn one_account_starts_few_sessions_at_once(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    // Each sign-in after the first is answered from the cache of verified
    // passwords, past the password throttles; each starts a session, a
    // row kept for a week. A loop of them is throttled.
    let mut started = 0;
    let mut throttled = 0;
    for _ in 0..60 {
        let response = reqwest::Client::new()
            .post(app.url("/api/ui/login"))
            .form(&[("username", "alice"), ("password", "alice-password")])
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 | 302 | 303 => started += 1,
            429 => {
                throttled += 1;
                let answer = response.text().await.unwrap();
                assert!(answer.contains("sign-ins to this account"), "{answer}");
            }
            other => panic!("{other}: {}", response.text().await.unwrap()),
        }
    }
    assert!(throttled > 0 && started <= 40, "{started} started");
    // Scripts sending the same password meanwhile are not held back.
    let client = reqwest::Client::new();
    let answer = status_with_basic(
        &client,
        &app,
        "/v2/user/image/iso",
        "alice",
        "alice-password",
    );
    assert_eq!(answer.await.status(), 200);
}

/// One account keeps at most its 100 newest sessions: a sign-in past them
/// ends the one that would lapse first, and the tokens it issued (a script
/// signing in for a week, throttled as it is, made hundreds of thousands,
/// each a row kept for days). Another account's sessions, those signed in
/// to none, and the new one whatever its lapse, stay.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn one_account_keeps_its_newest_sessions_only(#[case] backend: Backend) {
    use tower_sessions::cookie::time::{Duration, OffsetDateTime};
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore as _;

    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let alice = app.core.login("alice", "alice-password").await.unwrap().id;
    // A real sign-in, lapsing in a week, and a token it issues.
    let (browser, token) = alice_signed_in_with_a_token(&app).await;
    let token_works = || async {
        let asked = reqwest::Client::new()
            .get(app.url("/v2/user/image/iso"))
            .bearer_auth(&token);
        asked.send().await.unwrap().status() == 200
    };
    assert!(token_works().await);

    let sessions = depot_server::store::SessionStore::new(app.core.db());
    let now = OffsetDateTime::now_utc();
    let session_of = |user: Option<i64>, lapses_in: Duration| {
        let mut data = std::collections::HashMap::new();
        if let Some(user) = user {
            data.insert(
                app::ports::SESSION_USER_KEY.to_owned(),
                serde_json::json!(user),
            );
        }
        Record {
            id: Id::default(),
            data,
            expiry_date: now + lapses_in,
        }
    };
    let mut others = Vec::new();
    for minutes in 1..=3 {
        for user in [Some(alice + 1000), None] {
            let mut session = session_of(user, Duration::minutes(minutes));
            sessions.create(&mut session).await.unwrap();
            others.push(session.id);
        }
    }
    // 104 more of alice's, each lapsing after the browser's.
    let mut alices = Vec::new();
    for minutes in 1..=104 {
        let lapses_in = Duration::days(8) + Duration::minutes(minutes);
        let mut session = session_of(Some(alice), lapses_in);
        sessions.create(&mut session).await.unwrap();
        alices.push(session.id);
    }
    let kept = format!("SELECT COUNT(*) FROM sessions WHERE user_id = {alice}");
    assert_eq!(number(&app, &kept).await, 100);
    for (n, id) in alices.iter().enumerate() {
        let loaded = sessions.load(id).await.unwrap();
        assert_eq!(loaded.is_some(), n >= 4, "alice's session {n}");
    }
    for id in &others {
        assert!(sessions.load(id).await.unwrap().is_some());
    }
    // The browser's session, which lapsed first, ended with its token.
    let me: Value = json_of(browser.post(app.url("/api/ui/me"))).await;
    assert!(me.is_null() || me["username"].is_null(), "{me}");
    assert!(!token_works().await, "a pruned session's token still works");
    // A new session is kept, whatever its lapse says.
    let mut new = session_of(Some(alice), Duration::minutes(1));
    sessions.create(&mut new).await.unwrap();
    assert!(sessions.load(&new.id).await.unwrap().is_some());
}
