//! The VSS dialect over HTTP, against the demo catalog: the seeds' examples
//! with their shapes checked key by key, tokens, paging, filters, sorting.

use base64::Engine;
use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};

async fn demo(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |args| args.demo = true).await
}

async fn get(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.contains("json"), "{path}: {content_type}");
    (status, response.json().await.unwrap())
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

const PAGE_KEYS: [&str; 8] = [
    "first_url",
    "last_url",
    "next_url",
    "page",
    "pages",
    "per_page",
    "prev_url",
    "total",
];
const IMAGE_KEYS: [&str; 9] = [
    "created_on",
    "data_store",
    "folder",
    "id",
    "label",
    "name",
    "path",
    "public",
    "updated_on",
];
const ISO_KEYS: [&str; 7] = [
    "created_on",
    "data_store",
    "id",
    "name",
    "path",
    "public",
    "updated_on",
];

/// `2017-11-24 Fri 15:37:36 EST` on images.
fn is_image_time(text: &str) -> bool {
    let parts: Vec<&str> = text.split(' ').collect();
    parts.len() == 4
        && chrono::NaiveDate::parse_from_str(parts[0], "%Y-%m-%d").is_ok()
        && parts[1].len() == 3
        && chrono::NaiveTime::parse_from_str(parts[2], "%H:%M:%S").is_ok()
        && parts[3].chars().all(|c| c.is_ascii_uppercase())
}

/// `2017-11-17 13:51:31 EST` on ISOs.
fn is_iso_time(text: &str) -> bool {
    let parts: Vec<&str> = text.split(' ').collect();
    parts.len() == 3
        && chrono::NaiveDateTime::parse_from_str(
            &format!("{} {}", parts[0], parts[1]),
            "%Y-%m-%d %H:%M:%S",
        )
        .is_ok()
        && parts[2].chars().all(|c| c.is_ascii_uppercase())
}

fn is_handler_time(text: &str) -> bool {
    text.strip_suffix('s')
        .and_then(|number| number.split_once('.'))
        .is_some_and(|(whole, fraction)| {
            whole.parse::<u64>().is_ok() && fraction.len() == 5 && fraction.parse::<u64>().is_ok()
        })
}

fn names(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap().to_owned())
        .collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn the_token_is_a_jwt_that_works_both_ways_and_can_be_revoked(#[case] backend: Backend) {
    let app = demo(backend).await;
    let client = reqwest::Client::new();
    // pyvss's request: Basic credentials and a JSON body.
    let response = client
        .post(app.url("/auth/request-token"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&json!({"otp": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        keys(&body),
        ["duration", "exp", "exp_date", "token", "type"]
    );
    assert_eq!(body["type"], "ACCESS");
    assert!(is_image_time(body["exp_date"].as_str().unwrap()));
    let token = body["token"].as_str().unwrap();
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3);
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segments[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["otp"], false);
    assert_eq!(claims["exp"], body["exp"]);
    assert!(claims["iat"].as_i64().unwrap() < claims["exp"].as_i64().unwrap());

    // As a bearer token, and as HTTPie's `-a TOKEN` (Basic, empty password).
    assert_eq!(get(&app, token, "/v2/image").await.0, 200);
    let basic = client
        .get(app.url("/v2/image"))
        .basic_auth(token, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);

    // A forged signature, bad credentials, no credentials: 401 in VSS's shape.
    let forged = format!("{}.{}.{}x", segments[0], segments[1], segments[2]);
    let (status, error) = get(&app, &forged, "/v2/image").await;
    assert_eq!(status, 401);
    assert_eq!(keys(&error), ["error", "message", "status"]);
    let refused = client
        .post(app.url("/auth/request-token"))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    let anonymous = client.get(app.url("/v2/iso")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // Revoked in the database, a well-signed token stops working.
    app.core.revoke_token(token).await.unwrap();
    assert_eq!(get(&app, token, "/v2/image").await.0, 401);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn seed_000_image_examples_answer_as_documented(#[case] backend: Backend) {
    let app = demo(backend).await;
    let tk = app.vss_token("admin", ADMIN_PASSWORD).await;
    let base = app.url("");

    // List: ten item URLs and the paging of 14 images.
    let (status, body) = get(&app, &tk, "/v2/image").await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["data", "meta"]);
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 10);
    for url in data {
        let url = url.as_str().unwrap();
        let id = url.strip_prefix(&format!("{base}/v2/image/")).unwrap();
        assert!(id.parse::<i64>().is_ok(), "{url}");
    }
    let meta = &body["meta"];
    assert_eq!(keys(meta), ["_link", "count", "pages", "time", "user"]);
    assert_eq!(meta["_link"], json!({"self": format!("{base}/v2/image")}));
    assert_eq!(meta["count"], 10);
    assert_eq!(meta["user"], "admin");
    assert!(is_handler_time(meta["time"].as_str().unwrap()));
    assert_eq!(keys(&meta["pages"]), PAGE_KEYS);
    assert_eq!(
        meta["pages"],
        json!({
            "first_url": format!("{base}/v2/image?per_page=10&page=1"),
            "last_url": format!("{base}/v2/image?per_page=10&page=2"),
            "next_url": format!("{base}/v2/image?per_page=10&page=2"),
            "page": 1, "pages": 2, "per_page": 10, "prev_url": null, "total": 14
        })
    );

    // Paging with `per_page`, the token given as HTTPie's `-a $TK`.
    let response = reqwest::Client::new()
        .get(app.url("/v2/image?per_page=5"))
        .basic_auth(&tk, Some(""))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["meta"]["count"], 5);
    assert_eq!(body["meta"]["pages"]["pages"], 3);
    assert_eq!(
        body["meta"]["_link"]["self"],
        format!("{base}/v2/image?per_page=5")
    );

    // Expansion: the fifth image, whole.
    let (_, body) = get(&app, &tk, "/v2/image?per_page=1&page=5&expand=1").await;
    let item = &body["data"][0];
    assert_eq!(keys(item), IMAGE_KEYS);
    assert_eq!(item["name"], "coreos_production_vmware_ova.ova");
    assert_eq!(item["data_store"], "vss-ISOs");
    assert_eq!(item["folder"], "VmImages/core-os");
    assert_eq!(
        item["label"],
        "VmImages/core-os/coreos_production_vmware_ova.ova"
    );
    assert_eq!(
        item["path"],
        "[vss-ISOs] VmImages/core-os/coreos_production_vmware_ova.ova"
    );
    assert_eq!(item["public"], true);
    assert!(is_image_time(item["created_on"].as_str().unwrap()));
    assert!(is_image_time(item["updated_on"].as_str().unwrap()));
    let pages = &body["meta"]["pages"];
    assert_eq!(
        pages["prev_url"],
        format!("{base}/v2/image?per_page=1&page=4&expand=1")
    );
    assert_eq!(
        pages["next_url"],
        format!("{base}/v2/image?per_page=1&page=6&expand=1")
    );
    assert_eq!(
        pages["last_url"],
        format!("{base}/v2/image?per_page=1&page=14&expand=1")
    );
    assert_eq!(
        (pages["page"].as_u64(), pages["pages"].as_u64()),
        (Some(5), Some(14))
    );

    // Filtering: four `ubu%` images, one per page.
    let (_, body) = get(
        &app,
        &tk,
        "/v2/image?filter=name,like,ubu%&expand=1&per_page=1",
    )
    .await;
    assert_eq!(
        keys(&body["meta"]),
        ["_link", "count", "filter", "pages", "time", "user"]
    );
    assert_eq!(body["meta"]["filter"], "name,like,ubu%");
    assert_eq!(body["meta"]["pages"]["total"], 4);
    assert_eq!(body["meta"]["pages"]["pages"], 4);
    assert_eq!(names(&body), ["ubuntu-zesty-server-cloudimg-i386.ova"]);
    assert_eq!(
        body["meta"]["pages"]["next_url"],
        format!("{base}/v2/image?filter=name%2Clike%2Cubu%25&expand=1&per_page=1&page=2")
    );

    // Sorting by path, filtered, expanded.
    let (_, body) = get(
        &app,
        &tk,
        "/v2/image?filter=name,like,ubu%&expand=1&sort=path,asc",
    )
    .await;
    assert_eq!(
        keys(&body["meta"]),
        ["_link", "count", "filter", "pages", "sort", "time", "user"]
    );
    assert_eq!(body["meta"]["sort"], "path,asc");
    assert_eq!(body["meta"]["count"], 4);
    assert_eq!(body["meta"]["pages"]["next_url"], Value::Null);
    assert_eq!(
        names(&body),
        [
            "ubuntu-xenial-server-cloudimg-amd64.ova",
            "ubuntu-xenial-server-cloudimg-i386.ova",
            "ubuntu-zesty-server-cloudimg-amd64.ova",
            "ubuntu-zesty-server-cloudimg-i386.ova",
        ]
    );

    // The user's own images: an OVA uploaded the browser's way.
    let ova = crate::helpers::ova_bytes();
    assert_eq!(
        app.upload("admin", ADMIN_PASSWORD, "mine.ova", ova)
            .await
            .status(),
        201
    );
    let (status, body) = get(&app, &tk, "/v2/user/image/vm").await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["_links", "data", "meta"]);
    assert_eq!(
        body["_links"],
        json!({"image": format!("{base}/v2/user/image"), "self": format!("{base}/v2/user/image/vm")})
    );
    assert_eq!(keys(&body["data"][0]), IMAGE_KEYS);
    assert_eq!(body["data"][0]["name"], "mine.ova");
    assert_eq!(body["data"][0]["public"], false);
    assert_eq!(body["meta"]["count"], 1);
    assert_eq!(body["meta"]["user"], "admin");
    // Private, so not in the public catalog.
    let (_, public) = get(&app, &tk, "/v2/image?per_page=100").await;
    assert_eq!(public["meta"]["pages"]["total"], 14);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn seed_001_iso_examples_answer_as_documented(#[case] backend: Backend) {
    let app = demo(backend).await;
    let tk = app.vss_token("admin", ADMIN_PASSWORD).await;
    let base = app.url("");

    let (_, body) = get(&app, &tk, "/v2/iso").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 10);
    assert_eq!(body["data"][0], format!("{base}/v2/iso/1"));
    assert_eq!(
        keys(&body["meta"]),
        ["_link", "count", "pages", "time", "user"]
    );
    assert_eq!(body["meta"]["_link"]["self"], format!("{base}/v2/iso"));
    assert_eq!(body["meta"]["pages"]["total"], 44);
    assert_eq!(
        body["meta"]["pages"]["last_url"],
        format!("{base}/v2/iso?per_page=10&page=5")
    );

    let (_, body) = get(&app, &tk, "/v2/iso?expand=1").await;
    let win = &body["data"][9];
    assert_eq!(keys(win), ISO_KEYS);
    assert_eq!(win["id"], 10);
    assert_eq!(win["name"], "MS_Win2003std_R2_SP2_DISK1.iso");
    assert_eq!(
        win["path"],
        "[vss-ISOs] Windows/Win2003/MS_Win2003std_R2_SP2_DISK1.iso"
    );
    assert_eq!(win["data_store"], "vss-ISOs");
    assert!(is_iso_time(win["created_on"].as_str().unwrap()));

    let (_, all) = get(&app, &tk, "/v2/iso?per_page=250&expand=1").await;
    assert_eq!(all["meta"]["count"], 44);
    assert_eq!(all["meta"]["pages"]["per_page"], 250);
    let (_, centos) = get(
        &app,
        &tk,
        "/v2/iso?per_page=250&expand=1&filter=name,like,CentO%",
    )
    .await;
    let found = names(&centos);
    assert_eq!(found.len(), 7);
    assert!(found.iter().all(|name| name.starts_with("CentO")));
    let (_, sorted) = get(
        &app,
        &tk,
        "/v2/iso?per_page=250&expand=1&filter=name,like,CentO%&sort=name,desc",
    )
    .await;
    let mut expected = found.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(names(&sorted), expected);

    // The user's ISOs.
    let mut iso = random_bytes(40_000);
    iso[0x8001..0x8006].copy_from_slice(b"CD001");
    assert_eq!(
        app.upload("admin", ADMIN_PASSWORD, "config.iso", iso)
            .await
            .status(),
        201
    );
    let (_, body) = get(&app, &tk, "/v2/user/image/iso").await;
    assert_eq!(
        body["_links"],
        json!({"self": format!("{base}/v2/user/image/iso"), "user": format!("{base}/v2/user/image")})
    );
    assert_eq!(keys(&body["data"][0]), ISO_KEYS);
    assert_eq!(body["data"][0]["name"], "config.iso");
    assert!(body["data"][0]["path"]
        .as_str()
        .unwrap()
        .ends_with(" admin/config.iso"));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn paging_filtering_and_sorting_edge_cases(#[case] backend: Backend) {
    let app = demo(backend).await;
    let tk = app.vss_token("admin", ADMIN_PASSWORD).await;

    // pyvss asks for 250 everywhere: clamped to the list's maximum.
    let (_, body) = get(&app, &tk, "/v2/image?per_page=250").await;
    assert_eq!(body["meta"]["pages"]["per_page"], 100);
    assert_eq!(body["meta"]["count"], 14);
    // Past the last page, however far: an empty page, not an error.
    for page in ["9", "18446744073709551615"] {
        let (status, body) = get(&app, &tk, &format!("/v2/image?page={page}&per_page=100")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"]["count"], 0);
    }

    for bad in [
        "page=abc",
        "page=0",
        "per_page=-1",
        "per_page=x",
        "filter=secret,eq,1",
        "filter=name,regex,x",
        "filter=name,like",
        // A pattern whose last `\` escapes nothing: PostgreSQL refuses it.
        "filter=name,like,ubu%5C",
        "filter=id,gt,abc",
        "filter=created_on,gt,yesterday",
        "sort=password,asc",
        "sort=name,up",
    ] {
        let (status, body) = get(&app, &tk, &format!("/v2/image?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["status"], 400);
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    // An ISO list has no label to filter on.
    assert_eq!(get(&app, &tk, "/v2/iso?filter=label,eq,x").await.0, 400);

    // Every operator, on ids (ISOs 1..44 come first in the demo).
    let ids = |body: &Value| -> Vec<i64> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_i64().unwrap())
            .collect()
    };
    let cases: [(&str, Vec<i64>); 8] = [
        ("id,eq,3", vec![3]),
        ("id,ne,1;id,lt,4", vec![2, 3]),
        ("id,lt,3", vec![1, 2]),
        ("id,le,2", vec![1, 2]),
        ("id,gt,42", vec![43, 44]),
        ("id,ge,43", vec![43, 44]),
        ("name,like,%win2003%", vec![10, 11]),
        ("id,in,5,7,9", vec![5, 7, 9]),
    ];
    for (filter, expected) in cases {
        let path = format!("/v2/iso?expand=1&per_page=250&sort=id,asc&filter={filter}");
        let (status, body) = get(&app, &tk, &path).await;
        assert_eq!(status, 200, "{filter}: {body}");
        assert_eq!(ids(&body), expected, "{filter}");
    }
    // Several filters, repeated or joined, and on dates and booleans.
    let (_, body) = get(
        &app,
        &tk,
        "/v2/image?expand=1&filter=name,like,ubu%&filter=name,like,%amd64%;public,eq,true",
    )
    .await;
    assert_eq!(body["meta"]["count"], 2);
    let (_, body) = get(&app, &tk, "/v2/image?filter=created_on,gt,2017-11-20").await;
    assert_eq!(body["meta"]["pages"]["total"], 14);
    let (_, body) = get(&app, &tk, "/v2/image?filter=created_on,lt,2017-11-20").await;
    assert_eq!(body["meta"]["pages"]["total"], 0);
    // Values are bound, never spliced.
    let (status, body) = get(&app, &tk, "/v2/iso?filter=name,eq,x%27%20OR%20%271%27=%271").await;
    assert_eq!((status.as_u16(), &body["meta"]["count"]), (200, &json!(0)));

    // Sorting on every field the items show, both ways.
    for field in IMAGE_KEYS {
        for direction in ["asc", "desc"] {
            let path = format!("/v2/image?expand=1&per_page=100&sort={field},{direction}");
            let (status, body) = get(&app, &tk, &path).await;
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body["meta"]["count"], 14);
        }
    }
    let (_, asc) = get(&app, &tk, "/v2/image?expand=1&per_page=100&sort=name,asc").await;
    let (_, desc) = get(
        &app,
        &tk,
        "/v2/image?expand=1&per_page=100&sort=name,desc;id,asc",
    )
    .await;
    let mut reversed = names(&desc);
    reversed.reverse();
    assert_eq!(names(&asc), reversed);
    let mut sorted = names(&asc);
    sorted.sort();
    assert_eq!(names(&asc), sorted);

    // OPTIONS lists the methods; others are refused in VSS's shape.
    let options = reqwest::Client::new()
        .request(Method::OPTIONS, app.url("/v2/user/image/vm"))
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 200);
    assert!(options.headers()["allow"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    let refused = reqwest::Client::new()
        .delete(app.url("/v2/image"))
        .bearer_auth(&tk)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 405);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["status"], 405);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn users_never_see_each_others_images(#[case] backend: Backend) {
    let app = demo(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let mut iso = random_bytes(40_000);
    iso[0x8001..0x8006].copy_from_slice(b"CD001");
    let uploaded: Value = app
        .upload("alice", "alice-password", "alice.iso", iso)
        .await
        .json()
        .await
        .unwrap();
    let id = uploaded["images"][0]["id"].as_i64().unwrap();
    let alice = app.vss_token("alice", "alice-password").await;
    let bob = app.vss_token("bob", "bob-password-1").await;

    let (_, mine) = get(&app, &alice, "/v2/user/image/iso").await;
    assert_eq!(names(&mine), ["alice.iso"]);
    let (_, theirs) = get(&app, &bob, "/v2/user/image/iso").await;
    assert_eq!(theirs["meta"]["count"], 0);
    let (_, public) = get(
        &app,
        &bob,
        "/v2/iso?per_page=250&expand=1&filter=name,eq,alice.iso",
    )
    .await;
    assert_eq!(public["meta"]["count"], 0);
    assert_eq!(get(&app, &bob, &format!("/v2/iso/{id}")).await.0, 404);
    // Not public, so not in the public catalog for alice either.
    assert_eq!(get(&app, &alice, &format!("/v2/iso/{id}")).await.0, 404);
    let (status, one) = get(&app, &bob, "/v2/iso/10").await;
    assert_eq!(status, 200);
    assert_eq!(keys(&one), ["data", "meta"]);
    assert_eq!(keys(&one["data"]), ISO_KEYS);
}
