//! The Coopr dialect over HTTP: the seed's curl examples, every status code,
//! the three headers, and tenants that never see each other's image types.

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};

/// A Coopr client: the three headers of one key.
pub(crate) struct Coopr {
    base: String,
    user: String,
    tenant: String,
    key: String,
    client: reqwest::Client,
}

impl Coopr {
    pub(crate) async fn new(app: &TestApp, user: &str, tenant: &str) -> Self {
        let issued = app.core.issue_api_key(user, tenant).await.unwrap();
        Self {
            base: app.url("/v2"),
            user: user.into(),
            tenant: tenant.into(),
            key: issued.key,
            client: reqwest::Client::new(),
        }
    }

    /// The same key presented with other headers.
    fn with(&self, user: &str, tenant: &str, key: &str) -> Self {
        Self {
            base: self.base.clone(),
            user: user.into(),
            tenant: tenant.into(),
            key: key.into(),
            client: self.client.clone(),
        }
    }

    /// A request as curl sends it: `-d` posts with a form content type.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("Coopr-UserID", &self.user)
            .header("Coopr-TenantID", &self.tenant)
            .header("Coopr-ApiKey", &self.key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

const CREATE: &str = r#"{"name":"small.example", "description":"Example 1 vCPU, 1 GB RAM, 30+ GB Disk", "providermap": {"openstack": {"flavor":"m1.small"}}}"#;
const UPDATE: &str = r#"{"name":"small.example", "description":"New Example 1 vCPU, 1 GB RAM, 30+ GB Disk",
            "providermap": {"openstack": {"flavor":"m1.small"},"aws":{"flavor":"aws.small"}}}"#;

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_seed_examples_answer_as_documented(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let coopr = Coopr::new(&app, "admin", "acme").await;

    let (status, created) = coopr.call(Method::POST, "/imagetypes", Some(CREATE)).await;
    assert_eq!(status, 200, "{created}");

    let (status, viewed) = coopr
        .call(Method::GET, "/imagetypes/small.example", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&viewed),
        json(
            r#"{"name":"small.example","description":"Example 1 vCPU, 1 GB RAM, 30+ GB Disk","providermap":{"openstack":{"flavor":"m1.small"}}}"#
        )
    );

    let (status, _) = coopr
        .call(Method::PUT, "/imagetypes/small.example", Some(UPDATE))
        .await;
    assert_eq!(status, 200);
    let (status, viewed) = coopr
        .call(Method::GET, "/imagetypes/small.example", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        json(&viewed),
        json(
            r#"{"name":"small.example","description":"New Example 1 vCPU, 1 GB RAM, 30+ GB Disk",
            "providermap":{"openstack":{"flavor":"m1.small"},"aws":{"flavor":"aws.small"}}}"#
        )
    );

    let (status, listed) = coopr.call(Method::GET, "/imagetypes", None).await;
    assert_eq!(status, 200);
    assert_eq!(json(&listed), json!([json(&viewed)]));

    // The delete example names "example": absent here, then present.
    let (status, body) = coopr
        .call(Method::DELETE, "/imagetypes/example", None)
        .await;
    assert_eq!(status, 404, "{body}");
    let example = r#"{"name":"example","description":"d","providermap":{}}"#;
    assert_eq!(
        coopr
            .call(Method::POST, "/imagetypes", Some(example))
            .await
            .0,
        200
    );
    assert_eq!(
        coopr
            .call(Method::DELETE, "/imagetypes/example", None)
            .await
            .0,
        200
    );
    assert_eq!(
        coopr.call(Method::GET, "/imagetypes/example", None).await.0,
        404
    );
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn every_documented_status_code(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let coopr = Coopr::new(&app, "admin", "acme").await;
    assert_eq!(
        coopr
            .call(Method::POST, "/imagetypes", Some(CREATE))
            .await
            .0,
        200
    );

    let cases = [
        (
            Method::POST,
            "/imagetypes",
            Some(CREATE),
            400,
            "already exists",
        ),
        (
            Method::POST,
            "/imagetypes",
            Some(r#"{"name":"bad name","description":"d","providermap":{}}"#),
            400,
            "may contain only",
        ),
        (
            Method::POST,
            "/imagetypes",
            Some(r#"{"name":"x","providermap":{}}"#),
            400,
            "description is required",
        ),
        (
            Method::POST,
            "/imagetypes",
            Some(r#"{"name":"x","description":"d"}"#),
            400,
            "providermap is required",
        ),
        (
            Method::POST,
            "/imagetypes",
            Some(r#"{"name":"x","description":"d","providermap":{"a":"b"}}"#),
            400,
            "must be an object",
        ),
        (
            Method::POST,
            "/imagetypes",
            Some("name=x"),
            400,
            "not valid JSON",
        ),
        (Method::GET, "/imagetypes/absent", None, 404, "not found"),
        (
            Method::PUT,
            "/imagetypes/small.example",
            Some(r#"{"name":"small.example","providermap":{}}"#),
            400,
            "description is required",
        ),
        (
            Method::PUT,
            "/imagetypes/absent",
            Some(r#"{"name":"absent","description":"d","providermap":{}}"#),
            400,
            "does not exist",
        ),
        (
            Method::PUT,
            "/imagetypes/small.example",
            Some(r#"{"name":"other","description":"d","providermap":{}}"#),
            400,
            "URL names",
        ),
        (Method::DELETE, "/imagetypes/absent", None, 404, "not found"),
        (Method::PATCH, "/imagetypes", None, 405, "PATCH"),
        // The seed's "resource uri specified incorrectly": the list takes no parameters.
        (
            Method::GET,
            "/imagetypes?name=small.example",
            None,
            400,
            "no query parameters",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let (got, text) = coopr.call(method.clone(), path, body).await;
        assert_eq!(got.as_u16(), status, "{method} {path} {body:?}: {text}");
        let answer = json(&text);
        assert_eq!(answer["status"], status);
        assert!(
            answer["message"].as_str().unwrap().contains(message),
            "{text}"
        );
    }
    // The failed writes changed nothing.
    let (_, listed) = coopr.call(Method::GET, "/imagetypes", None).await;
    assert_eq!(json(&listed).as_array().unwrap().len(), 1);
    let (_, viewed) = coopr
        .call(Method::GET, "/imagetypes/small.example", None)
        .await;
    assert_eq!(json(&viewed), json(CREATE));
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn the_three_headers_are_checked_together(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let admin = Coopr::new(&app, "admin", "acme").await;
    let alice = Coopr::new(&app, "alice", "acme").await;
    let elsewhere = Coopr::new(&app, "admin", "globex").await;

    let forged = [
        admin.with("admin", "acme", "cpr_wrong"),
        admin.with("alice", "acme", &admin.key),
        admin.with("admin", "globex", &admin.key),
        admin.with("admin", "acme", &alice.key),
        admin.with("admin", "acme", &elsewhere.key),
        admin.with("", "acme", &admin.key),
        admin.with("admin", "acme", ""),
    ];
    for coopr in forged {
        let (status, text) = coopr.call(Method::GET, "/imagetypes", None).await;
        assert_eq!(status, 401, "{} {} {}", coopr.user, coopr.tenant, coopr.key);
        assert_eq!(json(&text)["status"], 401);
    }
    let bare = reqwest::get(app.url("/v2/imagetypes")).await.unwrap();
    assert_eq!(bare.status(), 401);
    assert_eq!(admin.call(Method::GET, "/imagetypes", None).await.0, 200);
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn tenants_never_see_each_others_image_types(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password-1").await;
    let acme_alice = Coopr::new(&app, "alice", "acme").await;
    let acme_admin = Coopr::new(&app, "admin", "acme").await;
    let globex_bob = Coopr::new(&app, "bob", "globex").await;

    assert_eq!(
        acme_alice
            .call(Method::POST, "/imagetypes", Some(CREATE))
            .await
            .0,
        200
    );
    // Members of one tenant share its image types.
    assert_eq!(
        acme_admin
            .call(Method::GET, "/imagetypes/small.example", None)
            .await
            .0,
        200
    );
    // Another tenant sees nothing and can touch nothing.
    let (_, listed) = globex_bob.call(Method::GET, "/imagetypes", None).await;
    assert_eq!(json(&listed), json!([]));
    assert_eq!(
        globex_bob
            .call(Method::GET, "/imagetypes/small.example", None)
            .await
            .0,
        404
    );
    assert_eq!(
        globex_bob
            .call(Method::PUT, "/imagetypes/small.example", Some(UPDATE))
            .await
            .0,
        400
    );
    assert_eq!(
        globex_bob
            .call(Method::DELETE, "/imagetypes/small.example", None)
            .await
            .0,
        404
    );
    // It may use the same name for its own type, independently.
    assert_eq!(
        globex_bob
            .call(Method::POST, "/imagetypes", Some(UPDATE))
            .await
            .0,
        200
    );
    let (_, ours) = acme_alice
        .call(Method::GET, "/imagetypes/small.example", None)
        .await;
    assert_eq!(json(&ours), json(CREATE));
}
