//! What every handler can reach.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use crate::core::Core;

/// The server's state, shared. axum clones it for every request at each
/// layer that takes it (the caller's and the metrics' middleware, the
/// handler's `State`): one reference count to move rather than one for
/// each of its parts, of which `LeptosOptions` alone holds a dozen. Cloning
/// and dropping those parts was 5 % of the server's work on a catalog page
/// it kept (`perf`).
#[derive(Clone)]
pub struct AppState(Arc<Parts>);

/// What [`AppState`] holds.
pub struct Parts {
    pub core: Arc<Core>,
    pub leptos_options: LeptosOptions,
    /// Serves the personal stores over WebDAV.
    pub dav: dav_server::DavHandler,
    /// What `/metrics` shows.
    pub metrics: Arc<crate::web::Metrics>,
    /// The reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// What the bodies read whole before their handlers may hold together.
    pub bodies: crate::web::whole_body::BodyBudgets,
    /// The downloads of image bytes each client receives at once, if they
    /// are capped.
    pub(crate) downloads: Option<crate::web::download_places::DownloadPlaces>,
}

impl AppState {
    pub fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
