//! Pieces shared by several pages.

mod nav;
mod upload;

pub use nav::NavBar;
pub use upload::{human_size, start as start_upload, UploadList, UploadTask};
