//! The MWS query language over HTTP: every operator, hostile queries,
//! optimistic concurrency, and isolation between users.

use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};

use depot_server::blob::Area;

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};
use crate::mws::{messages, Mws};

/// Creates the images the query tests run against, at versions 0 to 3.
async fn query_fixture(mws: &Mws<'_>) {
    let images = [
        json!({"name": "centos-a", "osType": "linux", "hypervisor": false,
            "supportsVirtualMachine": true, "type": "stateful"}),
        json!({"name": "CentOS-b", "osType": "linux", "hypervisor": false,
            "supportsVirtualMachine": true, "type": "stateless", "active": false}),
        json!({"name": "win-c", "osType": "windows", "hypervisor": false,
            "supportsVirtualMachine": true, "type": "linkedclone", "templateName": "w"}),
        json!({"name": "esx-d", "osType": "linux", "hypervisor": true, "hypervisorType": "ESX",
            "supportsPhysicalMachine": true, "virtualizedImages": [{"name": "centos-a"}]}),
    ];
    for image in images {
        let (status, body) = mws.post(&image).await;
        assert_eq!(status, 201, "{body}");
    }
    // Versions 0, 1, 2, 3 in creation order.
    for (name, bumps) in [("CentOS-b", 1), ("win-c", 2), ("esx-d", 3)] {
        for _ in 0..bumps {
            assert_eq!(mws.put(name, &json!({"features": ["x"]})).await.0, 200);
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_query_language_has_every_operator(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    query_fixture(&mws).await;
    let by_id = r#"{"id":1}"#;
    let cases: [(&str, &[&str]); 17] = [
        (r#"{"osType":"linux"}"#, &["centos-a", "CentOS-b", "esx-d"]),
        (r#"{"osType":{"$eq":"windows"}}"#, &["win-c"]),
        (r#"{"osType":{"$ne":"linux"}}"#, &["win-c"]),
        (r#"{"version":{"$gt":1}}"#, &["win-c", "esx-d"]),
        (r#"{"version":{"$gte":1}}"#, &["CentOS-b", "win-c", "esx-d"]),
        (r#"{"version":{"$lt":1}}"#, &["centos-a"]),
        (r#"{"version":{"$lte":1}}"#, &["centos-a", "CentOS-b"]),
        (
            r#"{"type":{"$in":["stateless","linkedclone"]}}"#,
            &["CentOS-b", "win-c"],
        ),
        (
            r#"{"type":{"$nin":["stateless","linkedclone"]}}"#,
            &["centos-a", "esx-d"],
        ),
        (r#"{"templateName":{"$exists":true}}"#, &["win-c"]),
        (
            r#"{"hypervisorType":null}"#,
            &["centos-a", "CentOS-b", "win-c"],
        ),
        (r#"{"name":{"$regex":"^cent"}}"#, &["centos-a"]),
        (
            r#"{"name":{"$regex":"^cent","$options":"i"}}"#,
            &["centos-a", "CentOS-b"],
        ),
        (r#"{"active":false}"#, &["CentOS-b"]),
        (
            r#"{"$or":[{"hypervisor":true},{"$and":[{"osType":"linux"},{"version":{"$lt":1}}]}]}"#,
            &["centos-a", "esx-d"],
        ),
        (
            r#"{"$and":[{"osType":"linux"},{"$or":[{"active":false},{"hypervisor":true}]}]}"#,
            &["CentOS-b", "esx-d"],
        ),
        (by_id, &["centos-a"]),
    ];
    for (query, expected) in cases {
        let names = mws
            .names(&[("query", query), ("sort", r#"{"version":1}"#)])
            .await;
        assert_eq!(names, expected, "{query}");
    }

    // Sorting, paging, trimming, pretty printing.
    assert_eq!(
        mws.names(&[("sort", r#"{"osType":-1,"name":1}"#)]).await,
        ["win-c", "CentOS-b", "centos-a", "esx-d"]
    );
    let (_, page) = mws
        .get(
            "/mws/rest/images",
            &[("sort", r#"{"version":1}"#), ("max", "2"), ("offset", "1")],
        )
        .await;
    assert_eq!(page["totalCount"], 4);
    assert_eq!(page["resultCount"], 2);
    assert_eq!(page["results"][0]["name"], "CentOS-b");
    let (_, trimmed) = mws
        .get(
            "/mws/rest/images",
            &[("exclude-fields", "extensions,features,virtualizedImages")],
        )
        .await;
    assert!(trimmed["results"][0].get("features").is_none());
    assert!(trimmed["results"][0].get("osType").is_some());
    let pretty = mws
        .request(Method::GET, "/mws/rest/images", &[("pretty", "true")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(pretty.contains("\n  \"totalCount\": 4"), "{pretty}");

    // Distinct values of a field, among the images the caller may read.
    let (status, distinct) = mws.get("/mws/rest/distinct/images/osType", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(distinct["results"], json!(["linux", "windows"]));
    assert_eq!(distinct["totalCount"], 2);
    let (_, distinct) = mws
        .get(
            "/mws/rest/distinct/images/type",
            &[("query", r#"{"osType":"linux"}"#)],
        )
        .await;
    assert_eq!(distinct["results"], json!(["stateful", "stateless"]));
    let (status, _) = mws.get("/mws/rest/distinct/images/password", &[]).await;
    assert_eq!(status, 400);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn bad_and_hostile_queries_are_refused_or_harmless(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    query_fixture(&mws).await;
    for query in [
        "{",
        "not json",
        r#"{"name":{"$where":"sleep(1)"}}"#,
        r#"{"$nor":[{"name":"x"}]}"#,
        r#"{"name; DROP TABLE images; --":"x"}"#,
        r#"{"version":"1 OR 1=1"}"#,
        r#"{"name":{"$regex":"(unclosed"}}"#,
        r#"{"name":{"$regex":"a","$options":"x"}}"#,
    ] {
        let (status, body) = mws.get("/mws/rest/images", &[("query", query)]).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(!messages(&body).is_empty());
    }
    for sort in ["{", r#"{"name":0}"#, r#"{"name; --":1}"#, "[1]"] {
        let (status, _) = mws.get("/mws/rest/images", &[("sort", sort)]).await;
        assert_eq!(status, 400, "{sort}");
    }
    // Values are bound, never spliced: these find nothing and break nothing.
    for query in [
        r#"{"name":"x' OR '1'='1"}"#,
        r#"{"name":{"$regex":"'; DROP TABLE images; --"}}"#,
        r#"{"osType":{"$in":["linux') OR ('1'='1"]}}"#,
    ] {
        assert!(mws.names(&[("query", query)]).await.is_empty(), "{query}");
    }
    assert_eq!(mws.names(&[]).await.len(), 4);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn concurrent_puts_with_one_version_have_exactly_one_winner(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    let (_, created) = mws
        .post(
            &json!({"name": "contended", "osType": "linux", "hypervisor": false,
            "supportsVirtualMachine": true}),
        )
        .await;
    assert_eq!(created["version"], 0);

    let writers = (0..8).map(|writer| {
        let mws = &mws;
        async move {
            let body = json!({"osType": format!("os-{writer}"), "version": 0});
            mws.put("contended", &body).await
        }
    });
    let answers = futures_util::future::join_all(writers).await;
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    let losers = answers.iter().filter(|(status, _)| *status == 409).count();
    assert_eq!(winners.len(), 1, "{answers:?}");
    assert_eq!(losers, 7, "{answers:?}");
    assert_eq!(winners[0]["version"], 1);

    let (_, stored) = mws.image("contended").await;
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["osType"], winners[0]["osType"]);
    // A stale version stays refused; the current one goes through.
    assert_eq!(
        mws.put("contended", &json!({"active": false, "version": 0}))
            .await
            .0,
        409
    );
    let (status, body) = mws
        .put("contended", &json!({"active": false, "version": 1}))
        .await;
    assert_eq!((status.as_u16(), &body["version"]), (200, &json!(2)));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn users_never_reach_each_others_images_and_see_uploads(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = Mws::new(&app, "alice", "alice-password").await;
    let bob = Mws::new(&app, "bob", "bob-password-1").await;
    let admin = Mws::new(&app, "admin", ADMIN_PASSWORD).await;

    let (_, created) = alice
        .post(
            &json!({"name": "alice-image", "osType": "linux", "hypervisor": false,
            "supportsVirtualMachine": true}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    for key in [id.as_str(), "alice-image"] {
        assert_eq!(bob.image(key).await.0, 404, "{key}");
        assert_eq!(
            bob.put(key, &json!({"osType": "bsd"})).await.0,
            404,
            "{key}"
        );
        assert_eq!(bob.delete(key).await.0, 404, "{key}");
    }
    assert!(bob.names(&[]).await.is_empty());
    let (_, distinct) = bob.get("/mws/rest/distinct/images/name", &[]).await;
    assert_eq!(distinct["totalCount"], 0);
    // Bob may use the same name in his own space; alice's is untouched.
    let (status, _) = bob
        .post(
            &json!({"name": "alice-image", "osType": "bsd", "hypervisor": false,
            "supportsVirtualMachine": true}),
        )
        .await;
    assert_eq!(status, 201);
    // Nor can bob make a hypervisor that points at alice's image.
    let (status, body) = bob
        .post(
            &json!({"name": "bob-esx", "osType": "linux", "hypervisor": true,
            "hypervisorType": "ESX", "supportsPhysicalMachine": true,
            "virtualizedImages": [{"id": id}]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, mine) = alice.image(&id).await;
    assert_eq!(mine["osType"], "linux");
    assert_eq!(admin.image(&id).await.0, 200);

    // An ISO uploaded the browser's way is an MWS image too, with the same id.
    let iso = {
        let mut bytes = random_bytes(40_000);
        bytes[0x8001..0x8006].copy_from_slice(b"CD001");
        bytes
    };
    let uploaded: Value = app
        .upload("alice", "alice-password", "install.iso", iso)
        .await
        .json()
        .await
        .unwrap();
    let upload_id = uploaded["images"][0]["id"].as_i64().unwrap().to_string();
    let (status, seen) = alice.image(&upload_id).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["name"], "install.iso");
    assert_eq!(seen["osType"], Value::Null);
    assert_eq!(seen["type"], Value::Null);
    assert_eq!(
        alice
            .names(&[("query", r#"{"name":{"$regex":"\\.iso$"}}"#)])
            .await,
        ["install.iso"]
    );
    assert_eq!(bob.image(&upload_id).await.0, 404);
    // Deleting it through MWS removes the bytes as well.
    assert_eq!(alice.delete(&upload_id).await.0, 200);
    assert!(app.stored(Area::Blobs).await.is_empty());
}
