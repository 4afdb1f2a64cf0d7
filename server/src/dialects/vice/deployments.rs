//! `POST /v1/deploy`, `GET /v1/deployments`, `/v1/deployment/{id}`.

use app::error::CoreError;
use app::model::{Deployment, Viewer};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::{decode, request_format, response_format, Format, Reply};
use super::error::respond;
use super::views::Done;
use crate::state::AppState;

/// A deployment as clients send it: `{"environmentId", "imageid", …}`;
/// `id` and `userid` are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeployBody {
    imageid: Option<Value>,
    #[serde(rename = "environmentId")]
    environment_id: Option<Value>,
    title: Option<String>,
    #[serde(rename = "environmentReference")]
    environment_reference: Option<String>,
}

/// A deployment, as the seed's `Deployment` model plus its job's `state`
/// (queued, running, done, failed) and the `reason` of a failure.
#[derive(Debug, Serialize)]
pub struct DeploymentView {
    imageid: String,
    #[serde(rename = "environmentId")]
    environment_id: String,
    id: String,
    title: String,
    userid: String,
    #[serde(rename = "environmentReference")]
    environment_reference: String,
    state: String,
    reason: String,
}

impl From<&Deployment> for DeploymentView {
    fn from(row: &Deployment) -> Self {
        Self {
            imageid: row.image_id.to_string(),
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

#[derive(Debug, Serialize)]
struct DeploymentList {
    #[serde(rename = "Deployment")]
    deployments: Vec<DeploymentView>,
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
pub async fn deploy(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        let bytes = bytes.map_err(|rejection| crate::dialects::body_error(&rejection))?;
        let body: DeployBody = decode(request_format(&headers), &bytes)?;
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
    .await;
    respond(format, outcome)
}

/// List all deployments of the user (`findDeployments`).
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        let rows = state.core.list_deployments(&viewer).await?;
        let views: Vec<DeploymentView> = rows.iter().map(DeploymentView::from).collect();
        Ok(match format {
            Format::Json => Reply::new(format, StatusCode::OK, "Deployments", &views),
            Format::Xml => Reply::new(
                format,
                StatusCode::OK,
                "Deployments",
                &DeploymentList { deployments: views },
            ),
        })
    }
    .await;
    respond(format, outcome)
}

/// Get a deployment (`getDeployment`).
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        let row = state.core.deployment(&viewer, deployment_id(&id)?).await?;
        Ok(Reply::new(
            format,
            StatusCode::OK,
            "Deployment",
            &DeploymentView::from(&row),
        ))
    }
    .await;
    respond(format, outcome)
}

/// Remove a deployment (`deleteDeployment`): 200.
pub async fn delete(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        let id = deployment_id(&id)?;
        state.core.delete_deployment(&viewer, id).await?;
        let done = Done {
            code: 200,
            message: format!("deployment {id} deleted"),
        };
        Ok(Reply::new(format, StatusCode::OK, "Response", &done))
    }
    .await;
    respond(format, outcome)
}
