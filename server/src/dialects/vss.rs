//! VSS (`seeds/000…` OVA/OVF images, `seeds/001…` ISOs): `/auth/request-token`,
//! `/v2/image`, `/v2/iso`, `/v2/user/image` (links to the two user lists),
//! `/v2/user/image/{vm,iso}` (`PATCH` submits a sync of the personal store) and
//! `/v2/request/image_sync[/{id}]`, with `OPTIONS` on each.
//!
//! Where the seeds are silent, as VSS and its official client `pyvss` do:
//! - every `/v2` call needs a token (Bearer, or Basic with the token as the
//!   username and an empty password) or Basic credentials;
//! - `/v2/image` and `/v2/iso` list the public VM images and ISOs; the user
//!   lists hold the caller's own;
//! - the user lists also carry `meta.pages` and take `page`, `per_page`,
//!   `filter` and `sort` like the public ones (pyvss pages through them);
//!   their items show the folder the record really has;
//! - page links keep the request's parameters in their order, with `per_page`
//!   and `page` replaced (or added at the end); several filters may be sent
//!   as repeated `filter=` or joined by `;`, several sorts joined by `;`; a
//!   bare `?name=…` is an `eq` filter (pyvss sends one) and unknown
//!   parameters are ignored;
//! - `GET /v2/image/{id}` and `/v2/iso/{id}` answer `{"data": item, "meta"}`;
//! - `GET /v2/user/image`, the parent the user lists link to, answers
//!   `{"_links": {"self"}, "data": {"iso", "vm"}, "meta"}` with the lists' URLs;
//! - any other path under `/v2` (but Coopr's) is a 404 error, whatever the method;
//! - timestamps are rendered in UTC, in each resource's seed format;
//! - the sync answer and request follow vss-cli: `202 {"data": {"message",
//!   "request": {"id", "status", "task_id"}}}`, and a request shows `added`,
//!   `deleted`, `message{errors, warnings}`, `status`, `task_id`, `type`
//!   (`VM`/`ISO`), `user{username}` and its times; the request list filters on
//!   `status,eq,…` only.

mod auth;
mod error;
mod images;
mod parse;
mod sync;
mod views;

use axum::routing::any;
use axum::Router;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{
    Header, ObjectBuilder, OpenApi as Document, PathItem, RefOr, SecurityRequirement, Type,
};
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::state::AppState;
use crate::web::PasswordOrToken;

/// The seeds' API, described.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Depot: VSS images and ISOs",
        description = "The VSS cloud API's OVA/OVF images and ISOs (`/v2/image`, `/v2/iso`, \
            `/v2/user/image`) and image syncs over Depot's catalog. Get a token from \
            `POST /auth/request-token` with Basic credentials; then sign with \
            `Authorization: Bearer TOKEN` (or Basic).",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "tokens", description = "A token for your credentials"),
        (name = "images", description = "OVA/OVF images and ISOs: public, and your own"),
        (name = "image sync", description = "Sync your personal store, and follow it"),
    ),
    components(schemas(error::VssErrorBody, crate::web::ErrorBody)),
    modifiers(&PasswordOrToken),
)]
struct VssApi;

/// The query of a list of images or ISOs.
#[allow(dead_code)] // Describes the query; `parse::list_params` reads it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// The page, from 1.
    #[param(minimum = 1)]
    page: Option<u64>,
    /// Items per page: 10 unless set, at most 100 (images) or 250 (ISOs).
    #[param(minimum = 1)]
    per_page: Option<u64>,
    /// `1` for the items themselves rather than their URLs (public lists).
    expand: Option<u8>,
    /// `<field>,<operator>,<value>`, operators `eq`, `ne`, `lt`, `le`, `gt`,
    /// `ge`, `like` (`%` any run) and `in` (values joined by commas); several
    /// joined by `;` or repeated. Fields: the item's, and what inspection
    /// found (`format`, `virtual_size`, `os_type`, ...).
    #[param(
        example = "name,like,ubu%",
        pattern = r"^[a-z_]+,(eq|ne|lt|le|gt|ge|like|in),[^;]*(;[a-z_]+,(eq|ne|lt|le|gt|ge|like|in),[^;]*)*$"
    )]
    filter: Option<String>,
    /// `<field>,<asc|desc>`, several joined by `;`.
    #[param(
        example = "path,asc",
        pattern = r"^[a-z_]+(,(asc|desc))?(;[a-z_]+(,(asc|desc))?)*$"
    )]
    sort: Option<String>,
    /// Only items of this name (`eq`), as pyvss asks.
    name: Option<String>,
}

/// A resource's described methods; `OPTIONS` answers them in `Allow`
/// (described too), and any other method is VSS's 405.
fn resource(
    (schemas, mut paths, methods): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    // `routes!` gives one path here; its described methods are the resource's.
    let mut allowed = Vec::new();
    for item in paths.paths.values_mut() {
        let described = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        for (method, present) in described {
            if present && !allowed.contains(&method) {
                allowed.push(method);
            }
        }
        let allow = Header::new(ObjectBuilder::new().schema_type(Type::String).build());
        let answer = ResponseBuilder::new()
            .description("The methods the resource answers, in Allow")
            .header("Allow", allow)
            .build();
        let described = item
            .get
            .as_ref()
            .or(item.post.as_ref())
            .or(item.patch.as_ref());
        let tags = described.and_then(|operation| operation.tags.clone());
        // The resource's path parameters name it for OPTIONS too.
        let in_path = described
            .and_then(|operation| operation.parameters.clone())
            .map(|parameters| {
                parameters
                    .into_iter()
                    .filter_map(|parameter| match parameter {
                        RefOr::T(parameter) if parameter.parameter_in == ParameterIn::Path => {
                            Some(parameter)
                        }
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            });
        let options = OperationBuilder::new()
            .summary(Some("The methods this resource answers"))
            .tags(tags)
            .parameters(in_path)
            .security(SecurityRequirement::default())
            .response("200", answer);
        item.merge_operations(PathItem::new(HttpMethod::Options, options));
    }
    allowed.push("OPTIONS");
    let methods = methods
        .options(error::allow(allowed.join(", ")))
        .fallback(error::method_not_allowed);
    (schemas, paths, methods)
}

fn described() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(VssApi::openapi())
        .routes(resource(routes!(auth::request_token)))
        .routes(resource(routes!(images::list_public_images)))
        .routes(resource(routes!(images::get_public_image)))
        .routes(resource(routes!(images::list_public_isos)))
        .routes(resource(routes!(images::get_public_iso)))
        .routes(resource(routes!(images::user_image_links)))
        .routes(resource(routes!(
            images::list_user_images,
            sync::sync_images
        )))
        .routes(resource(routes!(images::list_user_isos, sync::sync_isos)))
        .routes(resource(routes!(sync::list)))
        .routes(resource(routes!(sync::get)))
}

/// The routes and their document.
pub fn router() -> (Router<AppState>, Document) {
    let (router, document) = described().split_for_parts();
    // Static routes, Coopr's `/v2/imagetypes` among them (merged beside
    // this router), win over this catch-all (matchit).
    let router = router.route("/v2/{*rest}", any(error::not_found));
    (router, document)
}
