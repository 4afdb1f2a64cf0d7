//! `POST /v1/deploy`, `GET /v1/deployments`, `/v1/deployment/{id}`.

use app::error::CoreError;
use app::model::{Deployment, Viewer};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::codec::{Negotiated, Reply, ViceBody};
use super::error::{ViceErrorBody, VicePath, ViceResult};
use super::views::Done;
use crate::state::AppState;

const TAG: &str = "deployments";

/// A deployment as clients send it: `{"environmentId", "imageid", …}`;
/// `id` and `userid` are ignored.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(as = DeploymentWrite, xml(name = "Deployment"))]
pub struct DeployBody {
    /// An image of the caller's.
    #[schema(value_type = String, example = "42")]
    imageid: Option<Value>,
    /// An environment of the caller's.
    #[serde(rename = "environmentId")]
    #[schema(value_type = String, example = "3")]
    environment_id: Option<Value>,
    title: Option<String>,
    #[serde(rename = "environmentReference")]
    environment_reference: Option<String>,
}

/// A deployment, as the seed's `Deployment` model plus its job's `state`
/// (queued, running, done, failed) and the `reason` of a failure.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Deployment, xml(name = "Deployment"))]
pub struct DeploymentView {
    /// The image deployed; empty once it is deleted (the deployment, and
    /// the file it wrote, outlive it).
    #[schema(example = "42")]
    imageid: String,
    #[serde(rename = "environmentId")]
    environment_id: String,
    id: String,
    title: String,
    userid: String,
    #[serde(rename = "environmentReference")]
    environment_reference: String,
    #[schema(example = "queued")]
    state: String,
    /// Why it failed; empty unless it did.
    reason: String,
}

impl From<&Deployment> for DeploymentView {
    fn from(row: &Deployment) -> Self {
        Self {
            imageid: row.image_id.map(|id| id.to_string()).unwrap_or_default(),
            environment_id: row.environment_id.to_string(),
            id: row.id.to_string(),
            title: row.title.clone(),
            userid: row.user_id.to_string(),
            environment_reference: row.environment_reference.clone(),
            state: row.state.as_str().to_owned(),
            reason: row.reason.clone(),
        }
    }
}

/// An id from a body: a number, or a string holding one; else invalid input.
fn body_id(field: &str, value: Option<&Value>) -> Result<i64, CoreError> {
    let text = match value {
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(text)) => text.trim().to_owned(),
        Some(Value::Object(fields)) => match fields.get("$text") {
            Some(Value::String(text)) => text.trim().to_owned(),
            _ => String::new(),
        },
        _ => return Err(CoreError::invalid(format!("{field} is required"))),
    };
    text.parse::<i64>()
        .map_err(|_| CoreError::not_found(format!("{field} {text}")))
}

fn deployment_id(raw: &str) -> Result<i64, CoreError> {
    raw.parse::<i64>()
        .map_err(|_| CoreError::not_found(format!("deployment {raw}")))
}

/// Create an image into an environment (`deployImage`): 201.
#[utoipa::path(post, path = "/v1/deploy", tag = TAG, operation_id = "deployImage",
    request_body(content = DeployBody, description = "`imageid` and `environmentId`, \
        both the caller's; `title` and `environmentReference` are kept"),
    responses(
        (status = 201, description = "Created", body = DeploymentView, links(
            ("getDeployment" = (operation_id = "getDeployment",
                parameters(("deploymentId" = "$response.body#/id")))),
            ("deleteDeployment" = (operation_id = "deleteDeployment",
                parameters(("deploymentId" = "$response.body#/id")))),
        )),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 404, description = "No such image or environment of the caller's", body = ViceErrorBody),
        (status = 405, description = "Invalid input, an image without a file, or a target \
            outside the export root", body = ViceErrorBody),
        (status = 409, description = "The caller has 32 deployments queued or running",
            body = ViceErrorBody),
        (status = 413, description = "The body is too large", body = ViceErrorBody),
    ))]
pub async fn deploy(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    body: ViceResult<ViceBody<DeployBody>>,
) -> ViceResult {
    viewer.require_user()?;
    let ViceBody(body) = body?;
    let image = body_id("imageid", body.imageid.as_ref())?;
    let environment = body_id("environmentId", body.environment_id.as_ref())?;
    let row = state
        .core
        .deploy(
            &viewer,
            image,
            environment,
            body.title.as_deref().unwrap_or_default(),
            body.environment_reference.as_deref().unwrap_or_default(),
        )
        .await?;
    Ok(Reply::new(
        format,
        StatusCode::CREATED,
        "Deployment",
        &DeploymentView::from(&row),
    ))
}

/// List all deployments of the user (`findDeployments`).
#[utoipa::path(get, path = "/v1/deployments", tag = TAG, operation_id = "findDeployments",
    responses(
        (status = 200, description = "An array of deployments.", body = Vec<DeploymentView>),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
) -> ViceResult {
    let rows = state.core.list_deployments(&viewer).await?;
    let views: Vec<DeploymentView> = rows.iter().map(DeploymentView::from).collect();
    Ok(Reply::list(format, "Deployments", "Deployment", &views))
}

/// Get a deployment (`getDeployment`).
#[utoipa::path(get, path = "/v1/deployment/{deploymentId}", tag = TAG, operation_id = "getDeployment",
    params(("deploymentId" = String, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "successful operation", body = DeploymentView),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 404, description = "Deployment not found", body = ViceErrorBody),
        (status = 405, description = "The path does not decode", body = ViceErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    VicePath(id): VicePath<String>,
) -> ViceResult {
    let row = state.core.deployment(&viewer, deployment_id(&id)?).await?;
    Ok(Reply::new(
        format,
        StatusCode::OK,
        "Deployment",
        &DeploymentView::from(&row),
    ))
}

/// Remove a deployment (`deleteDeployment`): 200, the file it wrote removed
/// from the environment.
#[utoipa::path(delete, path = "/v1/deployment/{deploymentId}", tag = TAG, operation_id = "deleteDeployment",
    params(("deploymentId" = String, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "successful operation", body = Done),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 404, description = "Element not found", body = ViceErrorBody),
        (status = 405, description = "The path does not decode", body = ViceErrorBody),
        (status = 409, description = "The deployment is being written, or its file could not be removed", body = ViceErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    VicePath(id): VicePath<String>,
) -> ViceResult {
    let id = deployment_id(&id)?;
    state.core.delete_deployment(&viewer, id).await?;
    let done = Done {
        code: 200,
        message: format!("deployment {id} deleted"),
    };
    Ok(Reply::new(format, StatusCode::OK, "Response", &done))
}
