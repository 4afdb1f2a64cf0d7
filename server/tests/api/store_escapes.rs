//! A WebDAV request's path never leaves its user's store, however it is
//! written on the wire: not into another user's store, nor above them all,
//! nor anywhere else on the server.

use base64::Engine;
use rstest::rstest;

use crate::helpers::{random_bytes, Backend, TestApp};
use crate::store::User;

/// Alice's `method path` written on the wire byte for byte: the status
/// and the whole answer.
async fn sent_as_is(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let credentials = base64::engine::general_purpose::STANDARD.encode("alice:alice-password");
    let mut head = format!("{method} {path} HTTP/1.1\r\nAuthorization: Basic {credentials}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    app.sent_as_is(&head, body).await
}

/// A request: its method, path as sent, headers and body.
type Attempt<'a> = (&'a str, String, &'a [(&'a str, String)], &'a [u8]);

/// dav-server resolves `/store/../store.../2/x` to `/store.../2/x`, and
/// its check of the prefix `/store` took that for `/2/x` inside the store,
/// which its file system joined to the user's folder as `../2/x`: Bob's
/// file, read, written, deleted or moved by Alice; `/store/../storeX/…`
/// reached any file of the server's, as did an `If` header's resource tag
/// (for an entity tag's comparison). Each is refused now, and nothing of
/// Bob's, of the stores' folder or of the server's files changes.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_path_never_leaves_its_users_store(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    let bob = User::new(&app, "bob", "bob-password").await;
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;
    let bob_id = app.core.login("bob", "bob-password").await.unwrap().id;
    let secret = random_bytes(4_000);
    assert_eq!(bob.dav("MKCOL", "/cds/", None).await.0, 201);
    assert_eq!(bob.dav("PUT", "/cds/secret.iso", Some(secret)).await.0, 201);
    assert_eq!(
        alice.dav("PUT", "/mine.iso", Some(vec![7; 100])).await.0,
        201
    );
    let (alices, bobs) = (
        app.store_files(alice_id).await,
        app.store_files(bob_id).await,
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let server_file = elsewhere.path().join("server.conf");
    std::fs::write(&server_file, "the server's own file").unwrap();

    let bobs_file = format!("/store/../store.../{bob_id}/cds/secret.iso");
    let planted = elsewhere.path().join("planted");
    let to_mine = [("Destination", "/store/stolen.iso".to_owned())];
    let one_deep = [("Depth", "1".to_owned())];
    // An entity tag compared with a file of the server's, or of Bob's.
    let server_file_tag = format!(
        "<http://{}/storeX{}> ([\"x\"])",
        app.address,
        server_file.display()
    );
    let compared = [("If", server_file_tag)];
    let attempts: [Attempt; 10] = [
        ("GET", bobs_file.clone(), &[], b""),
        (
            "GET",
            format!("/store/%2e%2e/store.../{bob_id}/cds/secret.iso"),
            &[],
            b"",
        ),
        ("PROPFIND", "/store/../store.../".to_owned(), &one_deep, b""),
        (
            "PUT",
            format!("/store/../store.../{bob_id}/cds/planted.iso"),
            &[],
            b"mine now",
        ),
        ("DELETE", bobs_file.clone(), &[], b""),
        ("MOVE", bobs_file.clone(), &to_mine, b""),
        (
            "PUT",
            "/store/../store.../junk".to_owned(),
            &[],
            b"counted by nobody",
        ),
        (
            "GET",
            format!("/store/../storeX{}", server_file.display()),
            &[],
            b"",
        ),
        (
            "PUT",
            format!("/store/../storeX{}", planted.display()),
            &[],
            b"planted",
        ),
        ("GET", "/store/mine.iso".to_owned(), &compared, b""),
    ];
    for (method, path, headers, body) in attempts {
        let (status, answer) = sent_as_is(&app, method, &path, headers, body).await;
        assert_eq!(status, 400, "{method} {path}: {answer}");
        assert!(
            answer.contains("inside it (/store/"),
            "{method} {path}: {answer}"
        );
        assert!(!answer.contains("the server's own file"), "{answer}");
    }
    assert_eq!(app.store_files(bob_id).await, bobs);
    assert_eq!(app.store_files(alice_id).await, alices);
    assert!(!planted.exists());
    assert!(!app.data_dir.join("personal").join("junk").exists());
    assert_eq!(bob.dav("GET", "/cds/secret.iso", None).await.0, 200);

    // The store itself, and what is inside it, written as-is, still serve.
    for path in [
        "/store",
        "/store/",
        "/store/./mine.iso",
        "/store/cds/../mine.iso",
    ] {
        let method = if path.ends_with(".iso") {
            "GET"
        } else {
            "PROPFIND"
        };
        let (status, answer) = sent_as_is(&app, method, path, &one_deep, b"").await;
        assert!([200, 207].contains(&status), "{method} {path}: {answer}");
    }
}
