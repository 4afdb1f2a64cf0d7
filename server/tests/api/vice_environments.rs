//! ViCE environments and deployments over HTTP: credentials kept secret
//! (encrypted, masked, never logged), deployments carried out by the job queue.

use reqwest::Method;
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{depot_serve, Backend, TestApp, ADMIN_PASSWORD};
use crate::vice::{iso_bytes, Vice};

/// The seed's `createEnvironment` example, with a password worth hiding.
pub(crate) fn seed_environment(password: &str) -> Value {
    json!({
        "credentials": {"password": password, "location": "aeiou", "username": "aeiou", "specifics": "{}"},
        "managementlayer": {"software": "aeiou", "type": "basic", "version": "aeiou"},
        "id": "aeiou",
        "title": "aeiou",
        "userid": "aeiou",
        "runtimetechnology": {"software": "aeiou", "type": "virtualmachine", "version": "aeiou"}
    })
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn environments_keep_their_credentials_secret(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;

    // createEnvironment, JSON: 201, password masked, ids assigned.
    let (status, created) = alice
        .json(
            Method::POST,
            "/environments",
            Some(&seed_environment("s3cret-pass")),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["userid"], alice_id.to_string());
    assert_eq!(created["credentials"]["password"], "********");
    assert_eq!(created["credentials"]["location"], "aeiou");
    assert_eq!(created["managementlayer"]["type"], "basic");
    assert_eq!(created["runtimetechnology"]["type"], "virtualmachine");
    assert!(!created.to_string().contains("s3cret-pass"));

    // Encrypted at rest; the core can still open it for a job.
    let id_number: i64 = id.parse().unwrap();
    let row = app.core.db().environment(id_number).await.unwrap().unwrap();
    let sealed = row.cred_password.clone().unwrap();
    assert!(!sealed.contains("s3cret-pass") && !sealed.contains(&hex_of("s3cret-pass")));
    assert_eq!(
        app.core
            .environment_password(id_number)
            .await
            .unwrap()
            .as_deref(),
        Some("s3cret-pass")
    );

    // XML both ways.
    let xml_body = "<Environment><credentials><password>xml-pass-9</password><location>file:///tmp/x</location>\
        <username>u</username><specifics>{}</specifics></credentials>\
        <managementlayer><software>k8s</software><type>containercluster</type><version>1</version></managementlayer>\
        <title>cluster</title>\
        <runtimetechnology><software>docker</software><type>container</type><version>2</version></runtimetechnology>\
        </Environment>";
    let (status, xml) = alice
        .xml(Method::POST, "/environments", Some(xml_body))
        .await;
    assert_eq!(status, 201, "{xml}");
    assert!(
        xml.contains("<Environment>") && xml.contains("<password>********</password>"),
        "{xml}"
    );
    assert!(!xml.contains("xml-pass-9"));

    // updateEnvironment: 201; a masked password keeps the stored one.
    let mut update = seed_environment("********");
    update["id"] = json!(id);
    update["title"] = json!("renamed");
    let (status, updated) = alice
        .json(Method::PUT, "/environments", Some(&update))
        .await;
    assert_eq!(status, 201, "{updated}");
    assert_eq!(updated["title"], "renamed");
    assert_eq!(
        app.core
            .environment_password(id_number)
            .await
            .unwrap()
            .as_deref(),
        Some("s3cret-pass")
    );
    update["credentials"]["password"] = json!("n3w-pass");
    assert_eq!(
        alice
            .json(Method::PUT, "/environments", Some(&update))
            .await
            .0,
        201
    );
    assert_eq!(
        app.core
            .environment_password(id_number)
            .await
            .unwrap()
            .as_deref(),
        Some("n3w-pass")
    );

    // findEnvironment with its filters; invalid input 405.
    let (_, all) = alice.json(Method::GET, "/environments", None).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (_, basic) = alice
        .json(
            Method::GET,
            "/environments?filterManagementlayer=basic",
            None,
        )
        .await;
    assert_eq!(basic.as_array().unwrap().len(), 1);
    let (_, containers) = alice
        .json(
            Method::GET,
            "/environments?filterRuntimetechnology=container",
            None,
        )
        .await;
    assert_eq!(containers[0]["title"], "cluster");
    assert_eq!(
        alice
            .json(
                Method::GET,
                "/environments?filterManagementlayer=grid",
                None
            )
            .await
            .1,
        json!([])
    );
    let mut wrong = seed_environment("x");
    wrong["runtimetechnology"]["type"] = json!("mainframe");
    let (status, error) = alice
        .json(Method::POST, "/environments", Some(&wrong))
        .await;
    assert_eq!(status, 405);
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("runtimetechnology.type"));

    // Nobody else reaches them.
    let path = format!("/environment/{id}");
    assert_eq!(bob.json(Method::GET, &path, None).await.0, 404);
    assert_eq!(bob.json(Method::DELETE, &path, None).await.0, 404);
    let (_, theirs) = bob.json(Method::GET, "/environments", None).await;
    assert_eq!(theirs, json!([]));
    update["credentials"]["password"] = json!("bobs-pass");
    assert_eq!(
        bob.json(Method::PUT, "/environments", Some(&update))
            .await
            .0,
        404
    );

    // deleteEnvironment: 200, then 404.
    let (status, got) = alice.json(Method::GET, &path, None).await;
    assert_eq!((status.as_u16(), &got["title"]), (200, &json!("renamed")));
    assert_eq!(alice.json(Method::DELETE, &path, None).await.0, 200);
    assert_eq!(alice.json(Method::GET, &path, None).await.0, 404);
}

/// An environment of `vice`'s user, as the seed's example; answers it.
async fn environment(vice: &Vice<'_>, password: &str) -> Value {
    let body = seed_environment(password);
    let (status, created) = vice.json(Method::POST, "/environments", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    created
}

/// An image of `vice`'s user naming `origin` as its origin environment.
async fn image_from(vice: &Vice<'_>, origin: &Value) -> Value {
    let body = json!({"title": "imported", "originEnvironment": {"id": origin["id"]}});
    let (status, image) = vice.json(Method::POST, "/images", Some(&body)).await;
    assert_eq!(status, 201, "{image}");
    image
}

/// The list's item with `image`'s id.
fn listed(list: &Value, image: &Value) -> Value {
    let items = list.as_array().unwrap().iter();
    items
        .clone()
        .find(|item| item["id"] == image["id"])
        .unwrap()
        .clone()
}

/// An image's `originEnvironment` is the whole environment, as the seed
/// shows it, to whoever may read that environment (its owner, an admin),
/// its password masked; to anyone else, and once it is deleted, only its id.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_images_origin_environment_is_whole_for_who_may_read_it(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let admin = Vice::new(&app, "admin", ADMIN_PASSWORD);
    let hers = environment(&alice, "origin-pass-1").await;
    let image = image_from(&alice, &hers).await;
    let path = format!("/image/{}", image["id"].as_str().unwrap());
    let whole = |image: &Value, environment: &Value| {
        let origin = &image["originEnvironment"];
        for field in ["id", "title", "userid", "credentials", "managementlayer"] {
            assert_eq!(origin[field], environment[field], "{field}: {image}");
        }
        assert_eq!(origin["credentials"]["password"], "********", "{image}");
        assert_eq!(origin["runtimetechnology"]["type"], "virtualmachine");
        assert!(!image.to_string().contains("-pass-"), "{image}");
    };
    whole(&image, &hers);
    whole(&alice.json(Method::GET, &path, None).await.1, &hers);
    whole(
        &listed(&alice.json(Method::GET, "/images", None).await.1, &image),
        &hers,
    );
    let (status, xml) = alice.xml(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{xml}");
    let origin = &xml[xml.find("<originEnvironment>").expect(&xml)..];
    for part in [
        "<password>********</password>",
        "<type>basic</type>",
        "<type>virtualmachine</type>",
        "<title>aeiou</title>",
    ] {
        assert!(origin.contains(part), "{part} in {xml}");
    }

    // Naming someone else's environment shows alice nothing of it, beside
    // her own shown whole in the same list; the admin reads both.
    let his = environment(&bob, "bobs-pass-22").await;
    let borrowed = image_from(&alice, &his).await;
    let only_his_id = json!({"id": his["id"]});
    assert_eq!(borrowed["originEnvironment"], only_his_id);
    let list = alice.json(Method::GET, "/images", None).await.1;
    whole(&listed(&list, &image), &hers);
    assert_eq!(listed(&list, &borrowed)["originEnvironment"], only_his_id);
    let list = admin.json(Method::GET, "/images", None).await.1;
    whole(&listed(&list, &image), &hers);
    whole(&listed(&list, &borrowed), &his);

    // Made public, alice's image is bob's to read, but not her environment.
    let admin_viewer =
        app::model::Viewer::User(app.core.login("admin", ADMIN_PASSWORD).await.unwrap());
    let stored = app
        .core
        .get_image(
            &admin_viewer,
            image["id"].as_str().unwrap().parse().unwrap(),
        )
        .await
        .unwrap();
    let edit = app::model::ImageEdit {
        name: stored.name.clone(),
        label: stored.label.clone(),
        description: stored.description.clone(),
        public: Some(true),
        version: stored.version,
    };
    app.core
        .edit_image(&admin_viewer, stored.id, edit)
        .await
        .unwrap();
    let (status, seen) = bob.json(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["originEnvironment"], json!({"id": hers["id"]}));

    // Deleted, it is only an id, even to its owner.
    let gone = format!("/environment/{}", hers["id"].as_str().unwrap());
    assert_eq!(alice.json(Method::DELETE, &gone, None).await.0, 200);
    let (_, image) = alice.json(Method::GET, &path, None).await;
    assert_eq!(image["originEnvironment"], json!({"id": hers["id"]}));
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn deployments_copy_into_allowed_folders_and_fail_elsewhere(#[case] backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("cloud");
    std::fs::create_dir(&allowed).unwrap();
    let export_root = root.path().to_path_buf();
    let app = TestApp::spawn_with(backend, move |args| args.export_root = Some(export_root)).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let bob = Vice::new(&app, "bob", "bob-password-1");

    let (_, image) = alice
        .json(
            Method::POST,
            "/images",
            Some(&json!({"title": "deploy me", "contenttype": "disk-raw"})),
        )
        .await;
    let image_id = image["id"].as_str().unwrap().to_owned();
    let bytes = iso_bytes(3 * 1024 * 1024);
    let form = reqwest::multipart::Form::new().part(
        "upfile",
        reqwest::multipart::Part::bytes(bytes.clone()).file_name("disk.iso"),
    );
    let uploaded = alice
        .request(Method::POST, &format!("/image/{image_id}/file"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 200);

    let environment = |location: String, management: &str| {
        let mut body = seed_environment("pw");
        body["credentials"]["location"] = json!(location);
        body["managementlayer"]["type"] = json!(management);
        body
    };
    let create = |body: Value| {
        let alice = &alice;
        async move {
            let (status, created) = alice.json(Method::POST, "/environments", Some(&body)).await;
            assert_eq!(status, 201, "{created}");
            created["id"].as_str().unwrap().to_owned()
        }
    };
    let inside = create(environment(
        format!("file://{}", allowed.display()),
        "basic",
    ))
    .await;
    let outside = create(environment("file:///tmp".into(), "basic")).await;
    let cloud = create(environment(
        "https://openstack.example:5000/v3".into(),
        "cloudcomputing",
    ))
    .await;

    // Into the allowed folder: recorded (201), then done with identical bytes.
    let (status, deployment) = alice
        .json(
            Method::POST,
            "/deploy",
            Some(&json!({"environmentId": inside, "imageid": image_id, "userid": "aeiou"})),
        )
        .await;
    assert_eq!(status, 201, "{deployment}");
    let id = deployment["id"].as_str().unwrap().to_owned();
    let done = wait_for_deployment(&alice, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(std::fs::read(allowed.join("deploy-me")).unwrap(), bytes);

    // A title with a control character: refused, naming the field, nothing recorded.
    let (status, error) = alice
        .json(
            Method::POST,
            "/deploy",
            Some(&json!({"environmentId": inside, "imageid": image_id, "title": "a\u{7}b"})),
        )
        .await;
    assert_eq!(status, 405, "{error}");
    assert!(
        error["message"].as_str().unwrap().starts_with("title "),
        "{error}"
    );
    let (_, listed) = alice.json(Method::GET, "/deployments", None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // Outside the export root: refused as invalid input.
    let (status, error) = alice
        .json(
            Method::POST,
            "/deploy",
            Some(&json!({"environmentId": outside, "imageid": image_id})),
        )
        .await;
    assert_eq!(status, 405, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("outside"),
        "{error}"
    );

    // Another kind of environment: recorded, its job fails with a reason (XML here).
    let body = format!(
        "<Deployment><imageid>{image_id}</imageid><environmentId>{cloud}</environmentId><title>to the cloud</title></Deployment>"
    );
    let (status, xml) = alice.xml(Method::POST, "/deploy", Some(&body)).await;
    assert_eq!(status, 201, "{xml}");
    assert!(xml.contains("<Deployment>"), "{xml}");
    let (_, list) = alice.json(Method::GET, "/deployments", None).await;
    let cloud_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|deployment| deployment["title"] == "to the cloud")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed = wait_for_deployment(&alice, &cloud_id).await;
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("target not supported"),
        "{failed}"
    );

    // Missing pieces and other users.
    assert_eq!(
        alice
            .json(
                Method::POST,
                "/deploy",
                Some(&json!({"environmentId": inside, "imageid": "424242"}))
            )
            .await
            .0,
        404
    );
    assert_eq!(
        alice
            .json(Method::POST, "/deploy", Some(&json!({"imageid": image_id})))
            .await
            .0,
        405
    );
    assert_eq!(
        bob.json(
            Method::POST,
            "/deploy",
            Some(&json!({"environmentId": inside, "imageid": image_id}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        bob.json(Method::GET, &format!("/deployment/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        bob.json(Method::GET, "/deployments", None).await.1,
        json!([])
    );
    assert_eq!(
        bob.json(Method::DELETE, &format!("/deployment/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        alice
            .json(Method::DELETE, &format!("/deployment/{id}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        alice
            .json(Method::GET, &format!("/deployment/{id}"), None)
            .await
            .0,
        404
    );
}

async fn wait_for_deployment(vice: &Vice<'_>, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, deployment) = vice
            .json(Method::GET, &format!("/deployment/{id}"), None)
            .await;
        assert_eq!(status, 200, "{deployment}");
        let state = deployment["state"].as_str().unwrap().to_owned();
        if state == "done" || state == "failed" || std::time::Instant::now() > deadline {
            return deployment;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The real binary, its log captured at debug level: no password sent to
/// it, in any request, shows up in a log line.
#[tokio::test(flavor = "multi_thread")]
async fn no_password_reaches_the_log() {
    use std::process::Stdio;

    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let (mut command, address) = depot_serve(&data.path().join("data"));
    let exports = data.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    let mut server = command
        .arg("--export-root")
        .arg(&exports)
        .env("DEPOT_ADMIN_PASSWORD", "admin-pass-xyz1")
        .env("DEPOT_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let base = format!("http://{address}/v1");
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    while client
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(
            started.elapsed().as_secs() < 30,
            "the server never listened"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let admin =
        |request: reqwest::RequestBuilder| request.basic_auth("admin", Some("admin-pass-xyz1"));
    let user = json!({"username": "carol", "password": "carol-pass-xyz2", "email": "c@x.org"});
    let status = admin(client.post(format!("{base}/user")).json(&user))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let wrong = client
        .get(format!("{base}/user"))
        .basic_auth("carol", Some("wrong-pass-xyz3"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let carol =
        |request: reqwest::RequestBuilder| request.basic_auth("carol", Some("carol-pass-xyz2"));
    let mut environment = seed_environment("env-pass-xyz4");
    environment["credentials"]["location"] = json!("https://cloud.example");
    let created: Value = carol(
        client
            .post(format!("{base}/environments"))
            .json(&environment),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    environment["id"] = created["id"].clone();
    environment["credentials"]["password"] = json!("env-pass-xyz5");
    let updated = carol(
        client
            .put(format!("{base}/environments"))
            .json(&environment),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(updated.status(), 201);
    let xml = "<Environment><credentials><password>env-pass-xyz6</password></credentials>\
        <managementlayer><type>basic</type></managementlayer>\
        <runtimetechnology><type>container</type></runtimetechnology></Environment>";
    let posted = carol(client.post(format!("{base}/environments")))
        .header("content-type", "application/xml")
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);
    let token: Value = client
        .post(format!("http://{address}/auth/request-token"))
        .basic_auth("carol", Some("carol-pass-xyz2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let listed = client
        .get(format!("{base}/environments"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listed.contains("env-pass"), "{listed}");

    server.kill().unwrap();
    server.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("listening"), "the log was not captured: {log}");
    for secret in [
        "admin-pass-xyz1",
        "carol-pass-xyz2",
        "wrong-pass-xyz3",
        "env-pass-xyz4",
        "env-pass-xyz5",
        "env-pass-xyz6",
        token.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}
