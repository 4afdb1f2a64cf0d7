//! The job queue runs oldest first, but a job of a user with none running
//! goes before the older jobs of a user who has one: one user's queue of
//! long copies (32 deployments of large images) holds every worker only
//! while nobody else waits.

use rstest::rstest;

use crate::deploy_isolation::{deploy, no_workers, ready_to_deploy};
use crate::helpers::Backend;
use crate::vice::Vice;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_user_with_no_job_running_goes_first(#[case] backend: Backend) {
    let (root, app) = no_workers(backend).await;
    app.add_user("bob", "bob-password-1").await;
    let location = format!("file://{}", root.path().display());
    let alice = Vice::new(&app, "alice", "alice-password");
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let (image, environment) = ready_to_deploy(&alice, &location).await;
    let mut alices = Vec::new();
    for _ in 0..3 {
        let (status, answer) = deploy(&alice, &environment, &image).await;
        assert_eq!(status, 201, "{answer}");
        alices.push(answer["id"].as_str().unwrap().to_owned());
    }
    let (image, environment) = ready_to_deploy(&bob, &location).await;
    let (status, answer) = deploy(&bob, &environment, &image).await;
    assert_eq!(status, 201, "{answer}");
    let bobs = answer["id"].as_str().unwrap().to_owned();

    let db = app.core.db();
    let now = chrono::Utc::now().timestamp_millis();
    let claimed = |job: Option<depot_server::store::JobRow>| {
        let payload: serde_json::Value = serde_json::from_str(&job.unwrap().payload).unwrap();
        payload["deployment"].to_string()
    };
    // Alice's first, the oldest; then Bob's, though Alice's are older.
    let first = claimed(db.claim_job("one", now, 60_000).await.unwrap());
    assert_eq!(first, alices[0]);
    let second = claimed(db.claim_job("two", now, 60_000).await.unwrap());
    assert_eq!(second, bobs, "Bob waited behind Alice's queue");
    // With nobody else waiting, Alice's go on.
    let third = claimed(db.claim_job("three", now, 60_000).await.unwrap());
    assert_eq!(third, alices[1]);
}
