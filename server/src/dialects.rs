//! The REST dialects: each a thin adapter that parses its own syntax into the
//! core's types, calls the core, and renders the answer in its own shape.
//! Each router declares full paths (VSS and Coopr share `/v2`), and they are
//! merged, not nested, ahead of the UI's routes.

pub mod coopr;
pub mod mws;
pub mod vice;
pub mod vss;

use axum::handler::Handler;
use axum::Router;
use utoipa_axum::router::UtoipaMethodRouter;

use crate::state::AppState;

/// A resource's described methods, with `fallback` answering any other
/// method (each dialect's 405, in its own body).
pub fn or_else<H, T>(
    (schemas, paths, methods): UtoipaMethodRouter<AppState>,
    fallback: H,
) -> UtoipaMethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    (schemas, paths, methods.fallback(fallback))
}

/// A dialect's OpenAPI document, served at `/api/openapi/{name}.json`.
pub struct Described {
    pub name: &'static str,
    pub document: utoipa::openapi::OpenApi,
    /// Whether a password may sign its requests (then a login may be
    /// throttled, 429, or refused for load, 503).
    pub passwords: bool,
}

/// Every dialect's routes, and the documents of those described.
pub fn router() -> (Router<AppState>, Vec<Described>) {
    let (coopr, coopr_document) = coopr::router().split_for_parts();
    let (mws, mws_document) = mws::router().split_for_parts();
    let (vice, vice_document) = vice::router();
    let (vss, vss_document) = vss::router();
    let router = Router::new().merge(vss).merge(mws).merge(coopr).merge(vice);
    let described = vec![
        Described {
            name: "vss",
            document: vss_document,
            passwords: true,
        },
        Described {
            name: "mws",
            document: mws_document,
            passwords: true,
        },
        Described {
            name: "vice",
            document: vice_document,
            passwords: true,
        },
        Described {
            name: "coopr",
            document: coopr_document,
            passwords: false,
        },
    ];
    (router, described)
}
