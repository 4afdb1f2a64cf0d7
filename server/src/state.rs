//! What every handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::core::Core;

#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
    pub leptos_options: LeptosOptions,
    /// Serves the personal stores over WebDAV.
    pub dav: dav_server::DavHandler,
    /// What `/metrics` shows.
    pub metrics: Arc<crate::web::Metrics>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
