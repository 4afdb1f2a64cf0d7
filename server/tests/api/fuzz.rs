//! schemathesis (PyPI), the OpenAPI fuzzer, against Depot's own API as its
//! document at `/api/openapi.json` describes it: generated inputs, valid
//! and not, for every operation, and the answers checked against the
//! document (no server error, only documented statuses, content types and
//! bodies). `DEPOT_FUZZ_EXAMPLES` sets the examples per operation (25 in
//! the test command; `scripts/fuzz-api.sh` runs many more).

use std::process::Command;

use rstest::rstest;

use crate::helpers::{Backend, TestApp};

fn schemathesis() -> String {
    std::env::var("DEPOT_SCHEMATHESIS").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/depot/schemathesis-venv/bin/st")
    })
}

/// Runs schemathesis against the document at `document` on `app`, with
/// `credentials` (its arguments that sign every request).
async fn fuzz(app: &TestApp, document: &str, credentials: Vec<String>) {
    let examples = std::env::var("DEPOT_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let (document, base) = (app.url(document), app.url(""));
    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/schemathesis");
    // Whatever it keeps between runs stays out of the checkout.
    let scratch = tempfile::tempdir().unwrap();
    let folder = scratch.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis())
            .current_dir(folder)
            .args(["run", &document, "--url", base.trim_end_matches('/')])
            .args(credentials)
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance",
            ])
            .args(["--max-examples", &examples, "--seed", "1", "--workers", "1"])
            .args(["--no-color", "--generation-database", "none"])
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("PYTHONPATH", hooks)
            .output()
            .unwrap_or_else(|error| panic!("{error}: run scripts/setup.sh"))
    })
    .await
    .unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_depots_api(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("fuzzer", "fuzzer-password").await;
    let credentials = vec!["--auth".into(), "fuzzer:fuzzer-password".into()];
    fuzz(&app, "/api/openapi.json", credentials).await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_coopr(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("fuzzer", "fuzzer-password").await;
    let issued = app.core.issue_api_key("fuzzer", "fuzzing").await.unwrap();
    let credentials = [
        ("Coopr-UserID", "fuzzer".to_owned()),
        ("Coopr-TenantID", "fuzzing".to_owned()),
        ("Coopr-ApiKey", issued.key),
    ]
    .into_iter()
    .flat_map(|(name, value)| ["--header".to_owned(), format!("{name}: {value}")])
    .collect();
    fuzz(&app, "/api/openapi/coopr.json", credentials).await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_mws(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("fuzzer", "fuzzer-password").await;
    let credentials = vec!["--auth".into(), "fuzzer:fuzzer-password".into()];
    fuzz(&app, "/api/openapi/mws.json", credentials).await;
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_vss(#[case] backend: Backend) {
    // The demo catalog, so that lists hold items for their schemas to check.
    let app = TestApp::spawn_with(backend, |args| args.demo = true).await;
    app.add_user("fuzzer", "fuzzer-password").await;
    let credentials = vec!["--auth".into(), "fuzzer:fuzzer-password".into()];
    fuzz(&app, "/api/openapi/vss.json", credentials).await;
}

/// JSON and XML bodies both, as the document offers them.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_vice(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("fuzzer", "fuzzer-password").await;
    let credentials = vec!["--auth".into(), "fuzzer:fuzzer-password".into()];
    fuzz(&app, "/api/openapi/vice.json", credentials).await;
}
