//! The personal store over WebDAV, at `/store/`: each user's own folder is
//! the root they see (VSS's "VSKEY-STOR"), so that curl, rclone, cadaver and
//! desktop file managers can put files there for a sync to pick up. Paths
//! are resolved by dav-server inside that folder; `..` cannot leave it.

use app::model::Viewer;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use dav_server::{DavConfig, DavHandler};

use super::store_quota::QuotaFs;
use crate::state::AppState;

/// The handler shared by every request; each gets its user's folder.
pub fn handler() -> DavHandler {
    DavHandler::builder()
        .strip_prefix("/store")
        .locksystem(dav_server::fakels::FakeLs::new())
        .build_handler()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/store", any(serve))
        .route("/store/", any(serve))
        .route("/store/{*path}", any(serve))
        .layer(axum::middleware::from_fn(super::security::inert_files))
}

/// 401 with a Basic challenge: WebDAV clients send credentials only when asked.
fn challenge() -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, "sign in to reach your store\n").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Depot store\""),
    );
    response
}

async fn serve(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    request: Request,
) -> Response {
    let Some(user) = viewer.principal() else {
        return challenge();
    };
    // A body announced larger than any upload may be is refused before a
    // byte is written (a chunked body is bounded by the disk alone).
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let limit = state.core.limits().max_upload_bytes;
    if announced.is_some_and(|length| length > limit) {
        let message = format!("a file may be at most {limit} bytes\n");
        return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    }
    let root = state.core.personal_folder(user.id);
    if let Err(error) = tokio::fs::create_dir_all(&root).await {
        tracing::error!(%error, "cannot create a personal store folder");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let config = DavConfig::new()
        .filesystem(Box::new(QuotaFs::new(&root, state.core.clone(), user.id)))
        .principal(user.username.clone());
    state.dav.handle_with(config, request).await.into_response()
}
