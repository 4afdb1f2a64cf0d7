//! Core records in MWS's shapes. Keys come out in the seed's (alphabetical)
//! order; `fields` and `exclude-fields` trim them.

use app::model::Image;
use app::query::Value;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::parse::Params;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageLinkView {
    pub id: String,
    pub name: String,
}

/// An image as "Get Single Image" shows it (`fields` and `exclude-fields`
/// leave some keys out, so none is required).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Image)]
pub struct ImageView {
    #[schema(required = false)]
    pub active: bool,
    /// Provisioning manager -> its settings (at most one key).
    #[schema(required = false, value_type = Object)]
    pub extensions: Map<String, Json>,
    #[schema(required = false)]
    pub features: Vec<String>,
    #[schema(required = false)]
    pub hypervisor: bool,
    #[schema(required = false)]
    pub hypervisor_type: Option<String>,
    /// Depot's integer id, as a string.
    #[schema(required = false, example = "42")]
    pub id: String,
    #[schema(required = false, example = "centos-7")]
    pub name: String,
    #[schema(required = false)]
    pub os_type: Option<String>,
    #[schema(required = false)]
    pub supports_physical_machine: bool,
    #[schema(required = false)]
    pub supports_virtual_machine: bool,
    #[schema(required = false)]
    pub template_name: Option<String>,
    /// `stateful`, `stateless` or `linkedclone`.
    #[serde(rename = "type")]
    #[schema(required = false)]
    pub provisioning_type: Option<String>,
    /// Bumped on every change: send it back with a PUT to refuse a stale one.
    #[schema(required = false)]
    pub version: i64,
    #[schema(required = false)]
    pub virtualized_images: Vec<ImageLinkView>,
}

/// A page of images: `{"totalCount", "resultCount", "results"}`.
#[allow(dead_code)] // Describes what `ListView` holds for images.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageList {
    pub total_count: u64,
    pub result_count: usize,
    pub results: Vec<ImageView>,
}

/// A page of distinct values (ids as strings).
#[allow(dead_code)] // Describes what `ListView` holds for values.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DistinctList {
    pub total_count: u64,
    pub result_count: usize,
    #[schema(value_type = Vec<serde_json::Value>)]
    pub results: Vec<Json>,
}

impl From<&Image> for ImageView {
    fn from(image: &Image) -> Self {
        let mws = &image.mws;
        Self {
            active: mws.active,
            extensions: mws.extensions.clone(),
            features: mws.features.clone(),
            hypervisor: mws.hypervisor,
            hypervisor_type: mws.hypervisor_type.clone(),
            id: image.id.to_string(),
            name: image.name.clone(),
            os_type: mws.os_type.clone(),
            supports_physical_machine: mws.supports_physical_machine,
            supports_virtual_machine: mws.supports_virtual_machine,
            template_name: mws.template_name.clone(),
            provisioning_type: mws.provisioning_type.clone(),
            version: image.version,
            virtualized_images: mws
                .virtualized_images
                .iter()
                .map(|link| ImageLinkView {
                    id: link.id.to_string(),
                    name: link.name.clone(),
                })
                .collect(),
        }
    }
}

/// A list answer: `{"totalCount", "resultCount", "results"}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListView<T> {
    pub total_count: u64,
    pub result_count: usize,
    pub results: Vec<T>,
}

impl<T> ListView<T> {
    pub fn new(total_count: u64, results: Vec<T>) -> Self {
        Self {
            total_count,
            result_count: results.len(),
            results,
        }
    }
}

/// An image as the caller asked for it: whole, written straight from its
/// view, or trimmed to some keys.
#[derive(Debug, Serialize)]
#[serde(untagged)]
// Most images go whole: boxing the view would cost each one an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Shown {
    Whole(ImageView),
    Trimmed(Map<String, Json>),
}

/// An image, trimmed to the fields the caller asked for.
pub fn image(image: &Image, params: &Params) -> Shown {
    let view = ImageView::from(image);
    if params.fields.is_none() && params.exclude_fields.is_none() {
        return Shown::Whole(view);
    }
    let Ok(Json::Object(mut object)) = serde_json::to_value(view) else {
        return Shown::Trimmed(Map::new());
    };
    // The lists are sorted (`parse::params`).
    let listed = |names: &[String], key: &str| {
        names
            .binary_search_by(|name| name.as_str().cmp(key))
            .is_ok()
    };
    if let Some(fields) = &params.fields {
        object.retain(|key, _| listed(fields, key));
    }
    if let Some(excluded) = &params.exclude_fields {
        object.retain(|key, _| !listed(excluded, key));
    }
    Shown::Trimmed(object)
}

/// A distinct value: ids as strings, as MWS shows them everywhere.
pub fn distinct_value(value: Value, is_id: bool) -> Json {
    match value {
        Value::Int(number) if is_id => Json::String(number.to_string()),
        Value::Int(number) => Json::from(number),
        Value::Text(text) => Json::String(text),
        Value::Bool(flag) => Json::Bool(flag),
        Value::Time(time) => Json::String(time.to_rfc3339()),
        Value::List(_) => Json::Null,
    }
}

/// A JSON answer, indented when the caller asked for `pretty`.
pub struct MwsJson {
    status: StatusCode,
    body: String,
    location: Option<String>,
}

impl MwsJson {
    pub fn new(value: &impl Serialize, pretty: bool) -> Self {
        let body = if pretty {
            serde_json::to_string_pretty(value)
        } else {
            serde_json::to_string(value)
        };
        Self {
            status: StatusCode::OK,
            // Plain data structures always serialize.
            body: body.unwrap_or_else(|_| "{}".into()),
            location: None,
        }
    }

    /// 201 with the new resource's address.
    pub fn created(mut self, location: String) -> Self {
        self.status = StatusCode::CREATED;
        self.location = Some(location);
        self
    }
}

impl IntoResponse for MwsJson {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body,
        )
            .into_response();
        if let Some(location) = self.location.and_then(|l| l.parse().ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole image is written straight from its view; it must read as it
    /// did when every image went through a `serde_json::Value` (keys sorted).
    #[test]
    fn a_whole_image_is_written_as_the_trimmed_path_writes_it() {
        let view = || ImageView {
            active: true,
            extensions: serde_json::from_str(r#"{"xcat": {"profile": "compute"}}"#).unwrap(),
            features: vec!["gpu".into()],
            hypervisor: true,
            hypervisor_type: None,
            id: "7".into(),
            name: "centos-7".into(),
            os_type: Some("linux".into()),
            supports_physical_machine: false,
            supports_virtual_machine: true,
            template_name: None,
            provisioning_type: Some("stateful".into()),
            version: 3,
            virtualized_images: vec![ImageLinkView {
                id: "8".into(),
                name: "vm".into(),
            }],
        };
        let straight = serde_json::to_string(&Shown::Whole(view())).unwrap();
        let through_value = serde_json::to_string(&serde_json::to_value(view()).unwrap()).unwrap();
        assert_eq!(straight, through_value);
    }
}
