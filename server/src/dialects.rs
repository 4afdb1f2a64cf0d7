//! The REST dialects: each a thin adapter that parses its own syntax into the
//! core's types, calls the core, and renders the answer in its own shape.
//! Each router declares full paths (VSS and Coopr share `/v2`), and they are
//! merged, not nested, ahead of the UI's routes.

pub mod coopr;
pub mod mws;
pub mod vss;

use axum::Router;

use crate::state::AppState;

/// Every dialect's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(vss::router())
        .merge(mws::router())
        .merge(coopr::router())
}
