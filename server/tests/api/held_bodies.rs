//! The bodies read whole before their handlers (a server function's form, a
//! dialect's JSON, WebDAV's XML) share one budget of memory: while slow
//! bodies hold it, another such request is answered 503 with `Retry-After`,
//! in its dialect's shape; once they are gone, the server takes bodies again.
//! Callers not signed in hold an eighth of it at most.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};

/// The budget here: 2 MiB.
const BUDGET: usize = 2 << 20;

/// A connection that has sent `bytes` of a chunked body to `path`, in 16 KiB
/// chunks, and goes on holding it.
async fn slow_body(app: &TestApp, path: &str, token: &str, bytes: usize) -> TcpStream {
    slow_body_of(app, path, Some(token), 16 << 10, bytes / (16 << 10)).await
}

/// As [`slow_body`], in `chunks` chunks of `chunk` bytes, from a caller
/// with `token` or from one not signed in.
async fn slow_body_of(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    chunk: usize,
    chunks: usize,
) -> TcpStream {
    slow_body_from(app, path, token, chunk, chunks, "").await
}

/// As [`slow_body_of`], with more of the request's head (`extra`, each
/// line ending in CRLF).
async fn slow_body_from(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    chunk: usize,
    chunks: usize,
    extra: &str,
) -> TcpStream {
    let mut connection = TcpStream::connect(app.address).await.unwrap();
    let authorization = token.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: depot\r\nContent-Type: application/json\r\n\
         {authorization}{extra}Transfer-Encoding: chunked\r\n\r\n"
    );
    connection.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{chunk:x}\r\n{}\r\n", " ".repeat(chunk));
    for _ in 0..chunks {
        connection.write_all(chunk.as_bytes()).await.unwrap();
    }
    connection.flush().await.unwrap();
    connection
}

async fn mws_create(app: &TestApp, token: &str, body: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/mws/rest/images?api-version=3"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn slow_bodies_hold_a_bounded_budget_and_give_it_back() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| {
        args.max_buffered_body_bytes = BUDGET;
    })
    .await;
    // Signed in: MWS answers no body of an anonymous caller.
    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    let token = app.core.issue_token(&admin, None).await.unwrap().token;
    // Three bodies of 512 KiB hold more than three quarters of the budget, through
    // three kinds of route.
    let form = slow_body(&app, "/api/ui/login", &token, 512 << 10).await;
    let document = slow_body(&app, "/mws/rest/images?api-version=3", &token, 512 << 10).await;
    let vice = slow_body(&app, "/v1/images", &token, 512 << 10).await;
    // A body of 600 KiB no longer fits: once the three have arrived, it is
    // turned away (it may be taken while they are still on their way).
    let large = format!("\"{}\"", "x".repeat(600 << 10));
    let deadline = Instant::now() + Duration::from_secs(20);
    let busy = loop {
        let answer = mws_create(&app, &token, large.clone()).await;
        if answer.status() == 503 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        busy.status(),
        503,
        "never refused while the budget was held"
    );
    assert_eq!(busy.headers()["retry-after"], "1");
    let error: serde_json::Value = busy.json().await.unwrap();
    assert!(
        error["messages"].to_string().contains("busy"),
        "MWS's error body: {error}"
    );
    // Requests without a body are served meanwhile.
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);

    // The clients go: their shares come back, and bodies are read again
    // (this one no image, so refused for that once read).
    drop((form, document, vice));
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        let answer = mws_create(&app, &token, large.clone()).await;
        if answer.status() != 503 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(served.status(), 400);
}

/// A caller who has not signed in holds nothing a dialect would refuse:
/// its body is not read (401 at once), and a form of the UI it sends is
/// at most 16 KiB (413), so that anonymous bodies hold little of the
/// budget: one with the longest password there is fits.
#[tokio::test]
async fn anonymous_bodies_are_small_or_not_read() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let document = "x".repeat(100 << 10);
    for path in ["/mws/rest/images?api-version=3", "/v1/images"] {
        let answer = client
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(document.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "{path}");
    }
    let sign_in = |password: String| {
        let form = format!("username=admin&password={password}");
        client
            .post(app.url("/api/ui/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
    };
    assert_eq!(sign_in("p".repeat(20 << 10)).await.unwrap().status(), 413);
    // Any other form that long is a signed-in user's (whose session
    // lapsed, say): they are to sign in.
    let other = client
        .post(app.url("/api/ui/images"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("params[q]={}", "q".repeat(20 << 10)))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
    // 1,024 characters of four bytes each, percent-encoded: 12 KiB.
    let longest = "%F0%9D%84%9E".repeat(1024);
    let answer = sign_in(longest).await.unwrap();
    assert_eq!(answer.status(), 401, "{}", answer.text().await.unwrap());
}

/// Callers not signed in hold an eighth of the budget at most, and one
/// address (behind a trusted proxy here) eight bodies of it: while slow
/// sign-in forms from many addresses fill it, another such form is
/// answered 503, and a signed-in user's request is served all the same.
#[tokio::test]
async fn anonymous_bodies_hold_their_share_of_the_budget_only() {
    let app = behind_a_proxy().await;
    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    let token = app.core.issue_token(&admin, None).await.unwrap().token;
    let from = |client: usize| format!("X-Forwarded-For: 198.51.100.{client}\r\n");
    // One address has eight bodies read at once, no more.
    let mut flood = Vec::new();
    for _ in 0..8 {
        flood.push(slow_body_from(&app, "/api/ui/login", None, 100, 1, &from(1)).await);
    }
    assert!(
        sign_in_turned_away(&app, Some("198.51.100.1")).await,
        "a ninth body of one address was read"
    );
    // An eighth of 2 MiB is 256 KiB: 64 slow forms of 100 bytes (each
    // holding 4 KiB, the least a body holds), from nine more addresses,
    // hold all of it; the rest of the 70 are turned away.
    for client in 2..72 {
        flood
            .push(slow_body_from(&app, "/api/ui/login", None, 100, 1, &from(client / 8 + 2)).await);
    }
    assert!(
        sign_in_turned_away(&app, None).await,
        "the anonymous share was never full"
    );
    // A body of 1 MiB from a signed-in user is read (and refused for what
    // it is, no image), not turned away for the anonymous flood.
    let large = format!("\"{}\"", "x".repeat(1 << 20));
    let served = mws_create(&app, &token, large).await;
    assert_eq!(served.status(), 400);
    drop(flood);
}

/// One IPv6 site (a /48) holds four addresses' share of anonymous bodies,
/// however many of its /64s it sends them from: past them a form from
/// another of its /64s is turned away, while another site is served.
#[tokio::test]
async fn one_ipv6_site_holds_four_addresses_share_of_anonymous_bodies() {
    let app = behind_a_proxy().await;
    // 32 bodies of 4 KiB each in the budget: an eighth of the anonymous
    // share, which is not what turns the next away.
    let mut flood = Vec::new();
    for body in 0..32 {
        let from = format!("X-Forwarded-For: 2001:db8:7:{}::1\r\n", body / 8);
        flood.push(slow_body_from(&app, "/api/ui/login", None, 100, 1, &from).await);
    }
    assert!(
        sign_in_turned_away(&app, Some("2001:db8:7:99::1")).await,
        "a fifth /64 of one /48 had its body read"
    );
    let other_site = sign_in(&app, Some("2001:db8:8::1")).await;
    assert_ne!(other_site.status(), 503);
    drop(flood);
}

/// A server with a budget of [`BUDGET`] behind a trusted proxy on
/// loopback, so that each request names its client.
async fn behind_a_proxy() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |args| {
        args.max_buffered_body_bytes = BUDGET;
        args.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
        // Past the connections the slow forms hold, whatever the machine's
        // limit on open files.
        args.max_connections = Some(256);
    })
    .await
}

/// A sign-in form from `forwarded` (the client a trusted proxy names; the
/// proxy itself for `None`).
async fn sign_in(app: &TestApp, forwarded: Option<&str>) -> reqwest::Response {
    let mut form = reqwest::Client::new()
        .post(app.url("/api/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=a&password=b");
    if let Some(client) = forwarded {
        form = form.header("x-forwarded-for", client);
    }
    form.send().await.unwrap()
}

/// Whether a sign-in form from `forwarded` (the client a trusted proxy
/// names; the proxy itself for `None`) is turned away (503) within 20 s of
/// asking again and again.
async fn sign_in_turned_away(app: &TestApp, forwarded: Option<&str>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if sign_in(app, forwarded).await.status() == 503 {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
