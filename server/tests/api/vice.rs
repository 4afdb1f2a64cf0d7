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

pub struct Vice<'a> {
    app: &'a TestApp,
    user: &'a str,
    password: &'a str,
    client: reqwest::Client,
}

impl<'a> Vice<'a> {
    pub fn new(app: &'a TestApp, user: &'a str, password: &'a str) -> Self {
        Self {
            app,
            user,
            password,
            client: reqwest::Client::new(),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.app.url(&format!("/v1{path}")))
            .basic_auth(self.user, Some(self.password))
    }

    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
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

    pub async fn xml(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, String) {
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

pub fn iso_bytes(len: usize) -> Vec<u8> {
    let mut bytes = random_bytes(len);
    bytes[0x8001..0x8006].copy_from_slice(b"CD001");
    bytes
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[case::shared(Backend::Shared)]
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
    // A change checked against the record as it was read writes nothing
    // once another change (an administrator publishing it, say) moved the
    // record on.
    let image_id: i64 = id.parse().unwrap();
    let read_at = app
        .core
        .db()
        .image(image_id)
        .await
        .unwrap()
        .unwrap()
        .version;
    changed["title"] = json!("renamed again");
    let (status, updated) = alice.json(Method::PUT, "/images", Some(&changed)).await;
    assert_eq!(status, 201, "{updated}");
    let stale = app::model::ViceImageSpec::parse(app::model::ViceImageDraft {
        title: Some("written over".into()),
        ..Default::default()
    })
    .unwrap();
    let now = chrono::Utc::now();
    let written = app
        .core
        .db()
        .update_vice(image_id, read_at, &stale, None, now);
    assert!(!written.await.unwrap(), "written over a newer version");
    changed["title"] = json!("renamed");
    let (status, updated) = alice.json(Method::PUT, "/images", Some(&changed)).await;
    assert_eq!(status, 201, "{updated}");

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
#[case::shared(Backend::Shared)]
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
#[case::shared(Backend::Shared)]
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
    // A control character in a profile is refused: stored, it made every
    // XML answer about the account one no parser reads.
    let (status, refused) = admin
        .json(
            Method::POST,
            "/user",
            Some(&json!({"username": "erin", "password": "erin-secret-1",
                "email": "e\u{1}@example.org", "fullname": "Erin"})),
        )
        .await;
    // ViCE's "invalid input".
    assert_eq!(status, 405, "{refused}");
    assert!(refused.to_string().contains("the email"), "{refused}");
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
    let (status, html) = app
        .page(Some(("admin", ADMIN_PASSWORD)), &format!("/image/{id}"))
        .await;
    assert_eq!(status, 200);
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

/// Two uploads of an image's file begun from the same bytes do not both
/// land: the one that finishes second would replace bytes the image no
/// longer has, and is refused with 409 (the image keeps the first's),
/// not laid silently over them.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn of_two_file_uploads_begun_together_the_second_to_finish_is_refused(
    #[case] backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    let (_, image) = alice
        .json(Method::POST, "/images", Some(&json!({"title": "media"})))
        .await;
    let file = format!("/image/{}/file", image["id"].as_str().unwrap());

    // The slow one: its first half, then nothing until the other lands.
    let slow = iso_bytes(80_000);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    }));
    let part = reqwest::multipart::Part::stream(body).file_name("slow.iso");
    let request = alice
        .request(Method::POST, &file)
        .multipart(reqwest::multipart::Form::new().part("upfile", part));
    let slow_upload = tokio::spawn(request.send());
    sender.send(Ok(slow[..40_000].to_vec())).await.unwrap();
    // Its bytes are being staged: it has read the image it replaces.
    let staging = app.data_dir.join("store").join("tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_dir(&staging).unwrap().next().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let quick = iso_bytes(60_000);
    let part = reqwest::multipart::Part::bytes(quick.clone()).file_name("quick.iso");
    let response = alice
        .request(Method::POST, &file)
        .multipart(reqwest::multipart::Form::new().part("upfile", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    sender.send(Ok(slow[40_000..].to_vec())).await.unwrap();
    drop(sender);
    let response = slow_upload.await.unwrap().unwrap();
    let status = response.status();
    let refusal = response.text().await.unwrap();
    assert_eq!(status, 409, "{refusal}");
    assert!(refusal.contains("nothing was replaced"), "{refusal}");
    let stored = alice.request(Method::GET, &file).send().await.unwrap();
    assert_eq!(stored.bytes().await.unwrap().as_ref(), quick.as_slice());
}
