//! Each dialect's OpenAPI document against its seed (`seeds/000…` to
//! `seeds/004…`, the APIs Depot speaks): every operation the seed names,
//! with the status codes it lists and the fields of its models, is in the
//! document; and every operation the document describes is routed and
//! answers one of the statuses it documents.
//!
//! The tables below are transcribed from the seeds (where a seed names no
//! status, none is checked).

use reqwest::Method;
use rstest::rstest;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

/// An operation a seed names: method, path, the seed's operation id (ViCE
/// names them), and the statuses it lists.
type Operation = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [u16],
);

/// A model a seed shows: the schemas that render it in the document (one
/// for reading, one for writing where they differ) and its fields.
type Model = (&'static [&'static str], &'static [&'static str]);

/// A seed, as its document must describe it.
struct Seed {
    document: &'static str,
    operations: &'static [Operation],
    models: &'static [Model],
    /// Enumerations: the schema and its values.
    enums: &'static [(&'static str, &'static [&'static str])],
}

/// `seeds/000…` (OVA/OVF images) and `seeds/001…` (ISOs): the resources'
/// tables (GET, PATCH, OPTIONS), the token request, the sync request, and
/// the items' and paging's fields.
const VSS: Seed = Seed {
    document: "vss",
    operations: &[
        ("post", "/auth/request-token", None, &[]),
        ("get", "/v2/image", None, &[]),
        ("options", "/v2/image", None, &[]),
        ("get", "/v2/user/image/vm", None, &[]),
        ("patch", "/v2/user/image/vm", None, &[]),
        ("options", "/v2/user/image/vm", None, &[]),
        ("get", "/v2/iso", None, &[]),
        ("options", "/v2/iso", None, &[]),
        ("get", "/v2/user/image/iso", None, &[]),
        ("patch", "/v2/user/image/iso", None, &[]),
        ("options", "/v2/user/image/iso", None, &[]),
        ("get", "/v2/request/image_sync/{id}", None, &[]),
    ],
    models: &[
        (
            &["Image"],
            &[
                "id",
                "name",
                "path",
                "created_on",
                "updated_on",
                "data_store",
                "folder",
                "label",
                "public",
            ],
        ),
        (
            &["Iso"],
            &[
                "created_on",
                "data_store",
                "id",
                "name",
                "path",
                "public",
                "updated_on",
            ],
        ),
        (
            &["Pages"],
            &[
                "first_url",
                "last_url",
                "prev_url",
                "next_url",
                "page",
                "pages",
                "per_page",
                "total",
            ],
        ),
        (
            &["ListMeta"],
            &["_link", "count", "filter", "pages", "sort", "time", "user"],
        ),
        (&["UserLinks"], &["image", "self", "user"]),
    ],
    enums: &[],
};

/// `seeds/002…`: the table of methods, and the Image's fields in its samples.
const MWS: Seed = Seed {
    document: "mws",
    operations: &[
        ("get", "/mws/rest/images", None, &[]),
        ("post", "/mws/rest/images", None, &[]),
        ("get", "/mws/rest/images/{key}", None, &[]),
        ("put", "/mws/rest/images/{key}", None, &[]),
        ("delete", "/mws/rest/images/{key}", None, &[]),
    ],
    models: &[(
        &["Image", "ImageWrite"],
        &[
            "active",
            "extensions",
            "features",
            "hypervisor",
            "hypervisorType",
            "id",
            "name",
            "osType",
            "supportsPhysicalMachine",
            "supportsVirtualMachine",
            "templateName",
            "type",
            "version",
            "virtualizedImages",
        ],
    )],
    enums: &[],
};

/// `seeds/003…`: every operation with its id and statuses, every model.
const VICE: Seed = Seed {
    document: "vice",
    operations: &[
        (
            "post",
            "/v1/environments",
            Some("createEnvironment"),
            &[201, 401, 405, 500],
        ),
        (
            "post",
            "/v1/images",
            Some("createImage"),
            &[201, 401, 405, 500],
        ),
        ("post", "/v1/user", Some("createUser"), &[200, 401, 500]),
        (
            "delete",
            "/v1/deployment/{deploymentId}",
            Some("deleteDeployment"),
            &[200, 401, 404, 500],
        ),
        (
            "delete",
            "/v1/environment/{environmentId}",
            Some("deleteEnvironment"),
            &[200, 401, 404, 500],
        ),
        (
            "delete",
            "/v1/image/{imageId}",
            Some("deleteImage"),
            &[200, 401, 404, 500],
        ),
        (
            "post",
            "/v1/deploy",
            Some("deployImage"),
            &[201, 401, 405, 500],
        ),
        (
            "get",
            "/v1/image/{imageId}/file",
            Some("downloadImage"),
            &[200, 401, 404, 500],
        ),
        (
            "get",
            "/v1/deployments",
            Some("findDeployments"),
            &[200, 401, 500],
        ),
        (
            "get",
            "/v1/environments",
            Some("findEnvironment"),
            &[200, 401, 500],
        ),
        ("get", "/v1/images", Some("findImages"), &[200, 500]),
        (
            "get",
            "/v1/deployment/{deploymentId}",
            Some("getDeployment"),
            &[200, 401, 404, 500],
        ),
        (
            "get",
            "/v1/environment/{environmentId}",
            Some("getEnvironment"),
            &[200, 401, 404, 500],
        ),
        (
            "get",
            "/v1/image/{imageId}",
            Some("getImage"),
            &[200, 401, 404, 500],
        ),
        (
            "get",
            "/v1/runtimestats",
            Some("getRuntimeStats"),
            &[200, 401, 500],
        ),
        ("get", "/v1/user", Some("getUser"), &[200, 401, 500]),
        (
            "put",
            "/v1/environments",
            Some("updateEnvironment"),
            &[201, 401, 404, 405, 500],
        ),
        (
            "put",
            "/v1/images",
            Some("updateImage"),
            &[201, 401, 404, 405, 500],
        ),
        (
            "post",
            "/v1/image/{imageId}/file",
            Some("uploadImage"),
            &[200, 400, 401, 404, 500],
        ),
    ],
    models: &[
        (
            &["Credentials"],
            &["location", "username", "password", "specifics"],
        ),
        (
            &["Deployment"],
            &[
                "id",
                "title",
                "userid",
                "imageid",
                "environmentId",
                "environmentReference",
            ],
        ),
        (
            &["Environment"],
            &[
                "id",
                "title",
                "userid",
                "credentials",
                "runtimetechnology",
                "managementlayer",
            ],
        ),
        (
            &["Image"],
            &[
                "id",
                "title",
                "userid",
                "imagetype",
                "contenttype",
                "imported",
                "originEnvironment",
                "environmentReference",
                "specifics",
            ],
        ),
        (&["ManagementLayer"], &["type", "software", "version"]),
        (
            &["RuntimeStats"],
            &[
                "importsPending",
                "importWorker",
                "exportsPending",
                "exportWorker",
                "storePending",
                "storeWorker",
            ],
        ),
        (&["RuntimeTechnology"], &["type", "software", "version"]),
        // The password is written, never answered.
        (
            &["User", "UserWrite"],
            &["id", "username", "password", "email", "fullname"],
        ),
    ],
    enums: &[
        ("ViceImageType", &["implicit", "declarative"]),
        (
            "ContentType",
            &[
                "disk-raw",
                "disk-qcow2",
                "disk-vmdk",
                "docker-file",
                "docker-image",
                "packerfile",
            ],
        ),
        (
            "ManagementLayerType",
            &[
                "basic",
                "cloudcomputing",
                "containercluster",
                "jobscheduler",
            ],
        ),
        (
            "RuntimeTechnologyType",
            &["virtualmachine", "container", "application"],
        ),
    ],
};

/// `seeds/004…`: the five operations with their HTTP responses, and the
/// image type's fields.
const COOPR: Seed = Seed {
    document: "coopr",
    operations: &[
        ("get", "/v2/imagetypes", None, &[200, 400]),
        ("post", "/v2/imagetypes", None, &[200, 400]),
        ("get", "/v2/imagetypes/{name}", None, &[200, 404]),
        ("put", "/v2/imagetypes/{name}", None, &[200, 400]),
        ("delete", "/v2/imagetypes/{name}", None, &[200, 404]),
    ],
    models: &[(&["ImageType"], &["name", "description", "providermap"])],
    enums: &[],
};

async fn document(app: &TestApp, name: &str) -> Value {
    let response = reqwest::get(app.url(&format!("/api/openapi/{name}.json")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{name}");
    response.json().await.unwrap()
}

/// The object schemas a schema may be, through `$ref`, `oneOf` and
/// `anyOf` (as optional and alternative schemas are written).
fn alternatives<'a>(document: &'a Value, schema: &'a Value) -> Vec<&'a Value> {
    if let Some(target) = schema["$ref"].as_str() {
        let name = target.rsplit('/').next().unwrap();
        return alternatives(document, &document["components"]["schemas"][name]);
    }
    let mut found = Vec::new();
    for key in ["oneOf", "anyOf"] {
        for one in schema[key].as_array().into_iter().flatten() {
            found.extend(alternatives(document, one));
        }
    }
    if schema["properties"].is_object() {
        found.push(schema);
    }
    found
}

#[rstest]
#[case::vss(VSS)]
#[case::mws(MWS)]
#[case::vice(VICE)]
#[case::coopr(COOPR)]
#[tokio::test]
async fn each_document_holds_its_seeds_operations_fields_and_statuses(#[case] seed: Seed) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let document = document(&app, seed.document).await;
    assert_eq!(document["openapi"], "3.1.0");
    for (method, path, id, statuses) in seed.operations {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{}: {method} {path}", seed.document);
        if let Some(id) = id {
            assert_eq!(operation["operationId"], *id, "{method} {path}");
        }
        for status in *statuses {
            assert!(
                operation["responses"][status.to_string()].is_object(),
                "{}: {method} {path} documents no {status}",
                seed.document
            );
        }
    }
    let schemas = &document["components"]["schemas"];
    for (names, fields) in seed.models {
        for field in *fields {
            let found = names
                .iter()
                .any(|name| schemas[name]["properties"][field].is_object());
            assert!(found, "{}: {names:?} has no {field}", seed.document);
        }
    }
    for (name, values) in seed.enums {
        let listed: Vec<&str> = schemas[name]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is no enumeration"))
            .iter()
            .map(|value| value.as_str().unwrap())
            .collect();
        assert_eq!(listed, *values, "{name}");
    }
}

/// ViCE's image carries its origin as the seed's whole `Environment`, in
/// JSON and XML, and every answer is offered in both.
#[tokio::test]
async fn vices_image_names_its_origin_as_an_environment_in_json_and_xml() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let document = document(&app, "vice").await;
    let image = &document["components"]["schemas"]["Image"];
    let origins = alternatives(&document, &image["properties"]["originEnvironment"]);
    // The whole environment, or (to whoever may not read it) only its id.
    assert_eq!(origins.len(), 2, "{origins:?}");
    assert!(
        origins[0]["properties"]["credentials"].is_object(),
        "{origins:?}"
    );
    let named: Vec<&String> = origins[1]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(named, ["id"]);
    assert_eq!(image["xml"]["name"], "Image");
    let get = &document["paths"]["/v1/image/{imageId}"]["get"]["responses"];
    for status in ["200", "401", "404", "500"] {
        let content = get[status]["content"].as_object().unwrap();
        let mut types: Vec<&String> = content.keys().collect();
        types.sort();
        assert_eq!(types, ["application/json", "application/xml"], "{status}");
    }
    let list = &document["paths"]["/v1/images"]["get"]["responses"]["200"]["content"];
    let xml = &list["application/xml"]["schema"]["xml"];
    assert_eq!(
        (xml["name"].as_str(), xml["wrapped"].as_bool()),
        (Some("Images"), Some(true))
    );
    let body = &document["paths"]["/v1/images"]["post"]["requestBody"]["content"];
    assert!(body["application/xml"].is_object() && body["application/json"].is_object());
}

/// What a document describes exists: each operation, called without
/// credentials (path parameters `1`), answers one of the statuses the
/// document lists for it, in the dialect's own body, never the UI's page
/// or a 405.
#[rstest]
#[case::vss("vss")]
#[case::mws("mws")]
#[case::vice("vice")]
#[case::coopr("coopr")]
#[tokio::test]
async fn every_described_operation_is_routed(#[case] name: &str) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let document = document(&app, name).await;
    let client = reqwest::Client::new();
    let mut count = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|part| if part.starts_with('{') { "1" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().unwrap() {
            let answer = client
                .request(
                    Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                    app.url(&concrete),
                )
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            assert!(
                operation["responses"][status.to_string()].is_object(),
                "{name}: {method} {path} answered an undocumented {status}"
            );
            assert_ne!(status, 405, "{name}: {method} {path}");
            let content_type = answer
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default();
            assert!(!content_type.contains("html"), "{name}: {method} {path}");
            count += 1;
        }
    }
    assert!(count >= 5, "{name}: {count} operations");
}
