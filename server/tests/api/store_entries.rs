//! How many files and folders a personal store may hold, and how deep:
//! empty files and folders cost no quota, so without a cap a user could
//! fill the shared disk's inodes (a `COPY` of a folder into itself doubles
//! it each round) and make every count of their store a longer walk.

use depot_server::store::Pool;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{random_bytes, ui_call, Backend, TestApp};

const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password-1");

/// A WebDAV request as `user`, with a `Destination` for `COPY`/`MOVE`.
async fn dav(
    app: &TestApp,
    user: (&str, &str),
    method: &str,
    path: &str,
    destination: Option<&str>,
    body: Option<Vec<u8>>,
) -> StatusCode {
    let mut request = reqwest::Client::new()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            app.url(&format!("/store{path}")),
        )
        .basic_auth(user.0, Some(user.1));
    if let Some(destination) = destination {
        request = request.header("destination", app.url(&format!("/store{destination}")));
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    request.send().await.unwrap().status()
}

/// Every file and folder of the user's store, by path (folders end in `/`).
async fn entries(app: &TestApp, user: (&str, &str)) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(folder) = pending.pop() {
        let (status, listing) = ui_call(app, user, "store", &[("path", &folder)]).await;
        assert_eq!(status, 200, "{listing}");
        for entry in listing["entries"].as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            let path = if folder.is_empty() {
                name.to_owned()
            } else {
                format!("{folder}/{name}")
            };
            if entry["folder"] == Value::Bool(true) {
                found.push(format!("{path}/"));
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_store_holds_at_most_its_cap_of_files_and_folders(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.store_max_entries = 6).await;
    app.add_user(ALICE.0, ALICE.1).await;
    app.add_user(BOB.0, BOB.1).await;
    let created = StatusCode::CREATED;
    let full = StatusCode::INSUFFICIENT_STORAGE;
    assert_eq!(dav(&app, ALICE, "MKCOL", "/a/", None, None).await, created);
    let iso = Some(random_bytes(3000));
    assert_eq!(
        dav(&app, ALICE, "PUT", "/a/x.iso", None, iso).await,
        created
    );
    let empty = Some(Vec::new());
    assert_eq!(
        dav(&app, ALICE, "PUT", "/empty", None, empty).await,
        created
    );
    assert_eq!(dav(&app, ALICE, "MKCOL", "/b/", None, None).await, created);
    // A folder's copy adds the folder and each file: 6 of 6.
    let copied = dav(&app, ALICE, "COPY", "/a/", Some("/c/"), None).await;
    assert_eq!(copied, created);
    let full_store = ["a/", "a/x.iso", "b/", "c/", "c/x.iso", "empty"];
    assert_eq!(entries(&app, ALICE).await, full_store);

    // Past the cap, whichever way the entry would come.
    assert_eq!(dav(&app, ALICE, "MKCOL", "/d/", None, None).await, full);
    let empty = Some(Vec::new());
    assert_eq!(dav(&app, ALICE, "PUT", "/e", None, empty).await, full);
    // A folder's copy answers for each member (207); none is made.
    let copied = dav(&app, ALICE, "COPY", "/a/", Some("/f/"), None).await;
    assert!(
        copied == full || copied == StatusCode::MULTI_STATUS,
        "{copied}"
    );
    let copied = dav(&app, ALICE, "COPY", "/empty", Some("/b/empty"), None).await;
    assert_eq!(copied, full);
    let (status, answer) =
        ui_call(&app, ALICE, "store/folder", &[("path", ""), ("name", "d")]).await;
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer.to_string().contains("at most 6 files and folders"),
        "{answer}"
    );
    let form = reqwest::multipart::Form::new().text("folder", "b").part(
        "file",
        reqwest::multipart::Part::bytes(Vec::new()).file_name("g.txt"),
    );
    let response = reqwest::Client::new()
        .post(app.url("/api/store/upload"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let answer = response.text().await.unwrap();
    assert!(answer.contains("6 files and folders"), "{answer}");
    assert_eq!(entries(&app, ALICE).await, full_store);

    // What replaces an entry adds none; a move adds none.
    let replaced = dav(&app, ALICE, "COPY", "/a/x.iso", Some("/c/x.iso"), None).await;
    assert_eq!(replaced, StatusCode::NO_CONTENT);
    let moved = dav(&app, ALICE, "MOVE", "/empty", Some("/b/empty"), None).await;
    assert_eq!(moved, created);
    let again = Some(random_bytes(10));
    assert_eq!(
        dav(&app, ALICE, "PUT", "/b/empty", None, again).await,
        StatusCode::NO_CONTENT
    );

    // Each store has its own cap.
    assert_eq!(dav(&app, BOB, "MKCOL", "/d/", None, None).await, created);

    // What is deleted, by WebDAV or by the Store page, makes room at once.
    let deleted = dav(&app, ALICE, "DELETE", "/c/", None, None).await;
    assert_eq!(deleted, StatusCode::NO_CONTENT);
    assert_eq!(dav(&app, ALICE, "MKCOL", "/d/", None, None).await, created);
    let (status, answer) =
        ui_call(&app, ALICE, "store/folder", &[("path", ""), ("name", "e")]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(dav(&app, ALICE, "MKCOL", "/f/", None, None).await, full);
    let (status, answer) = ui_call(&app, ALICE, "store/delete", &[("path", "e")]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(dav(&app, ALICE, "MKCOL", "/f/", None, None).await, created);
    assert_eq!(
        entries(&app, ALICE).await,
        ["a/", "a/x.iso", "b/", "b/empty", "d/", "f/"]
    );
}

/// Each request's path is at most 1,024 bytes, and so is every path a
/// folder copied or moved holds where it lands: a tree moved below a long
/// path, again and again, held paths past Linux's 4,096 bytes, which no
/// walk, count or delete of the store (nor the server's start) could read.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_folder_moved_or_copied_keeps_its_paths_within_1024_bytes(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let long = "l".repeat(250);
    for folder in [
        "/a/".to_owned(),
        format!("/a/{long}/"),
        format!("/a/{long}/{long}/"),
    ] {
        let made = dav(&app, ALICE, "MKCOL", &folder, None, None).await;
        assert_eq!(made, StatusCode::CREATED, "{folder}");
    }
    let mut deep = String::new();
    for name in ["b", &long, &long, &long] {
        deep.push_str(&format!("/{name}"));
        let made = dav(&app, ALICE, "MKCOL", &format!("{deep}/"), None, None).await;
        assert_eq!(made, StatusCode::CREATED, "{deep}");
    }
    // b/l…/l…/l…/a (756 bytes), then l…/l… below it (501 more).
    let too_long = format!("{deep}/a/");
    assert!(too_long.len() < 1024);
    let moved = dav(&app, ALICE, "MOVE", "/a/", Some(&too_long), None).await;
    assert_eq!(moved, StatusCode::URI_TOO_LONG);
    let copied = dav(&app, ALICE, "COPY", "/a/", Some(&too_long), None).await;
    assert_eq!(copied, StatusCode::URI_TOO_LONG);
    let all = entries(&app, ALICE).await;
    assert!(all.contains(&format!("a/{long}/{long}/")), "{all:?}");
    assert!(!all.iter().any(|entry| entry.len() > 1024), "{all:?}");
    // Where its paths fit (b/l…/a/l…/l…, 1,008 bytes), it moves.
    let fits = format!("/b/{long}/{long}/a/");
    let moved = dav(&app, ALICE, "MOVE", "/a/", Some(&fits), None).await;
    assert_eq!(moved, StatusCode::CREATED);
    let all = entries(&app, ALICE).await;
    let moved = format!("b/{long}/{long}/a/{long}/{long}/");
    assert!(all.contains(&moved), "{all:?}");
    assert!(!all.iter().any(|entry| entry.starts_with("a/")), "{all:?}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn files_and_folders_are_at_most_32_deep(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let mut path = String::new();
    for level in 1..=31 {
        path.push_str(&format!("/{level}"));
        let made = dav(&app, ALICE, "MKCOL", &format!("{path}/"), None, None).await;
        assert_eq!(made, StatusCode::CREATED, "{path}");
    }
    // 32 deep: the deepest a file or a folder may be.
    let file = format!("{path}/32.iso");
    let put = dav(&app, ALICE, "PUT", &file, None, Some(random_bytes(10))).await;
    assert_eq!(put, StatusCode::CREATED);
    let folder = format!("{path}/32/");
    assert_eq!(
        dav(&app, ALICE, "MKCOL", &folder, None, None).await,
        StatusCode::CREATED
    );
    let too_deep = StatusCode::URI_TOO_LONG;
    let below = format!("{folder}33/");
    assert_eq!(
        dav(&app, ALICE, "MKCOL", &below, None, None).await,
        too_deep
    );
    let below = format!("{folder}33.iso");
    let put = dav(&app, ALICE, "PUT", &below, None, Some(random_bytes(10))).await;
    assert_eq!(put, too_deep);
    let copied = dav(&app, ALICE, "COPY", &file, Some(&below), None).await;
    assert_eq!(copied, too_deep);
    let parent = folder.trim_matches('/').to_owned();
    let (status, answer) = ui_call(
        &app,
        ALICE,
        "store/folder",
        &[("path", &parent), ("name", "33")],
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("at most 32 deep"), "{answer}");

    // A folder moved deeper takes what is inside it along: two levels fit
    // below 30, not below 31.
    assert_eq!(
        dav(&app, ALICE, "MKCOL", "/x/", None, None).await,
        StatusCode::CREATED
    );
    assert_eq!(
        dav(&app, ALICE, "MKCOL", "/x/y/", None, None).await,
        StatusCode::CREATED
    );
    let at_31 = format!("{path}/x/");
    let moved = dav(&app, ALICE, "MOVE", "/x/", Some(&at_31), None).await;
    assert_eq!(moved, too_deep);
    // Nor over a folder that is there, which stays (WebDAV deletes the
    // destination first).
    assert_eq!(
        dav(&app, ALICE, "MKCOL", &at_31, None, None).await,
        StatusCode::CREATED
    );
    let moved = dav(&app, ALICE, "MOVE", "/x/", Some(&at_31), None).await;
    assert_eq!(moved, too_deep);
    let all = entries(&app, ALICE).await;
    assert!(all.iter().any(|entry| entry.ends_with("/31/x/")), "{all:?}");
    let at_30 = format!("{}/x/", path.rsplit_once('/').unwrap().0);
    let moved = dav(&app, ALICE, "MOVE", "/x/", Some(&at_30), None).await;
    assert_eq!(moved, StatusCode::CREATED);
    let all = entries(&app, ALICE).await;
    assert!(
        all.iter().any(|entry| entry.ends_with("/30/x/y/")),
        "{all:?}"
    );
    assert!(!all.iter().any(|entry| entry.contains("33")), "{all:?}");

    // A folder copied over one that is there, whose entries would land too
    // deep, is refused before the one there is deleted; copied where it
    // fits, it comes whole.
    let at_31 = format!("{path}/copy/");
    assert_eq!(
        dav(&app, ALICE, "MKCOL", &at_31, None, None).await,
        StatusCode::CREATED
    );
    let copied = dav(&app, ALICE, "COPY", &at_30, Some(&at_31), None).await;
    assert_eq!(copied, too_deep);
    let copied = dav(&app, ALICE, "COPY", &at_30, Some("/copy/"), None).await;
    assert_eq!(copied, StatusCode::CREATED);
    let all = entries(&app, ALICE).await;
    assert!(
        all.iter().any(|entry| entry.ends_with("/31/copy/")),
        "{all:?}"
    );
    assert!(
        !all.iter().any(|entry| entry.contains("31/copy/y")),
        "{all:?}"
    );
    assert!(all.iter().any(|entry| entry == "copy/y/"), "{all:?}");
}

/// The reservations a user's writes have asked for.
async fn reservations(app: &TestApp, user: &str) -> i64 {
    const COUNT: &str = "SELECT COUNT(*) FROM quota_reservations r \
         JOIN users u ON u.id = r.user_id WHERE u.username = $1";
    match app.core.db().pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar(COUNT).bind(user).fetch_one(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(COUNT).bind(user).fetch_one(pool).await,
    }
    .unwrap()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_folder_is_copied_within_one_reservation_not_one_a_file(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(50_000)).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let alice = app.core.login(ALICE.0, ALICE.1).await.unwrap();
    assert_eq!(
        dav(&app, ALICE, "MKCOL", "/src/", None, None).await,
        StatusCode::CREATED
    );
    for file in 0..20 {
        let path = format!("/src/{file:02}.iso");
        let put = dav(&app, ALICE, "PUT", &path, None, Some(random_bytes(1000))).await;
        assert_eq!(put, StatusCode::CREATED);
    }
    // Each reservation counts the whole store: a copy of a folder makes one
    // for all its files (it made one a file).
    let before = reservations(&app, ALICE.0).await;
    let copied = dav(&app, ALICE, "COPY", "/src/", Some("/dst/"), None).await;
    assert_eq!(copied, StatusCode::CREATED);
    assert_eq!(reservations(&app, ALICE.0).await - before, 1);
    let files = entries(&app, ALICE).await;
    assert_eq!(files.iter().filter(|f| f.starts_with("dst/")).count(), 21);

    // The quota still holds across a copy's files: with 40,000 bytes
    // stored, ten of the next copy's twenty fit, and the rest are refused.
    let copied = dav(&app, ALICE, "COPY", "/src/", Some("/again/"), None).await;
    assert!(copied != StatusCode::CREATED, "{copied}");
    let stored = app.store_files(alice.id).await;
    assert_eq!(stored.values().sum::<u64>(), 50_000, "{stored:?}");
    let again = stored.keys().filter(|f| f.starts_with("again/")).count();
    assert_eq!(again, 10, "{stored:?}");
}

/// Begins a `PUT` of `path` on a local store and sends its first bytes;
/// answers the sender of the rest and the request's answer to come, once
/// the bytes are going into a partial file.
async fn slow_put(
    app: &TestApp,
    path: &str,
    if_match: Option<&str>,
) -> (
    tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    }));
    let mut request = reqwest::Client::new()
        .put(app.url(&format!("/store{path}")))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .body(body);
    if let Some(if_match) = if_match {
        request = request.header("if-match", if_match);
    }
    let partials = || walkdir_partials(app);
    let before = partials();
    let answer = tokio::spawn(request.send());
    sender.send(Ok(random_bytes(1000))).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while partials() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    (sender, answer)
}

/// The partial files of writes under way in the local stores.
pub(crate) fn walkdir_partials(app: &TestApp) -> usize {
    let mut found = 0;
    let mut pending = vec![app.data_dir.join("personal")];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                pending.push(entry.path());
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with(".depot-partial-")
            {
                found += 1;
            }
        }
    }
    found
}

/// New entries whose writes are under way are counted by a walk, though
/// it cannot see them yet: the store cannot be filled behind their backs.
#[tokio::test]
async fn writes_under_way_count_when_the_store_is_walked() {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| args.store_max_entries = 3).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let created = StatusCode::CREATED;
    let (first, first_answer) = slow_put(&app, "/one.iso", None).await;
    let (second, second_answer) = slow_put(&app, "/two.iso", None).await;
    assert_eq!(dav(&app, ALICE, "MKCOL", "/a/", None, None).await, created);
    // A removal: the next refusal walks the store, which shows no file
    // but the two writes' partial ones.
    let deleted = dav(&app, ALICE, "DELETE", "/a/", None, None).await;
    assert_eq!(deleted, StatusCode::NO_CONTENT);
    assert_eq!(dav(&app, ALICE, "MKCOL", "/b/", None, None).await, created);
    let refused = dav(&app, ALICE, "MKCOL", "/c/", None, None).await;
    assert_eq!(refused, StatusCode::INSUFFICIENT_STORAGE);
    for (sender, answer) in [(first, first_answer), (second, second_answer)] {
        sender.send(Ok(random_bytes(1000))).await.unwrap();
        drop(sender);
        assert_eq!(answer.await.unwrap().unwrap().status(), created);
    }
    assert_eq!(entries(&app, ALICE).await, ["b/", "one.iso", "two.iso"]);
}

/// A write over a file is counted as a new entry: the file may be moved
/// away while the write goes on, and the write then makes it anew (even a
/// write that may only replace a file, `If-Match: *`).
#[rstest]
#[case::plain(None)]
#[case::only_over_a_file(Some("*"))]
#[tokio::test]
async fn a_write_over_a_file_moved_away_meanwhile_is_counted(#[case] if_match: Option<&str>) {
    let app = TestApp::spawn_with(Backend::Sqlite, |args| args.store_max_entries = 3).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let created = StatusCode::CREATED;
    assert_eq!(
        dav(&app, ALICE, "PUT", "/a", None, Some(random_bytes(10))).await,
        created
    );
    assert_eq!(dav(&app, ALICE, "MKCOL", "/b/", None, None).await, created);

    // A slow write over /a: its first bytes, then nothing for a while.
    let (sender, slow) = slow_put(&app, "/a", if_match).await;
    let moved = dav(&app, ALICE, "MOVE", "/a", Some("/b/a"), None).await;
    assert_eq!(moved, created);
    sender.send(Ok(random_bytes(1000))).await.unwrap();
    drop(sender);
    let written = slow.await.unwrap().unwrap().status();
    assert!(written.is_success(), "{written}");

    // /a, /b and /b/a: the store is full.
    assert_eq!(entries(&app, ALICE).await, ["a", "b/", "b/a"]);
    let refused = dav(&app, ALICE, "MKCOL", "/c/", None, None).await;
    assert_eq!(refused, StatusCode::INSUFFICIENT_STORAGE);
}

/// A whole-file write into a folder moved away meanwhile (its hidden file
/// went along) is refused, and leaves nothing behind. (Its hidden file
/// stayed where the move took it until the server started again: counted
/// by no walk, named by no request, keeping the folder from being deleted,
/// as many times over as a user cared to write so.)
#[tokio::test]
async fn a_write_into_a_folder_moved_away_meanwhile_leaves_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let created = StatusCode::CREATED;
    assert_eq!(dav(&app, ALICE, "MKCOL", "/a/", None, None).await, created);

    let (sender, slow) = slow_put(&app, "/a/x.iso", None).await;
    let moved = dav(&app, ALICE, "MOVE", "/a/", Some("/b/"), None).await;
    assert_eq!(moved, created);
    sender.send(Ok(random_bytes(1000))).await.unwrap();
    drop(sender);
    let written = slow.await.unwrap().unwrap().status();
    assert_eq!(written, StatusCode::NOT_FOUND);

    assert_eq!(walkdir_partials(&app), 0);
    assert_eq!(entries(&app, ALICE).await, ["b/"]);
    let deleted = dav(&app, ALICE, "DELETE", "/b/", None, None).await;
    assert_eq!(deleted, StatusCode::NO_CONTENT);
}

/// How many times the server has walked a store to count its entries.
async fn walks(app: &TestApp) -> f64 {
    let text = crate::metrics::scrape(app).await;
    crate::metrics::value(&text, "depot_store_walks_total").expect("the walks are counted")
}

/// A full store still replaces its files, and replacing one adds no entry:
/// it does not make the server count the store again each time, which
/// anyone at their cap could otherwise ask for with every other request.
/// (A `COPY` or `MOVE` onto a file deletes it first, then makes a new
/// entry: as a `DELETE` then a `PUT`, it is counted again. In a store
/// other servers share, a file moved away there and written over here
/// would be made anew unseen: there a write over a file counts until the
/// next walk.)
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_full_store_replaces_its_files_without_being_walked_each_time(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.store_max_entries = 3).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let created = StatusCode::CREATED;
    for path in ["/a", "/b"] {
        let put = dav(&app, ALICE, "PUT", path, None, Some(random_bytes(10))).await;
        assert_eq!(put, created, "{path}");
    }
    assert_eq!(dav(&app, ALICE, "MKCOL", "/f/", None, None).await, created);
    let before = walks(&app).await;
    for round in 0..10 {
        let replaced = dav(&app, ALICE, "PUT", "/a", None, Some(random_bytes(20))).await;
        assert_eq!(replaced, StatusCode::NO_CONTENT, "round {round}");
        // A folder moved into itself: refused before anything moved.
        let into_itself = dav(&app, ALICE, "MOVE", "/f/", Some("/f/g/"), None).await;
        assert!(
            into_itself.is_client_error(),
            "round {round}: {into_itself}"
        );
    }
    let after = walks(&app).await;
    let walked = after - before;
    match backend {
        Backend::Shared => assert!(walked <= 10.0, "{walked} walks for 10 writes"),
        _ => assert_eq!(walked, 0.0, "replacing files walked the store"),
    }

    // Still full: a new entry is refused (after one walk at most).
    let refused = dav(&app, ALICE, "PUT", "/d", None, Some(random_bytes(10))).await;
    assert_eq!(refused, StatusCode::INSUFFICIENT_STORAGE);
    assert!(walks(&app).await <= after + 1.0);
    assert_eq!(entries(&app, ALICE).await, ["a", "b", "f/"]);
}

/// Removing one thing many times at once (an object store's delete of
/// what is gone succeeds) frees room for one entry, not many.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_removal_frees_room_once_however_often_it_is_asked(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.store_max_entries = 3).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let created = StatusCode::CREATED;
    for path in ["/a/", "/b/", "/c/"] {
        assert_eq!(dav(&app, ALICE, "MKCOL", path, None, None).await, created);
    }
    let deletes = (0..8).map(|_| dav(&app, ALICE, "DELETE", "/a/", None, None));
    let deleted = futures_util::future::join_all(deletes).await;
    assert!(deleted.iter().any(StatusCode::is_success), "{deleted:?}");
    assert_eq!(dav(&app, ALICE, "MKCOL", "/d/", None, None).await, created);
    for path in ["/e/", "/f/", "/g/"] {
        let refused = dav(&app, ALICE, "MKCOL", path, None, None).await;
        assert_eq!(refused, StatusCode::INSUFFICIENT_STORAGE, "{path}");
    }
    assert_eq!(entries(&app, ALICE).await, ["b/", "c/", "d/"]);
}

/// A file copied onto a folder without replacing it (`Depth: 0`) is not
/// laid beside the folder under its name (an object store could), where
/// it would be an entry nobody admitted.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_file_is_never_copied_onto_a_folder(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let created = StatusCode::CREATED;
    assert_eq!(
        dav(&app, ALICE, "MKCOL", "/dir/", None, None).await,
        created
    );
    assert_eq!(
        dav(&app, ALICE, "PUT", "/f", None, Some(random_bytes(10))).await,
        created
    );
    let copied = reqwest::Client::new()
        .request(Method::from_bytes(b"COPY").unwrap(), app.url("/store/f"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("destination", app.url("/store/dir"))
        .header("depth", "0")
        .send()
        .await
        .unwrap()
        .status();
    assert!(copied.is_client_error(), "{copied}");
    assert_eq!(entries(&app, ALICE).await, ["dir/", "f"]);
    let moved = dav(&app, ALICE, "MOVE", "/dir", Some("/moved"), None).await;
    assert_eq!(moved, created);
    assert_eq!(entries(&app, ALICE).await, ["f", "moved/"]);
}

/// A move in an object store is copies then deletes, object by object: a
/// client that goes away midway does not stop it there, which would leave
/// files both here and there, or half of a folder in each place.
#[tokio::test]
async fn a_move_whose_client_goes_away_midway_still_completes() {
    let app = TestApp::spawn(Backend::Shared).await;
    app.add_user(ALICE.0, ALICE.1).await;
    assert_eq!(
        dav(&app, ALICE, "MKCOL", "/src/", None, None).await,
        StatusCode::CREATED
    );
    let puts = (0..200).map(|file| {
        let path = format!("/src/{file:03}");
        let app = &app;
        async move { dav(app, ALICE, "PUT", &path, None, Some(random_bytes(100))).await }
    });
    // Eight at a time: a user's writes take at most 8 upload places.
    use futures_util::StreamExt;
    let put: Vec<StatusCode> = futures_util::stream::iter(puts).buffered(8).collect().await;
    assert!(
        put.iter().all(|status| *status == StatusCode::CREATED),
        "{put:?}"
    );

    let request = reqwest::Client::new()
        .request(Method::from_bytes(b"MOVE").unwrap(), app.url("/store/src/"))
        .basic_auth(ALICE.0, Some(ALICE.1))
        .header("destination", app.url("/store/dst/"))
        .send();
    // Gone after a moment: the move has begun, and is far from done.
    let cut = tokio::time::timeout(std::time::Duration::from_millis(300), request).await;
    assert!(
        cut.is_err(),
        "the move ended before its client went: {cut:?}"
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // The top folder only, while the move goes on: a folder listed there
    // may be gone (moved whole) before it is listed itself.
    loop {
        let (status, top) = ui_call(&app, ALICE, "store", &[("path", "")]).await;
        assert_eq!(status, 200, "{top}");
        let names: Vec<&str> = top["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|entry| entry["name"].as_str())
            .collect();
        if !names.contains(&"src") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the move stopped: {names:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let all = entries(&app, ALICE).await;
    let moved = all.iter().filter(|entry| entry.starts_with("dst/")).count();
    assert_eq!(moved, 201, "{all:?}");
}
