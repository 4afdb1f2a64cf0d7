//! schemathesis (PyPI), the OpenAPI fuzzer, against Depot's own API as its
//! document at `/api/openapi.json` describes it: generated inputs, valid
//! and not, for every operation, and the answers checked against the
//! document (no server error, only documented statuses, content types and
//! bodies). Each run fuzzes a server on SQLite and one on PostgreSQL at
//! once, through a mirror that sends every case to both ([`mirror`]).
//! `DEPOT_FUZZ_EXAMPLES` sets the examples per operation (25 in the test
//! command; `scripts/fuzz-api.sh` runs many more).

mod mirror;

use std::process::Command;

use crate::helpers::{Backend, TestApp};
use mirror::Mirror;

fn schemathesis() -> String {
    std::env::var("DEPOT_SCHEMATHESIS").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/depot/schemathesis-venv/bin/st")
    })
}

/// Runs schemathesis against the document at `document` through `mirror`,
/// with `credentials` (its arguments that sign every request).
async fn fuzz(mirror: &Mirror, document: &str, credentials: Vec<String>) {
    let examples = std::env::var("DEPOT_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let base = format!("http://{}", mirror.address);
    let document = format!("{base}{document}");
    let hooks = concat!(env!("CARGO_MANIFEST_DIR"), "/../end2end/schemathesis");
    // Whatever it keeps between runs stays out of the checkout.
    let scratch = tempfile::tempdir().unwrap();
    let folder = scratch.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis())
            .current_dir(folder)
            .args(["run", &document, "--url", &base])
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
    let differences = mirror.differences();
    eprintln!(
        "{} of {} requests answered differently on PostgreSQL:\n{}",
        differences.len(),
        mirror.requests(),
        differences.join("\n")
    );
    assert!(
        differences.len() * 10 <= mirror.requests(),
        "SQLite's and PostgreSQL's states drifted apart (their answers above)"
    );
}

/// A server on each database, both set up by `configure`, with the fuzzer's
/// account.
async fn both(configure: impl Fn(&mut depot_server::config::ServeArgs)) -> (TestApp, TestApp) {
    let sqlite = TestApp::spawn_with(Backend::Sqlite, &configure).await;
    let postgres = TestApp::spawn_with(Backend::Postgres, &configure).await;
    for app in [&sqlite, &postgres] {
        app.add_user("fuzzer", "fuzzer-password").await;
    }
    (sqlite, postgres)
}

fn basic_credentials() -> Vec<String> {
    vec!["--auth".into(), "fuzzer:fuzzer-password".into()]
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_depots_api() {
    let (sqlite, postgres) = both(|_| {}).await;
    let mirror = Mirror::start(&sqlite, &postgres, vec![]).await;
    fuzz(&mirror, "/api/openapi.json", basic_credentials()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_coopr() {
    let (sqlite, postgres) = both(|_| {}).await;
    // Each server issues its own key; the mirror gives each its own.
    let [first, second] = [&sqlite, &postgres].map(|app| app.core.clone());
    let first = first.issue_api_key("fuzzer", "fuzzing").await.unwrap().key;
    let second = second.issue_api_key("fuzzer", "fuzzing").await.unwrap().key;
    let credentials = [
        ("Coopr-UserID", "fuzzer".to_owned()),
        ("Coopr-TenantID", "fuzzing".to_owned()),
        ("Coopr-ApiKey", first.clone()),
    ]
    .into_iter()
    .flat_map(|(name, value)| ["--header".to_owned(), format!("{name}: {value}")])
    .collect();
    let mirror = Mirror::start(&sqlite, &postgres, vec![("Coopr-ApiKey", first, second)]).await;
    fuzz(&mirror, "/api/openapi/coopr.json", credentials).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_mws() {
    let (sqlite, postgres) = both(|_| {}).await;
    let mirror = Mirror::start(&sqlite, &postgres, vec![]).await;
    fuzz(&mirror, "/api/openapi/mws.json", basic_credentials()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_vss() {
    // The demo catalog, so that lists hold items for their schemas to check.
    let (sqlite, postgres) = both(|args| args.demo = true).await;
    let mirror = Mirror::start(&sqlite, &postgres, vec![]).await;
    fuzz(&mirror, "/api/openapi/vss.json", basic_credentials()).await;
}

/// JSON and XML bodies both, as the document offers them.
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_in_vice() {
    let (sqlite, postgres) = both(|_| {}).await;
    let mirror = Mirror::start(&sqlite, &postgres, vec![]).await;
    fuzz(&mirror, "/api/openapi/vice.json", basic_credentials()).await;
}
