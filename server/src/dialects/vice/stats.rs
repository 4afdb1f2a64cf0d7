//! `/v1/runtimestats`: the job queue's true lengths and worker counts.

use app::model::Viewer;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;

use super::codec::{Negotiated, Reply};
use super::error::{ViceErrorBody, ViceResult};
use super::views::RuntimeStatsView;
use crate::state::AppState;

/// Provide internal statistics about queue lengths and workers (`getRuntimeStats`).
#[utoipa::path(get, path = "/v1/runtimestats", tag = "stats", operation_id = "getRuntimeStats",
    responses(
        (status = 200, description = "successful operation", body = RuntimeStatsView),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
) -> ViceResult {
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
