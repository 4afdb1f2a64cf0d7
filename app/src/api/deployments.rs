//! The signed-in user's deployments (ViCE), and deploying an image from its page.

use leptos::prelude::*;

use crate::error::CoreError;
use crate::model::{Deployment, Environment, Paged};

/// A page (from 1) of the viewer's deployments (everyone's for an admin),
/// newest first; 401 for nobody.
#[server(prefix = "/api/ui", endpoint = "deployments")]
pub async fn list_deployments(page: u64) -> Result<Paged<Deployment>, CoreError> {
    use crate::api::LIST_PAGE_SIZE;
    let (catalog, viewer) = crate::ports::request_context()?;
    let offset = page.max(1).saturating_sub(1).saturating_mul(LIST_PAGE_SIZE);
    crate::ports::respond(
        catalog
            .list_deployments(&viewer, LIST_PAGE_SIZE, offset)
            .await,
    )
}

/// Where the viewer may deploy an image (`None`: the image page offers
/// nothing). Never sets an error status: the image page keeps its own.
#[server(prefix = "/api/ui", endpoint = "deploy_targets")]
pub async fn deploy_targets(image_id: i64) -> Result<Option<Vec<Environment>>, CoreError> {
    let (catalog, viewer) = crate::ports::request_context()?;
    catalog.deploy_targets(&viewer, image_id).await
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
