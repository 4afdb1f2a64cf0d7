//! Core records in ViCE's shapes, named as the seed's models (`Image`,
//! `Environment`, `Credentials`, ...), which is also how the document
//! describes them.

use std::collections::HashMap;

use app::model::{
    ContentType, Environment, Image, ManagementLayerType, RuntimeTechnologyType, ViceImageType,
    MASKED_PASSWORD,
};
use serde::Serialize;
use utoipa::ToSchema;

/// An environment's credentials, never with its password.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Credentials)]
pub struct CredentialsView {
    location: String,
    username: String,
    /// `********` when one is set (absent when none is): never the password.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "********")]
    password: Option<&'static str>,
    /// A JSON object, as a string.
    #[schema(example = "{}")]
    specifics: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ManagementLayer)]
pub struct ManagementLayerView {
    #[serde(rename = "type")]
    kind: ManagementLayerType,
    software: String,
    version: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RuntimeTechnology)]
pub struct RuntimeTechnologyView {
    #[serde(rename = "type")]
    kind: RuntimeTechnologyType,
    software: String,
    version: String,
}

/// An environment, as the seed's `Environment` model.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Environment, xml(name = "Environment"))]
pub struct EnvironmentView {
    credentials: CredentialsView,
    managementlayer: ManagementLayerView,
    #[schema(example = "3")]
    id: String,
    title: String,
    userid: String,
    runtimetechnology: RuntimeTechnologyView,
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
            managementlayer: ManagementLayerView {
                kind: environment.management_layer.kind,
                software: environment.management_layer.software.clone(),
                version: environment.management_layer.version.clone(),
            },
            id: environment.id.to_string(),
            title: environment.title.clone(),
            userid: environment.user_id.to_string(),
            runtimetechnology: RuntimeTechnologyView {
                kind: environment.runtime_technology.kind,
                software: environment.runtime_technology.software.clone(),
                version: environment.runtime_technology.version.clone(),
            },
        }
    }
}

/// An environment named by its id only.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EnvironmentId)]
#[serde(deny_unknown_fields)]
pub struct OriginId {
    #[schema(example = "3")]
    id: String,
}

/// An image's `originEnvironment`: the whole environment to whoever may
/// read it (its owner, an admin), else only its id (someone else's, or one
/// deleted since).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OriginView {
    Whole(Box<EnvironmentView>),
    Named(OriginId),
}

/// The environments an answer's images name that the caller may read, by id.
pub type Origins = HashMap<i64, Environment>;

/// An image, as the seed's `Image` model.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Image, xml(name = "Image"))]
pub struct ImageView {
    #[schema(example = "42")]
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    #[schema(value_type = ViceImageType)]
    pub imagetype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contenttype: Option<ContentType>,
    pub imported: bool,
    #[serde(rename = "originEnvironment", skip_serializing_if = "Option::is_none")]
    pub origin_environment: Option<OriginView>,
    #[serde(
        rename = "environmentReference",
        skip_serializing_if = "Option::is_none"
    )]
    pub environment_reference: Option<String>,
    /// A JSON object, as a string.
    #[schema(example = "{}")]
    pub specifics: String,
}

impl ImageView {
    /// `image` with its origin environment from `origins` when readable.
    pub fn new(image: &Image, origins: &Origins) -> Self {
        let vice = &image.vice;
        let default_type = if image.has_content() {
            "implicit"
        } else {
            "declarative"
        };
        let origin_environment = vice.origin_environment.clone().map(|id| {
            match id.parse::<i64>().ok().and_then(|id| origins.get(&id)) {
                Some(environment) => OriginView::Whole(Box::new(environment.into())),
                None => OriginView::Named(OriginId { id }),
            }
        });
        Self {
            id: image.id.to_string(),
            title: vice.title.clone().unwrap_or_else(|| image.name.clone()),
            userid: image.owner_id.map(|id| id.to_string()),
            imagetype: vice
                .image_type
                .clone()
                .unwrap_or_else(|| default_type.into()),
            contenttype: image.format.and_then(ContentType::of_format),
            imported: vice.imported,
            origin_environment,
            environment_reference: vice.environment_ref.clone(),
            specifics: vice
                .specifics
                .as_ref()
                .map_or_else(|| "{}".into(), |specifics| specifics.to_string()),
        }
    }
}

/// A user, as the seed's `User` model, never with a password.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User, xml(name = "User"))]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub fullname: String,
}

/// The seed's `RuntimeStats`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RuntimeStats, xml(name = "RuntimeStats"), example = json!({
    "importsPending": 0, "importWorker": 6, "exportsPending": 1,
    "exportWorker": 5, "storePending": 5, "storeWorker": 2
}))]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStatsView {
    pub imports_pending: i64,
    pub import_worker: i64,
    pub exports_pending: i64,
    pub export_worker: i64,
    pub store_pending: i64,
    pub store_worker: i64,
}

/// A success without a record (a delete): `{"code": 200, "message"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Response, xml(name = "Response"))]
pub struct Done {
    #[schema(example = 200)]
    pub code: u16,
    pub message: String,
}
