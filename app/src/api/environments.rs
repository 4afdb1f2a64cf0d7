//! The signed-in user's execution environments (ViCE), without their passwords.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::model::{Environment, EnvironmentDraft, Paged};

/// The fields of the "register an environment" form, as the browser posts them.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentForm {
    pub title: String,
    pub management_type: String,
    pub management_software: String,
    pub management_version: String,
    pub runtime_type: String,
    pub runtime_software: String,
    pub runtime_version: String,
    pub location: String,
    pub username: String,
    /// Empty for none.
    pub password: String,
}

// Server functions may be logged with `Debug`; the password must not be.
impl std::fmt::Debug for EnvironmentForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentForm")
            .field("title", &self.title)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl From<EnvironmentForm> for EnvironmentDraft {
    fn from(form: EnvironmentForm) -> Self {
        Self {
            title: Some(form.title.trim().to_owned()),
            management_type: Some(form.management_type),
            management_software: Some(form.management_software.trim().to_owned()),
            management_version: Some(form.management_version.trim().to_owned()),
            runtime_type: Some(form.runtime_type),
            runtime_software: Some(form.runtime_software.trim().to_owned()),
            runtime_version: Some(form.runtime_version.trim().to_owned()),
            location: Some(form.location.trim().to_owned()),
            username: Some(form.username.trim().to_owned()),
            password: Some(form.password).filter(|password| !password.is_empty()),
            specifics: None,
        }
    }
}

/// A page (from 1) of the viewer's environments (everyone's for an
/// admin); 401 for nobody.
#[server(prefix = "/api/ui", endpoint = "environments")]
pub async fn list_environments(page: u64) -> Result<Paged<Environment>, CoreError> {
    use crate::api::LIST_PAGE_SIZE;
    let (catalog, viewer) = crate::ports::request_context()?;
    let offset = page.max(1).saturating_sub(1).saturating_mul(LIST_PAGE_SIZE);
    crate::ports::respond(
        catalog
            .list_environments(&viewer, LIST_PAGE_SIZE, offset)
            .await,
    )
}

/// Registers an environment of the viewer's (the same rules as ViCE's `POST /v1/environments`).
#[server(prefix = "/api/ui", endpoint = "environments/create")]
pub async fn create_environment(environment: EnvironmentForm) -> Result<Environment, CoreError> {
    use crate::model::EnvironmentSpec;
    use crate::ports::{request_context, respond};
    let (catalog, viewer) = request_context()?;
    // Nobody signed in hears 401 before any complaint about the form.
    respond(viewer.require_user())?;
    let spec = respond(EnvironmentSpec::parse(environment.into()))?;
    respond(catalog.create_environment(&viewer, spec).await)
}

/// Removes an environment of the viewer's (as ViCE's `DELETE /v1/environment/{id}`).
#[server(prefix = "/api/ui", endpoint = "environments/delete")]
pub async fn delete_environment(id: i64) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.delete_environment(&viewer, id).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EnvironmentSpec;

    #[test]
    fn an_empty_password_is_none_and_debug_hides_a_given_one() {
        let form = EnvironmentForm {
            management_type: "basic".into(),
            runtime_type: "container".into(),
            location: " file:///srv/exports ".into(),
            password: "hunter2".into(),
            ..Default::default()
        };
        assert!(!format!("{form:?}").contains("hunter2"));
        let spec = EnvironmentSpec::parse(form.clone().into()).unwrap();
        assert_eq!(spec.location, "file:///srv/exports");
        assert_eq!(spec.password.as_deref(), Some("hunter2"));
        let without = EnvironmentSpec::parse(
            EnvironmentForm {
                password: String::new(),
                ..form
            }
            .into(),
        )
        .unwrap();
        assert_eq!(without.password, None);
    }
}
