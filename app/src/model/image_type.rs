//! Image types (the Coopr dialect): a tenant's named mapping from providers to
//! the flavor of image each one offers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::model::bounded_document;
use crate::model::image::MAX_DESCRIPTION_CHARS;

/// One image type, as stored and as Coopr shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "name": "small.example",
    "description": "Example 1 vCPU, 1 GB RAM, 30+ GB Disk",
    "providermap": {"openstack": {"flavor": "m1.small"}}
})))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageType {
    /// Letters, digits, `-`, `.` and `_`.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9._-]{1,255}$"))]
    pub name: String,
    pub description: String,
    /// provider -> settings (for example `{"openstack": {"flavor": "m1.small"}}`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub providermap: Map<String, Value>,
}

/// A Coopr tenant as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantInfo {
    pub name: String,
    #[cfg_attr(feature = "hydrate", serde(with = "crate::dates::rfc3339"))]
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Usernames, sorted.
    pub members: Vec<String>,
    pub image_types: i64,
}

/// Whether `name` is a valid image type name: letters, digits, `-`, `.`, `_`.
pub fn is_image_type_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl ImageType {
    /// Reads a whole image type from a JSON body; every field is required.
    pub fn parse(body: &Value) -> Result<Self, CoreError> {
        let Some(object) = body.as_object() else {
            return Err(CoreError::invalid("an image type is a JSON object"));
        };
        let mut problems = Vec::new();
        let name = match object.get("name") {
            Some(Value::String(name)) if is_image_type_name(name) => name.clone(),
            Some(Value::String(name)) => {
                problems.push(format!(
                    "name '{name}' may contain only letters, digits, '-', '.' and '_'"
                ));
                String::new()
            }
            _ => {
                problems.push("name is required (a string)".to_owned());
                String::new()
            }
        };
        let description = match object.get("description") {
            Some(Value::String(text)) if text.chars().count() > MAX_DESCRIPTION_CHARS => {
                problems.push(format!(
                    "description may be at most {MAX_DESCRIPTION_CHARS} characters"
                ));
                String::new()
            }
            Some(Value::String(text)) => text.clone(),
            _ => {
                problems.push("description is required (a string)".to_owned());
                String::new()
            }
        };
        let providermap = match object.get("providermap") {
            Some(Value::Object(map)) => {
                if let Err(error) = bounded_document("providermap", map) {
                    problems.push(error.to_string());
                }
                for (provider, flavors) in map {
                    if !flavors.is_object() {
                        problems.push(format!("providermap.{provider} must be an object"));
                    }
                }
                map.clone()
            }
            _ => {
                problems.push("providermap is required (a map of maps)".to_owned());
                Map::new()
            }
        };
        if !problems.is_empty() {
            return Err(CoreError::invalid(problems.join("; ")));
        }
        Ok(Self {
            name,
            description,
            providermap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_seed_example_parses() {
        let parsed = ImageType::parse(&json!({
            "name": "small.example",
            "description": "Example 1 vCPU, 1 GB RAM, 30+ GB Disk",
            "providermap": {"openstack": {"flavor": "m1.small"}}
        }))
        .unwrap();
        assert_eq!(parsed.name, "small.example");
        assert_eq!(parsed.providermap["openstack"]["flavor"], "m1.small");
    }

    #[test]
    fn each_missing_or_wrong_field_is_named() {
        let error = ImageType::parse(&json!({"name": "a b", "providermap": {"x": 1}}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("name 'a b'"), "{error}");
        assert!(error.contains("description is required"), "{error}");
        assert!(error.contains("providermap.x must be an object"), "{error}");
        assert!(ImageType::parse(&json!([1])).is_err());
    }

    #[test]
    fn names_are_plain_ascii() {
        assert!(is_image_type_name("small.example"));
        for bad in [
            "evil\u{202e}gpj",
            "\u{2066}small",
            "small\u{200f}",
            "a\nb",
            "",
        ] {
            assert!(!is_image_type_name(bad), "{bad:?} accepted");
        }
    }
}
