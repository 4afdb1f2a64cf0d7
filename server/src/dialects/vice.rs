//! The ViCE image registry (`seeds/003…`) under `/v1`: images with their
//! files, execution environments, the signed-in user, runtime statistics;
//! JSON or XML both ways.
//!
//! Where the seed is silent, as the real registry does or its users expect:
//! - a path under `/v1` that names no resource is a 404 error (any method);
//! - `GET /v1/images` needs no credentials and lists the public images, plus
//!   the caller's own when signed in (at most 1000, oldest first); every
//!   other call needs HTTP Basic (password or token) or a bearer token;
//! - ids (`id`, `userid`) in bodies are ignored: the server assigns them;
//!   `PUT /v1/images` names the image by the `id` of its body;
//! - `specifics` is answered as a string holding a JSON object, as the seed
//!   shows; `originEnvironment` is kept as the id of the environment named
//!   (its `id`, or the value itself), and answered as the whole environment
//!   when the caller may read it (its owner, or an admin), else as `{id}`;
//! - a successful delete answers `{"code": 200, "message"}`; errors are
//!   `{"code", "message"}` (XML root `Error`), invalid input 405, a file
//!   upload without `upfile`, or whose bytes are refused, 400;
//! - an environment's password is stored encrypted and answered as
//!   `********` (absent when none is set); an update that sends it masked or
//!   leaves it out keeps the stored one; `filterManagementlayer` and
//!   `filterRuntimetechnology` take a type (`basic`, `container`, ...), and
//!   a word that names no type matches nothing (an empty list, not an error);
//! - `POST /v1/deploy` needs an image and an environment of the caller's
//!   (else 404); a `file://` environment outside `DEPOT_EXPORT_ROOT` is
//!   refused (405); the job copies the file there; other targets are recorded
//!   and their job fails with "target not supported"; a deployment shows
//!   `state` (queued, running, done, failed) and `reason` besides the seed's
//!   fields;
//! - `RuntimeStats` counts the persistent job queue: imports are personal
//!   store syncs, exports deployments; each kind has this process's workers.

mod codec;
mod deployments;
mod environments;
mod error;
mod files;
mod images;
mod stats;
mod users;
mod views;

use axum::routing::any;
use axum::Router;
use utoipa::openapi::schema::{ArrayItems, Schema};
use utoipa::openapi::xml::{Xml, XmlBuilder};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::or_else;
use crate::state::AppState;
use crate::web::PasswordOrToken;

/// The seed's registry, described.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Depot: ViCE image registry",
        description = "The ViCE image registry's API (`/v1`) over Depot's records: images \
            and their files, execution environments, deployments, the signed-in user, \
            runtime statistics. Bodies are JSON or XML both ways: requests by \
            `Content-Type`, answers by `Accept`.",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "images"), (name = "environments"), (name = "deployments"),
        (name = "users"), (name = "stats"),
    ),
    components(schemas(error::ViceErrorBody, crate::web::ErrorBody, crate::web::RawBytes)),
    modifiers(&PasswordOrToken),
)]
struct ViceApi;

fn described() -> OpenApiRouter<AppState> {
    let file = routes!(files::upload, files::download);
    let file = (file.0, file.1, crate::web::streamed_form(file.2));
    OpenApiRouter::with_openapi(ViceApi::openapi())
        .routes(or_else(
            routes!(images::list, images::create, images::update),
            error::method_not_allowed,
        ))
        .routes(or_else(
            routes!(images::get, images::delete),
            error::method_not_allowed,
        ))
        // The body is streamed to disk and limited by the core, not buffered.
        .routes(or_else(file, error::method_not_allowed))
        .routes(or_else(
            routes!(
                environments::list,
                environments::create,
                environments::update
            ),
            error::method_not_allowed,
        ))
        .routes(or_else(
            routes!(environments::get, environments::delete),
            error::method_not_allowed,
        ))
        .routes(or_else(
            routes!(deployments::deploy),
            error::method_not_allowed,
        ))
        .routes(or_else(
            routes!(deployments::list),
            error::method_not_allowed,
        ))
        .routes(or_else(
            routes!(deployments::get, deployments::delete),
            error::method_not_allowed,
        ))
        .routes(or_else(
            routes!(users::get, users::create),
            error::method_not_allowed,
        ))
        .routes(or_else(routes!(stats::get), error::method_not_allowed))
}

/// The routes, each refusal in the client's format, and their document.
pub fn router() -> (Router<AppState>, Document) {
    let (router, mut document) = described().split_for_parts();
    server_errors(&mut document);
    in_xml_too(&mut document);
    let router = router
        // Static routes win over this catch-all (matchit), whatever their depth.
        .route("/v1/{*rest}", any(error::not_found))
        .layer(axum::middleware::from_fn(error::negotiate));
    (router, document)
}

/// The 500 the seed lists on every operation (a database or store that
/// fails), in ViCE's error body.
fn server_errors(document: &mut Document) {
    let answer = ResponseBuilder::new()
        .description("Internal Server Error")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .build(),
        )
        .build();
    crate::web::each_operation(document, |operation, _| {
        operation
            .responses
            .responses
            .insert("500".into(), answer.clone().into());
    });
}

/// Every JSON body of the document, offered as XML too: a record is rooted
/// at its model's name (`<Image>`), a list wraps its items (`<Images>`).
fn in_xml_too(document: &mut Document) {
    crate::web::each_operation(document, |operation, _| {
        if let Some(RefOr::T(body)) = &mut operation.request_body {
            if let Some(json) = body.content.get("application/json").cloned() {
                body.content.insert("application/xml".into(), json);
            }
        }
        for response in operation.responses.responses.values_mut() {
            let RefOr::T(response) = response else {
                continue;
            };
            let Some(RefOr::T(json)) = response.content.get_mut("application/json") else {
                continue;
            };
            // Depot's own answers (a download's 416) are JSON only.
            if let Some(RefOr::Ref(body)) = &json.schema {
                if body.ref_location.ends_with("/ErrorBody") {
                    continue;
                }
            }
            if let Some(RefOr::T(Schema::Array(list))) = &mut json.schema {
                list.xml = wrapper(&list.items);
            }
            let xml = RefOr::T(json.clone());
            response.content.insert("application/xml".into(), xml);
        }
    });
}

/// `<Images>` around `<Image>` items: a list's element, named for its items.
fn wrapper(items: &ArrayItems) -> Option<Xml> {
    let ArrayItems::RefOrSchema(item) = items else {
        return None;
    };
    let RefOr::Ref(item) = item.as_ref() else {
        return None;
    };
    let name = item.ref_location.rsplit('/').next()?;
    Some(
        XmlBuilder::new()
            .name(Some(format!("{name}s")))
            .wrapped(Some(true))
            .build(),
    )
}
