//! Provisioning images (the MWS view of an image): the rules a record must
//! obey to be provisioned by a resource manager, checked once here for every
//! dialect and page that writes them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::model::{bounded_document, bounded_word, plain_text};

/// How a node provisioned from the image keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProvisioningType {
    Stateful,
    Stateless,
    Linkedclone,
}

impl ProvisioningType {
    pub const ALL: [ProvisioningType; 3] = [Self::Stateful, Self::Stateless, Self::Linkedclone];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stateful => "stateful",
            Self::Stateless => "stateless",
            Self::Linkedclone => "linkedclone",
        }
    }

    pub fn parse(text: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                CoreError::invalid(format!(
                    "type '{text}' is not one of stateful, stateless, linkedclone"
                ))
            })
    }
}

/// Another image, named by id or by name (MWS `virtualizedImages` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageRef {
    Id(String),
    Name(String),
}

/// An image a hypervisor image can run, as stored.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageLink {
    pub id: i64,
    pub name: String,
}

/// Provisioning attributes as a client sent them. Every field is optional so
/// that an update can be laid over the stored record; `Some(None)` clears a
/// nullable field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProvisioningDraft {
    pub name: Option<String>,
    pub os_type: Option<String>,
    pub hypervisor: Option<bool>,
    pub hypervisor_type: Option<Option<String>>,
    pub supports_physical_machine: Option<bool>,
    pub supports_virtual_machine: Option<bool>,
    pub template_name: Option<Option<String>>,
    pub provisioning_type: Option<Option<String>>,
    pub active: Option<bool>,
    pub features: Option<Vec<String>>,
    pub extensions: Option<Map<String, Value>>,
    pub virtualized_images: Option<Vec<ImageRef>>,
}

impl ProvisioningDraft {
    /// This draft's fields, with `base`'s where this one is silent.
    pub fn over(self, base: ProvisioningDraft) -> ProvisioningDraft {
        ProvisioningDraft {
            name: self.name.or(base.name),
            os_type: self.os_type.or(base.os_type),
            hypervisor: self.hypervisor.or(base.hypervisor),
            hypervisor_type: self.hypervisor_type.or(base.hypervisor_type),
            supports_physical_machine: self
                .supports_physical_machine
                .or(base.supports_physical_machine),
            supports_virtual_machine: self
                .supports_virtual_machine
                .or(base.supports_virtual_machine),
            template_name: self.template_name.or(base.template_name),
            provisioning_type: self.provisioning_type.or(base.provisioning_type),
            active: self.active.or(base.active),
            features: self.features.or(base.features),
            extensions: self.extensions.or(base.extensions),
            virtualized_images: self.virtualized_images.or(base.virtualized_images),
        }
    }
}

/// Provisioning attributes that obey every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisioningSpec {
    pub name: String,
    pub os_type: String,
    pub hypervisor: bool,
    pub hypervisor_type: Option<String>,
    pub supports_physical_machine: bool,
    pub supports_virtual_machine: bool,
    pub template_name: Option<String>,
    pub provisioning_type: ProvisioningType,
    pub active: bool,
    pub features: Vec<String>,
    pub extensions: Map<String, Value>,
    pub virtualized_images: Vec<ImageRef>,
}

/// The provisioning-manager extension whose required keys Depot knows.
const XCAT_REQUIRED: [&str; 3] = ["os", "architecture", "profile"];

/// Whether `name` is a valid image name: letters, digits, `.`, `-`, `_`.
pub fn is_provisioning_name(name: &str) -> bool {
    // `.` and `..` are no file's name: a deployment of such an image could
    // never be written.
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn blank(text: &Option<String>) -> bool {
    text.as_deref().is_none_or(|text| text.trim().is_empty())
}

impl ProvisioningSpec {
    /// Checks every rule at once and names each one broken.
    /// A new record from `draft`, every field checked.
    pub fn parse(draft: ProvisioningDraft) -> Result<Self, CoreError> {
        let problems = draft.past_bounds();
        Self::parse_whole(draft, problems)
    }

    /// `draft` laid over the stored record `base`. The bounds hold the
    /// fields `draft` gives: a record stored before them may exceed them
    /// in a field an update leaves alone.
    pub fn parse_over(
        draft: ProvisioningDraft,
        base: ProvisioningDraft,
    ) -> Result<Self, CoreError> {
        let problems = draft.past_bounds();
        Self::parse_whole(draft.over(base), problems)
    }

    /// `draft` as a whole record, refused with `problems` and its own.
    fn parse_whole(draft: ProvisioningDraft, mut problems: Vec<String>) -> Result<Self, CoreError> {
        match draft.name.as_deref() {
            None => problems.push("name is required".to_owned()),
            Some(name) if !is_provisioning_name(name) => problems.push(format!(
                "name '{name}' may contain only letters, digits, periods, dashes and \
                 underscores, and may not be '.' or '..'"
            )),
            Some(_) => {}
        }
        if blank(&draft.os_type) {
            problems.push("osType is required".to_owned());
        }
        let hypervisor = draft.hypervisor.unwrap_or_else(|| {
            problems.push("hypervisor is required (true or false)".to_owned());
            false
        });
        let physical = draft.supports_physical_machine.unwrap_or(false);
        let virtual_machine = draft.supports_virtual_machine.unwrap_or(false);
        if !physical && !virtual_machine {
            problems
                .push("supportsPhysicalMachine or supportsVirtualMachine must be true".to_owned());
        }
        let hypervisor_type = draft.hypervisor_type.flatten();
        if hypervisor && blank(&hypervisor_type) {
            problems.push("hypervisorType is required for a hypervisor image".to_owned());
        }
        let virtualized_images = draft.virtualized_images.unwrap_or_default();
        if !hypervisor && !virtualized_images.is_empty() {
            problems.push("virtualizedImages is allowed only on a hypervisor image".to_owned());
        }
        let provisioning_type = match draft.provisioning_type.flatten() {
            None => ProvisioningType::Stateful,
            Some(text) => ProvisioningType::parse(&text).unwrap_or_else(|error| {
                problems.push(error.to_string());
                ProvisioningType::Stateful
            }),
        };
        let template_name = draft.template_name.flatten();
        if template_name.is_some() && provisioning_type != ProvisioningType::Linkedclone {
            problems.push("templateName is allowed only when type is linkedclone".to_owned());
        }
        for (field, text) in [
            ("osType", &draft.os_type),
            ("hypervisorType", &hypervisor_type),
            ("templateName", &template_name),
        ] {
            if let Err(error) = plain_text(field, text.as_deref().unwrap_or_default()) {
                problems.push(error.to_string());
            }
        }
        let features = draft.features.unwrap_or_default();
        let extensions = draft.extensions.unwrap_or_default();
        check_extensions(&extensions, &mut problems);

        if !problems.is_empty() {
            return Err(CoreError::invalid(problems.join("; ")));
        }
        Ok(Self {
            name: draft.name.unwrap_or_default(),
            os_type: draft.os_type.unwrap_or_default(),
            hypervisor,
            hypervisor_type,
            supports_physical_machine: physical,
            supports_virtual_machine: virtual_machine,
            template_name,
            provisioning_type,
            active: draft.active.unwrap_or(true),
            features,
            extensions,
            virtualized_images,
        })
    }
}

impl ProvisioningDraft {
    /// What this draft gives past the bounds every record is held to (a
    /// page of a thousand records carries them all): words of at most 255
    /// bytes, at most 64 features, extensions of at most 16 KiB as JSON, at
    /// most [`MAX_VIRTUALIZED_IMAGES`] images named.
    fn past_bounds(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let words = [
            ("osType", self.os_type.as_ref()),
            (
                "hypervisorType",
                self.hypervisor_type.as_ref().and_then(Option::as_ref),
            ),
            (
                "templateName",
                self.template_name.as_ref().and_then(Option::as_ref),
            ),
        ];
        for (field, text) in words {
            if let Some(Err(error)) = text.map(|text| bounded_word(field, text)) {
                problems.push(error.to_string());
            }
        }
        if let Some(features) = &self.features {
            if features.len() > MAX_FEATURES {
                problems.push(format!("features may hold at most {MAX_FEATURES} words"));
            } else if let Some(error) = features
                .iter()
                .find_map(|feature| bounded_word("a feature", feature).err())
            {
                problems.push(error.to_string());
            }
        }
        if let Some(Err(error)) = self
            .extensions
            .as_ref()
            .map(|extensions| bounded_document("extensions", extensions))
        {
            problems.push(error.to_string());
        }
        if self
            .virtualized_images
            .as_ref()
            .is_some_and(|images| images.len() > MAX_VIRTUALIZED_IMAGES)
        {
            problems.push(format!(
                "virtualizedImages may name at most {MAX_VIRTUALIZED_IMAGES} images"
            ));
        }
        problems
    }
}

/// The most images a hypervisor image may name as the ones it runs (each
/// is looked up when it is written).
pub const MAX_VIRTUALIZED_IMAGES: usize = 100;

/// The most words `features` may hold.
const MAX_FEATURES: usize = 64;

fn check_extensions(extensions: &Map<String, Value>, problems: &mut Vec<String>) {
    if extensions.len() > 1 {
        problems.push("extensions may hold at most one provisioning manager".to_owned());
    }

    for (manager, settings) in extensions {
        let Some(settings) = settings.as_object() else {
            problems.push(format!("extensions.{manager} must be an object"));
            continue;
        };
        if manager == "xcat" {
            for key in XCAT_REQUIRED {
                if !settings.get(key).is_some_and(Value::is_string) {
                    problems.push(format!("extensions.xcat.{key} is required (a string)"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic() -> ProvisioningDraft {
        ProvisioningDraft {
            name: Some("centos5-stateful".into()),
            os_type: Some("linux".into()),
            hypervisor: Some(false),
            supports_virtual_machine: Some(true),
            ..Default::default()
        }
    }

    fn problems(draft: ProvisioningDraft) -> String {
        ProvisioningSpec::parse(draft).unwrap_err().to_string()
    }

    #[test]
    fn the_most_basic_image_gets_defaults() {
        let spec = ProvisioningSpec::parse(basic()).unwrap();
        assert_eq!(spec.provisioning_type, ProvisioningType::Stateful);
        assert!(spec.active);
        assert!(spec.extensions.is_empty());
    }

    #[test]
    fn every_rule_is_named() {
        let all_wrong = ProvisioningDraft {
            name: Some("bad name!".into()),
            hypervisor: Some(true),
            template_name: Some(Some("t".into())),
            virtualized_images: Some(vec![]),
            ..Default::default()
        };
        let text = problems(all_wrong);
        for rule in [
            "may contain only",
            "osType is required",
            "supportsPhysicalMachine or supportsVirtualMachine",
            "hypervisorType is required",
            "templateName is allowed only",
        ] {
            assert!(text.contains(rule), "{rule} missing from {text}");
        }
        assert!(problems(ProvisioningDraft::default()).contains("name is required"));
        assert!(problems(ProvisioningDraft::default()).contains("hypervisor is required"));
    }

    #[test]
    fn names_and_attributes_refuse_bidirectional_controls() {
        assert!(!is_provisioning_name("evil\u{202e}gpj"));
        // No file has these names: a deployment of such an image failed.
        assert!(!is_provisioning_name(".") && !is_provisioning_name(".."));
        assert!(is_provisioning_name("...") && is_provisioning_name(".hidden"));
        let text = problems(ProvisioningDraft {
            name: Some("evil\u{202e}gpj".into()),
            os_type: Some("linux\u{200e}".into()),
            ..basic()
        });
        assert!(text.contains("may contain only"), "{text}");
        assert!(text.contains("osType may not contain"), "{text}");
        let text = problems(ProvisioningDraft {
            provisioning_type: Some(Some("linkedclone".into())),
            template_name: Some(Some("centos\u{202a}".into())),
            ..basic()
        });
        assert!(text.contains("templateName may not contain"), "{text}");
    }

    #[test]
    fn an_update_is_held_to_the_bounds_in_what_it_gives_alone() {
        // A record stored before the bounds, with more features than they allow.
        let stored = ProvisioningDraft {
            features: Some(vec!["f".into(); 65]),
            ..basic()
        };
        let quiet = ProvisioningDraft {
            active: Some(false),
            ..Default::default()
        };
        assert!(ProvisioningSpec::parse_over(quiet, stored.clone()).is_ok());
        let giving = ProvisioningDraft {
            features: Some(vec!["f".into(); 65]),
            ..Default::default()
        };
        assert!(ProvisioningSpec::parse_over(giving, stored.clone()).is_err());
        assert!(ProvisioningSpec::parse(stored).is_err());
    }

    #[test]
    fn virtualized_images_need_a_hypervisor() {
        let draft = ProvisioningDraft {
            virtualized_images: Some(vec![ImageRef::Name("x".into())]),
            ..basic()
        };
        assert!(problems(draft).contains("only on a hypervisor"));
    }

    #[test]
    fn extensions_hold_one_manager_and_xcat_needs_its_keys() {
        let mut two = Map::new();
        two.insert(
            "xcat".into(),
            serde_json::json!({"os": "c", "architecture": "x", "profile": "p"}),
        );
        two.insert("other".into(), serde_json::json!({}));
        let draft = ProvisioningDraft {
            extensions: Some(two),
            ..basic()
        };
        assert!(problems(draft).contains("at most one"));

        let mut xcat = Map::new();
        xcat.insert("xcat".into(), serde_json::json!({"os": "centos"}));
        let text = problems(ProvisioningDraft {
            extensions: Some(xcat),
            ..basic()
        });
        assert!(text.contains("extensions.xcat.architecture"));
        assert!(text.contains("extensions.xcat.profile"));
    }

    #[test]
    fn linked_clones_may_name_a_template_and_types_are_checked() {
        let draft = ProvisioningDraft {
            provisioning_type: Some(Some("linkedclone".into())),
            template_name: Some(Some("centos5-compute".into())),
            ..basic()
        };
        assert!(ProvisioningSpec::parse(draft).is_ok());
        let draft = ProvisioningDraft {
            provisioning_type: Some(Some("stateful; drop".into())),
            ..basic()
        };
        assert!(problems(draft).contains("is not one of"));
    }

    #[test]
    fn an_update_overlays_a_stored_record() {
        let update = ProvisioningDraft {
            os_type: Some("windows".into()),
            template_name: Some(None),
            ..Default::default()
        };
        let base = ProvisioningDraft {
            template_name: Some(Some("t".into())),
            ..basic()
        };
        let merged = update.over(base);
        assert_eq!(merged.os_type.as_deref(), Some("windows"));
        assert_eq!(merged.name.as_deref(), Some("centos5-stateful"));
        assert_eq!(merged.template_name, Some(None));
    }
}
