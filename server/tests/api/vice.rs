//! The ViCE dialect over HTTP: images in JSON and XML, their files, users and
//! runtime statistics, with the seed's status codes.

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{random_bytes, Backend, TestApp, ADMIN_PASSWORD};

/// The seed's `createImage` example, as sent (ids included: they are ignored).
fn seed_image() -> Value {
    json!({
        "imagetype": "implicit",
        "imported": true,
        "originEnvironment": {
            "credentials": {"password": "aeiou", "location": "aeiou", "username": "aeiou", "specifics": "{}"},
            "managementlayer": {"software": "aeiou", "type": "basic", "version": "aeiou"},
            "id": "aeiou",
            "title": "aeiou",
            "userid": "aeiou",
            "runtimetechnology": {"software": "aeiou", "type": "virtualmachine", "version": "aeiou"}
        },
        "id": "aeiou",
        "title": "aeiou",
        "userid": "aeiou",
        "contenttype": "disk-raw",
        "environmentReference": "aeiou",
        "specifics": "{}"
    })
}

/// The same example in XML.
const SEED_IMAGE_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Image>
  <imagetype>implicit</imagetype>
  <imported>true</imported>
  <originEnvironment>
    <credentials><password>aeiou</password><location>aeiou</location><username>aeiou</username><specifics>{}</specifics></credentials>
    <managementlayer><software>aeiou</software><type>basic</type><version>aeiou</version></managementlayer>
    <id>aeiou</id><title>aeiou</title><userid>aeiou</userid>
    <runtimetechnology><software>aeiou</software><type>virtualmachine</type><version>aeiou</version></runtimetechnology>
  </originEnvironment>
  <id>aeiou</id>
  <title>aeiou</title>
  <userid>aeiou</userid>
  <contenttype>disk-raw</contenttype>
  <environmentReference>aeiou</environmentReference>
  <specifics>{}</specifics>
</Image>"#;

struct Vice<'a> {
    app: &'a TestApp,
    user: &'a str,
    password: &'a str,
    client: reqwest::Client,
}

impl<'a> Vice<'a> {
    fn new(app: &'a TestApp, user: &'a str, password: &'a str) -> Self {
        Self {
            app,
            user,
            password,
            client: reqwest::Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.app.url(&format!("/v1{path}")))
            .basic_auth(self.user, Some(self.password))
    }

    async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: {text}"));
        (status, value)
    }

    async fn xml(&self, method: Method, path: &str, body: Option<&str>) -> (StatusCode, String) {
        let mut request = self
            .request(method, path)
            .header("accept", "application/xml");
        if let Some(body) = body {
            request = request
                .header("content-type", "application/xml")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml"));
        (status, response.text().await.unwrap())
    }
}

fn iso_bytes(len: usize) -> Vec<u8> {
    let mut bytes = random_bytes(len);
    bytes[0x8001..0x8006].copy_from_slice(b"CD001");
    bytes
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn images_in_json_and_xml_with_the_seeds_status_codes(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let alice_id = app.core.login("alice", "alice-password").await.unwrap().id;

    // createImage, JSON: 201; the server assigns id and userid.
    let (status, image) = alice
        .json(Method::POST, "/images", Some(&seed_image()))
        .await;
    assert_eq!(status, 201, "{image}");
    let id = image["id"].as_str().unwrap().to_owned();
    assert!(id.parse::<i64>().is_ok());
    assert_eq!(image["userid"], alice_id.to_string());
    assert_eq!(image["imagetype"], "implicit");
    assert_eq!(image["contenttype"], "disk-raw");
    assert_eq!(image["imported"], true);
    assert_eq!(image["title"], "aeiou");
    assert_eq!(image["environmentReference"], "aeiou");
    assert_eq!(image["specifics"], "{}");
    assert_eq!(image["originEnvironment"]["id"], "aeiou");
    assert!(!image.to_string().contains("password"));

    // The same example in XML, answered in XML.
    let (status, xml) = alice
        .xml(Method::POST, "/images", Some(SEED_IMAGE_XML))
        .await;
    assert_eq!(status, 201, "{xml}");
    assert!(
        xml.contains("<Image>") && xml.contains("<contenttype>disk-raw</contenttype>"),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<userid>{alice_id}</userid>")),
        "{xml}"
    );
    assert!(!xml.contains("password"), "{xml}");

    // Both spellings, and specifics as an object.
    let (status, other) = alice
        .json(
            Method::POST,
            "/images",
            Some(&json!({"title": "packer", "image-type": "declarative",
                "content-type": "packerfile",
                "specifics": {"TenantName": "t", "Region": "r", "Domain": "d"}})),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    assert_eq!(other["imagetype"], "declarative");
    assert_eq!(other["contenttype"], "packerfile");
    let specifics: Value = serde_json::from_str(other["specifics"].as_str().unwrap()).unwrap();
    assert_eq!(specifics["TenantName"], "t");

    // Invalid input is 405 with the field named.
    for (body, field) in [
        (json!({"contenttype": "disk-iso"}), "contenttype"),
        (json!({"imagetype": "explicit"}), "imagetype"),
        (json!({"specifics": "[1]"}), "specifics"),
    ] {
        let (status, error) = alice.json(Method::POST, "/images", Some(&body)).await;
        assert_eq!(status, 405, "{body}");
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{error}"
        );
        assert_eq!(error["code"], 405);
    }
    let (status, error) = alice
        .xml(Method::POST, "/images", Some("<Image><title>"))
        .await;
    assert_eq!(status, 405, "{error}");
    assert!(error.contains("<Error>"), "{error}");

    // updateImage: 201, by the id in the body; no id 405; unknown 404.
    let mut changed = seed_image();
    changed["id"] = json!(id);
    changed["title"] = json!("renamed");
    let (status, updated) = alice.json(Method::PUT, "/images", Some(&changed)).await;
    assert_eq!(status, 201, "{updated}");
    assert_eq!(updated["title"], "renamed");
    assert_eq!(updated["id"], id.as_str());
    let (status, _) = alice
        .json(Method::PUT, "/images", Some(&seed_image()))
        .await;
    assert_eq!(status, 404, "the seed's id 'aeiou' names no image");
    let mut no_id = seed_image();
    no_id.as_object_mut().unwrap().remove("id");
    assert_eq!(
        alice.json(Method::PUT, "/images", Some(&no_id)).await.0,
        405
    );
    changed["id"] = json!("999999");
    assert_eq!(
        alice.json(Method::PUT, "/images", Some(&changed)).await.0,
        404
    );

    // getImage, in both formats; deleteImage 200, then 404.
    let (status, fetched) = alice.json(Method::GET, &format!("/image/{id}"), None).await;
    assert_eq!(
        (status.as_u16(), &fetched["title"]),
        (200, &json!("renamed"))
    );
    let (status, xml) = alice.xml(Method::GET, &format!("/image/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(xml.contains("<title>renamed</title>"), "{xml}");
    let (status, done) = alice
        .json(Method::DELETE, &format!("/image/{id}"), None)
        .await;
    assert_eq!((status.as_u16(), &done["code"]), (200, &json!(200)));
    let (status, error) = alice.json(Method::GET, &format!("/image/{id}"), None).await;
    assert_eq!(status, 404);
    assert!(!error["message"].as_str().unwrap().is_empty());
    assert_eq!(
        alice
            .json(Method::DELETE, &format!("/image/{id}"), None)
            .await
            .0,
        404
    );

    // Unauthenticated: 401 with a Basic challenge, except the image list.
    let anonymous = reqwest::Client::new()
        .get(app.url("/v1/image/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let listed: Value = reqwest::get(app.url("/v1/images"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "private images are not public");
    let (_, mine) = alice.json(Method::GET, "/images", None).await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let (status, xml) = alice.xml(Method::GET, "/images", None).await;
    assert_eq!(status, 200);
    assert!(xml.contains("<Images><Image>"), "{xml}");
    assert_eq!(alice.json(Method::PATCH, "/images", None).await.0, 405);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn files_stream_up_and_down_and_stay_their_owners(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let bob = Vice::new(&app, "bob", "bob-password-1");
    let (_, image) = alice
        .json(
            Method::POST,
            "/images",
            Some(&json!({"title": "install media"})),
        )
        .await;
    let id = image["id"].as_str().unwrap().to_owned();
    let file = format!("/image/{id}/file");

    // Without `upfile`: 400, and nothing stored.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![1, 2, 3]).file_name("x.iso"),
    );
    let response = alice
        .request(Method::POST, &file)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        alice
            .request(Method::GET, &file)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Several MB through `upfile`, back identical, and by range.
    let bytes = iso_bytes(6 * 1024 * 1024 + 17);
    let form = reqwest::multipart::Form::new().part(
        "upfile",
        reqwest::multipart::Part::bytes(bytes.clone()).file_name("media.iso"),
    );
    let response = alice
        .request(Method::POST, &file)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let uploaded: Value = response.json().await.unwrap();
    assert_eq!(uploaded["id"], id.as_str());
    let response = alice.request(Method::GET, &file).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(response.headers().contains_key("content-disposition"));
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let ranged = alice
        .request(Method::GET, &file)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &bytes[1000..2000]);
    assert_eq!(etag.len(), 66);

    // Bob can neither read nor replace alice's file.
    assert_eq!(
        bob.request(Method::GET, &file)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let form = reqwest::multipart::Form::new().part(
        "upfile",
        reqwest::multipart::Part::bytes(vec![0u8; 10]).file_name("evil.img"),
    );
    assert_eq!(
        bob.request(Method::POST, &file)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        bob.json(Method::GET, &format!("/image/{id}"), None).await.0,
        404
    );
    assert_eq!(
        bob.json(Method::DELETE, &format!("/image/{id}"), None)
            .await
            .0,
        404
    );

    // A disk uploaded the browser's way is a ViCE image too.
    let uploaded: Value = app
        .upload("alice", "alice-password", "browser.iso", iso_bytes(50_000))
        .await
        .json()
        .await
        .unwrap();
    let browser_id = uploaded["images"][0]["id"].as_i64().unwrap();
    let response = alice
        .request(Method::GET, &format!("/image/{browser_id}/file"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 50_000);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn users_and_runtime_stats(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = Vice::new(&app, "admin", ADMIN_PASSWORD);

    // createUser (admins): 200, a real account, never a password in the answer.
    let (status, user) = admin
        .json(
            Method::POST,
            "/user",
            Some(
                &json!({"id": "aeiou", "username": "carol", "password": "carol-secret-1",
                "email": "carol@example.org", "fullname": "Carol C"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["username"], "carol");
    assert_eq!(user["email"], "carol@example.org");
    assert_eq!(user["fullname"], "Carol C");
    assert_ne!(user["id"], "aeiou");
    assert!(user.get("password").is_none() && !user.to_string().contains("carol-secret-1"));
    let carol = Vice::new(&app, "carol", "carol-secret-1");
    let (status, me) = carol.json(Method::GET, "/user", None).await;
    assert_eq!((status.as_u16(), &me["username"]), (200, &json!("carol")));
    // Not for others; XML works too.
    let (status, _) = carol
        .json(
            Method::POST,
            "/user",
            Some(&json!({"username": "x", "password": "xxxxxxxxx"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, xml) = admin
        .xml(
            Method::POST,
            "/user",
            Some("<User><username>dave</username><password>dave-secret-1</password><email>d@e.org</email><fullname>Dave</fullname></User>"),
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<User>") && xml.contains("<username>dave</username>"),
        "{xml}"
    );
    assert!(!xml.contains("dave-secret-1"));
    let (status, _) = admin
        .json(
            Method::POST,
            "/user",
            Some(&json!({"username": "eve", "password": "short"})),
        )
        .await;
    assert_eq!(status, 405);

    // getRuntimeStats: the queue's true figures.
    let (status, stats) = admin.json(Method::GET, "/runtimestats", None).await;
    assert_eq!(status, 200);
    for key in [
        "importsPending",
        "importWorker",
        "exportsPending",
        "exportWorker",
        "storePending",
        "storeWorker",
    ] {
        assert!(stats[key].is_i64(), "{key} in {stats}");
    }
    assert_eq!(stats["importWorker"], 2);
    assert_eq!(stats["importsPending"], 0);
    let (_, xml) = admin.xml(Method::GET, "/runtimestats", None).await;
    assert!(xml.contains("<RuntimeStats>"), "{xml}");
    let anonymous = reqwest::get(app.url("/v1/runtimestats")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// The seed's `createEnvironment` example, with a password worth hiding.
fn seed_environment(password: &str) -> Value {
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
            .0,
        405
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
    use std::process::{Command, Stdio};

    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_depot"))
        .args(["serve", "--bind", &address, "--data-dir"])
        .arg(data.path().join("data"))
        .arg("--export-root")
        .arg(data.path())
        .env("DEPOT_ADMIN_PASSWORD", "admin-pass-xyz1")
        .env("DEPOT_LOG", "debug")
        .env_remove("DEPOT_DATABASE_URL")
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

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn the_image_page_shows_the_vice_fields(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = Vice::new(&app, "admin", ADMIN_PASSWORD);
    let (_, image) = admin
        .json(
            Method::POST,
            "/images",
            Some(
                &json!({"title": "Packer recipe", "imagetype": "declarative",
                "contenttype": "packerfile", "environmentReference": "ref-42",
                "specifics": {"Region": "eu-1"}}),
            ),
        )
        .await;
    let id = image["id"].as_str().unwrap();
    let page = reqwest::Client::new()
        .get(app.url(&format!("/image/{id}")))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap().replace("<!>", "");
    for expected in [
        "ViCE registry",
        "Packer recipe",
        "declarative",
        "ref-42",
        "eu-1",
    ] {
        assert!(html.contains(expected), "{expected} missing from the page");
    }
    assert!(html.contains(&format!("/mws/rest/images/{id}?api-version=3")));
}
