//! Server functions of the UI. They live under `/api/ui`, a prefix no dialect
//! uses, and only translate between the UI and the [`crate::ports::Catalog`].

mod auth;
mod deployments;
mod environments;
mod images;
mod tokens;

pub use auth::{current_user, CurrentUser, Login, Logout};
pub use deployments::{
    delete_deployment, deploy_image, deploy_targets, list_deployments, DeleteDeployment,
    DeployImage,
};
pub use environments::{
    create_environment, delete_environment, list_environments, CreateEnvironment,
    DeleteEnvironment, EnvironmentForm,
};
pub use images::{
    delete_image, get_image, list_images, CatalogParams, CatalogSort, DeleteImage, UI_PAGE_SIZE,
};
pub use tokens::{create_token, list_tokens, revoke_token, CreateToken, RevokeToken};
