//! Pieces shared by several pages.

mod alert;
mod nav;
mod upload;

pub use alert::{refusal, ErrorAlert};
pub use nav::NavBar;
pub use upload::{human_size, start as start_upload, UploadList, UploadTask};
