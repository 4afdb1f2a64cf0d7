//! Coopr tenants and image types from the admin's Tenants page (its server
//! functions over HTTP), seen through the `/v2` dialect as a member sees them.

use rstest::rstest;
use serde_json::Value;

use crate::helpers::{ui_call, Backend, TestApp, ADMIN_PASSWORD};

const ADMIN: (&str, &str) = ("admin", ADMIN_PASSWORD);
const ALICE: (&str, &str) = ("alice", "alice-password");

#[rstest]
#[case::sqlite(Backend::Sqlite)]
#[case::postgres(Backend::Postgres)]
#[tokio::test]
async fn an_admin_manages_tenants_and_their_image_types_from_the_browser(#[case] backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user(ALICE.0, ALICE.1).await;

    // Not for anyone else.
    assert_eq!(ui_call(&app, ALICE, "tenants", &[]).await.0, 403);
    assert_eq!(
        ui_call(&app, ALICE, "tenants/create", &[("name", "lab")])
            .await
            .0,
        403
    );

    assert_eq!(
        ui_call(&app, ADMIN, "tenants/create", &[("name", "lab")])
            .await
            .0,
        200
    );
    assert_eq!(
        ui_call(&app, ADMIN, "tenants/create", &[("name", "lab")])
            .await
            .0,
        409
    );
    assert_eq!(
        ui_call(&app, ADMIN, "tenants/create", &[("name", "no spaces")])
            .await
            .0,
        400
    );
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "tenants/members/add",
            &[("tenant", "lab"), ("username", "alice")]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "tenants/members/add",
            &[("tenant", "lab"), ("username", "ghost")]
        )
        .await
        .0,
        404
    );
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "tenants/members/add",
            &[("tenant", "nope"), ("username", "alice")]
        )
        .await
        .0,
        404
    );

    let save = |name: &'static str, providermap: &'static str, replace: bool| {
        let mut form = vec![
            ("tenant", "lab"),
            ("name", name),
            ("description", "Small box"),
            ("providermap", providermap),
        ];
        if replace {
            form.push(("replace", "yes"));
        }
        form
    };
    let (status, answer) = ui_call(
        &app,
        ADMIN,
        "tenants/image-types/save",
        &save("small", r#"{"openstack": {"flavor": "m1.small"}}"#, false),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "tenants/image-types/save",
            &save("small", r#"{"openstack": {"flavor": "m1.small"}}"#, false)
        )
        .await
        .0,
        409
    );
    for (name, map, reason) in [
        ("bad name", "{}", "may contain only"),
        ("x", "not json", "not JSON"),
        ("x", r#"{"openstack": "m1"}"#, "must be an object"),
    ] {
        let (status, answer) = ui_call(
            &app,
            ADMIN,
            "tenants/image-types/save",
            &save(name, map, false),
        )
        .await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert!(answer.to_string().contains(reason), "{answer}");
    }
    let (status, _) = ui_call(
        &app,
        ADMIN,
        "tenants/image-types/save",
        &save("small", r#"{"aws": {"flavor": "t3.micro"}}"#, true),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "tenants/image-types/save",
            &save("ghost", "{}", true)
        )
        .await
        .0,
        404
    );

    // Alice, a member, makes a key and sees the type through Coopr.
    let (status, key) = ui_call(&app, ALICE, "apikeys/create", &[("tenant", "lab")]).await;
    assert_eq!(status, 200, "{key}");
    let coopr = |path: &str| {
        reqwest::Client::new()
            .get(app.url(path))
            .header("Coopr-UserID", "alice")
            .header("Coopr-TenantID", "lab")
            .header("Coopr-ApiKey", key["key"].as_str().unwrap())
    };
    let seen: Value = coopr("/v2/imagetypes/small")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["providermap"]["aws"]["flavor"], "t3.micro", "{seen}");

    let (_, tenants) = ui_call(&app, ADMIN, "tenants", &[]).await;
    assert_eq!(tenants[0]["name"], "lab");
    assert_eq!(tenants[0]["members"], serde_json::json!(["alice"]));
    assert_eq!(tenants[0]["image_types"], 1);
    let (_, types) = ui_call(&app, ADMIN, "tenants/image-types", &[("tenant", "lab")]).await;
    assert_eq!(types.as_array().unwrap().len(), 1);

    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "tenants/image-types/delete",
            &[("tenant", "lab"), ("name", "small")]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        coopr("/v2/imagetypes/small").send().await.unwrap().status(),
        404
    );

    // Taken out of the tenant, Alice's key stops working and she makes no other.
    let remove = [("tenant", "lab"), ("username", "alice")];
    assert_eq!(
        ui_call(&app, ALICE, "tenants/members/remove", &remove)
            .await
            .0,
        403
    );
    assert_eq!(
        ui_call(&app, ADMIN, "tenants/members/remove", &remove)
            .await
            .0,
        200
    );
    assert_eq!(coopr("/v2/imagetypes").send().await.unwrap().status(), 401);
    assert_eq!(
        ui_call(&app, ALICE, "apikeys/create", &[("tenant", "lab")])
            .await
            .0,
        403
    );
    assert_eq!(
        ui_call(&app, ADMIN, "tenants/members/remove", &remove)
            .await
            .0,
        404
    );
    let (_, admin_key) = ui_call(&app, ADMIN, "apikeys/create", &[("tenant", "lab")]).await;
    let admin_key = admin_key["key"].as_str().unwrap().to_owned();
    let as_admin = || {
        reqwest::Client::new()
            .get(app.url("/v2/imagetypes"))
            .header("Coopr-UserID", "admin")
            .header("Coopr-TenantID", "lab")
            .header("Coopr-ApiKey", &admin_key)
    };
    assert_eq!(as_admin().send().await.unwrap().status(), 200);

    // Deleting a tenant needs the confirmation, and takes its keys with it.
    assert_eq!(
        ui_call(&app, ADMIN, "tenants/delete", &[("name", "lab")])
            .await
            .0,
        400
    );
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "tenants/delete",
            &[("name", "lab"), ("confirm", "yes")]
        )
        .await
        .0,
        200
    );
    assert_eq!(as_admin().send().await.unwrap().status(), 401);
    assert_eq!(
        ui_call(
            &app,
            ADMIN,
            "tenants/delete",
            &[("name", "lab"), ("confirm", "yes")]
        )
        .await
        .0,
        404
    );
}
