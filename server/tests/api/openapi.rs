//! Depot's own API described in OpenAPI 3.1 at `/api/openapi.json`, and the
//! interactive docs at `/api/docs`: what an integrator reads before calling.

use reqwest::Method;
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};
use crate::mws::Mws;

const ALICE: (&str, &str) = ("alice", "alice-password");

/// The JSON a request answers.
async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

async fn document(app: &TestApp) -> Value {
    let response = reqwest::get(app.url("/api/openapi.json")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

/// Every operation of Depot's API is in the document, with its security
/// schemes, its parameters' and bodies' schemas and its error body; and
/// every operation the document names is routed (none answers 404 or 405
/// for the method and path it describes).
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn the_document_names_every_operation_and_each_is_routed(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let document = document(&app).await;
    assert_eq!(document["openapi"], "3.1.0");
    let operations = [
        ("post", "/api/upload"),
        ("get", "/api/images/{id}/download"),
        ("post", "/api/tokens"),
        ("get", "/api/tokens"),
        ("delete", "/api/tokens/{id}"),
        ("post", "/api/uploads"),
        ("options", "/api/uploads"),
        ("options", "/api/uploads/{id}"),
        ("head", "/api/uploads/{id}"),
        ("patch", "/api/uploads/{id}"),
        ("delete", "/api/uploads/{id}"),
        ("get", "/api/uploads/{id}"),
        ("post", "/api/uploads/{id}"),
    ];
    let paths = document["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "head", "options", "post", "patch", "delete", "put"]
                .contains(&method.as_str())
            {
                continue;
            }
            documented += 1;
            assert!(
                operations.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but not expected here"
            );
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("429"),
                "{method} {path}: {responses:?}"
            );
            assert!(operation["tags"]
                .as_array()
                .is_some_and(|tags| !tags.is_empty()));
            // Routed: the path with its parameter filled answers something
            // other than "no such endpoint" for the method.
            let url = app.url(&path.replace("{id}", "1"));
            let answer = reqwest::Client::new()
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    url,
                )
                .basic_auth(ALICE.0, Some(ALICE.1))
                .header("tus-resumable", "1.0.0")
                // What a POST to an upload names (another method answers 405).
                .header("x-http-method-override", "HEAD")
                .send()
                .await
                .unwrap();
            assert_ne!(answer.status(), 405, "{method} {path}");
            if answer.status() == 404 && method != "head" {
                let body: Value = answer.json().await.unwrap_or_default();
                let error = body["error"].as_str().unwrap_or_default();
                assert!(
                    !error.contains("resource /api"),
                    "{method} {path} is not routed"
                );
            }
        }
    }
    assert_eq!(documented, operations.len());

    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["basic"]["scheme"], "basic");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "depot_session");
    let schemas = &document["components"]["schemas"];
    for schema in [
        "ErrorBody",
        "Image",
        "NewToken",
        "TokenList",
        "UploadedImage",
    ] {
        assert!(schemas[schema].is_object(), "{schema} is not described");
    }
    // The bodies are the model's: an image has its id, name and SHA-256.
    let image = &schemas["Image"]["properties"];
    for field in ["id", "name", "sha256", "size", "kind", "format"] {
        assert!(image[field].is_object(), "Image.{field}");
    }
    let created = &paths["/api/tokens"]["post"]["responses"]["201"]["content"]["application/json"];
    assert_eq!(created["schema"]["$ref"], "#/components/schemas/NewToken");
}

/// What the document says a response is, it is: a token issued, listed and
/// an error, each matching the schema's required fields.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn answers_have_the_documented_shapes(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let document = document(&app).await;
    let schemas = &document["components"]["schemas"];
    let required = |schema: &str| -> Vec<String> {
        schemas[schema]["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} has required fields"))
            .iter()
            .map(|field| field.as_str().unwrap().to_owned())
            .collect()
    };
    let client = reqwest::Client::new();
    let issued = json_of(
        client
            .post(app.url("/api/tokens"))
            .basic_auth(ALICE.0, Some(ALICE.1)),
    )
    .await;
    for field in required("NewToken") {
        assert!(!issued[&field].is_null(), "NewToken.{field}: {issued}");
    }
    let listed = json_of(
        client
            .get(app.url("/api/tokens"))
            .basic_auth(ALICE.0, Some(ALICE.1)),
    )
    .await;
    for field in required("TokenInfo") {
        assert!(!listed["tokens"][0][&field].is_null(), "TokenInfo.{field}");
    }
    let missing = json_of(client.get(app.url("/api/images/999/download"))).await;
    for field in required("ErrorBody") {
        assert!(!missing[&field].is_null(), "ErrorBody.{field}: {missing}");
    }
    assert_eq!(missing["status"], 404);
}

/// `/api/docs` is Swagger UI from this server: no CDN, no inline script,
/// and the copy it ships is the one `end2end/package.json` pins.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn the_docs_page_loads_swagger_ui_from_this_server(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let page = reqwest::get(app.url("/api/docs")).await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self';"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/vendor/swagger-ui/swagger-ui-bundle.js">"#));
    assert!(html.contains(r#"<script src="/api-docs.js">"#));
    assert!(!html.contains("http"), "nothing from another host: {html}");
    assert!(!html.contains("<script>"), "no inline script");

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let read = |path: &str| {
        std::fs::read(format!("{root}/{path}"))
            .unwrap_or_else(|error| panic!("{path}: {error}; run scripts/setup.sh"))
    };
    for file in ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"] {
        assert!(
            read(&format!("public/vendor/swagger-ui/{file}"))
                == read(&format!("end2end/node_modules/swagger-ui-dist/{file}")),
            "public/vendor/swagger-ui/{file} is not the swagger-ui-dist end2end/package.json pins: copy it"
        );
    }
    // Every document is offered, Depot's own first.
    let depot = html.find(r#"<option value="/api/openapi.json">"#).unwrap();
    let coopr = html
        .find(r#"<option value="/api/openapi/coopr.json">"#)
        .unwrap();
    assert!(depot < coopr);
}

/// Coopr's image types are described as the seed has them: the five
/// operations, routed, with the three headers as one credential, the seed's
/// example, and Coopr's error body.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn the_coopr_document_is_the_seeds_api(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = reqwest::get(app.url("/api/openapi/coopr.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    let paths = document["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{method} {path}"));
            let answer = reqwest::Client::new()
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    app.url(&path.replace("{name}", "small.example")),
                )
                .send()
                .await
                .unwrap();
            // Routed: no credentials is Coopr's 401, not a 404 or 405.
            assert_eq!(answer.status(), 401, "{method} {path}");
            let body: Value = answer.json().await.unwrap();
            assert_eq!(body["status"], 401);
            assert!(body["message"].is_string());
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "delete /v2/imagetypes/{name}",
            "get /v2/imagetypes",
            "get /v2/imagetypes/{name}",
            "post /v2/imagetypes",
            "put /v2/imagetypes/{name}",
        ]
    );
    let schemes = &document["components"]["securitySchemes"];
    for (scheme, header) in [
        ("user", "Coopr-UserID"),
        ("tenant", "Coopr-TenantID"),
        ("key", "Coopr-ApiKey"),
    ] {
        assert_eq!(schemes[scheme]["in"], "header");
        assert_eq!(schemes[scheme]["name"], header);
    }
    // One requirement naming all three: they go together.
    assert_eq!(document["security"].as_array().unwrap().len(), 1);
    assert_eq!(document["security"][0].as_object().unwrap().len(), 3);
    let image_type = &document["components"]["schemas"]["ImageType"];
    assert_eq!(
        image_type["example"]["providermap"]["openstack"]["flavor"],
        "m1.small"
    );
    let created = &paths["/v2/imagetypes"]["post"]["responses"];
    assert!(created["200"].is_object() && created["400"].is_object());
    assert_eq!(
        created["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/CooprErrorBody"
    );
}

/// MWS's images are described as the seed has them: every operation routed
/// (a call without `api-version` is MWS's 400), Basic and Bearer, the
/// query parameters, and MWS's error body.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn the_mws_document_is_the_seeds_api(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let response = reqwest::get(app.url("/api/openapi/mws.json"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    let paths = document["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations.push(format!("{method} {path}"));
            let names: Vec<&str> = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|parameter| parameter["name"].as_str().unwrap())
                .collect();
            assert!(names.contains(&"api-version"), "{method} {path}: {names:?}");
            let answer = reqwest::Client::new()
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    app.url(&path.replace("{key}", "1").replace("{field}", "name")),
                )
                .basic_auth(ALICE.0, Some(ALICE.1))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 400, "{method} {path}");
            let body: Value = answer.json().await.unwrap();
            assert!(body["messages"][0]
                .as_str()
                .unwrap()
                .contains("api-version"));
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "delete /mws/rest/images/{key}",
            "get /mws/rest/distinct/images/{field}",
            "get /mws/rest/images",
            "get /mws/rest/images/{key}",
            "post /mws/rest/images",
            "put /mws/rest/images/{key}",
        ]
    );
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    let mut names: Vec<&String> = schemes.keys().collect();
    names.sort();
    assert_eq!(names, ["basic", "bearer"]);
    let image = &document["components"]["schemas"]["Image"]["properties"];
    for field in [
        "id",
        "name",
        "osType",
        "type",
        "version",
        "virtualizedImages",
    ] {
        assert!(image[field].is_object(), "Image.{field}");
    }
    let missing = &paths["/mws/rest/images/{key}"]["get"]["responses"]["404"];
    assert_eq!(
        missing["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MwsErrorBody"
    );
}

/// The MWS create's body says what a new image must have (the seed's "Three
/// fields are required to submit an image", and a machine it supports), and
/// the server agrees: what the document asks for is enough, and less is
/// refused. (A body that let every field be missing had schemathesis send
/// creates that were all refused, so none was fuzzed past its checks.)
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn the_mws_create_documents_what_a_new_image_needs(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let document = json_of(reqwest::Client::new().get(app.url("/api/openapi/mws.json"))).await;
    let body = &document["paths"]["/mws/rest/images"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["$ref"];
    let name = body.as_str().unwrap().rsplit('/').next().unwrap();
    let parts = document["components"]["schemas"][name]["allOf"]
        .as_array()
        .unwrap();
    let required: Vec<&str> = parts
        .iter()
        .filter_map(|part| part["required"].as_array())
        .flatten()
        .map(|field| field.as_str().unwrap())
        .collect();
    assert_eq!(required, ["name", "hypervisor", "osType"]);
    let either: Vec<&str> = parts
        .iter()
        .filter_map(|part| part["anyOf"].as_array())
        .flatten()
        .map(|choice| choice["required"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        either,
        ["supportsPhysicalMachine", "supportsVirtualMachine"]
    );
    let mws = Mws::new(&app, ALICE.0, ALICE.1).await;
    let enough = serde_json::json!({
        "name": "centos-9", "osType": "linux", "hypervisor": false, "supportsVirtualMachine": true
    });
    let (status, created) = mws.post(&enough).await;
    assert_eq!(status, 201, "{created}");
    for field in ["name", "osType", "hypervisor", "supportsVirtualMachine"] {
        let mut less = enough.clone();
        less["name"] = "centos-10".into();
        less.as_object_mut().unwrap().remove(field);
        assert_eq!(mws.post(&less).await.0, 400, "{less}");
    }
}

/// A tus creation's document says its `Upload-Metadata` is required (it
/// must name the file or the image), and its example creates an upload:
/// schemathesis, which sends the examples, created none before.
#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[tokio::test]
async fn the_tus_creation_documents_the_metadata_it_needs(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let document = document(&app).await;
    let parameters = document["paths"]["/api/uploads"]["post"]["parameters"]
        .as_array()
        .unwrap();
    let header = |name: &str| {
        parameters
            .iter()
            .find(|parameter| parameter["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let metadata = header("Upload-Metadata");
    assert_eq!(metadata["required"], true);
    let create = |metadata: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(app.url("/api/uploads"))
            .basic_auth(ALICE.0, Some(ALICE.1))
            .header("Tus-Resumable", "1.0.0")
            .header(
                "Upload-Length",
                header("Upload-Length")["example"].to_string(),
            )
            .header("Content-Type", "application/offset+octet-stream");
        if let Some(metadata) = metadata {
            request = request.header("Upload-Metadata", metadata);
        }
        request.send()
    };
    let created = create(metadata["example"].as_str()).await.unwrap();
    assert_eq!(created.status(), 201);
    assert!(created.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/api/uploads/"));
    assert_eq!(create(None).await.unwrap().status(), 400);
}
