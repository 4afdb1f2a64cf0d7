//! ViCE execution environments: where images are deployed, with the
//! credentials to reach them. The password is a secret: it is never shown,
//! only whether one is set.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::{parse_specifics, plain_text, ManagementLayerType, RuntimeTechnologyType};

/// What answers stand for a stored password.
pub const MASKED_PASSWORD: &str = "********";

/// A layer of an environment: its type, software and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer<T> {
    pub kind: T,
    pub software: String,
    pub version: String,
}

/// An environment as stored and shown (never with its password).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub id: i64,
    pub user_id: i64,
    /// The owner's username.
    #[serde(default)]
    pub owner: String,
    pub title: String,
    pub management_layer: Layer<ManagementLayerType>,
    pub runtime_technology: Layer<RuntimeTechnologyType>,
    pub location: String,
    pub username: String,
    pub has_password: bool,
    /// A JSON object, as text.
    pub specifics: String,
}

/// An environment as a client sent it. `password` is `None` when absent or
/// masked: the stored one is kept.
#[derive(Clone, Default, PartialEq)]
pub struct EnvironmentDraft {
    pub title: Option<String>,
    pub management_type: Option<String>,
    pub management_software: Option<String>,
    pub management_version: Option<String>,
    pub runtime_type: Option<String>,
    pub runtime_software: Option<String>,
    pub runtime_version: Option<String>,
    pub location: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub specifics: Option<serde_json::Value>,
}

// The password must never reach a log line through `Debug`.
impl std::fmt::Debug for EnvironmentDraft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentDraft")
            .field("title", &self.title)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// An environment's attributes, every rule checked.
#[derive(Clone, PartialEq)]
pub struct EnvironmentSpec {
    pub title: String,
    pub management_layer: Layer<ManagementLayerType>,
    pub runtime_technology: Layer<RuntimeTechnologyType>,
    pub location: String,
    pub username: String,
    /// A new password; `None` keeps the stored one.
    pub password: Option<String>,
    pub specifics: String,
}

impl std::fmt::Debug for EnvironmentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentSpec")
            .field("title", &self.title)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// A free-text attribute (a title, a location): at most 2048 bytes, no
/// control or bidirectional formatting characters; absent is empty.
pub fn short_text(field: &str, value: Option<String>) -> Result<String, CoreError> {
    let value = value.unwrap_or_default();
    if value.len() > 2048 {
        return Err(CoreError::invalid(format!(
            "{field} must be at most 2048 bytes"
        )));
    }
    plain_text(field, &value)?;
    Ok(value)
}

/// The longest password an environment keeps (sealed, it is stored as
/// hex, twice as long).
const MAX_PASSWORD_BYTES: usize = 1024;

impl EnvironmentSpec {
    pub fn parse(draft: EnvironmentDraft) -> Result<Self, CoreError> {
        let management = ManagementLayerType::parse(
            draft
                .management_type
                .as_deref()
                .ok_or_else(|| CoreError::invalid("managementlayer.type is required"))?,
        )?;
        let runtime = RuntimeTechnologyType::parse(
            draft
                .runtime_type
                .as_deref()
                .ok_or_else(|| CoreError::invalid("runtimetechnology.type is required"))?,
        )?;
        let specifics =
            parse_specifics(draft.specifics.as_ref().unwrap_or(&serde_json::Value::Null))?;
        if draft
            .password
            .as_ref()
            .is_some_and(|password| password.len() > MAX_PASSWORD_BYTES)
        {
            return Err(CoreError::invalid(format!(
                "credentials.password may be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        Ok(Self {
            title: short_text("title", draft.title)?,
            management_layer: Layer {
                kind: management,
                software: short_text("managementlayer.software", draft.management_software)?,
                version: short_text("managementlayer.version", draft.management_version)?,
            },
            runtime_technology: Layer {
                kind: runtime,
                software: short_text("runtimetechnology.software", draft.runtime_software)?,
                version: short_text("runtimetechnology.version", draft.runtime_version)?,
            },
            location: short_text("credentials.location", draft.location)?,
            username: short_text("credentials.username", draft.username)?,
            password: draft
                .password
                .filter(|password| password != MASKED_PASSWORD),
            specifics: specifics.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> EnvironmentDraft {
        EnvironmentDraft {
            management_type: Some("basic".into()),
            runtime_type: Some("virtualmachine".into()),
            password: Some("hunter2".into()),
            ..Default::default()
        }
    }

    #[test]
    fn types_are_required_and_checked() {
        assert!(EnvironmentSpec::parse(draft()).is_ok());
        let error = EnvironmentSpec::parse(EnvironmentDraft {
            management_type: Some("grid".into()),
            ..draft()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("managementlayer.type"), "{error}");
        assert!(EnvironmentSpec::parse(EnvironmentDraft {
            runtime_type: None,
            ..draft()
        })
        .is_err());
    }

    #[test]
    fn titles_and_other_texts_are_short_and_plain() {
        assert_eq!(short_text("title", None).unwrap(), "");
        assert_eq!(short_text("title", Some("Lab é".into())).unwrap(), "Lab é");
        for (bad, rule) in [
            ("x".repeat(2049), "at most 2048 bytes"),
            ("a\u{7}b".to_owned(), "control characters"),
            ("lab\u{202e}cod".to_owned(), "bidirectional"),
            ("\u{2066}lab".to_owned(), "bidirectional"),
        ] {
            let error = short_text("title", Some(bad)).unwrap_err().to_string();
            assert!(
                error.starts_with("title ") && error.contains(rule),
                "{error}"
            );
        }
        let error = EnvironmentSpec::parse(EnvironmentDraft {
            title: Some("prod\u{200f}".into()),
            ..draft()
        })
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("title "), "{error}");
    }

    #[test]
    fn a_masked_password_keeps_the_stored_one_and_debug_hides_it() {
        let kept = EnvironmentSpec::parse(EnvironmentDraft {
            password: Some(MASKED_PASSWORD.into()),
            ..draft()
        })
        .unwrap();
        assert_eq!(kept.password, None);
        let spec = EnvironmentSpec::parse(draft()).unwrap();
        assert!(!format!("{spec:?}").contains("hunter2"));
        assert!(!format!("{:?}", draft()).contains("hunter2"));
    }
}
