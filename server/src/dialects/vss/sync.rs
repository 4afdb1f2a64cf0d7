//! `PATCH /v2/user/image/{vm,iso}` (submit a sync of the personal store) and
//! `/v2/request/image_sync[/{id}]` (follow it).

use std::time::Instant;

use app::error::CoreError;
use app::model::Viewer;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{VssError, VssErrorBody, VssPath};
use super::views::{base_url, elapsed, image_time, ItemMeta, ListMeta, One, Pages, SelfLink};
use crate::core::{SyncKind, SyncRequest};
use crate::state::AppState;

const TAG: &str = "image sync";

#[derive(Debug, Serialize, ToSchema)]
struct Messages {
    errors: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Username {
    username: String,
}

/// A sync request, as vss-cli shows one.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ImageSyncRequest)]
pub struct RequestView {
    added: i64,
    created_on: String,
    deleted: i64,
    id: i64,
    message: Messages,
    #[schema(example = "PROCESSED")]
    status: String,
    task_id: String,
    /// `VM` or `ISO`.
    #[serde(rename = "type")]
    #[schema(example = "VM")]
    kind: String,
    updated_on: String,
    user: Username,
}

fn view(request: SyncRequest) -> RequestView {
    RequestView {
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
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct Submitted {
    id: i64,
    status: String,
    task_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct SubmittedData {
    message: &'static str,
    request: Submitted,
}

/// A sync submitted: `202 {"data": {"message", "request": {"id", "status", "task_id"}}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ImageSyncSubmitted)]
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
#[utoipa::path(patch, path = "/v2/user/image/vm", tag = TAG,
    responses(
        (status = 202, description = "A sync of the personal store's VM images is submitted", body = SubmittedView),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
    ))]
pub async fn sync_images(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<(StatusCode, Json<SubmittedView>), VssError> {
    submit(state, viewer, SyncKind::Vm).await
}

/// `PATCH /v2/user/image/iso`.
#[utoipa::path(patch, path = "/v2/user/image/iso", tag = TAG,
    responses(
        (status = 202, description = "A sync of the personal store's ISOs is submitted", body = SubmittedView),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
    ))]
pub async fn sync_isos(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
) -> Result<(StatusCode, Json<SubmittedView>), VssError> {
    submit(state, viewer, SyncKind::Iso).await
}

/// `GET /v2/request/image_sync/{id}`.
#[utoipa::path(get, path = "/v2/request/image_sync/{id}", tag = TAG,
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The sync request", body = One<RequestView>),
        (status = 400, description = "The path does not decode", body = VssErrorBody),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
        (status = 404, description = "No such request of the caller's", body = VssErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    VssPath(id): VssPath<String>,
) -> Result<Json<One<RequestView>>, VssError> {
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

/// The caller's sync requests, a page of them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ImageSyncRequestList)]
pub struct RequestList {
    data: Vec<RequestView>,
    meta: ListMeta,
}

/// `GET /v2/request/image_sync`: the caller's requests, newest first, paged;
/// `filter=status,eq,<STATUS>` narrows them.
#[utoipa::path(get, path = "/v2/request/image_sync", tag = TAG,
    params(
        ("page" = Option<u64>, Query, description = "The page, from 1"),
        ("per_page" = Option<u64>, Query, description = "Requests per page"),
        ("filter" = Option<String>, Query, description = "`status,eq,<STATUS>`",
            pattern = "^status,eq,.*$"),
    ),
    responses(
        (status = 200, description = "A page of the caller's sync requests", body = RequestList),
        (status = 400, description = "A parameter malformed", body = VssErrorBody),
        (status = 401, description = "No token or credentials, or wrong ones", body = VssErrorBody),
    ))]
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
    let data: Vec<RequestView> = items.into_iter().map(view).collect();
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
