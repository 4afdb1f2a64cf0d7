//! `/v1/environments` and `/v1/environment/{id}`: execution environments,
//! their credentials masked in every answer.

use app::error::CoreError;
use app::model::{
    Environment, EnvironmentDraft, EnvironmentSpec, ManagementLayerType, RuntimeTechnologyType,
    Viewer,
};
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Extension;
use serde::Deserialize;
use serde_json::Value;

use super::codec::{Format, Negotiated, Reply, ViceBody};
use super::error::{ViceErrorBody, VicePath, ViceResult};
use super::views::{Done, EnvironmentView, ManagementLayerView, RuntimeTechnologyView};
use crate::state::AppState;

const TAG: &str = "environments";

/// Credentials as clients send them; the password is stored encrypted.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[schema(as = CredentialsWrite)]
struct CredentialsBody {
    location: Option<String>,
    username: Option<String>,
    /// Left out, or sent as `********`, keeps the stored one.
    #[schema(format = Password)]
    password: Option<String>,
    /// A JSON object, or a string holding one.
    #[schema(value_type = Option<String>, example = "{}")]
    specifics: Option<Value>,
}

// The password must never reach a log line through `Debug`.
impl std::fmt::Debug for CredentialsBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsBody")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LayerBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    software: Option<String>,
    version: Option<String>,
}

/// An environment as clients send it; `id` is read on `PUT` only. Both
/// layers' types are required (the seed is silent; the registry needs them).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = EnvironmentWrite, xml(name = "Environment"))]
pub struct EnvironmentBody {
    /// Names the environment on `PUT`; ignored on `POST`.
    #[schema(value_type = Option<String>)]
    id: Option<Value>,
    title: Option<String>,
    credentials: Option<CredentialsBody>,
    #[schema(value_type = ManagementLayerView)]
    managementlayer: Option<LayerBody>,
    #[schema(value_type = RuntimeTechnologyView)]
    runtimetechnology: Option<LayerBody>,
}

/// XML text comes through as a string or as `{"$text": …}`.
fn flatten_text(value: Option<Value>) -> Option<Value> {
    value.map(|value| match &value {
        Value::Object(fields) if fields.len() == 1 && fields.contains_key("$text") => {
            fields["$text"].clone()
        }
        _ => value,
    })
}

impl EnvironmentBody {
    fn spec(self) -> Result<EnvironmentSpec, CoreError> {
        let credentials = self.credentials.unwrap_or_default();
        let management = self.managementlayer.unwrap_or_default();
        let runtime = self.runtimetechnology.unwrap_or_default();
        EnvironmentSpec::parse(EnvironmentDraft {
            title: self.title,
            management_type: management.kind,
            management_software: management.software,
            management_version: management.version,
            runtime_type: runtime.kind,
            runtime_software: runtime.software,
            runtime_version: runtime.version,
            location: credentials.location,
            username: credentials.username,
            password: credentials.password,
            specifics: flatten_text(credentials.specifics),
        })
    }
}

fn environment_id(raw: &str) -> Result<i64, CoreError> {
    raw.trim()
        .parse::<i64>()
        .map_err(|_| CoreError::not_found(format!("environment {raw}")))
}

fn one(format: Format, status: StatusCode, environment: &Environment) -> Reply {
    Reply::new(
        format,
        status,
        "Environment",
        &EnvironmentView::from(environment),
    )
}

/// Create a new execution environment (`createEnvironment`): 201.
#[utoipa::path(post, path = "/v1/environments", tag = TAG, operation_id = "createEnvironment",
    request_body(content = EnvironmentBody, description = "The environment; `id` and \
        `userid` are assigned by the server. The password is stored encrypted"),
    responses(
        (status = 201, description = "Created", body = EnvironmentView, links(
            ("getEnvironment" = (operation_id = "getEnvironment",
                parameters(("environmentId" = "$response.body#/id")))),
            ("deleteEnvironment" = (operation_id = "deleteEnvironment",
                parameters(("environmentId" = "$response.body#/id")))),
        )),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 405, description = "Invalid input", body = ViceErrorBody),
        (status = 409, description = "The caller has as many environments as a user may \
            keep (100)", body = ViceErrorBody),
        (status = 413, description = "The body is too large", body = ViceErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    body: ViceResult<ViceBody<EnvironmentBody>>,
) -> ViceResult {
    viewer.require_user()?;
    let ViceBody(body) = body?;
    let environment = state.core.create_environment(&viewer, body.spec()?).await?;
    Ok(one(format, StatusCode::CREATED, &environment))
}

/// List accessible environments (`findEnvironment`), by
/// `filterManagementlayer` and `filterRuntimetechnology` (their types). The
/// operation answers only 200, 401 and 500: a word that names no type is a
/// filter nothing matches, so the list is empty.
#[utoipa::path(get, path = "/v1/environments", tag = TAG, operation_id = "findEnvironment",
    params(
        ("filterManagementlayer" = Option<String>, Query,
            description = "Only environments managed so (`basic`, `cloudcomputing`, …)"),
        ("filterRuntimetechnology" = Option<String>, Query,
            description = "Only environments running so (`virtualmachine`, `container`, …)"),
    ),
    responses(
        (status = 200, description = "An array of accessible execution environments.", body = Vec<EnvironmentView>),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    RawQuery(raw_query): RawQuery,
) -> ViceResult {
    viewer.require_user()?;
    let mut management = None;
    let mut runtime = None;
    let mut matches_nothing = false;
    for (key, value) in form_urlencoded::parse(raw_query.as_deref().unwrap_or_default().as_bytes())
    {
        match key.as_ref() {
            "filterManagementlayer" if !value.is_empty() => {
                management = ManagementLayerType::parse(&value).ok();
                matches_nothing |= management.is_none();
            }
            "filterRuntimetechnology" if !value.is_empty() => {
                runtime = RuntimeTechnologyType::parse(&value).ok();
                matches_nothing |= runtime.is_none();
            }
            _ => {}
        }
    }
    let environments = if matches_nothing {
        Vec::new()
    } else {
        state
            .core
            .list_environments(&viewer, management, runtime)
            .await?
    };
    let views: Vec<EnvironmentView> = environments.iter().map(EnvironmentView::from).collect();
    Ok(Reply::list(format, "Environments", "Environment", &views))
}

/// Update an environment (`updateEnvironment`): 201; the body's `id` names it.
#[utoipa::path(put, path = "/v1/environments", tag = TAG, operation_id = "updateEnvironment",
    request_body(content = EnvironmentBody, description = "The environment, named by its \
        `id`. A password left out, or sent as `********`, keeps the stored one"),
    responses(
        (status = 201, description = "Updated", body = EnvironmentView),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 404, description = "Element not found", body = ViceErrorBody),
        (status = 405, description = "Invalid input", body = ViceErrorBody),
        (status = 413, description = "The body is too large", body = ViceErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    body: ViceResult<ViceBody<EnvironmentBody>>,
) -> ViceResult {
    viewer.require_user()?;
    let ViceBody(body) = body?;
    let id = match &body.id {
        Some(Value::String(text)) => environment_id(text)?,
        Some(Value::Number(number)) => environment_id(&number.to_string())?,
        _ => {
            return Err(CoreError::invalid("id is required to update an environment").into());
        }
    };
    let environment = state
        .core
        .update_environment(&viewer, id, body.spec()?)
        .await?;
    Ok(one(format, StatusCode::CREATED, &environment))
}

/// Get an environment (`getEnvironment`).
#[utoipa::path(get, path = "/v1/environment/{environmentId}", tag = TAG, operation_id = "getEnvironment",
    params(("environmentId" = String, Path, description = "The environment's id")),
    responses(
        (status = 200, description = "successful operation", body = EnvironmentView),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 404, description = "Element not found", body = ViceErrorBody),
        (status = 405, description = "The path does not decode", body = ViceErrorBody),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    VicePath(id): VicePath<String>,
) -> ViceResult {
    let environment = state
        .core
        .environment(&viewer, environment_id(&id)?)
        .await?;
    Ok(one(format, StatusCode::OK, &environment))
}

/// Delete an environment (`deleteEnvironment`): 200.
#[utoipa::path(delete, path = "/v1/environment/{environmentId}", tag = TAG, operation_id = "deleteEnvironment",
    params(("environmentId" = String, Path, description = "The environment's id")),
    responses(
        (status = 200, description = "successful operation", body = Done),
        (status = 401, description = "Authentication information is missing or invalid", body = ViceErrorBody),
        (status = 404, description = "Element not found", body = ViceErrorBody),
        (status = 405, description = "The path does not decode", body = ViceErrorBody),
        (status = 409, description = "One of its deployments holds a file in it, or is writing \
            one: delete those first", body = ViceErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    Negotiated(format): Negotiated,
    VicePath(id): VicePath<String>,
) -> ViceResult {
    let id = environment_id(&id)?;
    state.core.delete_environment(&viewer, id).await?;
    let done = Done {
        code: 200,
        message: format!("environment {id} deleted"),
    };
    Ok(Reply::new(format, StatusCode::OK, "Response", &done))
}
