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

use axum::routing::{any, get, post};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/auth/request-token",
            post(auth::request_token)
                .options(error::allow("POST, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/image",
            get(images::list_public_images)
                .options(error::allow("GET, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/image/{id}",
            get(images::get_public_image)
                .options(error::allow("GET, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/iso",
            get(images::list_public_isos)
                .options(error::allow("GET, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/iso/{id}",
            get(images::get_public_iso)
                .options(error::allow("GET, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/user/image",
            get(images::user_image_links)
                .options(error::allow("GET, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/user/image/vm",
            get(images::list_user_images)
                .patch(sync::sync_images)
                .options(error::allow("GET, PATCH, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/user/image/iso",
            get(images::list_user_isos)
                .patch(sync::sync_isos)
                .options(error::allow("GET, PATCH, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/request/image_sync",
            get(sync::list)
                .options(error::allow("GET, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v2/request/image_sync/{id}",
            get(sync::get)
                .options(error::allow("GET, OPTIONS"))
                .fallback(error::method_not_allowed),
        )
        // Static routes, Coopr's `/v2/imagetypes` among them (merged beside
        // this router), win over this catch-all (matchit).
        .route("/v2/{*rest}", any(error::not_found))
}
