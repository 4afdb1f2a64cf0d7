//! Core records in ViCE's shapes.

use app::model::{ContentType, Image};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct OriginView {
    pub id: String,
}

/// An image, as the seed's `Image` model.
#[derive(Debug, Serialize)]
pub struct ImageView {
    pub id: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    pub imagetype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contenttype: Option<String>,
    pub imported: bool,
    #[serde(rename = "originEnvironment", skip_serializing_if = "Option::is_none")]
    pub origin_environment: Option<OriginView>,
    #[serde(
        rename = "environmentReference",
        skip_serializing_if = "Option::is_none"
    )]
    pub environment_reference: Option<String>,
    pub specifics: String,
}

impl From<&Image> for ImageView {
    fn from(image: &Image) -> Self {
        let vice = &image.vice;
        let default_type = if image.has_content() {
            "implicit"
        } else {
            "declarative"
        };
        Self {
            id: image.id.to_string(),
            title: vice.title.clone().unwrap_or_else(|| image.name.clone()),
            userid: image.owner_id.map(|id| id.to_string()),
            imagetype: vice
                .image_type
                .clone()
                .unwrap_or_else(|| default_type.into()),
            contenttype: image
                .format
                .and_then(ContentType::of_format)
                .map(|content| content.as_str().to_owned()),
            imported: vice.imported,
            origin_environment: vice.origin_environment.clone().map(|id| OriginView { id }),
            environment_reference: vice.environment_ref.clone(),
            specifics: vice
                .specifics
                .as_ref()
                .map_or_else(|| "{}".into(), |specifics| specifics.to_string()),
        }
    }
}

/// `<Images><Image>…</Image></Images>` in XML; a plain array in JSON.
#[derive(Debug, Serialize)]
pub struct ImageList {
    #[serde(rename = "Image")]
    pub images: Vec<ImageView>,
}

/// A user, as the seed's `User` model, never with a password.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub email: String,
    pub fullname: String,
}

/// The seed's `RuntimeStats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStatsView {
    pub imports_pending: i64,
    pub import_worker: i64,
    pub exports_pending: i64,
    pub export_worker: i64,
    pub store_pending: i64,
    pub store_worker: i64,
}

/// A success without a record (a delete).
#[derive(Debug, Serialize)]
pub struct Done {
    pub code: u16,
    pub message: String,
}
