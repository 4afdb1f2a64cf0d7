//! A server keeps the catalog pages it read (store/kept.rs) and answers
//! one again only after finding the catalog at the version the page was
//! read at (migration 0017 on PostgreSQL, 0016 on SQLite): whatever changed
//! an image or an owner's name, through another server or straight in the
//! database, shows on the next page.

use rstest::rstest;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};
use crate::kept_counts::{
    another_server, create_through_mws, insert_images, reads_after_a_change, run, run_as_replica,
    run_rolled_back, user_id,
};

/// An MWS page sorted by name, as `who` (a user and password).
async fn page(server: &TestApp, (user, password): (&str, &str), query: &str) -> Value {
    reqwest::Client::new()
        .get(server.url(&format!(
            "/mws/rest/images?api-version=3&sort=%7B%22name%22%3A1%7D&{query}"
        )))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The names on that page.
async fn names(server: &TestApp, who: (&str, &str), query: &str) -> Vec<String> {
    let answer = page(server, who, query).await;
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

const ADMIN: (&str, &str) = ("admin", ADMIN_PASSWORD);

/// How many pages `server` answered from what it kept, and how many it
/// read, by its metrics.
async fn kept_and_read(server: &TestApp) -> (u64, u64) {
    crate::kept_counts::kept_and_read(server, "depot_catalog_pages_total", "read").await
}

fn seeds(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_page_kept_by_one_server_shows_what_any_other_changes(#[case] backend: Backend) {
    let a = TestApp::spawn(backend).await;
    let b = another_server(&a, backend).await;
    insert_images(&a, "seed", 30, None).await;
    const PAGE: &str = "max=3";

    // Read once, then kept.
    let first = seeds(&["seed-1", "seed-10", "seed-11"]);
    assert_eq!(names(&b, ADMIN, PAGE).await, first);
    assert_eq!(names(&b, ADMIN, PAGE).await, first);
    assert_eq!(kept_and_read(&b).await, (1, 1));

    // A record made through the other server shows on this one at once.
    create_through_mws(&a, "made-on-a").await;
    let with_made = seeds(&["made-on-a", "seed-1", "seed-10"]);
    assert_eq!(
        names(&b, ADMIN, PAGE).await,
        with_made,
        "the kept page outlived a create"
    );

    // Read again until the catalog holds still, then kept again.
    assert_eq!(names(&b, ADMIN, PAGE).await, with_made);
    assert_eq!(names(&b, ADMIN, PAGE).await, with_made);
    let (kept, read) = kept_and_read(&b).await;
    let read_again = reads_after_a_change(backend);
    assert_eq!((kept, read), (4 - read_again, 1 + read_again));

    // A change rolled back changes nothing: still kept.
    run_rolled_back(&a, "DELETE FROM images").await;
    assert_eq!(names(&b, ADMIN, PAGE).await, with_made);
    assert_eq!(kept_and_read(&b).await, (kept + 1, read));

    // A rename straight in the database, of an image on the page, and of
    // one that moves onto it.
    run(
        &a,
        "UPDATE images SET name = 'seed-99' WHERE name = 'seed-10'",
    )
    .await;
    assert_eq!(
        names(&b, ADMIN, PAGE).await,
        seeds(&["made-on-a", "seed-1", "seed-11"]),
        "the kept page outlived a rename"
    );
    run(&a, "UPDATE images SET name = 'aaa' WHERE name = 'seed-20'").await;
    assert_eq!(
        names(&b, ADMIN, PAGE).await,
        seeds(&["aaa", "made-on-a", "seed-1"])
    );

    // A change of a column a page shows but does not sort by.
    run(&a, "UPDATE images SET os_type = 'plan9' WHERE name = 'aaa'").await;
    let answer = page(&b, ADMIN, PAGE).await;
    assert_eq!(
        answer["results"][0]["osType"], "plan9",
        "the kept page outlived a change of OS: {answer}"
    );

    // Rows applied as a replica applies them count too.
    if backend != Backend::Postgres {
        return;
    }
    run_as_replica(&a, "DELETE FROM images WHERE name = 'aaa'").await;
    assert_eq!(
        names(&b, ADMIN, PAGE).await,
        seeds(&["made-on-a", "seed-1", "seed-11"]),
        "the kept page outlived a replica's delete"
    );
}

/// A page shows its images' owners by name: renaming a user changes it
/// though no image changed.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_kept_page_follows_renamed_owners(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let alice = user_id(&app, "alice").await;
    insert_images(&app, "hers", 5, Some(alice)).await;
    let owners = || async {
        let answer: Value = reqwest::Client::new()
            .post(app.url("/api/ui/images"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .form(&[
                ("params[q]", ""),
                ("params[mine]", "false"),
                ("params[sort][column]", "Name"),
                ("params[page]", "1"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = answer["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"));
        assert_eq!(items.len(), 5, "{answer}");
        items
            .iter()
            .map(|item| item["owner"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(owners().await, vec!["alice"; 5]);
    assert_eq!(owners().await, vec!["alice"; 5]);
    assert_eq!(kept_and_read(&app).await, (1, 1));

    run(
        &app,
        "UPDATE users SET username = 'alicia' WHERE username = 'alice'",
    )
    .await;
    assert_eq!(
        owners().await,
        vec!["alicia"; 5],
        "the kept page outlived the rename"
    );
}

/// What a page kept for one caller holds answers only callers who may read
/// all of it: the page's statement holds the caller's visibility.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_page_kept_for_one_caller_never_shows_another_what_they_may_not_read(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = user_id(&app, "alice").await;
    insert_images(&app, "public", 3, None).await;
    insert_images(&app, "alices", 2, Some(alice)).await;
    run(
        &app,
        "UPDATE images SET public = FALSE WHERE name LIKE 'alices-%'",
    )
    .await;
    const PAGE: &str = "max=10";
    let everything = seeds(&["alices-1", "alices-2", "public-1", "public-2", "public-3"]);
    let public = seeds(&["public-1", "public-2", "public-3"]);

    for _ in 0..2 {
        assert_eq!(names(&app, ADMIN, PAGE).await, everything);
        assert_eq!(
            names(&app, ("alice", "alice-password"), PAGE).await,
            everything
        );
        assert_eq!(names(&app, ("bob", "bob-password-1"), PAGE).await, public);
    }
    let (kept, read) = kept_and_read(&app).await;
    assert_eq!((kept, read), (3, 3), "each caller's page is read once");
}
