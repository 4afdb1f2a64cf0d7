//! `PATCH /v2/user/image/{vm,iso}` (submit a sync of the personal store) and
//! `/v2/request/image_sync[/{id}]` (follow it).

use std::time::Instant;

use app::error::CoreError;
use app::model::Viewer;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::Value as JsonValue;

use super::error::VssError;
use super::views::{base_url, elapsed, image_time, ItemMeta, ListMeta, One, Pages, SelfLink};
use crate::core::{SyncKind, SyncRequest};
use crate::state::AppState;

#[derive(Debug, Serialize)]
struct Messages {
    errors: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Username {
    username: String,
}

/// A sync request, as vss-cli shows one.
#[derive(Debug, Serialize)]
struct RequestView {
    added: i64,
    created_on: String,
    deleted: i64,
    id: i64,
    message: Messages,
    status: String,
    task_id: String,
    #[serde(rename = "type")]
    kind: String,
    updated_on: String,
    user: Username,
}

fn view(request: SyncRequest) -> JsonValue {
    let view = RequestView {
        added: request.added,
        created_on: image_time(request.created_at),
        deleted: request.deleted,
        id: request.id,
        message: Messages {
            errors: request.errors,
            warnings: request.warnings,
        },
        status: request.status,
        task_id: request.task_id,
        kind: request.kind,
        updated_on: image_time(request.updated_at),
        user: Username {
            username: request.username,
        },
    };
    serde_json::to_value(view).unwrap_or(JsonValue::Null)
}

#[derive(Debug, Serialize)]
struct Submitted {
    id: i64,
    status: String,
    task_id: String,
}

#[derive(Debug, Serialize)]
struct SubmittedData {
    message: &'static str,
    request: Submitted,
}

#[derive(Debug, Serialize)]
pub struct SubmittedView {
    data: SubmittedData,
}

async fn submit(
    state: AppState,
    viewer: Viewer,
    kind: SyncKind,
) -> Result<(StatusCode, Json<SubmittedView>), VssError> {
    let request = state.core.submit_sync(&viewer, kind).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SubmittedView {
            data: SubmittedData {
                message: "Request has been accepted for processing",
                request: Submitted {
                    id: request.id,
                    status: request.status,
                    task_id: request.task_id,
                },
            },
        }),
    ))
}

/// `PATCH /v2/user/image/vm`: any body is ignored (pyvss sends a JSON type, no body).
pub async fn sync_images(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<(StatusCode, Json<SubmittedView>), VssError> {
    submit(state, viewer, SyncKind::Vm).await
}

/// `PATCH /v2/user/image/iso`.
pub async fn sync_isos(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<(StatusCode, Json<SubmittedView>), VssError> {
    submit(state, viewer, SyncKind::Iso).await
}

/// `GET /v2/request/image_sync/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<One>, VssError> {
    let started = Instant::now();
    let user = viewer.require_user()?.username.clone();
    let id = id
        .parse::<i64>()
        .map_err(|_| CoreError::not_found(format!("image sync request {id}")))?;
    let request = state.core.sync_request(&viewer, id).await?;
    Ok(Json(One {
        data: view(request),
        meta: ItemMeta {
            time: elapsed(started),
            user,
        },
    }))
}

#[derive(Debug, Serialize)]
pub struct RequestList {
    data: Vec<JsonValue>,
    meta: ListMeta,
}

/// `GET /v2/request/image_sync`: the caller's requests, newest first, paged;
/// `filter=status,eq,<STATUS>` narrows them.
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<RequestList>, VssError> {
    let started = Instant::now();
    let user = viewer.require_user()?.username.clone();
    let (params, status) = super::parse::sync_list_params(raw_query.as_deref())?;
    let (items, total) = state
        .core
        .list_sync_requests(
            &viewer,
            status.as_deref(),
            params.per_page,
            (params.page - 1).saturating_mul(params.per_page),
        )
        .await?;
    let base = base_url(&headers);
    let url = format!("{base}/v2/request/image_sync");
    let data: Vec<JsonValue> = items.into_iter().map(view).collect();
    Ok(Json(RequestList {
        meta: ListMeta {
            link: Some(SelfLink {
                self_url: format!(
                    "{base}{}",
                    uri.path_and_query().map_or("/", |path| path.as_str())
                ),
            }),
            count: data.len(),
            filter: params.filter_text.clone(),
            pages: Pages::new(&url, &params, total),
            sort: None,
            time: elapsed(started),
            user,
        },
        data,
    }))
}
