//! Every API path answers in its dialect: unknown paths under `/v1`, `/v2`,
//! `/mws` and `/api` are that dialect's 404 (never the UI's page), the VSS
//! parent `/v2/user/image` exists, and a ViCE type filter that names no type
//! is an empty list.

use reqwest::{Method, StatusCode};
use rstest::rstest;
use serde_json::{json, Value};

use crate::helpers::{random_bytes, Backend, TestApp};
use crate::vice::Vice;

/// The status, content type and body of an answer.
async fn send(request: reqwest::RequestBuilder) -> (StatusCode, String, String) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

/// A 404 in JSON, not the UI's HTML page: its body.
async fn json_not_found(request: reqwest::RequestBuilder, what: &str) -> Value {
    let (status, content_type, body) = send(request).await;
    assert_eq!(status, 404, "{what}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {content_type}"
    );
    assert!(
        !body.to_ascii_lowercase().contains("<html"),
        "{what}: {body}"
    );
    serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: not JSON: {body}"))
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn unknown_paths_answer_in_their_dialect(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let token = app.vss_token("alice", "alice-password").await;
    let client = reqwest::Client::new();
    let call =
        |method: Method, path: &str| client.request(method, app.url(path)).bearer_auth(&token);

    // ViCE: `{"code", "message"}`, whatever the method and depth.
    for (method, path) in [
        (Method::GET, "/v1/nothing"),
        (Method::POST, "/v1/images/extra"),
        (Method::DELETE, "/v1/image/1/file/more"),
        (Method::PUT, "/v1/environment/1/deeper/still"),
    ] {
        let what = format!("{method} {path}");
        let body = json_not_found(call(method, path), &what).await;
        assert_eq!(body["code"], 404, "{what}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(path),
            "{what}: {body}"
        );
    }
    // ... without credentials too (nothing there to protect), and in XML.
    let anonymous = json_not_found(client.get(app.url("/v1/nothing")), "anonymous").await;
    assert_eq!(anonymous["code"], 404);
    let (status, content_type, xml) =
        send(call(Method::GET, "/v1/nothing").header("accept", "application/xml")).await;
    assert_eq!(status, 404, "{xml}");
    assert!(
        content_type.starts_with("application/xml"),
        "{content_type}"
    );
    assert!(
        xml.contains("<Error>") && xml.contains("<code>404</code>"),
        "{xml}"
    );
    // The real routes still answer.
    let (status, _, _) = send(call(Method::GET, "/v1/images")).await;
    assert_eq!(status, 200);

    // VSS: `{"status", "error", "message"}`.
    for (method, path) in [
        (Method::GET, "/v2/nothing"),
        (Method::PATCH, "/v2/image/1/extra"),
        (Method::POST, "/v2/user/image/vm/extra"),
        (Method::GET, "/v2/request/image_sync/1/deeper"),
    ] {
        let what = format!("{method} {path}");
        let body = json_not_found(call(method, path), &what).await;
        assert_eq!(body["status"], 404, "{what}: {body}");
        assert_eq!(body["error"], "not found", "{what}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(path),
            "{what}: {body}"
        );
    }
    let (status, _, _) = send(call(Method::GET, "/v2/image")).await;
    assert_eq!(status, 200);
    // Coopr shares `/v2`: its routes win over VSS's catch-all (a 401 in
    // Coopr's shape without its headers, not a 404).
    for path in ["/v2/imagetypes", "/v2/imagetypes/small"] {
        let (status, content_type, body) = send(call(Method::GET, path)).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(
            content_type.starts_with("application/json"),
            "{content_type}"
        );
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], 401, "{path}: {body}");
        assert!(body.get("error").is_none(), "{path}: {body}");
    }

    // MWS: `{"messages": [...]}`.
    for (method, path) in [
        (Method::GET, "/mws/nothing"),
        (Method::GET, "/mws/rest/nothing?api-version=3"),
        (Method::DELETE, "/mws/rest/images/1/extra?api-version=3"),
        (Method::POST, "/mws/rest/distinct/images/name/extra"),
    ] {
        let what = format!("{method} {path}");
        let body = json_not_found(call(method, path), &what).await;
        let message = body["messages"][0].as_str().unwrap();
        let bare = path.split('?').next().unwrap();
        assert!(message.contains(bare), "{what}: {body}");
    }
    let (status, _, _) = send(call(Method::GET, "/mws/rest/images?api-version=3")).await;
    assert_eq!(status, 200);

    // Depot's own API, the UI's server-function prefix included: `{"error", "status"}`.
    for (method, path) in [
        (Method::GET, "/api/nothing"),
        (Method::POST, "/api/images/1/extra"),
        (Method::GET, "/api/ui/nothing"),
        (Method::POST, "/api/ui/nothing/deeper"),
    ] {
        let what = format!("{method} {path}");
        let body = json_not_found(call(method, path), &what).await;
        assert_eq!(body["status"], 404, "{what}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(path),
            "{what}: {body}"
        );
    }
    // Its real endpoints and the server functions are untouched.
    let bytes = random_bytes(4096);
    let uploaded = app
        .upload("alice", "alice-password", "kept.img", bytes.clone())
        .await;
    assert_eq!(uploaded.status(), 201);
    let uploaded: Value = uploaded.json().await.unwrap();
    let download = format!("/api/images/{}/download", uploaded["images"][0]["id"]);
    let response = call(Method::GET, &download).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), &bytes[..]);
    let (status, _, me) = send(call(Method::POST, "/api/ui/me")).await;
    assert_eq!(status, 200, "{me}");
    assert!(me.contains("\"username\":\"alice\""), "{me}");
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn vss_user_image_links_to_the_user_lists(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let token = app.vss_token("alice", "alice-password").await;
    let client = reqwest::Client::new();
    let parent = app.url("/v2/user/image");

    let (status, content_type, body) = send(client.get(&parent).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let index: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(index["_links"], json!({ "self": parent.as_str() }));
    assert_eq!(
        index["data"],
        json!({ "iso": app.url("/v2/user/image/iso"), "vm": app.url("/v2/user/image/vm") })
    );
    assert_eq!(index["meta"]["user"], "alice");
    assert!(index["meta"]["time"].as_str().unwrap().ends_with('s'));

    // Each list it names answers, and links back to it.
    for (kind, back) in [("vm", "image"), ("iso", "user")] {
        let url = index["data"][kind].as_str().unwrap();
        let (status, _, body) = send(client.get(url).bearer_auth(&token)).await;
        assert_eq!(status, 200, "{url}: {body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(list["_links"][back], parent.as_str(), "{list}");
    }

    // Signed in only, as every `/v2` call.
    let (status, _, body) = send(client.get(&parent)).await;
    assert_eq!(status, 401, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["status"], 401);

    // `OPTIONS` names the methods; the others are 405 in VSS's shape.
    let response = client
        .request(Method::OPTIONS, &parent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["allow"], "GET, OPTIONS");
    for method in [Method::POST, Method::PATCH, Method::DELETE] {
        let (status, _, body) =
            send(client.request(method.clone(), &parent).bearer_auth(&token)).await;
        assert_eq!(status, 405, "{method}: {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["status"], 405, "{method}: {error}");
    }
}

/// An environment of the given types, as the seed's `createEnvironment` sends one.
fn environment(title: &str, management: &str, runtime: &str) -> Value {
    json!({
        "credentials": {"location": "aeiou", "username": "aeiou", "specifics": "{}"},
        "managementlayer": {"software": "s", "type": management, "version": "1"},
        "title": title,
        "runtimetechnology": {"software": "s", "type": runtime, "version": "1"}
    })
}

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn vice_filters_that_name_no_type_match_nothing(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("alice", "alice-password").await;
    let alice = Vice::new(&app, "alice", "alice-password");
    for body in [
        environment("plain", "basic", "virtualmachine"),
        environment("cluster", "containercluster", "container"),
    ] {
        let (status, created) = alice.json(Method::POST, "/environments", Some(&body)).await;
        assert_eq!(status, 201, "{created}");
    }
    let titles = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
            .iter()
            .map(|environment| environment["title"].as_str().unwrap().to_owned())
            .collect()
    };

    // findEnvironment answers 200, 401 or 500 only: an unknown type is an empty list.
    for query in [
        "filterManagementlayer=nonsense",
        "filterRuntimetechnology=nonsense",
        "filterManagementlayer=Basic",
        "filterManagementlayer=basic&filterRuntimetechnology=nonsense",
        "filterRuntimetechnology=nonsense&filterManagementlayer=basic",
    ] {
        let (status, list) = alice
            .json(Method::GET, &format!("/environments?{query}"), None)
            .await;
        assert_eq!((status.as_u16(), &list), (200, &json!([])), "{query}");
    }
    let (status, xml) = alice
        .xml(
            Method::GET,
            "/environments?filterManagementlayer=nonsense",
            None,
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<Environments") && !xml.contains("<Environment>"),
        "{xml}"
    );

    // A type that exists still filters; an empty one is no filter.
    for (query, expected) in [
        ("filterManagementlayer=basic", vec!["plain"]),
        ("filterRuntimetechnology=container", vec!["cluster"]),
        (
            "filterManagementlayer=containercluster&filterRuntimetechnology=container",
            vec!["cluster"],
        ),
        ("filterManagementlayer=", vec!["plain", "cluster"]),
    ] {
        let (status, list) = alice
            .json(Method::GET, &format!("/environments?{query}"), None)
            .await;
        assert_eq!(status, 200, "{query}: {list}");
        let mut found = titles(&list);
        found.sort();
        let mut expected: Vec<String> = expected.into_iter().map(String::from).collect();
        expected.sort();
        assert_eq!(found, expected, "{query}");
    }

    // Still for signed-in users only.
    let response = reqwest::Client::new()
        .get(app.url("/v1/environments?filterManagementlayer=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
