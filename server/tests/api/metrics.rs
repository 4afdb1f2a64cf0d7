//! `/metrics`, for an operator's scraper: an administrator's figures in
//! Prometheus's text format; requests counted by route template (never the
//! path asked for), bytes in and out, the job queue and the store's size.

use rstest::rstest;

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};

/// The value of the series named `series` (with its labels, which the
/// format sorts by name), if present.
pub fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `/metrics` as the administrator reads it.
pub async fn scrape(app: &TestApp) -> String {
    let response = reqwest::Client::new()
        .get(app.url("/metrics"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    response.text().await.unwrap()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_administrator_reads_what_the_server_did(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let bytes = random_bytes(300_000);
    let uploaded = app
        .upload("alice", "alice-password", "disk.img", bytes.clone())
        .await;
    assert_eq!(uploaded.status(), 201);
    let image: serde_json::Value = uploaded.json().await.unwrap();
    let id = image["images"][0]["id"].as_i64().unwrap();
    let download = reqwest::Client::new()
        .get(app.url(&format!("/api/images/{id}/download")))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.bytes().await.unwrap().len(), bytes.len());
    // A deployment that failed for good, as the job queue keeps it: just
    // now (one that ended in 1970 is forgotten by the collector, which may
    // run meanwhile).
    let now = chrono::Utc::now().timestamp_millis();
    crate::helpers::execute(
        &app,
        &format!(
            "INSERT INTO jobs (kind, payload, state, run_at, created_at, updated_at) \
             VALUES ('vice.deploy', '{{}}', 'failed', {now}, {now}, {now})"
        ),
    )
    .await;
    // Paths nobody routes, however many, are one series.
    for n in 0..3 {
        let _ = reqwest::get(app.url(&format!("/no/such/page-{n}"))).await;
    }

    let text = scrape(&app).await;
    let count = |labels: &str| value(&text, &format!("depot_http_requests_total{{{labels}}}"));
    assert_eq!(
        count(r#"method="POST",route="/api/upload",status="201""#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        count(r#"method="GET",route="/api/images/{id}/download",status="200""#),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("page-1"), "a path became a label: {text}");
    assert!(
        value(&text, "depot_http_request_body_bytes_total").unwrap() >= bytes.len() as f64,
        "{text}"
    );
    assert!(
        value(&text, "depot_http_response_body_bytes_total").unwrap() >= bytes.len() as f64,
        "{text}"
    );
    // Through every layer of the real router, the download's bytes went
    // from the blob's file to the socket without a copy.
    assert!(
        value(
            &text,
            "depot_http_response_body_bytes_sent_from_files_total"
        )
        .unwrap()
            >= bytes.len() as f64,
        "{text}"
    );
    assert_eq!(
        value(&text, "depot_blob_store_bytes"),
        Some(bytes.len() as f64),
        "{text}"
    );
    assert_eq!(value(&text, "depot_uploads_in_flight"), Some(0.0), "{text}");
    assert_eq!(
        value(&text, r#"depot_jobs{kind="vice.deploy",state="failed"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains(r#"depot_http_request_duration_seconds_bucket{method="POST",route="/api/upload",le="+Inf"} 1"#),
        "{text}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn only_an_administrator_reads_them(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let anonymous = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let user = reqwest::Client::new()
        .get(app.url("/metrics"))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(user.status(), 403);
    assert!(!user.text().await.unwrap().contains("depot_"));
}
