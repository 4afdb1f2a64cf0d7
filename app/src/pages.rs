//! One module per route of the UI.

mod catalog;
mod deployments;
mod environments;
mod image;
mod login;
mod not_found;
mod store;
mod tenants;
mod tokens;
mod upload;
mod users;

pub use catalog::CatalogPage;
pub use deployments::DeploymentsPage;
pub use environments::EnvironmentsPage;
pub use image::ImagePage;
pub use login::LoginPage;
pub use not_found::NotFound;
pub use store::StorePage;
pub use tenants::TenantsPage;
pub use tokens::TokensPage;
pub use upload::UploadPage;
pub use users::UsersPage;
