//! Bounded work per request, on both backends: MWS regular expressions are
//! few, short, and mean the same to SQLite and PostgreSQL (or are refused);
//! a query's conditions, values and sort keys are bounded in the core;
//! ViCE bodies nest at most 32 levels, however they are written; names and
//! titles hold no bidirectional formatting characters; a form body that
//! never reaches its contents is cut off early.

use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};

use depot_server::blob::Area;

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};
use crate::mws::{messages, Mws};
use crate::vice::Vice;

/// Images whose names the patterns below tell apart.
async fn named_images(mws: &Mws<'_>) {
    for name in [
        "ubuntu-22",
        "ubuntu-2204",
        "Ubuntu-24",
        "centos-7",
        "debian_12",
        "win10",
    ] {
        let image = json!({"name": name, "osType": "linux", "hypervisor": false,
            "supportsVirtualMachine": true});
        let (status, body) = mws.post(&image).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// An MWS query matching `name` against `pattern`.
fn name_matches(pattern: &str) -> Value {
    json!({"name": {"$regex": pattern}})
}

/// The names a query finds, in name order whatever the backend's collation.
async fn sorted_names(mws: &Mws<'_>, query: &Value) -> Vec<String> {
    let query = query.to_string();
    let mut names = mws.names(&[("query", query.as_str())]).await;
    names.sort();
    names
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn accepted_patterns_find_the_same_images_on_both_backends(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    named_images(&mws).await;
    let cases: [(Value, &[&str]); 10] = [
        (
            name_matches("^ubu.*[0-9]{2}$"),
            &["ubuntu-22", "ubuntu-2204"],
        ),
        (
            name_matches("^(centos|debian)[-_]\\d+$"),
            &["centos-7", "debian_12"],
        ),
        (name_matches("\\d{4}"), &["ubuntu-2204"]),
        (name_matches("\\w+_\\d"), &["debian_12"]),
        (name_matches("^[^cdu]"), &["Ubuntu-24", "win10"]),
        (name_matches("^win\\d+?$"), &["win10"]),
        (
            json!({"name": {"$regex": "^ubuntu", "$options": "i"}}),
            &["Ubuntu-24", "ubuntu-22", "ubuntu-2204"],
        ),
        // One leading (?i) is what `$options: "i"` sends, so it is accepted
        // as the same thing (MongoDB takes it too).
        (
            name_matches("(?i)^UBUNTU-2\\d$"),
            &["Ubuntu-24", "ubuntu-22"],
        ),
        (name_matches("\\."), &[]),
        // Four regular expressions in one query are allowed.
        (
            json!({"$and": [
                {"name": {"$regex": "^u"}},
                {"name": {"$regex": "\\d$"}},
                {"osType": {"$regex": "^lin"}},
                {"name": {"$regex": "-"}},
            ]}),
            &["ubuntu-22", "ubuntu-2204"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(sorted_names(&mws, &query).await, expected, "{query}");
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn other_patterns_are_refused_with_a_message_on_both_backends(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    named_images(&mws).await;
    let five: Vec<Value> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(name_matches)
        .collect();
    let five = json!({ "$or": five });
    let cases = [
        (five, "at most 4 regular expressions"),
        (name_matches(&"a".repeat(300)), "at most 256 bytes"),
        (
            json!({"name": {"$regex": "(?i)x", "$options": "i"}}),
            "inline flags",
        ),
        (name_matches("(?s)x"), "inline flags"),
        (name_matches("x(?i)y"), "inline flags"),
        (name_matches("\\bx"), "word boundaries"),
        (name_matches("(a)\\1"), "backreferences"),
        (name_matches("(?=x)"), "look-around"),
        (name_matches("[[:alpha:]]"), "POSIX classes"),
        (name_matches("\\p{L}"), "Unicode classes"),
        (name_matches("\\x41"), "hex and Unicode escapes"),
        (name_matches("a{256}"), "at most 255"),
        (name_matches("x**"), "may not follow another"),
        (name_matches("(x{200}){200}"), "at most 1024 characters"),
    ];
    for (query, named) in &cases {
        let query = query.to_string();
        let (status, body) = mws
            .get("/mws/rest/images", &[("query", query.as_str())])
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        let message = messages(&body);
        assert!(message.contains(named), "{query}: {message}");
    }
    // The distinct values of a field are filtered the same way.
    let five = cases[0].0.to_string();
    let (status, body) = mws
        .get(
            "/mws/rest/distinct/images/osType",
            &[("query", five.as_str())],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(messages(&body).contains("at most 4 regular expressions"));
    assert_eq!(mws.names(&[]).await.len(), 6);
}

/// A query the databases would refuse (too many bound values, an `OR`
/// nested past SQLite's expression depth) or that asks for too much work is
/// the caller's error, 400 with a reason, on every dialect and both
/// backends; the largest queries within the bounds are answered.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn queries_past_the_bounds_are_the_callers_error(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    named_images(&mws).await;
    let ids_in = |lists: usize| {
        let ids: Vec<i64> = (1..=1000).collect();
        json!({"$or": vec![json!({"id": {"$in": ids}}); lists]})
    };
    let names_either = |count: usize| {
        let names: Vec<Value> = (0..count)
            .map(|n| json!({"name": format!("win{n}")}))
            .collect();
        json!({"$or": names})
    };
    // The largest: 4,000 values, 256 comparisons, 8 sort keys.
    assert_eq!(sorted_names(&mws, &ids_in(4)).await.len(), 6);
    assert_eq!(sorted_names(&mws, &names_either(256)).await, ["win10"]);
    let eight_keys =
        r#"{"name":1,"id":1,"osType":1,"type":1,"version":1,"cpus":1,"vendor":1,"active":1}"#;
    assert_eq!(mws.names(&[("sort", eight_keys)]).await.len(), 6);

    let nine_keys = eight_keys.replace('}', r#","product":1}"#);
    let empty_ors = json!({"$or": vec![json!({}); 1100]}).to_string();
    let cases = [
        // Past SQLite's 32,766 parameters at 33 (which would not fit in a
        // request's head): refused from the fifth.
        ("query", ids_in(5).to_string(), "at most 4096 values"),
        ("query", empty_ors, "at most 512 conditions"),
        ("sort", nine_keys, "at most 8 keys"),
    ];
    for (parameter, value, named) in &cases {
        for path in ["/mws/rest/images", "/mws/rest/distinct/images/osType"] {
            if *parameter == "sort" && path.contains("distinct") {
                continue;
            }
            let (status, body) = mws.get(path, &[(parameter, value.as_str())]).await;
            assert_eq!(status, 400, "{path} {value:.80}: {body:.300}");
            assert!(messages(&body).contains(named), "{body:.300}");
        }
    }

    // VSS: sort keys past the bound, whichever way they are spelled.
    let client = reqwest::Client::new();
    let token = app.vss_token("admin", ADMIN_PASSWORD).await;
    for sort in [
        "name,asc;".repeat(9),
        "name,asc&sort=".repeat(8) + "id,desc",
    ] {
        let response = client
            .get(app.url(&format!("/v2/image?sort={sort}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{sort}");
        let body = response.text().await.unwrap();
        assert!(body.contains("at most 8 keys"), "{body}");
    }
    assert_eq!(mws.names(&[]).await.len(), 6);
}

/// `levels` elements nested inside an image's `<specifics>`.
fn nested_xml(levels: usize) -> String {
    format!(
        "<Image><title>deep</title>{}x{}</Image>",
        "<specifics>".repeat(levels),
        "</specifics>".repeat(levels)
    )
}

/// An image whose `specifics` object nests `levels` objects.
fn nested_json(levels: usize) -> String {
    format!(
        r#"{{"title": "deep", "specifics": {}1{}}}"#,
        r#"{"a":"#.repeat(levels),
        "}".repeat(levels)
    )
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deeply_nested_bodies_are_refused_and_the_server_stays_up(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let alice = Vice::new(&app, "alice", "alice-password");

    // About 20 KB of nested `<specifics>`: ViCE's invalid-input status, in XML.
    let xml = nested_xml(20 * 1024 / "<specifics>".len());
    assert!(xml.len() > 20 * 1024);
    let (status, body) = alice.xml(Method::POST, "/images", Some(xml.as_str())).await;
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("<Error>"), "{body}");
    assert!(body.contains("deeper than 32 levels"), "{body}");

    // JSON is held to the same depth, whether serde_json's own limit (128)
    // would have caught it or not.
    for levels in [40, 5_000] {
        let response = alice
            .request(Method::POST, "/images")
            .header("content-type", "application/json")
            .body(nested_json(levels))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{levels} levels");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], 405);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("deeper than 32 levels"),
            "{error}"
        );
    }

    // The server is still there, and a body within the limits is taken (a
    // record's own document nests at most 16 deep).
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let response = alice
        .request(Method::POST, "/images")
        .header("content-type", "application/json")
        .body(nested_json(12))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let (status, body) = alice
        .xml(Method::POST, "/images", Some(nested_xml(12).as_str()))
        .await;
    assert!(matches!(status.as_u16(), 201 | 405), "{status}: {body}");
    let (status, images) = alice.json(Method::GET, "/images", None).await;
    assert_eq!(status, 200);
    assert!(!images.as_array().unwrap().is_empty(), "{images}");
}

/// How much of an endless form body a test offers the server: well past
/// what socket buffers hold (a few MiB). Without the guard the parser takes
/// all of it, searching its whole buffer again at every chunk.
const ENDLESS: usize = 48 << 20;

/// Posts `head` and then filler without end (up to [`ENDLESS`]) as a form
/// body to `path`, as Alice: how many bytes the server took before it
/// answered or stopped reading, and its answer's status and text (none if
/// the connection was cut before they came).
async fn post_endless_form(
    app: &TestApp,
    path: &str,
    boundary: &str,
    head: Vec<u8>,
) -> (usize, Option<(u16, Option<String>)>) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(futures_util::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    }));
    let request = reqwest::Client::new()
        .post(app.url(path))
        .basic_auth("alice", Some("alice-password"))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send();
    let mut answer = std::pin::pin!(async move {
        let response = request.await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()))
    });
    let mut sent = 0;
    let filler = vec![b'a'; 1 << 20];
    let feeding = async {
        let _ = sender.send(Ok(head)).await;
        while sent < ENDLESS {
            // A server that stopped reading leaves the sender waiting.
            let offered = sender.send(Ok(filler.clone()));
            match tokio::time::timeout(std::time::Duration::from_secs(5), offered).await {
                Ok(Ok(())) => sent += filler.len(),
                _ => break,
            }
        }
        drop(sender);
    };
    let answer = tokio::select! {
        answer = &mut answer => answer,
        () = feeding => {
            tokio::time::timeout(std::time::Duration::from_secs(30), answer)
                .await
                .ok()
                .flatten()
        }
    };
    (sent, answer)
}

/// A form body whose contents never begin (no boundary in it, or a part's
/// headers that never end) is cut off with a 400 after a few KiB, on every
/// route that takes files in forms: the form parser would hold all of it in
/// memory while it looked for the end.
#[tokio::test]
async fn form_bodies_that_never_reach_their_contents_are_cut_off() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_user("alice", "alice-password").await;
    let boundary = "depot-endless-form";
    let mut heads = vec![
        ("no boundary", b"preamble ".to_vec()),
        (
            "endless headers",
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.iso\"\r\nX-Filler: ")
                .into_bytes(),
        ),
    ];
    // The boundary line's own end is not the first half of the blank line
    // that ends the headers: the parser reads it first.
    heads.push((
        "a blank line, then endless headers",
        format!("--{boundary}\r\n\r\n").into_bytes(),
    ));
    for path in ["/api/upload", "/api/store/upload", "/v1/image/1/file"] {
        for (what, head) in &heads {
            let (sent, answer) = post_endless_form(&app, path, boundary, head.clone()).await;
            assert!(
                sent < 32 << 20,
                "{what}, {path}: the server took {sent} bytes"
            );
            if let Some((status, body)) = answer {
                assert_eq!(status, 400, "{what}, {path}: {body:?}");
                // The server does not read the rest, so the connection may
                // be reset before the client has read the whole answer.
                if let Some(body) = body {
                    assert!(body.contains("65536 bytes"), "{body}");
                }
            }
        }
    }
    // A form that reaches its contents is taken as before.
    let landed = app
        .upload(
            "alice",
            "alice-password",
            "small.img",
            random_bytes(200_000),
        )
        .await;
    assert_eq!(landed.status(), 201);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn names_with_bidirectional_controls_are_refused(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // An upload named to show as "evilosi.jpg": 400, and nothing stored.
    let response = app
        .upload(
            "admin",
            ADMIN_PASSWORD,
            "evil\u{202e}gpj.iso",
            random_bytes(4096),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("U+202E"), "{body}");
    assert!(app.stored(Area::Blobs).await.is_empty());
    assert!(app.stored(Area::Staging).await.is_empty());
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    assert!(mws.names(&[]).await.is_empty());

    // MWS: in the name, or in another attribute.
    for image in [
        json!({"name": "evil\u{202e}gpj", "osType": "linux", "hypervisor": false,
            "supportsVirtualMachine": true}),
        json!({"name": "plain", "osType": "linux\u{2066}", "hypervisor": false,
            "supportsVirtualMachine": true}),
    ] {
        let (status, body) = mws.post(&image).await;
        assert_eq!(status, 400, "{body}");
        assert!(!messages(&body).is_empty(), "{body}");
    }
    assert!(mws.names(&[]).await.is_empty());

    // ViCE: a title (its invalid-input status is 405).
    app.add_user("alice", "alice-password").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let (status, error) = alice
        .json(
            Method::POST,
            "/images",
            Some(&json!({"title": "evil\u{202e}gpj"})),
        )
        .await;
    assert_eq!(status, 405, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("bidirectional"),
        "{error}"
    );
}

/// Every statement on PostgreSQL runs under a time limit, whatever a
/// request asks for: a slow statement is cancelled, not left holding a
/// connection and its locks; nor may a transaction stay open, idle, for
/// long. PostgreSQL enforces `statement_timeout` itself
/// (a test that waited for it took 31 s); what Depot must do is give it to
/// every connection of its pool, the one that ran the migrations (without a
/// limit, then reset) included: eight at once hold every idle one.
#[tokio::test]
async fn postgres_statements_carry_a_timeout() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let pool = postgres_pool(app.core.db());
    let mut connections = Vec::new();
    for _ in 0..8 {
        connections.push(pool.acquire().await.unwrap());
    }
    for connection in &mut connections {
        let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        assert_eq!(timeout, depot_server::store::STATEMENT_TIMEOUT);
        let idle: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        assert_eq!(idle, depot_server::store::IDLE_IN_TRANSACTION_TIMEOUT);
    }
}

/// A database whose default isolation is stricter still gives Depot's
/// connections READ COMMITTED, which the name and quota rules rely on: a
/// check made after taking a lock sees the writes of whoever held it.
#[tokio::test]
async fn postgres_sessions_read_committed_whatever_the_database_default() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let pool = postgres_pool(app.core.db());
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" SET default_transaction_isolation = 'repeatable read'"
    ))
    .execute(pool)
    .await
    .unwrap();
    let url = app.database_url().unwrap();
    let plain = sqlx::PgPool::connect(url).await.unwrap();
    let default: String = sqlx::query_scalar("SHOW default_transaction_isolation")
        .fetch_one(&plain)
        .await
        .unwrap();
    assert_eq!(default, "repeatable read", "the database's own default");
    let db = depot_server::store::Db::connect(url).await.unwrap();
    let depot = postgres_pool(&db);
    let isolation: String = sqlx::query_scalar("SHOW transaction_isolation")
        .fetch_one(depot)
        .await
        .unwrap();
    assert_eq!(isolation, "read committed");
}

/// The PostgreSQL pool of a database the test knows is on PostgreSQL.
fn postgres_pool(db: &depot_server::store::Db) -> &sqlx::PgPool {
    match db.pool() {
        depot_server::store::Pool::Postgres(pool) => pool,
        depot_server::store::Pool::Sqlite(_) => panic!("not a PostgreSQL pool"),
    }
}

/// A `PROPFIND` of infinite depth would walk a whole store in one request,
/// as often as asked: it is refused whatever the request says it is
/// (dav-server allows it to the litmus test suite, by a header).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn a_store_is_never_listed_to_infinite_depth(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    assert_eq!(alice.dav("MKCOL", "/a/", None).await.0, 201);
    assert_eq!(
        alice.dav("PUT", "/a/f.iso", Some(random_bytes(10))).await.0,
        201
    );
    for litmus in [None, Some("1")] {
        let mut request = reqwest::Client::new()
            .request(Method::from_bytes(b"PROPFIND").unwrap(), app.url("/store/"))
            .basic_auth("alice", Some("alice-password"))
            .header("depth", "infinity");
        if let Some(litmus) = litmus {
            request = request.header("x-litmus", litmus);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(!status.is_success(), "{status}: {body}");
        assert!(body.contains("propfind-finite-depth"), "{body}");
    }
    // One level at a time still lists.
    assert_eq!(alice.dav("PROPFIND", "/", None).await.0, 207);
}

/// dav-server builds a WebDAV request's XML into a tree by recursion, one
/// call per level: 64 KiB of nested elements would overflow the stack and
/// abort the server. Such bodies are refused (400) before it reads them, as
/// are bodies past the 64 KiB it reads (413); the server goes on answering,
/// and a plain `PROPFIND`, `PROPPATCH` or `LOCK` still works.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn deeply_nested_webdav_bodies_are_refused(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    assert_eq!(
        alice.dav("PUT", "/f.iso", Some(random_bytes(10))).await.0,
        201
    );
    let deep = "<a>".repeat(21_845).into_bytes();
    for method in ["PROPFIND", "PROPPATCH", "LOCK"] {
        let (status, body) = alice.dav(method, "/f.iso", Some(deep.clone())).await;
        assert_eq!(status, 400, "{method}: {body}");
        assert!(body.contains("deeper than 32 levels"), "{method}: {body}");
    }
    // The same depth out of 23 KB: an entity of a thousand elements, named
    // five thousand times (dav-server's parser expands entities).
    let entity = format!(
        "<!DOCTYPE p [<!ENTITY e \"{}\">]><p>{}</p>",
        "<a>".repeat(1000),
        "&e;".repeat(5000)
    );
    let (status, body) = alice.dav("PROPFIND", "/", Some(entity.into_bytes())).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = alice
        .dav("PROPFIND", "/", Some(vec![b' '; 64 * 1024 + 1]))
        .await;
    assert_eq!(status, 413);
    let all = br#"<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>"#;
    assert_eq!(alice.dav("PROPFIND", "/", Some(all.to_vec())).await.0, 207);
    let patch = br#"<?xml version="1.0"?><propertyupdate xmlns="DAV:" xmlns:z="urn:z"><set><prop><z:color>red</z:color></prop></set></propertyupdate>"#;
    // Read by dav-server, which keeps no dead properties here.
    assert_eq!(
        alice
            .dav("PROPPATCH", "/f.iso", Some(patch.to_vec()))
            .await
            .0,
        501
    );
    let lock = br#"<?xml version="1.0"?><lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope><locktype><write/></locktype></lockinfo>"#;
    assert_eq!(
        alice.dav("LOCK", "/f.iso", Some(lock.to_vec())).await.0,
        200
    );
}

/// Conditions the WebDAV library would read past the end of (a lone quote
/// as an entity tag, an `If` header's token left open) are refused, 400,
/// rather than end the connection without an answer; the store works on.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn store_conditions_that_cannot_be_read_are_refused(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = crate::store::User::new(&app, "alice", "alice-password").await;
    assert_eq!(
        alice.dav("PUT", "/f.iso", Some(random_bytes(10))).await.0,
        201
    );
    for (method, path, header, value) in [
        ("MKCOL", "/x/", "if-match", "\""),
        ("MKCOL", "/x/", "if", "<a"),
        ("DELETE", "/f.iso", "if-none-match", "W/\""),
        ("GET", "/f.iso", "if-range", "\""),
    ] {
        let response = reqwest::Client::new()
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(&format!("/store{path}")),
            )
            .basic_auth("alice", Some("alice-password"))
            .header(header, value)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} with {header}: {value}: {error}"));
        assert_eq!(response.status(), 400, "{method} with {header}: {value}");
    }
    assert_eq!(alice.dav("GET", "/f.iso", None).await.0, 200);
    // A range to a position past any file: the whole file, not an answer
    // without end.
    let whole = reqwest::Client::new()
        .get(app.url("/store/f.iso"))
        .basic_auth("alice", Some("alice-password"))
        .header("range", "bytes=1-18446744073709551615")
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), whole.bytes()).await;
    assert_eq!(read.expect("an answer without end").unwrap().len(), 10);
}
