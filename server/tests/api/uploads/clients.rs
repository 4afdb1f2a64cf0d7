//! Real tus clients, unchanged, against Depot: tuspy (PyPI) and
//! tus-js-client (npm, the build the upload page ships), cut off and resumed
//! on another server of the deployment.

use rstest::rstest;

use super::*;

/// Runs a tus client's script from `end2end/tus/` against `app` and a second
/// server of its deployment; the script checks and says what went wrong.
async fn run_client(program: std::path::PathBuf, script: &str, app: &TestApp, other: &TestApp) {
    let script = format!("{}/../end2end/tus/{script}", env!("CARGO_MANIFEST_DIR"));
    let (url, other_url) = (app.url(""), other.url(""));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .arg(&script)
            .env("DEPOT_URL", url)
            .env("DEPOT_OTHER_URL", other_url)
            .env("DEPOT_USER", ALICE.0)
            .env("DEPOT_PASSWORD", ALICE.1)
            .output()
            .unwrap_or_else(|error| panic!("{program:?}: {error}; run scripts/setup.sh"))
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

/// tuspy, the tus project's Python client, unchanged: it uploads two
/// chunks through one server, and a new client resumes through another
/// (or the same one restarted) with checksums; the image is the file.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test(flavor = "multi_thread")]
async fn tuspy_uploads_and_resumes_elsewhere(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let other = app.spawn_again().await;
    run_client(crate::pyvss::python().into(), "test_tuspy.py", &app, &other).await;
}

/// tus-js-client, the tus project's JavaScript client, unchanged (the
/// version the upload page ships): its connection is cut in the middle of
/// a chunk, a new client resumes through another server (or the same one
/// restarted) from the server's offset, a dropped request is retried, and
/// the image is the file.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test(flavor = "multi_thread")]
async fn tus_js_client_is_cut_off_and_resumes_elsewhere(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let other = app.spawn_again().await;
    run_client("node".into(), "tus_js_client.mjs", &app, &other).await;
}

/// The browser runs the tus client the tests run: the page's copy is the
/// pinned npm package's own build, byte for byte.
#[test]
fn the_upload_page_ships_the_tested_tus_client() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let read = |path: &str| {
        std::fs::read(format!("{root}/{path}"))
            .unwrap_or_else(|error| panic!("{path}: {error}; run scripts/setup.sh"))
    };
    let shipped = read("public/vendor/tus-js-client/tus.min.js");
    let tested = read("end2end/node_modules/tus-js-client/dist/tus.min.js");
    assert!(
        shipped == tested,
        "public/vendor/tus-js-client is not the tus-js-client end2end/package.json pins: copy its dist/tus.min.js"
    );
}
