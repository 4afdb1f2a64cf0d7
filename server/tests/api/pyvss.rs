//! The official VSS client, `pyvss` from PyPI, unchanged, against Depot:
//! `end2end/pyvss/test_pyvss.py` in the virtualenv `scripts/setup.sh` makes.

use std::process::Command;

use rstest::rstest;

use crate::helpers::{Backend, TestApp};

pub fn python() -> String {
    std::env::var("DEPOT_PYVSS_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/depot/pyvss-venv/bin/python")
    })
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test(flavor = "multi_thread")]
async fn pyvss_drives_depot_unchanged(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.demo = true).await;
    app.add_user("pyvss-user", "pyvss-password").await;
    run_pyvss(&app, &app).await;
}

/// Runs the pyvss script as `pyvss-user` against `api`, putting its files
/// into the personal store through `store` (the same server, or another of
/// the same deployment).
pub async fn run_pyvss(api: &TestApp, store: &TestApp) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../end2end/pyvss/test_pyvss.py"
    );
    let (url, store_url) = (api.url(""), store.url(""));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .env("DEPOT_URL", url)
            .env("DEPOT_STORE_URL", store_url)
            .env("DEPOT_USER", "pyvss-user")
            .env("DEPOT_PASSWORD", "pyvss-password")
            .output()
            .expect("no pyvss virtualenv: run scripts/setup.sh")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
