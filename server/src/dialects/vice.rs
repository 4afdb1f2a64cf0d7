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
//!   shows; `originEnvironment` is kept as the id of the environment named;
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

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/images",
            get(images::list)
                .post(images::create)
                .put(images::update)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v1/image/{id}",
            get(images::get)
                .delete(images::delete)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v1/image/{id}/file",
            // The body is streamed to disk and limited by the core, not buffered.
            post(files::upload)
                .get(files::download)
                .layer(DefaultBodyLimit::disable())
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v1/environments",
            get(environments::list)
                .post(environments::create)
                .put(environments::update)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v1/environment/{id}",
            get(environments::get)
                .delete(environments::delete)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v1/deploy",
            post(deployments::deploy).fallback(error::method_not_allowed),
        )
        .route(
            "/v1/deployments",
            get(deployments::list).fallback(error::method_not_allowed),
        )
        .route(
            "/v1/deployment/{id}",
            get(deployments::get)
                .delete(deployments::delete)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v1/user",
            get(users::get)
                .post(users::create)
                .fallback(error::method_not_allowed),
        )
        .route(
            "/v1/runtimestats",
            get(stats::get).fallback(error::method_not_allowed),
        )
        // Static routes win over this catch-all (matchit), whatever their depth.
        .route("/v1/{*rest}", any(error::not_found))
}
