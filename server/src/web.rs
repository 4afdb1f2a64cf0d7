//! The HTTP surface: Depot's own endpoints, the Leptos UI, and the layers
//! every request passes through (tracing, session, caller resolution).

mod assets;
mod auth;
mod body_length;
mod compress;
mod dav_headers;
pub(crate) mod download_places;
mod error;
mod files;
mod form_guard;
mod metrics;
mod openapi;
mod security;
mod server_fn_body;
mod store;
mod store_quota;
pub(crate) mod tokens;
mod uploads;
pub mod whole_body;

use axum::routing::get;
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::{time, SameSite};
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::state::AppState;
use crate::store::SessionStore;

pub use assets::SiteAssets;
pub use body_length::BodyLength;
pub use error::{status_of, with_retry_after, ApiError, ApiPath, ErrorBody};
pub use files::{content_response, DownloadHeaders};
pub use form_guard::{reason as form_reason, streamed_form};
pub use metrics::Metrics;
pub use openapi::{each_operation, PasswordOrToken, RawBytes};
pub use store::handler as store_handler;

/// How long a browser session lasts without use.
const SESSION_IDLE_DAYS: i64 = 7;

/// The session cookie's name. Over TLS it is `__Host-` prefixed: a
/// browser then takes it only from this host, sent `Secure`, for `/`, so a
/// site on a sibling subdomain cannot set one for the whole domain (and
/// sign a visitor in to the attacker's account).
pub fn session_cookie(secure: bool) -> &'static str {
    if secure {
        "__Host-depot_session"
    } else {
        "depot_session"
    }
}

/// The whole application router.
pub fn router(
    state: AppState,
    assets: SiteAssets,
    sessions: SessionStore,
    secure_cookies: bool,
) -> Router {
    let catalog: app::ports::SharedCatalog = state.core.clone();
    let leptos_options = state.leptos_options.clone();
    let pieces = assets.wasm_pieces();
    let sessions = SessionManagerLayer::new(sessions)
        .with_name(session_cookie(secure_cookies))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure_cookies)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(
            SESSION_IDLE_DAYS,
        )));

    let (api, document) = openapi::depot_api().split_for_parts();
    let (dialects, dialect_documents) = crate::dialects::router();
    // Each dialect's document, offered under its title ("Depot: ViCE image
    // registry" as "ViCE image registry").
    let offered: Vec<(&str, String)> = dialect_documents
        .iter()
        .map(|described| {
            let title = &described.document.info.title;
            let label = title.strip_prefix("Depot: ").unwrap_or(title);
            (described.name, label.to_owned())
        })
        .collect();
    let docs = openapi::docs(&offered);
    let mut router = Router::new().route(
        "/api/openapi.json",
        openapi::serve(openapi::Rendered::new(
            document,
            openapi::OuterAnswers { passwords: true },
        )),
    );
    for described in dialect_documents {
        let outer = openapi::OuterAnswers {
            passwords: described.passwords,
        };
        let document = openapi::Rendered::new(described.document, outer);
        let path = format!("/api/openapi/{}.json", described.name);
        router = router.route(&path, openapi::serve(document));
    }
    router
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::render))
        .route("/api/docs", docs)
        .merge(api)
        .merge(store::router())
        .merge(dialects)
        .leptos_routes_with_context(
            &state,
            generate_route_list(app::App),
            move || {
                provide_context(catalog.clone());
                if let Some(pieces) = &pieces {
                    provide_context(pieces.clone());
                }
                set_page_policy();
            },
            move || app::shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            server_fn_body::read_first,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::resolve_viewer,
        ))
        .layer(sessions)
        // The build output needs no caller: merged after the session and the
        // caller are resolved, so a page's scripts cost no session look-up.
        .merge(assets.router())
        .layer(axum::middleware::from_fn(security::bounded_ranges))
        .layer(axum::middleware::from_fn_with_state(
            secure_cookies,
            security::refuse_cross_site,
        ))
        .layer(axum::middleware::from_fn(security::own_form_errors_only))
        .layer(axum::middleware::from_fn(security::common_headers))
        .layer(axum::middleware::from_fn(uploads::name_the_protocol))
        .layer(compress::layer())
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Gives a server-rendered page its Content-Security-Policy, with the nonce
/// Leptos puts on the page's scripts (server functions have no nonce).
fn set_page_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(policy) = http::HeaderValue::from_str(&security::page_policy(&nonce)) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, policy);
    }
}

/// Liveness: the process answers.
async fn health() -> &'static str {
    "ok"
}

/// Readiness, for a load balancer: 200 while the database and the blob
/// store work, 503 with what does not otherwise.
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.core.readiness().await {
        Ok(()) => "ready".into_response(),
        Err(what) => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "error": what, "status": 503 })),
        )
            .into_response(),
    }
}
