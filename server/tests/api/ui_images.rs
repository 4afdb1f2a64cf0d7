//! The catalog page's filters and order, and the image page's edit form,
//! driven over HTTP as a browser without WASM (and its server functions).

use rstest::rstest;

use crate::helpers::{json_of, random_bytes, Backend, TestApp, ADMIN_PASSWORD};

const ALICE: (&str, &str) = ("alice", "alice-password");
const BOB: (&str, &str) = ("bob", "bob-password-1");

async fn upload(app: &TestApp, (user, password): (&str, &str), name: &str, len: usize) -> i64 {
    let made: serde_json::Value = app
        .upload(user, password, name, random_bytes(len))
        .await
        .json()
        .await
        .unwrap();
    made["images"][0]["id"].as_i64().expect("uploaded")
}

/// The names of the catalog's rows, in the order the page shows them.
fn listed_names(page: &str) -> Vec<String> {
    page.split("<td class=\"col-name\">")
        .skip(1)
        .map(|cell| {
            let link_text = cell.split('>').nth(1).unwrap_or_default();
            link_text.split('<').next().unwrap_or_default().to_owned()
        })
        .collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_catalog_filters_sorts_and_pages_as_its_url_says(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    app.add_user(BOB.0, BOB.1).await;
    upload(&app, ALICE, "b-alice.img", 3000).await;
    upload(&app, ALICE, "a-alice.img", 1000).await;
    upload(&app, ALICE, "c-alice.img", 2000).await;
    upload(&app, BOB, "bob.img", 500).await;
    let admin = ("admin", ADMIN_PASSWORD);

    // An admin sees everyone's; the owner filter keeps one user's.
    let (status, page) = app
        .page(Some(admin), "/?owner=alice&sort=name&dir=asc")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        listed_names(&page),
        ["a-alice.img", "b-alice.img", "c-alice.img"]
    );
    let (_, page) = app
        .page(Some(admin), "/?owner=alice&sort=name&dir=desc")
        .await;
    assert_eq!(
        listed_names(&page),
        ["c-alice.img", "b-alice.img", "a-alice.img"]
    );
    let (_, page) = app
        .page(Some(admin), "/?owner=alice&sort=size&dir=asc")
        .await;
    assert_eq!(
        listed_names(&page),
        ["a-alice.img", "c-alice.img", "b-alice.img"]
    );
    // The heading of the sorted column says so, and its link turns the order round.
    assert!(
        page.contains("aria-sort=\"ascending\"") && page.contains("sort=size&amp;dir=desc"),
        "{page}"
    );

    // Alice never sees Bob's private image, whatever she asks for.
    let (_, page) = app.page(Some(ALICE), "/?owner=bob").await;
    assert!(listed_names(&page).is_empty(), "{page}");
    assert!(page.contains("No images match."));
    let (_, page) = app.page(Some(ALICE), "/?visibility=private").await;
    assert_eq!(listed_names(&page).len(), 3);

    // Dates: everything was made today, nothing before it.
    let today = chrono::Utc::now().date_naive();
    let (_, page) = app
        .page(Some(admin), &format!("/?from={today}&to={today}"))
        .await;
    assert_eq!(listed_names(&page).len(), 4);
    let yesterday = today.pred_opt().unwrap();
    let (_, page) = app.page(Some(admin), &format!("/?to={yesterday}")).await;
    assert!(listed_names(&page).is_empty());

    // Numbered pages of the chosen size, the current one marked.
    let (_, page) = app
        .page(Some(admin), "/?per_page=10&sort=name&dir=asc")
        .await;
    assert_eq!(listed_names(&page).len(), 4);
    assert!(
        !page.contains("aria-label=\"Pages\""),
        "one page needs no pager"
    );
    for (index, _) in (0..8).enumerate() {
        upload(&app, ALICE, &format!("more-{index}.img"), 100).await;
    }
    let (_, page) = app
        .page(Some(admin), "/?per_page=10&sort=name&dir=asc&page=2")
        .await;
    assert_eq!(listed_names(&page), ["more-6.img", "more-7.img"]);
    assert!(
        page.contains("<span aria-current=\"page\">2</span>"),
        "{page}"
    );
    assert!(page.contains("aria-label=\"Page 1\""), "{page}");
    assert!(page.contains("12 images"), "{page}");
}

/// Posts the edit form of image `id` as `user`, the way the page does.
async fn edit(
    app: &TestApp,
    (user, password): (&str, &str),
    id: i64,
    fields: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let id = id.to_string();
    let mut form = vec![("id", id.as_str())];
    form.extend_from_slice(fields);
    let response = reqwest::Client::new()
        .post(app.url("/api/ui/images/edit"))
        .basic_auth(user, Some(password))
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn record(app: &TestApp, (user, password): (&str, &str), id: i64) -> serde_json::Value {
    json_of(
        reqwest::Client::new()
            .post(app.url("/api/ui/image"))
            .basic_auth(user, Some(password))
            .form(&[("id", id.to_string())]),
    )
    .await
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_edit_applies_to_the_version_its_editor_saw_and_no_other(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    app.add_user(BOB.0, BOB.1).await;
    let id = upload(&app, ALICE, "draft.img", 2000).await;
    let seen = record(&app, ALICE, id).await["version"].as_i64().unwrap();
    let seen_text = seen.to_string();

    let (status, saved) = edit(
        &app,
        ALICE,
        id,
        &[
            ("version", &seen_text),
            ("name", "release.img"),
            ("label", "  Release 1  "),
            ("description", "Line one\r\nLine two\twith a tab"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["name"], "release.img");
    assert_eq!(saved["label"], "Release 1");
    assert_eq!(saved["description"], "Line one\nLine two\twith a tab");
    assert_eq!(saved["version"], seen + 1);
    // The VSS path follows the name.
    let path = saved["folder"].as_str().unwrap().to_owned();
    let (_, page) = app.page(Some(ALICE), &format!("/image/{id}")).await;
    assert!(page.contains(&format!("{path}/release.img")), "{page}");
    assert!(page.contains("Line one"), "{page}");

    // A second editor who opened the page before the save is refused, and
    // the first editor's change stands.
    let (status, refused) = edit(
        &app,
        ALICE,
        id,
        &[
            ("version", &seen_text),
            ("name", "overwritten.img"),
            ("label", ""),
            ("description", ""),
        ],
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.to_string().contains("changed by someone else"),
        "{refused}"
    );
    assert_eq!(record(&app, ALICE, id).await["name"], "release.img");

    let now = (seen + 1).to_string();
    // Others cannot see it, so for them it does not exist.
    let form = [
        ("version", now.as_str()),
        ("name", "bobs.img"),
        ("label", ""),
        ("description", ""),
    ];
    assert_eq!(edit(&app, BOB, id, &form).await.0, 404);

    // Bad input is refused with a reason, and nothing changes.
    for (name, description, reason) in [
        ("../escape.img", "", "may not contain /"),
        ("evil\u{202e}gpj.iso", "", "bidirectional"),
        ("fine.img", "bell\u{7}", "control characters"),
        ("", "", "a file name is required"),
    ] {
        let form = [
            ("version", now.as_str()),
            ("name", name),
            ("label", ""),
            ("description", description),
        ];
        let (status, answer) = edit(&app, ALICE, id, &form).await;
        assert_eq!(status, 400, "{name:?}: {answer}");
        assert!(answer.to_string().contains(reason), "{answer}");
    }
    let long = "x".repeat(4001);
    let form = [
        ("version", now.as_str()),
        ("name", "fine.img"),
        ("label", ""),
        ("description", long.as_str()),
    ];
    assert_eq!(edit(&app, ALICE, id, &form).await.0, 400);

    // Only an admin publishes.
    let form = [
        ("version", now.as_str()),
        ("name", "release.img"),
        ("label", ""),
        ("description", ""),
        ("visibility", "public"),
    ];
    let (status, answer) = edit(&app, ALICE, id, &form).await;
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = edit(&app, ("admin", ADMIN_PASSWORD), id, &form).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["public"], true);
    assert_eq!(record(&app, BOB, id).await["name"], "release.img");
    // Bob can see a public image now, but still not change it.
    let later = answer["version"].as_i64().unwrap().to_string();
    let form = [
        ("version", later.as_str()),
        ("name", "bobs.img"),
        ("label", ""),
        ("description", ""),
    ];
    assert_eq!(edit(&app, BOB, id, &form).await.0, 403);
    assert_eq!(record(&app, ALICE, id).await["name"], "release.img");

    // Published, the image is what the admin approved: its owner describes
    // it still, but renames it nor replaces its file (ViCE's upload, or an
    // MWS rename) no more.
    let form = [
        ("version", later.as_str()),
        ("name", "release.img"),
        ("label", "described"),
        ("description", "still hers to describe"),
    ];
    let (status, described) = edit(&app, ALICE, id, &form).await;
    assert_eq!(status, 200, "{described}");
    let latest = described["version"].as_i64().unwrap().to_string();
    let form = [
        ("version", latest.as_str()),
        ("name", "renamed.img"),
        ("label", ""),
        ("description", ""),
    ];
    let (status, refused) = edit(&app, ALICE, id, &form).await;
    assert_eq!(status, 403, "{refused}");
    assert!(refused.to_string().contains("published"), "{refused}");
    let vice = crate::vice::Vice::new(&app, ALICE.0, ALICE.1);
    let form = reqwest::multipart::Form::new().part(
        "upfile",
        reqwest::multipart::Part::bytes(random_bytes(1000)).file_name("other.img"),
    );
    let replaced = vice
        .request(reqwest::Method::POST, &format!("/image/{id}/file"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 403);
    // ViCE shows the title as the image's name.
    let (status, refused) = vice
        .json(
            reqwest::Method::PUT,
            "/images",
            Some(&serde_json::json!({"id": id.to_string(), "title": "renamed.img"})),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    // Put back as ViCE shows it (the name, as it has no title), it is no
    // rename.
    let (status, kept) = vice
        .json(
            reqwest::Method::PUT,
            "/images",
            Some(&serde_json::json!({"id": id.to_string(), "title": "release.img"})),
        )
        .await;
    assert_eq!(status, 201, "{kept}");
    let mws = crate::mws::Mws::new(&app, ALICE.0, ALICE.1).await;
    let (status, refused) = mws
        .put(
            &id.to_string(),
            &serde_json::json!({"name": "renamed", "osType": "linux", "hypervisor": false,
                "supportsVirtualMachine": true}),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    let kept = record(&app, ALICE, id).await;
    assert_eq!(kept["name"], "release.img");
    assert_eq!(kept["size"], 2000);
}

/// An owner's upload that began before an administrator published the
/// image replaces nothing when it ends: the published record keeps the
/// bytes the administrator approved.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_upload_begun_before_its_image_was_published_replaces_nothing(#[case] backend: Backend) {
    use app::model::{ImageEdit, Viewer};
    use bytes::Bytes;
    use futures_util::StreamExt;

    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let id = upload(&app, ALICE, "appliance.img", 2000).await;
    let alice = Viewer::User(app.core.login(ALICE.0, ALICE.1).await.unwrap());
    let admin = Viewer::User(app.core.login("admin", ADMIN_PASSWORD).await.unwrap());
    let approved = app.core.get_image(&admin, id).await.unwrap();

    // Alice's new bytes: a first part, then the rest once let go.
    let (began, has_begun) = tokio::sync::oneshot::channel::<()>();
    let (let_go, released) = tokio::sync::oneshot::channel::<()>();
    let first = futures_util::stream::once(async move {
        let _ = began.send(());
        Ok::<_, std::io::Error>(Bytes::from(random_bytes(1000)))
    });
    let rest = futures_util::stream::once(async move {
        let _ = released.await;
        Ok::<_, std::io::Error>(Bytes::from(random_bytes(1000)))
    });
    let body = Box::pin(first.chain(rest));
    let core = app.core.clone();
    let replacing = tokio::spawn(async move { core.attach_file(&alice, id, body, None).await });
    has_begun.await.unwrap();

    // Published meanwhile; then her upload ends.
    let edit = ImageEdit {
        name: approved.name.clone(),
        label: approved.label.clone(),
        description: approved.description.clone(),
        public: Some(true),
        version: approved.version,
    };
    app.core.edit_image(&admin, id, edit).await.unwrap();
    let_go.send(()).unwrap();
    let refused = replacing.await.unwrap();
    assert!(
        matches!(&refused, Err(app::error::CoreError::Conflict(reason)) if reason.contains("published")),
        "{refused:?}"
    );
    let kept = app.core.get_image(&admin, id).await.unwrap();
    assert_eq!(kept.sha256, approved.sha256);
    assert!(kept.public);
}

/// A textarea's text is raw to HTML: Leptos writes it into the page as it
/// is, so a description (or a provider map) holding `</textarea>` ended the
/// field and laid its author's markup over the page an administrator
/// opened (a form of theirs around the page's own "Save" button). It is
/// written escaped, and reads back as the text it was.
#[tokio::test]
async fn a_text_fields_markup_stays_text_on_every_page() {
    use reqwest::Method;

    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let id = upload(&app, ALICE, "draft.img", 2000).await;
    let version = record(&app, ALICE, id).await["version"].to_string();
    let planted = "</textarea><b id=\"planted\">x</b>";
    let (status, saved) = edit(
        &app,
        ALICE,
        id,
        &[
            ("version", &version),
            ("name", "draft.img"),
            ("label", ""),
            ("description", planted),
        ],
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["description"], planted);
    let (status, page) = app
        .page(Some(("admin", ADMIN_PASSWORD)), &format!("/image/{id}"))
        .await;
    assert_eq!(status, 200);
    assert!(!page.contains("<b id=\"planted\">"), "{page}");
    assert!(
        page.contains("&lt;/textarea&gt;&lt;b id=\"planted\"&gt;x&lt;/b&gt;</textarea>"),
        "{page}"
    );

    let coopr = crate::coopr::Coopr::new(&app, "admin", "acme").await;
    let body =
        r#"{"name":"t","description":"","providermap":{"p":{"f":"</textarea><b id=\"mapped\">"}}}"#;
    let (status, answer) = coopr.call(Method::POST, "/imagetypes", Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    let (status, page) = app
        .page(
            Some(("admin", ADMIN_PASSWORD)),
            "/admin/tenants?tenant=acme",
        )
        .await;
    assert_eq!(status, 200);
    assert!(!page.contains("<b id=\\\"mapped\\\">"), "{page}");
    assert!(
        page.contains("&lt;/textarea&gt;&lt;b id=\\\"mapped\\\"&gt;"),
        "{page}"
    );
}
