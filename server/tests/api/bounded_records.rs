//! What one record may hold is bounded, on both backends, so that a page of
//! a thousand records is bounded too: free-form attributes (ViCE's
//! `specifics`, MWS's `extensions` and `features`, Coopr's `providermap`)
//! take at most 16 KiB as JSON, short words 255 bytes, a hypervisor image
//! names at most 100 others, an environment's password 1 KiB. Each limit
//! is taken, and one byte past it refused with the dialect's own error.

use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};

use crate::coopr::Coopr;
use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};
use crate::mws::{messages, Mws};
use crate::vice::Vice;
use crate::vice_environments::seed_environment;

/// An object of exactly `bytes` bytes as compact JSON: `{"k":"xx…"}`.
fn document(bytes: usize) -> Value {
    json!({ "k": "x".repeat(bytes - 8) })
}

const MAX_DOCUMENT: usize = 16 << 10;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_records_attributes_are_bounded_in_every_dialect(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;

    // ViCE: an image's and an environment's specifics (an object, or a
    // string holding one); an environment's password. ViCE's "invalid
    // input" is 405.
    let vice = Vice::new(&app, "admin", ADMIN_PASSWORD);
    let image = |specifics: Value| json!({"title": "t", "specifics": specifics});
    let (status, _) = vice
        .json(
            Method::POST,
            "/images",
            Some(&image(document(MAX_DOCUMENT))),
        )
        .await;
    assert_eq!(status, 201);
    for specifics in [
        document(MAX_DOCUMENT + 1),
        Value::from(document(MAX_DOCUMENT + 1).to_string()),
    ] {
        let (status, body) = vice
            .json(Method::POST, "/images", Some(&image(specifics)))
            .await;
        assert_eq!(status, 405, "{body}");
        assert!(
            body.to_string()
                .contains("specifics may take at most 16384 bytes"),
            "{body}"
        );
    }
    let environment = |password: &str, specifics: Value| {
        let mut environment = seed_environment(password);
        environment["credentials"]["specifics"] = specifics;
        environment
    };
    for (password, specifics, created) in [
        ("p".repeat(1024), document(MAX_DOCUMENT), true),
        ("p".repeat(1025), json!({}), false),
        ("p".into(), document(MAX_DOCUMENT + 1), false),
    ] {
        let (status, body) = vice
            .json(
                Method::POST,
                "/environments",
                Some(&environment(&password, specifics)),
            )
            .await;
        assert_eq!(status, if created { 201 } else { 405 }, "{body}");
    }

    // MWS: extensions, features, the short words, virtualizedImages.
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    let base = json!({"osType": "linux", "hypervisor": true, "hypervisorType": "kvm",
        "supportsVirtualMachine": true});
    let with = |name: &str, field: &str, value: Value| {
        let mut image = base.clone();
        image["name"] = Value::from(name);
        image[field] = value;
        image
    };
    let words = |count: usize, len: usize| Value::from(vec!["f".repeat(len); count]);
    let references = |count: usize| Value::from(vec![json!({"name": "guest"}); count]);
    let (status, _) = mws.post(&with("guest", "features", json!([]))).await;
    assert_eq!(status, 201);
    let taken = [
        ("extensions", json!({"other": document(MAX_DOCUMENT - 10)})),
        ("features", words(64, 255)),
        ("osType", Value::from("l".repeat(255))),
        ("virtualizedImages", references(100)),
    ];
    for (at, (field, value)) in taken.into_iter().enumerate() {
        let (status, body) = mws.post(&with(&format!("taken-{at}"), field, value)).await;
        assert_eq!(status, 201, "{field}: {body}");
    }
    let refused = [
        (
            "extensions",
            json!({"other": document(MAX_DOCUMENT - 9)}),
            "extensions may take",
        ),
        ("features", words(65, 1), "at most 64 words"),
        ("features", words(1, 256), "at most 255 bytes"),
        (
            "osType",
            Value::from("l".repeat(256)),
            "osType may be at most 255",
        ),
        (
            "hypervisorType",
            Value::from("k".repeat(256)),
            "hypervisorType may be at most",
        ),
        ("virtualizedImages", references(101), "at most 100 images"),
    ];
    for (at, (field, value, message)) in refused.into_iter().enumerate() {
        let (status, body) = mws
            .post(&with(&format!("refused-{at}"), field, value))
            .await;
        assert_eq!(status, 400, "{field}: {body}");
        assert!(messages(&body).contains(message), "{field}: {body}");
    }

    // Coopr: an image type's providermap and description.
    let coopr = Coopr::new(&app, "admin", "acme").await;
    let image_type = |name: &str, description: String, providermap: Value| {
        json!({"name": name, "description": description, "providermap": providermap}).to_string()
    };
    let cases = [
        (
            "a",
            "d".repeat(4000),
            json!({"p": document(MAX_DOCUMENT - 6)}),
            200,
        ),
        ("b", "d".repeat(4001), json!({}), 400),
        (
            "c",
            "d".into(),
            json!({"p": document(MAX_DOCUMENT - 5)}),
            400,
        ),
    ];
    for (name, description, providermap, expected) in cases {
        let body = image_type(name, description, providermap);
        let (status, answer) = coopr.call(Method::POST, "/imagetypes", Some(&body)).await;
        assert_eq!(status.as_u16(), expected, "{name}: {answer}");
    }
}

/// What a user or tenant keeps of each list no dialect pages is bounded:
/// 100 environments a user (then 409 until one goes), the newest 1000
/// deployments (older finished ones forgotten: 2 here), 1000 image
/// types a tenant (3 here).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn what_a_user_keeps_of_each_unpaged_list_is_bounded(#[case] backend: Backend) {
    use depot_server::store::{ImageTypeRow, NewDeployment};

    // No job runs the deployments recorded here.
    let app = TestApp::spawn_with(backend, |args| args.job_workers = 0).await;
    let vice = Vice::new(&app, "admin", ADMIN_PASSWORD);
    let mut environments = Vec::new();
    for _ in 0..100 {
        let (status, created) = vice
            .json(Method::POST, "/environments", Some(&seed_environment("p")))
            .await;
        assert_eq!(status, 201, "{created}");
        environments.push(created["id"].as_str().unwrap().to_owned());
    }
    let (status, refused) = vice
        .json(Method::POST, "/environments", Some(&seed_environment("p")))
        .await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused.to_string().contains("100 environments"),
        "{refused}"
    );
    let deleted = vice
        .request(Method::DELETE, &format!("/environment/{}", environments[0]))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let (status, _) = vice
        .json(Method::POST, "/environments", Some(&seed_environment("p")))
        .await;
    assert_eq!(status, 201);

    // Deployments: each added forgets the finished ones older than the
    // newest two.
    let uploaded = app
        .upload("admin", ADMIN_PASSWORD, "disk.img", vec![1; 4096])
        .await;
    let body: Value = uploaded.json().await.unwrap();
    let image_id = body["images"][0]["id"].as_i64().unwrap();
    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    let db = app.core.db();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let new = NewDeployment {
            user_id: admin.id,
            image_id,
            environment_id: environments[1].parse().unwrap(),
            title: "t",
            environment_reference: "",
            unfinished_at_most: 32,
            kept_at_most: 2,
        };
        let id = db
            .insert_deployment(new, "none", chrono::Utc::now())
            .await
            .unwrap()
            .unwrap();
        db.set_deployment_state(
            id,
            app::model::DeploymentState::Done,
            "",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        ids.push(id);
    }
    let kept: Vec<i64> = db
        .deployments(Some(admin.id))
        .await
        .unwrap()
        .iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(
        kept,
        ids[2..],
        "the newest two kept, the older finished ones gone"
    );

    // Image types: the tenant's cap, then its refusal over HTTP.
    let coopr = Coopr::new(&app, "admin", "acme").await;
    let tenant = db.tenant_id("acme").await.unwrap().unwrap();
    for (name, expected) in [("a", true), ("b", true), ("c", true), ("d", false)] {
        let row = ImageTypeRow {
            name: name.into(),
            description: String::new(),
            providermap: "{}".into(),
        };
        let inserted = db
            .insert_image_type(tenant, &row, 3, chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!(inserted, expected, "{name}");
    }
    let body = r#"{"name":"e","description":"","providermap":{}}"#;
    let (status, _) = coopr.call(Method::POST, "/imagetypes", Some(body)).await;
    assert_eq!(status, 200, "under the real cap of 1000");
}

/// The rows of jobs that ended more than two days ago are forgotten (what
/// each did is on its sync request or deployment); a job still due, still
/// running or ended lately stays. A user's sync requests are kept to the
/// newest 1000 (2 here): the older ended ones go as new ones come.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn ended_jobs_and_old_sync_requests_are_forgotten(#[case] backend: Backend) {
    use depot_server::jobs::{forget_ended_jobs, ENDED_JOBS_KEPT};
    use depot_server::store::SyncOutcome;

    let app = TestApp::spawn_with(backend, |args| args.job_workers = 0).await;
    let db = app.core.db();
    let now = chrono::Utc::now().timestamp_millis();
    let long_ago = now - ENDED_JOBS_KEPT.as_millis() as i64 - 60_000;
    let lease = 60_000;
    // Each job is claimed as soon as it is queued: the oldest due is taken.
    let claimed = |at: i64| async move {
        let id = db.enqueue_job("none", "{}", at).await.unwrap();
        let job = db.claim_job("w", at, lease).await.unwrap().unwrap();
        assert_eq!(job.id, id);
        id
    };
    let done_long_ago = claimed(long_ago).await;
    assert!(db.finish_job(done_long_ago, "w", long_ago).await.unwrap());
    let failed_long_ago = claimed(long_ago).await;
    for attempt in 1..=3 {
        let state = db
            .fail_job(failed_long_ago, "w", long_ago, long_ago, "no")
            .await
            .unwrap();
        if attempt < 3 {
            assert_eq!(state.as_deref(), Some("queued"));
            db.claim_job("w", long_ago, lease).await.unwrap().unwrap();
        } else {
            assert_eq!(state.as_deref(), Some("failed"));
        }
    }
    let done_lately = claimed(now - 1000).await;
    assert!(db.finish_job(done_lately, "w", now - 1000).await.unwrap());
    let running_long = claimed(long_ago).await;
    let due_long = db.enqueue_job("none", "{}", long_ago).await.unwrap();

    assert_eq!(forget_ended_jobs(&app.core, now).await.unwrap(), 2);
    for (job, kept) in [
        (done_long_ago, false),
        (failed_long_ago, false),
        (done_lately, true),
        (running_long, true),
        (due_long, true),
    ] {
        let status = db.job_status(job).await.unwrap();
        assert_eq!(status.is_some(), kept, "job {job}: {status:?}");
    }

    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    let mut requests = Vec::new();
    for _ in 0..4 {
        let (id, new) = db
            .submit_sync_request(admin.id, "VM", "t", "none", chrono::Utc::now(), 2)
            .await
            .unwrap();
        assert!(new);
        let outcome = SyncOutcome {
            status: "PROCESSED",
            errors: "[]".into(),
            warnings: "[]".into(),
            ..Default::default()
        };
        db.finish_sync_request(id, &outcome, chrono::Utc::now())
            .await
            .unwrap();
        requests.push(id);
    }
    let (kept, total) = db.sync_requests_of(admin.id, None, 100, 0).await.unwrap();
    let kept: Vec<i64> = kept.iter().map(|row| row.id).collect();
    assert_eq!(total, 2);
    assert_eq!(
        kept,
        [requests[3], requests[2]],
        "the newest two, newest first"
    );
}

/// A tenant's cap on image types holds when many are added at once: the
/// inserts side by side each count what the others committed, so exactly
/// the cap is kept and the rest refused, never a few more.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn image_types_added_at_once_stop_at_the_cap(#[case] backend: Backend) {
    use depot_server::store::ImageTypeRow;

    let app = TestApp::spawn(backend).await;
    Coopr::new(&app, "admin", "acme").await;
    let db = app.core.db();
    let tenant = db.tenant_id("acme").await.unwrap().unwrap();
    let inserts = (0..24).map(|n| async move {
        let row = ImageTypeRow {
            name: format!("type-{n}"),
            description: String::new(),
            providermap: "{}".into(),
        };
        db.insert_image_type(tenant, &row, 5, chrono::Utc::now())
            .await
            .unwrap()
    });
    let inserted = futures_util::future::join_all(inserts).await;
    assert_eq!(inserted.iter().filter(|kept| **kept).count(), 5);
    assert_eq!(db.image_types(tenant).await.unwrap().len(), 5);
}
