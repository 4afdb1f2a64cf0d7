//! A job's failure is written on what it worked on after the job's own
//! row: a crash, or a database out of reach, between the two left a sync
//! request shown waiting for good (handed back to every later sync of its
//! user: none ran again) and a deployment shown running for good (never
//! deleted, holding one of its user's places). The servers that run jobs
//! now record such failures where they were not.

use app::model::DeploymentState;
use depot_server::store::NewDeployment;
use reqwest::Method;
use rstest::rstest;

use crate::helpers::{execute, number, Backend, TestApp, ADMIN_PASSWORD};
use crate::vice::Vice;
use crate::vice_environments::seed_environment;

/// A deployment of the admin's (`admin`) of `image_id` into `environment_id`.
fn admins_deployment(admin: i64, image_id: i64, environment_id: i64) -> NewDeployment<'static> {
    NewDeployment {
        user_id: admin,
        image_id,
        environment_id,
        title: "t",
        environment_reference: "",
        unfinished_at_most: 32,
        kept_at_most: 1000,
    }
}

/// An environment of the admin's and an image with bytes: their ids.
async fn admins_environment_and_image(app: &TestApp) -> (i64, i64) {
    let vice = Vice::new(app, "admin", ADMIN_PASSWORD);
    let (status, environment) = vice
        .json(Method::POST, "/environments", Some(&seed_environment("p")))
        .await;
    assert_eq!(status, 201, "{environment}");
    let uploaded = app
        .upload("admin", ADMIN_PASSWORD, "disk.img", vec![1; 4096])
        .await;
    let body: serde_json::Value = uploaded.json().await.unwrap();
    let image_id = body["images"][0]["id"].as_i64().unwrap();
    let environment_id = environment["id"].as_str().unwrap().parse().unwrap();
    (environment_id, image_id)
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_job_that_failed_unrecorded_is_recorded_on_its_request_and_deployment(
    #[case] backend: Backend,
) {
    // No worker runs the jobs: this test plays one that crashes.
    let app = TestApp::spawn_with(backend, |args| args.job_workers = 0).await;
    let db = app.core.db();
    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    let vice = Vice::new(&app, "admin", ADMIN_PASSWORD);
    let (environment_id, image_id) = admins_environment_and_image(&app).await;

    let now = chrono::Utc::now;
    let (request, _) = db
        .submit_sync_request(admin.id, "VM", "t", "vss.image_sync", now(), 1000)
        .await
        .unwrap();
    let new = admins_deployment(admin.id, image_id, environment_id);
    let deployment = db
        .insert_deployment(new, "vice.deploy", now())
        .await
        .unwrap()
        .unwrap();
    // Both jobs fail for good, and the worker stops before it writes so
    // on the request and the deployment.
    let mut failures = 0;
    while let Some(job) = db
        .claim_job("w", now().timestamp_millis(), 60_000)
        .await
        .unwrap()
    {
        let at = now().timestamp_millis();
        db.fail_job(job.id, "w", at, at, "disk on fire")
            .await
            .unwrap();
        failures += 1;
    }
    assert_eq!(failures, 6, "three attempts each");
    let shown = db.deployment(deployment).await.unwrap().unwrap();
    assert_eq!(shown.state, DeploymentState::Queued.as_str());
    // The dead request is what a new sync is handed.
    let (again, new) = db
        .submit_sync_request(admin.id, "VM", "t", "vss.image_sync", now(), 1000)
        .await
        .unwrap();
    assert_eq!((again, new), (request, false));

    assert_eq!(app.core.record_failed_jobs().await.unwrap(), 2);
    let (rows, _) = db.sync_requests_of(admin.id, None, 10, 0).await.unwrap();
    let row = rows.iter().find(|row| row.id == request).unwrap();
    assert_eq!(row.status, "ERROR");
    let shown = db.deployment(deployment).await.unwrap().unwrap();
    assert_eq!(shown.state, DeploymentState::Failed.as_str());
    assert_eq!(shown.reason, "disk on fire");
    // Once recorded, nothing is left to record; a new sync is a new request,
    // and the deployment may be deleted.
    assert_eq!(app.core.record_failed_jobs().await.unwrap(), 0);
    let (next, new) = db
        .submit_sync_request(admin.id, "VM", "t", "vss.image_sync", now(), 1000)
        .await
        .unwrap();
    assert!(new && next != request);
    let deleted = vice
        .request(Method::DELETE, &format!("/deployment/{deployment}"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
}

/// Adds `count` jobs of `owner`'s that ended at `ended_ms`.
async fn ended_jobs(app: &TestApp, owner: i64, count: u32, ended_ms: i64) {
    let insert = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         INSERT INTO jobs (kind, payload, state, run_at, created_at, updated_at, owner_id) \
         SELECT 'vss.image_sync', '{{}}', 'done', {ended_ms}, {ended_ms}, {ended_ms}, {owner} \
         FROM n"
    );
    execute(app, &insert).await;
}

/// A user's ended jobs are kept to their newest hundred: older ones go as
/// the user's new jobs come, a few each. (A script syncing in a loop, or
/// making and deleting deployments, added a row a job, each kept two
/// days.) Jobs that ended in the last minutes stay whatever their number,
/// since a failure not yet written on its record needs its job, and
/// another user's are not touched.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_users_ended_jobs_are_kept_to_their_newest(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.job_workers = 0).await;
    app.add_user("alice", "alice-password").await;
    let alice = app.core.login("alice", "alice-password").await.unwrap();
    let admin = app.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    let (environment_id, image_id) = admins_environment_and_image(&app).await;

    let now = chrono::Utc::now().timestamp_millis();
    let hour_ago = now - 3_600_000;
    let deploy = || {
        let new = admins_deployment(admin.id, image_id, environment_id);
        let db = app.core.db();
        async move {
            db.insert_deployment(new, "vice.deploy", chrono::Utc::now())
                .await
        }
    };
    ended_jobs(&app, admin.id, 150, hour_ago).await;
    ended_jobs(&app, alice.id, 150, hour_ago).await;
    // Two old failures not yet written on their records, which wait.
    let db = app.core.db();
    let (request, _) = db
        .submit_sync_request(
            admin.id,
            "VM",
            "t",
            "vss.image_sync",
            chrono::Utc::now(),
            1000,
        )
        .await
        .unwrap();
    let waiting = deploy().await.unwrap().unwrap();
    let failed_unrecorded = format!(
        "UPDATE jobs SET state = 'failed', updated_at = {hour_ago} WHERE id = \
         (SELECT job_id FROM sync_requests WHERE id = {request}) \
         OR payload = '{{\"deployment\":{waiting}}}'"
    );
    execute(&app, &failed_unrecorded).await;
    ended_jobs(&app, admin.id, 120, now).await;
    for _ in 0..10 {
        deploy().await.unwrap().unwrap();
    }
    let ended_of = |owner: i64| {
        format!("SELECT COUNT(*) FROM jobs WHERE owner_id = {owner} AND state = 'done'")
    };
    // The 150 older ones went; the 120 recent ones stay, 20 past the hundred.
    assert_eq!(number(&app, &ended_of(admin.id)).await, 120);
    let recent = format!("{} AND updated_at = {now}", ended_of(admin.id));
    assert_eq!(number(&app, &recent).await, 120);
    assert_eq!(number(&app, &ended_of(alice.id)).await, 150);
    let failed = format!(
        "SELECT COUNT(*) FROM jobs WHERE owner_id = {} AND state = 'failed'",
        admin.id
    );
    assert_eq!(number(&app, &failed).await, 2);
    // The new deployments' own jobs wait to run.
    let queued = format!(
        "SELECT COUNT(*) FROM jobs WHERE owner_id = {} AND state = 'queued'",
        admin.id
    );
    assert_eq!(number(&app, &queued).await, 10);
}
