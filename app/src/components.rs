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

/// A `<textarea>`'s text, for its `inner_html`: Leptos writes a textarea's
/// children into the page unescaped (its contents are raw text to HTML),
/// so a description holding `</textarea><form …>` ended the field and
/// laid a form of its author's over the page an administrator opened.
/// Escaped, the server's page and the browser's `innerHTML` both read it
/// as the text it is.
pub fn textarea_text(text: &str) -> String {
    html_escape::encode_text(text).into_owned()
}
