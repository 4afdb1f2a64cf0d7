//! Moab Web Services, images (`seeds/002…`): `/mws/rest/images`,
//! `/mws/rest/images/{id|name}` and `/mws/rest/distinct/images/{field}`.
//!
//! Where the seed is silent, as MWS does or its users expect:
//! - every call needs credentials (HTTP Basic with a password or a token, or a
//!   bearer token) besides `api-version=3` (or `latest`);
//! - an image created here is a metadata-only record (kind `definition`) owned
//!   by the caller and private to them (admins see all); every image the
//!   caller may read is listed, uploads included, with the MWS fields it has;
//! - ids are Depot's integer ids, rendered as strings; a string id that is not
//!   an integer names no image, so a query on it matches nothing;
//! - `PUT` changes only the fields it carries (send `null` to clear
//!   `templateName` or `hypervisorType`), then checks every rule of `POST`;
//! - a name already used by an image the caller can read is a 409, checked
//!   as the record is written, so of two creates (or renames) of one name at
//!   once only one lands, on any number of servers;
//! - `max` defaults to, and is capped at, 1000 results;
//! - a path under `/mws` that names no resource is a 404 (any method);
//! - `$regex` takes the syntax common to Rust's `regex` crate and PostgreSQL
//!   (`$options: "i"` for case-insensitive).

mod distinct;
mod error;
mod images;
mod parse;
mod views;

use axum::routing::any;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::or_else;
use crate::state::AppState;
use crate::web::PasswordOrToken;

/// The versions of the API this server speaks (`api-version`).
#[allow(dead_code)] // Describes a parameter; `parse::params` reads it.
#[derive(utoipa::ToSchema)]
pub enum ApiVersion {
    #[schema(rename = "3")]
    V3,
    #[schema(rename = "latest")]
    Latest,
}

/// The seed's images API, described.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Depot: Moab Web Services images",
        description = "MWS's images (`/mws/rest/images`) over Depot's records. Every call \
            needs `api-version=3` (or `latest`) and credentials.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(error::MwsErrorBody, crate::web::ErrorBody, ApiVersion)),
    modifiers(&PasswordOrToken),
)]
struct MwsApi;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(MwsApi::openapi())
        // A method a resource lacks is a 405 in MWS's error body.
        .routes(or_else(
            routes!(images::list, images::create),
            error::method_not_allowed,
        ))
        .routes(or_else(
            routes!(images::get, images::update, images::delete),
            error::method_not_allowed,
        ))
        .routes(or_else(routes!(distinct::list), error::method_not_allowed))
        // Static routes win over this catch-all (matchit), whatever their depth.
        .route("/mws/{*rest}", any(error::not_found))
}
