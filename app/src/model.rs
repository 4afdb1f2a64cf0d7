//! The domain records shared by the core, the dialects and the UI.

mod image;
mod user;

pub use image::{
    image_path, DiskFormat, Image, ImageKind, ImageName, ImagePage, MwsAttributes, ViceAttributes,
};
pub use user::{Principal, Role, Username, Viewer};
