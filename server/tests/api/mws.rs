//! The MWS dialect over HTTP: the seed's examples, every creation rule,
//! api-version, credentials and methods (the query language: `mws_query.rs`).

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};

/// A client of `/mws/rest` acting as one user, with a bearer token.
pub struct Mws<'a> {
    app: &'a TestApp,
    token: String,
    client: reqwest::Client,
}

impl<'a> Mws<'a> {
    pub async fn new(app: &'a TestApp, user: &str, password: &str) -> Self {
        let principal = app.core.login(user, password).await.unwrap();
        let token = app.core.issue_token(&principal, None).await.unwrap().token;
        Self {
            app,
            token,
            client: reqwest::Client::new(),
        }
    }

    /// A request with `api-version=3` and `params` in the query string.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.app.url(path))
            .query(&[("api-version", "3")])
            .query(params)
            .bearer_auth(&self.token)
    }

    pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, body)
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> (StatusCode, Value) {
        Self::send(self.request(Method::GET, path, params)).await
    }

    pub async fn post(&self, body: &Value) -> (StatusCode, Value) {
        Self::send(
            self.request(Method::POST, "/mws/rest/images", &[])
                .json(body),
        )
        .await
    }

    pub async fn put(&self, key: &str, body: &Value) -> (StatusCode, Value) {
        let path = format!("/mws/rest/images/{key}");
        Self::send(self.request(Method::PUT, &path, &[]).json(body)).await
    }

    pub async fn delete(&self, key: &str) -> (StatusCode, Value) {
        let path = format!("/mws/rest/images/{key}");
        Self::send(self.request(Method::DELETE, &path, &[])).await
    }

    pub async fn image(&self, key: &str) -> (StatusCode, Value) {
        self.get(&format!("/mws/rest/images/{key}"), &[]).await
    }

    /// The names a query finds, in the order given.
    pub async fn names(&self, params: &[(&str, &str)]) -> Vec<String> {
        let (status, body) = self.get("/mws/rest/images", params).await;
        assert_eq!(status, 200, "{params:?}: {body}");
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|image| image["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The body "Get Single Image" shows, with the id the server gave.
fn without_id(mut image: Value) -> Value {
    image.as_object_mut().unwrap().remove("id");
    image
}

pub fn messages(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages in {body}"))
        .iter()
        .map(|message| message.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn every_seed_example_is_accepted_and_reads_back_as_documented(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;

    // "The most basic image that can be created".
    let basic = json!({"name": "centos5-stateful", "osType": "linux", "hypervisor": false,
        "supportsVirtualMachine": true});
    let response = mws
        .request(Method::POST, "/mws/rest/images", &[])
        .json(&basic)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let basic_id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/mws/rest/images/{basic_id}"));
    let (status, fetched) = mws.get(&location, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);
    assert_eq!(
        without_id(created),
        json!({"active": true, "extensions": {}, "features": [], "hypervisor": false,
            "hypervisorType": null, "name": "centos5-stateful", "osType": "linux",
            "supportsPhysicalMachine": false, "supportsVirtualMachine": true,
            "templateName": null, "type": "stateful", "version": 0, "virtualizedImages": []})
    );

    // "xCAT Virtual Machine Image" reads back as the seed's "Virtual machine
    // image example" of Get Single Image, key for key.
    let xcat_vm = json!({"active": true, "features": [], "hypervisor": false,
        "name": "centos5-compute-stateful", "osType": "linux", "type": "stateful",
        "supportsVirtualMachine": true, "extensions": {"xcat": {"os": "centos",
        "architecture": "x86_64", "profile": "compute"}}});
    let (status, created) = mws.post(&xcat_vm).await;
    assert_eq!(status, 201, "{created}");
    let vm_id = created["id"].as_str().unwrap().to_owned();
    let (status, by_name) = mws.image("centos5-compute-stateful").await;
    assert_eq!(status, 200);
    assert_eq!(
        without_id(by_name),
        json!({"active": true, "extensions": {"xcat": {"os": "centos",
            "architecture": "x86_64", "profile": "compute"}}, "features": [],
            "hypervisor": false, "hypervisorType": null, "name": "centos5-compute-stateful",
            "osType": "linux", "supportsPhysicalMachine": false,
            "supportsVirtualMachine": true, "templateName": null, "type": "stateful",
            "version": 0, "virtualizedImages": []})
    );

    // The PUT example, by name: the version moves on.
    let (status, modified) = mws
        .put(
            "centos5-stateful",
            &json!({"name": "centos5-stateful", "type": "stateful", "hypervisor": false,
                "osType": "linux", "virtualizedImages": []}),
        )
        .await;
    assert_eq!(status, 200, "{modified}");
    assert_eq!(modified["version"], 1);
    assert_eq!(modified["id"], basic_id.as_str());

    // "Example payload of hypervisor with 2 vms": one by id, one by name. The
    // seed's id is a MongoDB one; Depot's ids are its own, so the test sends
    // the id the server gave the xCAT VM.
    let hypervisor = json!({"hypervisor": true, "name": "esx5-stateful", "osType": "linux",
        "supportsPhysicalMachine": true, "type": "stateful", "hypervisorType": "ESX",
        "virtualizedImages": [{"id": vm_id}, {"name": "centos5-stateful"}]});
    let (status, created) = mws.post(&hypervisor).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["hypervisorType"], "ESX");
    assert_eq!(
        created["virtualizedImages"],
        json!([{"id": basic_id, "name": "centos5-stateful"},
               {"id": vm_id, "name": "centos5-compute-stateful"}])
    );
    // A create answers the record as stored, links and all: a read agrees.
    let (status, read) = mws.image(created["id"].as_str().unwrap()).await;
    assert_eq!((status, read), (StatusCode::OK, created.clone()));

    // The DELETE example answers {}; the hypervisor no longer lists the image.
    let (status, deleted) = mws.delete("centos5-compute-stateful").await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({})));
    let (status, gone) = mws.image(&vm_id).await;
    assert_eq!(status, 404, "{gone}");
    assert!(messages(&gone).contains("not found"));
    let (_, esx) = mws.image("esx5-stateful").await;
    assert_eq!(
        esx["virtualizedImages"],
        json!([{"id": basic_id, "name": "centos5-stateful"}])
    );

    // "VM Utilizing a Cloned Template" (its name is free again).
    let linked = json!({"active": true, "hypervisor": false, "name": "centos5-compute-stateful",
        "osType": "linux", "type": "linkedclone", "supportsVirtualMachine": true,
        "templateName": "centos5-compute"});
    let (status, created) = mws.post(&linked).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["templateName"], "centos5-compute");
    assert_eq!(created["type"], "linkedclone");

    // "xCAT Hypervisor Image", whose VM must exist first.
    let stateless = json!({"name": "centos5-compute-stateless", "osType": "linux",
        "hypervisor": false, "supportsVirtualMachine": true, "type": "stateless"});
    assert_eq!(mws.post(&stateless).await.0, 201);
    let xcat_hypervisor = json!({"active": true, "features": [], "hypervisor": true,
        "name": "esxi5-base-stateless", "osType": "linux",
        "virtualizedImages": [{"name": "centos5-compute-stateless"}], "type": "stateless",
        "hypervisorType": "ESX", "supportsPhysicalMachine": true, "extensions": {"xcat": {
        "os": "esxi5", "architecture": "x86_64", "profile": "base", "hvType": "esx",
        "hvGroupName": "esx5hv", "vmGroupName": "esx5vm"}}});
    let (status, created) = mws.post(&xcat_hypervisor).await;
    assert_eq!(status, 201, "{created}");
    let (_, fetched) = mws.image("esxi5-base-stateless").await;
    assert_eq!(fetched["extensions"], xcat_hypervisor["extensions"]);
    assert_eq!(fetched["supportsPhysicalMachine"], true);
    assert_eq!(
        fetched["virtualizedImages"][0]["name"],
        "centos5-compute-stateless"
    );

    // "GET …/images?api-version=3&fields=id,name": only those keys.
    let (status, list) = mws.get("/mws/rest/images", &[("fields", "id,name")]).await;
    assert_eq!(status, 200);
    assert_eq!(list["totalCount"], 5);
    assert_eq!(list["resultCount"], 5);
    for image in list["results"].as_array().unwrap() {
        let keys: Vec<&String> = image.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "name"], "{image}");
        assert!(image["id"].is_string());
    }
    // The whole list shows each image as Get Single Image does, key for key.
    let (status, list) = mws.get("/mws/rest/images", &[]).await;
    assert_eq!(status, 200);
    for listed in list["results"].as_array().unwrap() {
        let (status, single) = mws.image(listed["id"].as_str().unwrap()).await;
        assert_eq!((status, listed), (StatusCode::OK, &single));
    }

    // The query and sort of the quick reference.
    let names = mws
        .names(&[
            ("query", r#"{"type":"stateful","osType":"linux"}"#),
            ("sort", r#"{"name":-1}"#),
        ])
        .await;
    assert_eq!(names, ["esx5-stateful", "centos5-stateful"]);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn each_creation_rule_is_enforced_with_a_message(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    let valid = json!({"name": "base", "osType": "linux", "hypervisor": false,
        "supportsVirtualMachine": true});
    assert_eq!(mws.post(&valid).await.0, 201);

    let with = |changes: Value| {
        let mut body = valid.clone();
        for (key, value) in changes.as_object().unwrap() {
            if value == &json!("<absent>") {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        body
    };
    let cases = [
        (with(json!({"name": "<absent>"})), 400, "name is required"),
        (with(json!({"name": "bad name/x"})), 400, "may contain only"),
        (
            with(json!({"osType": "<absent>"})),
            400,
            "osType is required",
        ),
        (
            with(json!({"name": "n1", "hypervisor": "<absent>"})),
            400,
            "hypervisor is required",
        ),
        (
            with(json!({"name": "n2", "supportsVirtualMachine": false})),
            400,
            "supportsPhysicalMachine or",
        ),
        (
            with(json!({"name": "n3", "hypervisor": true})),
            400,
            "hypervisorType is required",
        ),
        (
            with(json!({"name": "n4", "virtualizedImages": [{"name": "base"}]})),
            400,
            "only on a hypervisor",
        ),
        (
            with(
                json!({"name": "n5", "hypervisor": true, "hypervisorType": "KVM",
            "supportsPhysicalMachine": true, "virtualizedImages": [{"name": "nope"}]}),
            ),
            400,
            "no image with name 'nope'",
        ),
        (
            with(
                json!({"name": "n6", "hypervisor": true, "hypervisorType": "KVM",
            "supportsPhysicalMachine": true, "virtualizedImages": [{"id": "99999"}]}),
            ),
            400,
            "no image with id '99999'",
        ),
        (
            with(json!({"name": "n7", "templateName": "t"})),
            400,
            "only when type is linkedclone",
        ),
        (
            with(json!({"name": "n8", "type": "ephemeral"})),
            400,
            "is not one of",
        ),
        (
            with(
                json!({"name": "n9", "extensions": {"xcat": {"os": "c", "architecture": "x",
            "profile": "p"}, "other": {}}}),
            ),
            400,
            "at most one",
        ),
        (
            with(json!({"name": "n10", "extensions": {"xcat": {"os": "c", "architecture": "x"}}})),
            400,
            "extensions.xcat.profile is required",
        ),
        (
            with(json!({"name": "n11", "owner": "root"})),
            400,
            "unknown field",
        ),
        (
            with(json!({"name": "n12", "hypervisor": "no"})),
            400,
            "invalid type",
        ),
        (with(json!({})), 409, "already exists"),
    ];
    for (body, status, message) in cases {
        let (got, answer) = mws.post(&body).await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        assert!(messages(&answer).contains(message), "{body}: {answer}");
    }
    let malformed = mws
        .request(Method::POST, "/mws/rest/images", &[])
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // Nothing of the refused requests was stored.
    let (_, list) = mws.get("/mws/rest/images", &[]).await;
    assert_eq!(list["totalCount"], 1);

    // A PUT is checked against the same rules, after merging.
    let (status, answer) = mws.put("base", &json!({"templateName": "t"})).await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = mws.put("base", &json!({"name": "renamed"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["name"], "renamed");
}

/// Creates of one name, and renames to it, all sent at once: the name is
/// checked as the record is written, so exactly one of them gets it and
/// every other hears 409. Another user's private image of that name is out
/// of the caller's sight and does not stop them; an administrator, who reads
/// both, cannot create a third.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn a_name_raced_for_is_taken_once(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password-1").await;
    app.add_user("bob", "bob-password-1").await;
    let alice = Mws::new(&app, "alice", "alice-password-1").await;
    let bob = Mws::new(&app, "bob", "bob-password-1").await;
    let admin = Mws::new(&app, "admin", ADMIN_PASSWORD).await;
    let image = |name: &str| {
        json!({"name": name, "osType": "linux", "hypervisor": false,
            "supportsVirtualMachine": true})
    };
    let mut drafts = Vec::new();
    for n in 0..8 {
        let (status, body) = alice.post(&image(&format!("draft-{n}"))).await;
        assert_eq!(status, 201, "{body}");
        drafts.push(body["id"].as_str().unwrap().to_owned());
    }
    let (status, body) = bob.post(&image("raced-0")).await;
    assert_eq!(status, 201, "bob's private image: {body}");

    for round in 0..3 {
        let name = format!("raced-{round}");
        let created = image(&name);
        let renamed = json!({ "name": name });
        let creates = (0..16).map(|_| alice.post(&created));
        let renames = drafts.iter().map(|key| alice.put(key, &renamed));
        let (created, renamed) = tokio::join!(
            futures_util::future::join_all(creates),
            futures_util::future::join_all(renames)
        );
        let answers: Vec<_> = created.into_iter().chain(renamed).collect();
        let won = answers
            .iter()
            .filter(|(status, _)| status.is_success())
            .count();
        assert_eq!(won, 1, "round {round}: {answers:?}");
        for (status, body) in &answers {
            if !status.is_success() {
                assert_eq!(*status, 409, "round {round}: {body}");
                assert!(messages(body).contains("already exists"), "{body}");
            }
        }
        let names = alice.names(&[("max", "100")]).await;
        let holders = names.iter().filter(|held| **held == name).count();
        assert_eq!(holders, 1, "round {round}: alice reads {names:?}");
    }
    let (status, body) = admin.post(&image("raced-0")).await;
    assert_eq!(status, 409, "the administrator reads both: {body}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn api_version_credentials_and_methods_are_checked(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::new();
    let url = app.url("/mws/rest/images");
    let mws = Mws::new(&app, "admin", ADMIN_PASSWORD).await;

    let no_version = client
        .get(&url)
        .bearer_auth(&mws.token)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status(), 400);
    let body: Value = no_version.json().await.unwrap();
    assert!(messages(&body).contains("api-version"));
    let old = client
        .get(format!("{url}?api-version=2"))
        .bearer_auth(&mws.token)
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 400);
    let latest = client
        .get(format!("{url}?api-version=latest"))
        .bearer_auth(&mws.token)
        .send()
        .await
        .unwrap();
    assert_eq!(latest.status(), 200);

    let anonymous = client
        .get(format!("{url}?api-version=3"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let body: Value = anonymous.json().await.unwrap();
    assert!(!messages(&body).is_empty());
    let wrong_password = client
        .get(format!("{url}?api-version=3"))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_password.status(), 401);
    let with_password = client
        .get(format!("{url}?api-version=3"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(with_password.status(), 200);

    let (status, body) = Mws::send(mws.request(Method::PATCH, "/mws/rest/images", &[])).await;
    assert_eq!(status, 405);
    assert!(messages(&body).contains("PATCH"));
    let (status, body) = mws.get("/mws/rest/images/nothing-here", &[]).await;
    assert_eq!(status, 404);
    assert!(messages(&body).contains("nothing-here"));
    let (status, _) = mws.get("/mws/rest/images", &[("max", "abc")]).await;
    assert_eq!(status, 400);
}
