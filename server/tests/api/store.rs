//! The personal store over WebDAV and the sync jobs that turn its files into
//! images: isolation, path safety, the queue surviving a dead worker, and a
//! real WebDAV client from Debian's packages.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};

fn ova() -> Vec<u8> {
    crate::helpers::ova_bytes()
}

pub fn iso() -> Vec<u8> {
    let mut bytes = random_bytes(40_000);
    bytes[0x8001..0x8006].copy_from_slice(b"CD001");
    bytes
}

pub fn ovf(disk: &str) -> Vec<u8> {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="{disk}" ovf:id="file1"/></References>
</Envelope>
"#
    )
    .into_bytes()
}

/// A WebDAV (and VSS) client acting as one user.
pub struct User<'a> {
    app: &'a TestApp,
    name: &'static str,
    password: &'static str,
    client: reqwest::Client,
}

impl<'a> User<'a> {
    pub async fn new(app: &'a TestApp, name: &'static str, password: &'static str) -> Self {
        app.add_user(name, password).await;
        Self {
            app,
            name,
            password,
            client: reqwest::Client::new(),
        }
    }

    /// The same user, through another server of the same deployment.
    pub fn on<'b>(&self, app: &'b TestApp) -> User<'b> {
        User {
            app,
            name: self.name,
            password: self.password,
            client: self.client.clone(),
        }
    }

    pub async fn dav(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, String) {
        let depth = (method == "PROPFIND").then_some("1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.app.url(&format!("/store{path}")))
            .basic_auth(self.name, Some(self.password));
        if let Some(depth) = depth {
            request = request.header("Depth", depth);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn vss(&self, method: Method, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, self.app.url(path))
            .basic_auth(self.name, Some(self.password))
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// Submits a sync and waits until it is processed.
    pub async fn sync(&self, kind: &str) -> Value {
        let (status, submitted) = self
            .vss(Method::PATCH, &format!("/v2/user/image/{kind}"))
            .await;
        assert_eq!(status, 202, "{submitted}");
        let request = &submitted["data"]["request"];
        assert_eq!(request["status"], "SUBMITTED");
        assert_eq!(request["task_id"].as_str().unwrap().len(), 36);
        let id = request["id"].as_i64().unwrap();
        wait_processed(self, id).await
    }

    pub async fn names(&self, kind: &str) -> Vec<String> {
        let (_, body) = self
            .vss(Method::GET, &format!("/v2/user/image/{kind}"))
            .await;
        let mut names: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

async fn wait_processed(user: &User<'_>, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = user
            .vss(Method::GET, &format!("/v2/request/image_sync/{id}"))
            .await;
        assert_eq!(status, 200, "{body}");
        let data = body["data"].clone();
        match data["status"].as_str().unwrap() {
            "PROCESSED" => return data,
            "ERROR" => panic!("sync failed: {data}"),
            _ if Instant::now() > deadline => panic!("sync never finished: {data}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn files_put_over_webdav_become_images_after_a_sync(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    let bob = User::new(&app, "bob", "bob-password-1").await;

    let appliance = ova();
    assert_eq!(alice.dav("MKCOL", "/images/", None).await.0, 201);
    assert_eq!(
        alice
            .dav("PUT", "/images/a.ova", Some(appliance.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        alice
            .dav("PUT", "/images/good.ovf", Some(ovf("good-disk.vmdk")))
            .await
            .0,
        201
    );
    assert_eq!(
        alice
            .dav("PUT", "/images/good-disk.vmdk", Some(random_bytes(4096)))
            .await
            .0,
        201
    );
    assert_eq!(
        alice
            .dav("PUT", "/images/broken.ovf", Some(ovf("gone.vmdk")))
            .await
            .0,
        201
    );
    assert_eq!(
        alice
            .dav("PUT", "/images/fake.ova", Some(random_bytes(1000)))
            .await
            .0,
        201
    );
    assert_eq!(alice.dav("PUT", "/x.iso", Some(iso())).await.0, 201);

    // Bob's store is his own; nobody reaches a store without credentials.
    let (status, listing) = bob.dav("PROPFIND", "/", None).await;
    assert_eq!(status, 207);
    assert!(!listing.contains("a.ova"), "{listing}");
    assert_eq!(bob.dav("GET", "/images/a.ova", None).await.0, 404);
    let anonymous = reqwest::Client::new()
        .request(Method::from_bytes(b"PROPFIND").unwrap(), app.url("/store/"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    // Paths cannot climb out of the store (to the server's key, say).
    for sneaky in [
        "/..%2f..%2fsecret.key",
        "/%2e%2e/%2e%2e/secret.key",
        "/../../secret.key",
    ] {
        let (status, body) = alice.dav("GET", sneaky, None).await;
        assert_ne!(status, 200, "{sneaky}: {body}");
    }

    let done = alice.sync("vm").await;
    assert_eq!(done["type"], "VM");
    assert_eq!(done["added"], 2, "{done}");
    assert_eq!(done["deleted"], 0);
    assert_eq!(done["user"]["username"], "alice");
    let errors = done["message"]["errors"].to_string();
    assert!(
        errors.contains("broken.ovf: missing disk gone.vmdk"),
        "{errors}"
    );
    assert!(errors.contains("fake.ova"), "{errors}");
    assert_eq!(alice.names("vm").await, ["a.ova", "good.ovf"]);
    let (_, listed) = alice
        .vss(
            Method::GET,
            "/v2/user/image/vm?expand=1&filter=name,eq,a.ova",
        )
        .await;
    let item = &listed["data"][0];
    assert_eq!(item["path"], "[personal] alice/images/a.ova");
    assert_eq!(item["public"], false);
    // The bytes were taken in: the image downloads as it was put.
    let id = item["id"].as_i64().unwrap();
    let downloaded = alice
        .client
        .get(app.url(&format!("/api/images/{id}/download")))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(downloaded.as_ref(), appliance.as_slice());

    let done = alice.sync("iso").await;
    assert_eq!(
        (done["type"].as_str(), done["added"].as_i64()),
        (Some("ISO"), Some(1))
    );
    assert_eq!(alice.names("iso").await, ["x.iso"]);
    // Bob sees none of it, not even the request.
    assert!(bob.names("vm").await.is_empty());
    let (status, _) = bob
        .vss(
            Method::GET,
            &format!("/v2/request/image_sync/{}", done["id"]),
        )
        .await;
    assert_eq!(status, 404);
    let (_, requests) = bob.vss(Method::GET, "/v2/request/image_sync").await;
    assert_eq!(requests["meta"]["count"], 0);
    let (_, requests) = alice
        .vss(
            Method::GET,
            "/v2/request/image_sync?filter=status,eq,PROCESSED",
        )
        .await;
    assert_eq!(requests["meta"]["count"], 2);

    // A vanished file loses its image; a changed one is updated; a second
    // sync with nothing new changes nothing.
    assert_eq!(alice.dav("DELETE", "/images/a.ova", None).await.0, 204);
    let mut changed = ovf("good-disk.vmdk");
    changed.extend_from_slice(b"<!-- second version -->\n");
    let (status, _) = alice.dav("PUT", "/images/good.ovf", Some(changed)).await;
    assert!(status.is_success(), "{status}");
    let done = alice.sync("vm").await;
    assert_eq!(
        (done["added"].as_i64(), done["deleted"].as_i64()),
        (Some(0), Some(1)),
        "{done}"
    );
    assert_eq!(alice.names("vm").await, ["good.ovf"]);
    let done = alice.sync("vm").await;
    assert_eq!(
        (done["added"].as_i64(), done["deleted"].as_i64()),
        (Some(0), Some(0))
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_sync_never_deletes_on_a_missing_store_and_refuses_bad_names(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    assert_eq!(alice.dav("PUT", "/keep.iso", Some(iso())).await.0, 201);
    assert_eq!(
        alice.dav("PUT", "/bad%22name.iso", Some(iso())).await.0,
        201
    );
    let done = alice.sync("iso").await;
    assert_eq!(done["added"], 1);
    let errors = done["message"]["errors"].to_string();
    assert!(errors.contains("name is not usable"), "{errors}");

    // Renaming a synced image through MWS would orphan it: refused.
    let response = alice
        .client
        .put(app.url("/mws/rest/images/keep.iso?api-version=3"))
        .basic_auth("alice", Some("alice-password"))
        .json(&serde_json::json!({"name": "renamed.iso"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // The store's folder vanishes (an unmounted volume): the sync fails and
    // keeps the images.
    let personal = app.data_dir.join("personal");
    std::fs::rename(&personal, app.data_dir.join("personal-away")).unwrap();
    let (_, submitted) = alice.vss(Method::PATCH, "/v2/user/image/iso").await;
    let id = submitted["data"]["request"]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (_, body) = alice
            .vss(Method::GET, &format!("/v2/request/image_sync/{id}"))
            .await;
        let status = body["data"]["status"].as_str().unwrap().to_owned();
        if status.starts_with("ERROR") || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, "ERROR_RETRY");
    assert_eq!(alice.names("iso").await, ["keep.iso"]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_file_larger_than_the_upload_limit_is_refused_before_it_is_written(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |args| args.max_upload_bytes = 10_000).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    let (status, _) = alice
        .dav("PUT", "/big.iso", Some(random_bytes(20_000)))
        .await;
    assert_eq!(status, 413);
    assert_eq!(alice.dav("GET", "/big.iso", None).await.0, 404);
    assert_eq!(
        alice
            .dav("PUT", "/small.iso", Some(random_bytes(5_000)))
            .await
            .0,
        201
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_job_whose_worker_died_is_run_again(#[case] backend: Backend) {
    // No workers: this server plays the one that died.
    let app = TestApp::spawn_with(backend, |args| args.job_workers = 0).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    assert_eq!(alice.dav("PUT", "/x.iso", Some(iso())).await.0, 201);
    let (_, submitted) = alice.vss(Method::PATCH, "/v2/user/image/iso").await;
    let id = submitted["data"]["request"]["id"].as_i64().unwrap();
    // A second request while the first waits is the first one.
    let (_, again) = alice.vss(Method::PATCH, "/v2/user/image/iso").await;
    assert_eq!(again["data"]["request"]["id"].as_i64(), Some(id));

    // A worker claims the job and dies: its lease runs out unrenewed.
    let now = chrono::Utc::now().timestamp_millis();
    let claimed = app
        .core
        .db()
        .claim_job("dead-worker", now, 1)
        .await
        .unwrap();
    assert!(claimed.is_some());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, waiting) = alice
        .vss(Method::GET, &format!("/v2/request/image_sync/{id}"))
        .await;
    assert_eq!(waiting["data"]["status"], "SUBMITTED");

    // The next worker to start takes it over and finishes it.
    depot_server::jobs::spawn_workers(app.core.clone(), 1);
    let done = wait_processed(&alice, id).await;
    assert_eq!(done["added"], 1);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn concurrent_claimers_never_take_the_same_job(#[case] backend: Backend) {
    let app = TestApp::spawn_with(backend, |args| args.job_workers = 0).await;
    let db = app.core.db().clone();
    let now = chrono::Utc::now().timestamp_millis();
    for _ in 0..40 {
        db.enqueue_job("test.nothing", "{}", now).await.unwrap();
    }
    // Four claimers at once, as four server processes on one database would.
    let claimers = (0..4).map(|claimer| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            let name = format!("claimer-{claimer}");
            while let Some(job) = db.claim_job(&name, now, 60_000).await.unwrap() {
                mine.push(job.id);
            }
            mine
        })
    });
    let mut all: Vec<i64> = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(claimed, 40, "a job was claimed twice or lost");
    assert_eq!(all.len(), 40);
}

/// A PUT over a file that is cut off midway, or ends short of its length,
/// leaves the file as it was, and nothing half-written shows.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn a_cut_put_leaves_the_old_file(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    let old = iso();
    assert_eq!(alice.dav("PUT", "/a.iso", Some(old.clone())).await.0, 201);
    // Some bytes, time for the server to begin writing them, then a cut.
    let pieces = futures_util::stream::unfold(0, |step| async move {
        match step {
            0 => Some((Ok(random_bytes(300_000)), 1)),
            1 => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Some((Err(std::io::Error::other("the connection dropped")), 2))
            }
            _ => None,
        }
    });
    let cut = alice
        .client
        .put(app.url("/store/a.iso"))
        .basic_auth("alice", Some("alice-password"))
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await;
    assert!(cut.map_or(true, |answer| !answer.status().is_success()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kept = alice
        .client
        .get(app.url("/store/a.iso"))
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    let kept = kept.bytes().await.unwrap();
    assert!(
        kept.as_ref() == old.as_slice(),
        "the old file was replaced by a partial one"
    );
    let (_, listing) = alice.dav("PROPFIND", "/", None).await;
    assert!(!listing.contains("partial"), "{listing}");
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;
    assert_eq!(app.store_files(alice_id).await.len(), 1);
    assert!(app
        .stored(depot_server::blob::Area::Staging)
        .await
        .is_empty());

    // On local disk, the hidden names of writes in progress are nobody's
    // to use: a file under one would hide from the listings and the quota.
    if backend == Backend::Shared {
        return;
    }
    let hidden = format!("/{}", ".depot-partial-mine");
    for (method, path) in [
        ("PUT", hidden.clone()),
        ("MKCOL", format!("{hidden}/")),
        ("GET", hidden.clone()),
    ] {
        let body = (method == "PUT").then(|| random_bytes(10));
        let (status, _) = alice.dav(method, &path, body).await;
        assert!(status.is_client_error(), "{method} {path}: {status}");
    }
    let ranged = alice
        .client
        .put(app.url(&format!("/store{hidden}")))
        .basic_auth("alice", Some("alice-password"))
        .header("content-range", "bytes 0-9/*")
        .body(random_bytes(10))
        .send()
        .await
        .unwrap();
    assert!(ranged.status().is_client_error(), "{}", ranged.status());
    let moved = alice
        .client
        .request(
            Method::from_bytes(b"MOVE").unwrap(),
            app.url("/store/a.iso"),
        )
        .basic_auth("alice", Some("alice-password"))
        .header("destination", app.url(&format!("/store{hidden}")))
        .send()
        .await
        .unwrap();
    assert!(!moved.status().is_success(), "{}", moved.status());
    assert_eq!(app.store_files(alice_id).await.len(), 1);
}

/// A COPY or MOVE whose destination is the store itself, or outside it,
/// is refused with a status, whatever the backend.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test]
async fn copies_and_moves_to_odd_destinations_are_refused(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    assert_eq!(alice.dav("MKCOL", "/cds/", None).await.0, 201);
    assert_eq!(alice.dav("PUT", "/cds/a.iso", Some(iso())).await.0, 201);
    for method in ["COPY", "MOVE"] {
        for destination in [
            app.url("/store/"),
            app.url("/store"),
            app.url("/elsewhere/a.iso"),
            app.url("/store/cds/"),
            app.url("/store/cds/sub/cds/"),
            // Dot segments naming the root or above it (a header is sent
            // as written, not tidied as a request's URL would be).
            app.url("/store/."),
            app.url("/store/cds/.."),
            app.url("/store/%2e%2e/"),
            "/store/cds/%2E/../..".to_owned(),
            // Read as dav-server reads them: a query cut off, a URL's
            // backslash taken for a slash, a tab dropped.
            "/store/cds/..?x".to_owned(),
            app.url("/store/cds/..#f"),
            app.url("/store/cds\\.."),
            app.url("/store/cds/.\t."),
        ] {
            let source = if destination.ends_with("cds/") {
                "/cds/"
            } else {
                "/cds/a.iso"
            };
            let response = alice
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(&format!("/store{source}")),
                )
                .basic_auth("alice", Some("alice-password"))
                .header("destination", &destination)
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(
                status.is_client_error(),
                "{method} {source} to {destination}: {status}"
            );
        }
    }
    assert_eq!(alice.dav("GET", "/cds/a.iso", None).await.0, 200);
}

/// An rclone remote (without a config file) for a user's store on `app`.
pub fn rclone_remote(app: &TestApp, user: &str, password: &str) -> String {
    let obscured = rclone(&["obscure", password]);
    format!(
        ":webdav,url='{}',vendor=other,user={user},pass='{}':",
        app.url("/store"),
        obscured.trim()
    )
}

/// Runs rclone (Debian's package), which must succeed; answers its output.
/// The servers run on the test's runtime: this blocks a worker thread
/// (the test must be multi-threaded), not the runtime.
pub fn rclone(args: &[&str]) -> String {
    let output = tokio::task::block_in_place(|| {
        std::process::Command::new("rclone")
            .env("RCLONE_CONFIG", "/dev/null")
            .args(args)
            .output()
            .expect("rclone is not installed (scripts/setup.sh installs it)")
    });
    assert!(
        output.status.success(),
        "rclone {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// rclone (Debian's package) as the user's WebDAV client.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::shared(Backend::Shared)]
#[tokio::test(flavor = "multi_thread")]
async fn rclone_puts_lists_and_deletes_in_the_store(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    let folder = tempfile::tempdir().unwrap();
    let local = folder.path().join("media.iso");
    std::fs::write(&local, iso()).unwrap();
    let remote = rclone_remote(&app, "alice", "alice-password");
    rclone(&["mkdir", &format!("{remote}cds")]);
    rclone(&[
        "copyto",
        local.to_str().unwrap(),
        &format!("{remote}cds/media.iso"),
    ]);
    let listed = rclone(&["lsf", &format!("{remote}cds")]);
    assert_eq!(listed.trim(), "media.iso");

    let done = alice.sync("iso").await;
    assert_eq!(done["added"], 1);
    assert_eq!(alice.names("iso").await, ["media.iso"]);

    rclone(&["deletefile", &format!("{remote}cds/media.iso")]);
    assert!(rclone(&["lsf", &format!("{remote}cds")]).trim().is_empty());
    let done = alice.sync("iso").await;
    assert_eq!(done["deleted"], 1);
    assert!(alice.names("iso").await.is_empty());
}

/// A synced copy an administrator published keeps the bytes approved: a
/// changed file is not synced onto it (the sync says why), and the copy
/// downloads as it did.
#[tokio::test]
async fn a_published_copy_keeps_its_approved_bytes() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let alice = User::new(&app, "alice", "alice-password").await;
    assert_eq!(alice.dav("PUT", "/x.iso", Some(iso())).await.0, 201);
    alice.sync("iso").await;
    let admin = app::model::Viewer::User(app.core.login("admin", ADMIN_PASSWORD).await.unwrap());
    let named = app::query::Query::new(1).filter(app::query::Condition::Compare {
        field: app::query::Field::Name,
        op: app::query::Op::Eq,
        value: app::query::Value::Text("x.iso".into()),
    });
    let copy = app
        .core
        .list_images(&admin, named)
        .await
        .unwrap()
        .items
        .remove(0);
    let (id, version) = (copy.id.to_string(), copy.version.to_string());
    let (status, published) = crate::helpers::ui_call(
        &app,
        ("admin", ADMIN_PASSWORD),
        "images/edit",
        &[
            ("id", &id),
            ("version", &version),
            ("name", "x.iso"),
            ("label", ""),
            ("description", ""),
            ("visibility", "public"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{published}");

    assert_eq!(alice.dav("PUT", "/x.iso", Some(iso())).await.0, 204);
    let done = alice.sync("iso").await;
    let errors = done["message"]["errors"].to_string();
    assert!(errors.contains("published"), "{errors}");
    let kept = app.core.get_image(&admin, copy.id).await.unwrap();
    assert_eq!(kept.sha256, copy.sha256);
}
