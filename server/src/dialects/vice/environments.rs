//! `/v1/environments` and `/v1/environment/{id}`: execution environments,
//! their credentials masked in every answer.

use app::error::CoreError;
use app::model::{
    Environment, EnvironmentDraft, EnvironmentSpec, ManagementLayerType, RuntimeTechnologyType,
    Viewer, MASKED_PASSWORD,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::codec::{decode, request_format, response_format, Format, Reply};
use super::error::respond;
use super::views::Done;
use crate::state::AppState;

#[derive(Default, Deserialize)]
#[serde(default)]
struct CredentialsBody {
    location: Option<String>,
    username: Option<String>,
    password: Option<String>,
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

/// An environment as clients send it; `id` is read on `PUT` only.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EnvironmentBody {
    id: Option<Value>,
    title: Option<String>,
    credentials: Option<CredentialsBody>,
    managementlayer: Option<LayerBody>,
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
    fn read(headers: &HeaderMap, bytes: Result<Bytes, BytesRejection>) -> Result<Self, CoreError> {
        let bytes = bytes.map_err(|rejection| crate::dialects::body_error(&rejection))?;
        decode(request_format(headers), &bytes)
    }

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

#[derive(Debug, Serialize)]
struct CredentialsView {
    location: String,
    username: String,
    /// Masked when one is set; never the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'static str>,
    specifics: String,
}

#[derive(Debug, Serialize)]
struct LayerView {
    #[serde(rename = "type")]
    kind: &'static str,
    software: String,
    version: String,
}

/// An environment, as the seed's `Environment` model.
#[derive(Debug, Serialize)]
pub struct EnvironmentView {
    credentials: CredentialsView,
    managementlayer: LayerView,
    id: String,
    title: String,
    userid: String,
    runtimetechnology: LayerView,
}

impl From<&Environment> for EnvironmentView {
    fn from(environment: &Environment) -> Self {
        Self {
            credentials: CredentialsView {
                location: environment.location.clone(),
                username: environment.username.clone(),
                password: environment.has_password.then_some(MASKED_PASSWORD),
                specifics: environment.specifics.clone(),
            },
            managementlayer: LayerView {
                kind: environment.management_layer.kind.as_str(),
                software: environment.management_layer.software.clone(),
                version: environment.management_layer.version.clone(),
            },
            id: environment.id.to_string(),
            title: environment.title.clone(),
            userid: environment.user_id.to_string(),
            runtimetechnology: LayerView {
                kind: environment.runtime_technology.kind.as_str(),
                software: environment.runtime_technology.software.clone(),
                version: environment.runtime_technology.version.clone(),
            },
        }
    }
}

#[derive(Debug, Serialize)]
struct EnvironmentList {
    #[serde(rename = "Environment")]
    environments: Vec<EnvironmentView>,
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
pub async fn create(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        let spec = EnvironmentBody::read(&headers, bytes)?.spec()?;
        let environment = state.core.create_environment(&viewer, spec).await?;
        Ok(one(format, StatusCode::CREATED, &environment))
    }
    .await;
    respond(format, outcome)
}

/// List accessible environments (`findEnvironment`), by
/// `filterManagementlayer` and `filterRuntimetechnology` (their types). The
/// operation answers only 200, 401 and 500: a word that names no type is a
/// filter nothing matches, so the list is empty.
pub async fn list(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        let mut management = None;
        let mut runtime = None;
        let mut matches_nothing = false;
        for (key, value) in
            form_urlencoded::parse(raw_query.as_deref().unwrap_or_default().as_bytes())
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
        Ok(match format {
            Format::Json => Reply::new(format, StatusCode::OK, "Environments", &views),
            Format::Xml => Reply::new(
                format,
                StatusCode::OK,
                "Environments",
                &EnvironmentList {
                    environments: views,
                },
            ),
        })
    }
    .await;
    respond(format, outcome)
}

/// Update an environment (`updateEnvironment`): 201; the body's `id` names it.
pub async fn update(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        viewer.require_user()?;
        let body = EnvironmentBody::read(&headers, bytes)?;
        let id = match &body.id {
            Some(Value::String(text)) => environment_id(text)?,
            Some(Value::Number(number)) => environment_id(&number.to_string())?,
            _ => {
                return Err(CoreError::invalid(
                    "id is required to update an environment",
                ))
            }
        };
        let environment = state
            .core
            .update_environment(&viewer, id, body.spec()?)
            .await?;
        Ok(one(format, StatusCode::CREATED, &environment))
    }
    .await;
    respond(format, outcome)
}

/// Get an environment (`getEnvironment`).
pub async fn get(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        let environment = state
            .core
            .environment(&viewer, environment_id(&id)?)
            .await?;
        Ok(one(format, StatusCode::OK, &environment))
    }
    .await;
    respond(format, outcome)
}

/// Delete an environment (`deleteEnvironment`): 200.
pub async fn delete(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let format = response_format(&headers);
    let outcome = async {
        let id = environment_id(&id)?;
        state.core.delete_environment(&viewer, id).await?;
        let done = Done {
            code: 200,
            message: format!("environment {id} deleted"),
        };
        Ok(Reply::new(format, StatusCode::OK, "Response", &done))
    }
    .await;
    respond(format, outcome)
}
