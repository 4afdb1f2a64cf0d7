//! The signed-in user's deployments (ViCE), and deploying an image from its page.

use leptos::prelude::*;

use crate::error::CoreError;
use crate::model::{Deployment, Environment};

/// The viewer's deployments (everyone's for an admin), oldest first; 401 for nobody.
#[server(prefix = "/api/ui", endpoint = "deployments")]
pub async fn list_deployments() -> Result<Vec<Deployment>, CoreError> {
    use crate::ports::{request_context, respond};
    let (catalog, viewer) = request_context()?;
    respond(viewer.require_user())?;
    respond(catalog.list_deployments(&viewer).await)
}

/// Where the viewer may deploy an image: `None` when they may not deploy it
/// at all (nobody signed in, not theirs, no bytes), so that the image page
/// offers nothing; `Some` of their environments otherwise. Never an error
/// status: the image page around it must keep its own.
#[server(prefix = "/api/ui", endpoint = "deploy_targets")]
pub async fn deploy_targets(image_id: i64) -> Result<Option<Vec<Environment>>, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    if viewer.principal().is_none() {
        return Ok(None);
    }
    let image = match catalog.get_image(&viewer, image_id).await {
        Ok(image) => image,
        Err(CoreError::NotFound(_)) => return Ok(None),
        Err(error) => return Err(error),
    };
    if !image.writable_by(&viewer) || !image.has_content() {
        return Ok(None);
    }
    catalog.list_environments(&viewer).await.map(Some)
}

/// Deploys an image into one of the viewer's environments (as ViCE's
/// `POST /v1/deploy`), then shows the deployments.
#[server(prefix = "/api/ui", endpoint = "deploy")]
pub async fn deploy_image(
    image_id: i64,
    environment_id: i64,
    title: String,
) -> Result<Deployment, CoreError> {
    use crate::ports::{request_context, respond};
    let (catalog, viewer) = request_context()?;
    let deployment = respond(
        catalog
            .deploy(&viewer, image_id, environment_id, title.trim())
            .await,
    )?;
    leptos_axum::redirect("/deployments");
    Ok(deployment)
}

/// Removes a deployment's record (as ViCE's `DELETE /v1/deployment/{id}`).
#[server(prefix = "/api/ui", endpoint = "deployments/delete")]
pub async fn delete_deployment(id: i64) -> Result<(), CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    crate::ports::respond(catalog.delete_deployment(&viewer, id).await)
}
