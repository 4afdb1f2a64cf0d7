//! Server functions of the UI. They live under `/api/ui`, a prefix no dialect
//! uses, and only translate between the UI and the [`crate::ports::Catalog`].

mod auth;
mod images;

pub use auth::{current_user, CurrentUser, Login, Logout};
pub use images::{get_image, list_images, CatalogParams, CatalogSort, UI_PAGE_SIZE};
