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
//! - a name already used by an image the caller can read is a 409;
//! - `max` defaults to, and is capped at, 1000 results;
//! - a path under `/mws` that names no resource is a 404 (any method);
//! - `$regex` takes the syntax common to Rust's `regex` crate and PostgreSQL
//!   (`$options: "i"` for case-insensitive).

mod distinct;
mod error;
mod images;
mod parse;
mod views;

use axum::routing::{any, get};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/mws/rest/images",
            get(images::list)
                .post(images::create)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/mws/rest/images/{key}",
            get(images::get)
                .put(images::update)
                .delete(images::delete)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/mws/rest/distinct/images/{field}",
            get(distinct::list).fallback(error::method_not_allowed),
        )
        // Static routes win over this catch-all (matchit), whatever their depth.
        .route("/mws/{*rest}", any(error::not_found))
}
