//! Resumable uploads of an existing image's file (ViCE's `image`
//! metadata), which replace the bytes the image had when they began.

use rstest::rstest;
use serde_json::json;

use super::*;
use crate::vice::Vice;

/// Two uploads of one image's file begun from the same bytes do not both
/// land: the second to finish would be laid over the first's bytes, and is
/// refused with 409 and forgotten (a client's retry cannot land it); an
/// upload begun after the first landed replaces it.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn of_two_uploads_to_one_image_begun_together_the_second_to_finish_is_refused(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let vice = Vice::new(&app, ALICE.0, ALICE.1);
    let (_, image) = vice
        .json(Method::POST, "/images", Some(&json!({"title": "media"})))
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    let metadata = format!("image {}", b64(id.as_bytes()));
    let file = format!("/image/{id}/file");
    let stored = || async {
        let response = vice.request(Method::GET, &file).send().await.unwrap();
        response.bytes().await.unwrap().to_vec()
    };

    let (first, second) = (iso_bytes(70_000), iso_bytes(50_000));
    let first_path = create(&app, first.len(), &metadata).await;
    let second_path = create(&app, second.len(), &metadata).await;
    // Another begun then with the same file is no conflict once the first
    // lands: the image has exactly its bytes (as when a completion cut off
    // after recording them is tried again).
    let same_path = create(&app, first.len(), &metadata).await;
    let landed = patch(&app, &first_path, 0, first.clone()).await;
    assert_eq!(landed.status(), 204);
    assert_eq!(stored().await, first);
    let same = patch(&app, &same_path, 0, first.clone()).await;
    assert_eq!(same.status(), 204);
    assert_eq!(image_sha256(&app, &same_path).await, sha256_hex(&first));

    let refused = patch(&app, &second_path, 0, second).await;
    assert_eq!(refused.status(), 409);
    let message = refused.text().await.unwrap();
    assert!(
        message.contains("changed since this upload began"),
        "{message}"
    );
    assert_eq!(stored().await, first);
    let gone = tus(&app, Method::HEAD, &second_path).send().await.unwrap();
    assert_eq!(gone.status(), 404);

    let third = iso_bytes(60_000);
    let third_path = create(&app, third.len(), &metadata).await;
    assert_eq!(
        patch(&app, &third_path, 0, third.clone()).await.status(),
        204
    );
    assert_eq!(stored().await, third);
}

/// An upload whose image went before it completed is refused and
/// forgotten: its bytes and its quota reservation go at once, not when the
/// upload expires a day later.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn an_upload_whose_image_went_is_forgotten(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.user_quota_bytes = Some(1_000_000)).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let alice = app.core.login(ALICE.0, ALICE.1).await.unwrap();
    let vice = Vice::new(&app, ALICE.0, ALICE.1);
    let (_, image) = vice
        .json(Method::POST, "/images", Some(&json!({"title": "media"})))
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    let bytes = iso_bytes(80_000);
    let path = create(&app, bytes.len(), &format!("image {}", b64(id.as_bytes()))).await;
    let first = patch(&app, &path, 0, bytes[..40_000].to_vec()).await;
    assert_eq!(first.status(), 204);
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 80_000);

    let (status, _) = vice
        .json(Method::DELETE, &format!("/image/{id}"), None)
        .await;
    assert_eq!(status, 200);
    let last = patch(&app, &path, 40_000, bytes[40_000..].to_vec()).await;
    assert_eq!(last.status(), 404);
    let gone = tus(&app, Method::HEAD, &path).send().await.unwrap();
    assert_eq!(gone.status(), 404);
    assert_eq!(app.core.quota_usage(alice.id).await.unwrap(), 0);
    assert!(app
        .stored(depot_server::blob::Area::Uploads)
        .await
        .is_empty());
}
