//! `/v1/runtimestats`: the job queue's true lengths and worker counts.

use app::model::Viewer;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::codec::{response_format, Reply};
use super::error::respond;
use super::views::RuntimeStatsView;
use crate::state::AppState;

/// Provide internal statistics about queue lengths and workers (`getRuntimeStats`).
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        let stats = state.core.queue_stats().await?;
        let workers = state.core.job_workers() as i64;
        let view = RuntimeStatsView {
            imports_pending: stats.imports_pending,
            import_worker: workers,
            exports_pending: stats.exports_pending,
            export_worker: workers,
            store_pending: stats.running,
            store_worker: workers,
        };
        Ok(Reply::new(format, StatusCode::OK, "RuntimeStats", &view))
    }
    .await;
    respond(format, outcome)
}
