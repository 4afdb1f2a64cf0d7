//! The enumerations of the ViCE image registry, checked once here: anything
//! else is refused with a message naming the field.

use serde_json::Value;

use crate::error::CoreError;
use crate::model::{plain_text, DiskFormat};

/// Declares an enum whose values are the registry's words for it.
macro_rules! vice_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $(
                #[serde(rename = $text)]
                #[cfg_attr(feature = "openapi", schema(rename = $text))]
                $variant
            ),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Reads the registry's word; anything else names the field.
            pub fn parse(text: &str) -> Result<Self, CoreError> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| {
                        let words: Vec<&str> = Self::ALL.iter().map(|value| value.as_str()).collect();
                        CoreError::invalid(format!(
                            "{} must be one of {}, not '{text}'",
                            $field,
                            words.join(", ")
                        ))
                    })
            }
        }
    };
}

vice_enum!(
    /// Whether an image holds bytes (`implicit`) or a recipe (`declarative`).
    ViceImageType, "imagetype", {
        Implicit => "implicit",
        Declarative => "declarative",
    }
);

vice_enum!(
    /// What an image's content is.
    ContentType, "contenttype", {
        DiskRaw => "disk-raw",
        DiskQcow2 => "disk-qcow2",
        DiskVmdk => "disk-vmdk",
        DockerFile => "docker-file",
        DockerImage => "docker-image",
        Packerfile => "packerfile",
    }
);

vice_enum!(
    /// How an execution environment is managed.
    ManagementLayerType, "managementlayer.type", {
        Basic => "basic",
        CloudComputing => "cloudcomputing",
        ContainerCluster => "containercluster",
        JobScheduler => "jobscheduler",
    }
);

vice_enum!(
    /// What an execution environment runs.
    RuntimeTechnologyType, "runtimetechnology.type", {
        VirtualMachine => "virtualmachine",
        Container => "container",
        Application => "application",
    }
);

impl ContentType {
    /// The disk format of the bytes this content type names.
    pub fn format(self) -> DiskFormat {
        match self {
            Self::DiskRaw => DiskFormat::Raw,
            Self::DiskQcow2 => DiskFormat::Qcow2,
            Self::DiskVmdk => DiskFormat::Vmdk,
            Self::DockerFile => DiskFormat::DockerFile,
            Self::DockerImage => DiskFormat::DockerImage,
            Self::Packerfile => DiskFormat::Packerfile,
        }
    }

    /// The content type of bytes of this format, if ViCE has a word for it.
    pub fn of_format(format: DiskFormat) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|content| content.format() == format)
    }
}

/// `specifics` as the registry's clients send it: a JSON object, or a string
/// holding one (`"{}"`). Answers the object.
/// At most [`MAX_DOCUMENT_BYTES`](super::text::MAX_DOCUMENT_BYTES) as JSON.
pub fn parse_specifics(value: &Value) -> Result<Value, CoreError> {
    let wrong = || CoreError::invalid("specifics must be a JSON object, or a string holding one");
    let object = match value {
        Value::Object(_) => value.clone(),
        Value::Null => Value::Object(Default::default()),
        Value::String(text) if text.trim().is_empty() => Value::Object(Default::default()),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(object @ Value::Object(_)) => object,
            _ => return Err(wrong()),
        },
        _ => return Err(wrong()),
    };
    super::bounded_document("specifics", &object)?;
    Ok(object)
}

/// A ViCE image's attributes as a client sent them; ids in the body are
/// never read (the server assigns them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViceImageDraft {
    pub title: Option<String>,
    pub image_type: Option<String>,
    pub content_type: Option<String>,
    pub imported: Option<bool>,
    pub origin_environment: Option<String>,
    pub environment_reference: Option<String>,
    pub specifics: Option<Value>,
}

/// A ViCE image's attributes, every rule checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ViceImageSpec {
    pub title: String,
    pub image_type: ViceImageType,
    pub content_type: Option<ContentType>,
    pub imported: bool,
    pub origin_environment: Option<String>,
    pub environment_reference: Option<String>,
    /// Always a JSON object.
    pub specifics: Value,
}

/// The longest title or reference kept.
const MAX_TEXT: usize = 1024;

impl ViceImageSpec {
    pub fn parse(draft: ViceImageDraft) -> Result<Self, CoreError> {
        let text = |field: &str, value: Option<String>| -> Result<Option<String>, CoreError> {
            match value {
                Some(text) if text.len() > MAX_TEXT => Err(CoreError::invalid(format!(
                    "{field} is longer than {MAX_TEXT} bytes"
                ))),
                Some(text) => {
                    plain_text(field, &text)?;
                    Ok(Some(text).filter(|text| !text.trim().is_empty()))
                }
                None => Ok(None),
            }
        };
        Ok(Self {
            title: text("title", draft.title)?.unwrap_or_else(|| "untitled".into()),
            image_type: draft
                .image_type
                .as_deref()
                .map(ViceImageType::parse)
                .transpose()?
                .unwrap_or(ViceImageType::Implicit),
            content_type: draft
                .content_type
                .as_deref()
                .map(ContentType::parse)
                .transpose()?,
            imported: draft.imported.unwrap_or(false),
            origin_environment: text("originEnvironment", draft.origin_environment)?,
            environment_reference: text("environmentReference", draft.environment_reference)?,
            specifics: parse_specifics(draft.specifics.as_ref().unwrap_or(&Value::Null))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_draft_gets_defaults_and_its_enums_checked() {
        let spec = ViceImageSpec::parse(ViceImageDraft::default()).unwrap();
        assert_eq!(spec.image_type, ViceImageType::Implicit);
        assert_eq!(spec.specifics, json!({}));
        let bad = ViceImageDraft {
            content_type: Some("disk-iso".into()),
            ..Default::default()
        };
        assert!(ViceImageSpec::parse(bad)
            .unwrap_err()
            .to_string()
            .contains("contenttype"));
        let bad = ViceImageDraft {
            title: Some("a\nb".into()),
            ..Default::default()
        };
        assert!(ViceImageSpec::parse(bad).is_err());
        for (title, reference) in [("evil\u{202e}gpj", "r"), ("t", "ref\u{2069}")] {
            let bad = ViceImageDraft {
                title: Some(title.into()),
                environment_reference: Some(reference.into()),
                ..Default::default()
            };
            let error = ViceImageSpec::parse(bad).unwrap_err().to_string();
            assert!(error.contains("bidirectional"), "{error}");
        }
    }

    #[test]
    fn every_word_round_trips_and_others_name_the_field() {
        for content in ContentType::ALL {
            assert_eq!(ContentType::parse(content.as_str()).unwrap(), *content);
            assert_eq!(ContentType::of_format(content.format()), Some(*content));
        }
        let error = ContentType::parse("disk-iso").unwrap_err().to_string();
        assert!(
            error.starts_with("contenttype must be one of disk-raw"),
            "{error}"
        );
        assert!(ViceImageType::parse("explicit").is_err());
        assert_eq!(
            ManagementLayerType::parse("cloudcomputing").unwrap(),
            ManagementLayerType::CloudComputing
        );
        let error = RuntimeTechnologyType::parse("vm").unwrap_err().to_string();
        assert!(error.contains("runtimetechnology.type"), "{error}");
        assert_eq!(ContentType::of_format(DiskFormat::Iso), None);
    }

    #[test]
    fn specifics_are_an_object_or_a_string_holding_one() {
        let object = json!({"TenantName": "t", "Region": "r", "Domain": "d"});
        assert_eq!(parse_specifics(&object).unwrap(), object);
        assert_eq!(
            parse_specifics(&json!("{\"Region\":\"r\"}")).unwrap(),
            json!({"Region": "r"})
        );
        assert_eq!(parse_specifics(&json!("{}")).unwrap(), json!({}));
        assert!(parse_specifics(&json!("[1]")).is_err());
        assert!(parse_specifics(&json!(3)).is_err());
    }
}
