//! How many uploads one user may have in progress.

use depot_server::core::MAX_OPEN_UPLOADS;

use super::*;

/// A user has at most [`MAX_OPEN_UPLOADS`] uploads in progress, even when
/// they create them all at once; the rest are refused with 409.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn uploads_created_side_by_side_stay_within_the_bound(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let metadata = format!("filename {}", b64(b"media.iso"));
    // One first, which also verifies the password: the others are then
    // answered from the credential cache, not throttled as a flood of
    // sign-ins.
    create(&app, 1000, &metadata).await;
    let attempts = (1..MAX_OPEN_UPLOADS + 15).map(|_| {
        tus(&app, Method::POST, "/api/uploads")
            .header("upload-length", "1000")
            .header("upload-metadata", &metadata)
            .send()
    });
    let answers = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = answers
        .into_iter()
        .map(|answer| answer.unwrap().status().as_u16())
        .collect();
    let created = statuses.iter().filter(|status| **status == 201).count();
    assert_eq!(created as i64 + 1, MAX_OPEN_UPLOADS, "{statuses:?}");
    assert!(
        statuses.iter().all(|status| [201, 409].contains(status)),
        "{statuses:?}"
    );
}
