//! Several servers as one: Depot servers on one PostgreSQL database, one
//! object-store bucket and one secret key serve the same catalog. A session
//! or token from one works on another; bytes uploaded to one download, in
//! ranges, from another; and a server killed with SIGKILL in the middle of
//! an upload leaves no record without bytes, and nothing in the bucket that
//! another server does not collect (its multipart upload aborted); a
//! deployment runs once whichever server's worker takes it, and one whose
//! server died is taken over when its lease runs out (on the database's
//! clock: a server whose clock runs ahead takes over no live job). The personal stores
//! are in the bucket too: files put through one server are listed, synced
//! and deleted through another, by rclone and by pyvss.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use depot_server::blob::Area;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use serde_json::Value;

use crate::deploy_isolation::{deploy, environment_at, finished, image_with, settled};
use crate::helpers::{random_bytes, test_bucket, Backend, TestApp, TestDb, ADMIN_PASSWORD};
use crate::pyvss::run_pyvss;
use crate::store::{iso, rclone, rclone_remote, User};
use crate::vice::{iso_bytes, Vice};

#[tokio::test]
async fn a_session_or_token_from_one_server_works_on_the_other() {
    let a = TestApp::spawn(Backend::Shared).await;
    let b = a.spawn_beside(|_| {}).await;
    a.add_user("alice", "alice-password").await;

    // A browser signs in on A; its cookie is good on B (cookies are not
    // per port, as they would not be per server behind one load balancer).
    let browser = a.browser();
    let signed_in = browser
        .post(a.url("/api/ui/login"))
        .header("accept", "text/html")
        .form(&[("username", "alice"), ("password", "alice-password")])
        .send()
        .await
        .unwrap();
    assert!(signed_in.status().is_redirection());
    let me = browser
        .post(b.url("/api/ui/me"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(me.contains("\"username\":\"alice\""), "{me}");

    // A token made on B works on A, and revoked on A it stops on B.
    let token: Value = reqwest::Client::new()
        .post(b.url("/api/tokens"))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = token["token"].as_str().unwrap();
    let listed = reqwest::Client::new()
        .get(a.url("/api/tokens"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    let id = listed["tokens"][0]["id"].as_i64().unwrap();
    let revoked = reqwest::Client::new()
        .delete(a.url(&format!("/api/tokens/{id}")))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let after = reqwest::Client::new()
        .get(b.url("/api/tokens"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
}

#[tokio::test]
async fn bytes_uploaded_to_one_server_download_from_the_other() {
    let a = TestApp::spawn(Backend::Shared).await;
    let b = a.spawn_beside(|_| {}).await;
    // Larger than one part, so that it goes up as a multipart upload.
    let bytes = random_bytes(9 << 20);
    let uploaded = a
        .upload("admin", ADMIN_PASSWORD, "disk.img", bytes.clone())
        .await;
    assert_eq!(uploaded.status(), 201);
    let uploaded: Value = uploaded.json().await.unwrap();
    let id = uploaded["images"][0]["id"].as_i64().unwrap();
    let sha256 = uploaded["images"][0]["sha256"].as_str().unwrap().to_owned();

    // Nothing of it is in either server's own folder.
    for server in [&a, &b] {
        assert!(!server.data_dir.join("store/blobs").exists());
    }
    let client = reqwest::Client::new();
    let whole = client
        .get(b.url(&format!("/api/images/{id}/download")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["etag"], format!("\"{sha256}\""));
    assert_eq!(whole.headers()["content-length"], bytes.len().to_string());
    assert!(whole.bytes().await.unwrap() == bytes[..]);

    // A range across the boundary of the first part, resumed as curl -C does.
    let start = (8 << 20) - 100;
    let ranged = client
        .get(b.url(&format!("/api/images/{id}/download")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("range", format!("bytes={start}-{}", start + 199))
        .header("if-range", format!("\"{sha256}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged.headers()["content-range"],
        format!("bytes {start}-{}/{}", start + 199, bytes.len())
    );
    assert!(ranged.bytes().await.unwrap() == bytes[start..start + 200]);
}

/// A Depot server process on `first`'s database, bucket and key.
fn server_process(first: &TestApp, data: &std::path::Path, port: u16) -> Child {
    let storage = &first.storage;
    let mut command = Command::new(env!("CARGO_BIN_EXE_depot"));
    command
        .arg("serve")
        .env("DEPOT_BIND", format!("127.0.0.1:{port}"))
        .env("DEPOT_DATA_DIR", data)
        .env("DEPOT_LOG", "warn")
        .env(
            "DEPOT_DATABASE_URL",
            first.database_url().expect("PostgreSQL"),
        )
        .env(
            "DEPOT_BLOB_STORE",
            storage.blob_store.as_ref().unwrap().to_string(),
        )
        .env(
            "DEPOT_SECRET_KEY",
            storage.secret_key.as_ref().unwrap().expose(),
        )
        .env("AWS_ENDPOINT_URL", storage.s3.endpoint.as_ref().unwrap())
        .env("AWS_REGION", &storage.s3.region)
        .env(
            "AWS_ACCESS_KEY_ID",
            storage.s3.access_key_id.as_ref().unwrap(),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            storage.s3.secret_access_key.as_ref().unwrap().expose(),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().expect("depot does not start")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a client sends to the server that gets killed.
#[derive(Clone, Copy)]
enum Transfer {
    /// An image upload (`POST /api/upload`).
    Upload,
    /// A file put into the personal store over WebDAV.
    StoreFile,
}

#[tokio::test]
async fn a_server_killed_mid_upload_leaves_nothing_the_other_does_not_collect() {
    killed_mid_transfer(Transfer::Upload).await;
}

#[tokio::test]
async fn a_server_killed_mid_store_write_leaves_nothing_the_other_does_not_collect() {
    killed_mid_transfer(Transfer::StoreFile).await;
}

async fn killed_mid_transfer(transfer: Transfer) {
    let b = TestApp::spawn(Backend::Shared).await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut a = server_process(&b, data.path(), port);
    let a_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(answer) = client.get(format!("{a_url}/readyz")).send().await {
            if answer.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "server A did not become ready");

    // An upload to A whose body arrives slowly: two parts and a bit, then
    // nothing more until A is killed.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_of(receiver));
    let request = match transfer {
        Transfer::Upload => {
            let part = reqwest::multipart::Part::stream(body).file_name("disk.img");
            let form = reqwest::multipart::Form::new().part("file", part);
            client.post(format!("{a_url}/api/upload")).multipart(form)
        }
        Transfer::StoreFile => client.put(format!("{a_url}/store/disk.img")).body(body),
    };
    let upload = tokio::spawn(request.basic_auth("admin", Some(ADMIN_PASSWORD)).send());
    for _ in 0..17 {
        sender.send(Ok(random_bytes(1 << 20))).await.unwrap();
    }
    // Wait until A has started its multipart upload (its marker is there).
    let mut started = false;
    for _ in 0..200 {
        let staging = b.stored(Area::Staging).await;
        if staging.iter().any(|name| name.contains("/uploading/")) {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(started, "A never began a multipart upload");
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    assert!(upload.await.unwrap().is_err(), "the upload cannot succeed");
    drop(sender);

    // No record came of it.
    let db = sqlx::PgPool::connect(b.database_url().unwrap())
        .await
        .unwrap();
    let (records,): (i64,) = sqlx::query_as("SELECT count(*) FROM images")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(records, 0);
    let admin = b.core.login("admin", ADMIN_PASSWORD).await.unwrap();
    assert!(b.store_files(admin.id).await.is_empty());

    // What A left: an incomplete multipart upload and its marker. Within
    // the grace period B leaves it (it could be a live upload).
    let bucket = test_bucket(&b.storage);
    let markers: Vec<String> = b
        .stored(Area::Staging)
        .await
        .into_iter()
        .filter(|name| name.contains("/uploading/"))
        .collect();
    assert_eq!(markers.len(), 1, "{markers:?}");
    let marker = Path::from(markers[0].as_str());
    let upload_id = String::from_utf8(
        bucket
            .get(&marker)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let staged_key = Path::from(markers[0].replace("/uploading/", "/staging/"));
    let early = b
        .core
        .collect_garbage(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(early.stale_uploads, 0);

    // Once the marker is older than the grace period, B aborts the upload.
    let collected = b.core.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(collected.stale_uploads, 1);
    assert!(b.stored(Area::Staging).await.is_empty());
    assert!(b.stored(Area::Blobs).await.is_empty());
    let late_part = bucket
        .put_part(
            &staged_key,
            &upload_id,
            5,
            PutPayload::from_static(b"too late"),
        )
        .await;
    assert!(late_part.is_err(), "the multipart upload is still open");
}

/// A channel's items as a stream.
fn tokio_stream_of<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}

/// Attempts of every deployment job, as the shared queue counts them.
async fn deployment_attempts(app: &TestApp) -> Vec<i64> {
    let db = sqlx::PgPool::connect(app.database_url().unwrap())
        .await
        .unwrap();
    let attempts: Vec<(i64,)> =
        sqlx::query_as("SELECT attempts FROM jobs WHERE kind = 'vice.deploy' ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    attempts.into_iter().map(|(attempts,)| attempts).collect()
}

#[tokio::test]
async fn deployments_run_once_whichever_server_takes_them() {
    let root = tempfile::tempdir().unwrap();
    let export_root = root.path().to_path_buf();
    let a = TestApp::spawn_with(Backend::Shared, {
        let export_root = export_root.clone();
        move |args| args.export_root = Some(export_root)
    })
    .await;
    let b = a
        .spawn_beside(move |args| args.export_root = Some(export_root))
        .await;
    a.add_user("alice", "alice-password").await;
    let servers = [
        Vice::new(&a, "alice", "alice-password"),
        Vice::new(&b, "alice", "alice-password"),
    ];
    let folder = root.path().join("exports");
    std::fs::create_dir(&folder).unwrap();
    let location = format!("file://{}", folder.display());
    let (status, environment) = environment_at(&servers[0], location).await;
    assert_eq!(status, 201, "{environment}");
    let environment = environment["id"].as_str().unwrap().to_owned();

    // Images uploaded to either server, deployed through either, while
    // both servers' workers take jobs from the one queue.
    let mut deployed = Vec::new();
    for index in 0..6 {
        let (on, other) = (&servers[index % 2], &servers[(index + 1) % 2]);
        let bytes = iso_bytes(100_000 + index * 10_000);
        let name = format!("disk-{index}");
        let image = image_with(on, &name, bytes.clone()).await;
        let (status, deployment) = deploy(other, &environment, &image).await;
        assert_eq!(status, 201, "{deployment}");
        deployed.push((name, bytes, deployment["id"].as_str().unwrap().to_owned()));
    }
    for (index, (name, bytes, id)) in deployed.iter().enumerate() {
        let deployment = settled(&servers[index % 2], id).await;
        assert_eq!(deployment["state"], "done", "{deployment}");
        assert!(std::fs::read(folder.join(name)).unwrap() == *bytes);
    }
    assert_eq!(deployment_attempts(&a).await, vec![1; 6], "a job ran twice");
}

#[tokio::test]
async fn a_dead_servers_deployment_is_taken_over_after_its_lease() {
    let root = tempfile::tempdir().unwrap();
    let export_root = root.path().to_path_buf();
    // No workers anywhere yet: A plays the server that claims and dies.
    let a = TestApp::spawn_with(Backend::Shared, {
        let export_root = export_root.clone();
        move |args| {
            args.export_root = Some(export_root);
            args.job_workers = 0;
        }
    })
    .await;
    let b = a
        .spawn_beside(move |args| {
            args.export_root = Some(export_root);
            args.job_workers = 0;
        })
        .await;
    a.add_user("alice", "alice-password").await;
    let on_a = Vice::new(&a, "alice", "alice-password");
    let folder = root.path().join("exports");
    std::fs::create_dir(&folder).unwrap();
    let location = format!("file://{}", folder.display());
    let (_, environment) = environment_at(&on_a, location).await;
    let environment = environment["id"].as_str().unwrap().to_owned();
    let bytes = iso_bytes(150_000);
    let image = image_with(&on_a, "appliance", bytes.clone()).await;
    let (status, deployment) = deploy(&on_a, &environment, &image).await;
    assert_eq!(status, 201, "{deployment}");
    let id = deployment["id"].as_str().unwrap().to_owned();

    // A's worker claims the job and dies: its lease runs out unrenewed.
    let now = chrono::Utc::now().timestamp_millis();
    let claimed = a.core.db().claim_job("server-a", now, 1).await.unwrap();
    assert!(claimed.is_some());
    tokio::time::sleep(Duration::from_millis(20)).await;

    // B's worker, started now, takes it over and carries it out.
    depot_server::jobs::spawn_workers(b.core.clone(), 1);
    // Queued again first, with the reason A's attempt stopped: until B's
    // worker has carried it out.
    let deployment = finished(&on_a, &id).await;
    assert_eq!(deployment["state"], "done", "{deployment}");
    assert!(std::fs::read(folder.join("appliance")).unwrap() == bytes);
    assert_eq!(deployment_attempts(&a).await, vec![2]);
}

/// Leases are measured on the database's clock: a server whose own clock
/// runs ninety seconds ahead takes over no job another server is running
/// under a live lease (by its own clock, that lease ran out long ago).
#[tokio::test]
async fn a_server_whose_clock_runs_ahead_takes_over_no_live_job() {
    let a = TestApp::spawn_with(Backend::Shared, |args| args.job_workers = 0).await;
    let b = a.spawn_beside(|args| args.job_workers = 0).await;
    b.core.skew_local_clock(90_000);
    let db = a.core.db();
    let now = a.core.job_clock_ms().await.unwrap();
    // A job of a server that died long ago: its lease ran out on any clock.
    let dead = db.enqueue_job("none", "{}", now - 200_000).await.unwrap();
    let claimed = db.claim_job("server-gone", now - 100_000, 1).await.unwrap();
    assert_eq!(claimed.map(|job| job.id), Some(dead));
    let id = db.enqueue_job("none", "{}", now).await.unwrap();
    let claimed = db.claim_job("server-a", now, 60_000).await.unwrap();
    assert_eq!(claimed.map(|job| job.id), Some(id));

    // B's worker reaps before each look for a job: it takes the dead
    // server's job over (and runs it: no worker knows its kind, a second
    // attempt fails), and reaps again before its next look.
    depot_server::jobs::spawn_workers(b.core.clone(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while db.job_status(dead).await.unwrap().unwrap().1 < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "B's worker never took over the dead server's job"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (state, attempts, error) = db.job_status(id).await.unwrap().unwrap();
    assert_eq!(
        (state.as_str(), attempts, error),
        ("running", 1, None),
        "the job was taken from the server running it"
    );
    assert!(db.renew_lease(id, "server-a", now, 60_000).await.unwrap());
}

/// Servers on one database share its secret key: one started with another
/// refuses to start and says why, rather than reject the others' tokens;
/// told to adopt its key (the old one lost), it serves the database, and a
/// server with the old key is then the one refused.
#[tokio::test]
async fn a_server_with_another_secret_key_refuses_to_start() {
    use depot_server::serve::{check_key, claim_key, open_core, open_database};

    let a = TestApp::spawn(Backend::Postgres).await;
    let other = tempfile::tempdir().unwrap();
    let storage = depot_server::config::StorageArgs {
        data_dir: other.path().to_path_buf(),
        database_url: Some(a.storage.database_url().parse().unwrap()),
        secret_key: Some("another key, thirty-two characters".parse().unwrap()),
        ..a.storage.clone()
    };
    let db = open_database(&storage).await.unwrap();
    let b = open_core(&storage, db.clone(), Default::default())
        .await
        .unwrap();
    let refused = claim_key(&b, None).await;
    let refused = format!("{:#}", refused.expect_err("started with another key"));
    assert!(refused.contains("another secret key"), "{refused}");
    let database_key = &a.core.key_fingerprint()[..8];
    assert!(
        refused.contains(&format!("--adopt-secret-key {database_key}")),
        "{refused}"
    );
    assert!(check_key(&b).await.is_err(), "an administration command");
    let ready = reqwest::get(a.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // Adopting names the fingerprint it replaces: another is refused.
    assert!(claim_key(&b, Some("00000000")).await.is_err());
    // Adopted: the database is served with the new key; the server still
    // running with the old one turns unready, and none starts with it,
    // even told to adopt what it adopted once.
    claim_key(&b, Some(database_key)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let unready = reqwest::get(a.url("/readyz")).await.unwrap();
    assert_eq!(unready.status(), 503);
    let said = unready.text().await.unwrap();
    assert!(said.contains("another secret key"), "{said}");
    assert!(claim_key(&a.core, Some(database_key)).await.is_err());
    claim_key(&b, Some(database_key)).await.unwrap();
}

/// A server on another database over the same blobs refuses to start (a
/// database URL forgotten, so the data folder's own SQLite opened; a
/// staging server's own database on the production bucket): its collector
/// would take every blob it has no record of for garbage and remove them
/// all. Servers of the blobs' own database start as before.
#[rstest::rstest]
#[case::shared(Backend::Shared)]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn a_server_on_another_database_over_the_same_blobs_refuses_to_start(
    #[case] backend: Backend,
) {
    use depot_server::serve::{claim_blobs, open_core, open_database};

    let a = TestApp::spawn(backend).await;
    let kept = a
        .upload("admin", ADMIN_PASSWORD, "kept.img", random_bytes(1000))
        .await;
    assert_eq!(kept.status(), 201);
    let other = TestDb::migrated(Backend::Postgres).await;
    let storage = depot_server::config::StorageArgs {
        database_url: Some(other.url.as_deref().unwrap().parse().unwrap()),
        ..a.storage.clone()
    };
    let db = open_database(&storage).await.unwrap();
    let b = open_core(&storage, db, Default::default()).await.unwrap();
    let refused = claim_blobs(&b)
        .await
        .expect_err("started on another database");
    let refused = format!("{refused:#}");
    assert!(refused.contains("another database"), "{refused}");
    assert!(refused.contains("DEPOT_DATABASE_URL"), "{refused}");
    // Its own database's servers serve them, the one running and the next.
    claim_blobs(&a.core).await.unwrap();
    let again = a.spawn_again().await;
    assert_eq!(a.stored(Area::Blobs).await.len(), 1);
    let ready = reqwest::get(again.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_personal_store_is_the_same_on_every_server() {
    let a = TestApp::spawn_with(Backend::Shared, |args| args.demo = true).await;
    let b = a.spawn_beside(|_| {}).await;
    let alice_on_a = User::new(&a, "alice", "alice-password").await;
    let alice_on_b = alice_on_a.on(&b);
    let (remote_a, remote_b) = (
        rclone_remote(&a, "alice", "alice-password"),
        rclone_remote(&b, "alice", "alice-password"),
    );

    // rclone makes a folder and puts a file through A; B lists both.
    let folder = tempfile::tempdir().unwrap();
    let local = folder.path().join("media.iso");
    std::fs::write(&local, iso()).unwrap();
    rclone(&["mkdir", &format!("{remote_a}cds")]);
    rclone(&[
        "copyto",
        local.to_str().unwrap(),
        &format!("{remote_a}cds/media.iso"),
    ]);
    assert_eq!(rclone(&["lsf", &remote_b]).trim(), "cds/");
    assert_eq!(
        rclone(&["lsf", &format!("{remote_b}cds")]).trim(),
        "media.iso"
    );
    let fetched = folder.path().join("fetched.iso");
    rclone(&[
        "copyto",
        &format!("{remote_b}cds/media.iso"),
        fetched.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read(&local).unwrap()
    );

    // A sync asked of B takes the file in; A shows the image.
    let done = alice_on_b.sync("iso").await;
    assert_eq!(done["added"], 1, "{done}");
    assert_eq!(alice_on_a.names("iso").await, ["media.iso"]);

    // Deleted through B, gone for A; the next sync, asked of A, drops it.
    rclone(&["deletefile", &format!("{remote_b}cds/media.iso")]);
    assert!(rclone(&["lsf", &format!("{remote_a}cds")])
        .trim()
        .is_empty());
    let done = alice_on_a.sync("iso").await;
    assert_eq!(done["deleted"], 1, "{done}");
    assert!(alice_on_b.names("iso").await.is_empty());

    // pyvss puts its files through A and asks B for everything else.
    a.add_user("pyvss-user", "pyvss-password").await;
    run_pyvss(&b, &a).await;
}
