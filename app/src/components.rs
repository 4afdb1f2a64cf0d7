//! Pieces shared by several pages.

mod alert;
mod nav;
mod pager;
mod secret;
mod upload;

pub use alert::{refusal, ErrorAlert, SignInPrompt};
pub use nav::NavBar;
pub use pager::{page_from_url, ListPager};
pub use secret::{script_running, ShownOnce};
pub use upload::{human_size, start as start_upload, UploadList, UploadTask};
